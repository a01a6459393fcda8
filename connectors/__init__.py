"""Connectors: one module per source. Each reads its source and yields Activity records.

A connector knows nothing of xAPI, JP or the state store. ``REGISTRY`` maps a
source ``type`` in the configuration to the connector's reader.
"""

from __future__ import annotations

from connectors import jsonl

#: Source type -> module. Explicit on purpose: no plugin discovery magic.
REGISTRY = {
    "jsonl": jsonl,
}
