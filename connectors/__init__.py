"""Connectors: one module per source. Each reads its source and yields Activity records.

A connector knows nothing of xAPI statements, JP or the state store. :data:`CONNECTORS` maps
a live source's ``type`` in the configuration to its :class:`~connectors.base.Connector`;
``lms-bridge sync`` and the commands around it (``cursors``, ``doctor``, ``sites``, distributed
workers) reach a source only through it.
"""

from __future__ import annotations

from typing import Any

from connectors import google_classroom, google_meet, lrs_source, moodle, telegram_bot, zoom_api
from connectors.base import Connector

#: Source type -> connector, in the order ``sync`` lists them. Explicit on purpose: no plugin discovery.
CONNECTORS: dict[str, Connector[Any]] = {
    connector.type: connector
    for connector in (
        moodle.CONNECTOR,
        lrs_source.CONNECTOR,
        zoom_api.CONNECTOR,
        telegram_bot.CONNECTOR,
        google_classroom.CONNECTOR,
        google_meet.CONNECTOR,
    )
}

#: The source type ``lms-bridge sites add|list|test`` manages: an LMS site with a URL and a web-service token.
SITE_TYPE = moodle.CONNECTOR.type
