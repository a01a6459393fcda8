"""xAPI: statement building on ``tincan`` objects, deterministic ids, validation, the LRS client.

Imports from the project only ``lms_bridge.errors``, ``lms_bridge.activity`` and
``lms_bridge.redaction`` (leaf modules), never the service core.
"""
