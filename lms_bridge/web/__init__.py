"""The read-only HR web page: login, compliance per unit, a person's records and evidence, downloads.

``lms-bridge serve-web`` serves :func:`lms_bridge.web.app.create_app` with waitress on
127.0.0.1. Users live in the state store (``lms-bridge users add``, see
:mod:`lms_bridge.web.users`). No page writes to the store; the only state a visit
creates is the signed session cookie. This package's ``__init__`` imports nothing
heavy, so the CLI can manage users without loading Flask.
"""
