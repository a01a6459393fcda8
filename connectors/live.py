"""Live pulls from platform APIs (Telegram Bot API, Zoom Reports API, Google Classroom...).

An export is manual; an API can be pulled on a schedule like a Moodle site. A live connector
module describes itself with one :class:`LiveConnector` and is listed in :data:`MODULES`;
``lms-bridge sync`` (``lms_bridge.ingest.runner.sync_live_source``) then runs each of its streams
from the stream's cursor, page by page, and commits every page in one transaction: the
page's activities, its identity links and the cursor after it (the cursor rule). A page
must therefore carry the position that covers exactly its activities.

A connector yields the same normalised :class:`~lms_bridge.activity.Activity` records as
the export parsers of the same platform (same ``source``, ``site`` and ``native_id`` where
the platform gives the same ids), so a group that is both exported and pulled gives each
statement once.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, SecretStr

from lms_bridge.activity import Activity

#: Modules that define a live connector (each has a module-level ``CONNECTOR``).
MODULES: tuple[str, ...] = ("connectors.zoom_api", "connectors.telegram_bot", "connectors.google_classroom")


@dataclass
class LivePage:
    """One page of a live source, committed in one transaction.

    Attributes:
        activities: the activities the page gave.
        accounts: source-local account id -> NIP (or None when unknown) for identity links;
            most chat platforms give no NIP (the roster links them), so this is often empty.
        position: the stream's cursor after this page (JSON-serialisable), or None to leave it.
        read: source records the page held (for progress and run counts).
        skipped: source records that became no activity, by reason.
    """

    activities: list[Activity] = field(default_factory=list)
    accounts: dict[str, str | None] = field(default_factory=dict)
    position: Any = None
    read: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


class LiveReader(Protocol):
    """An open connection to a live source."""

    #: API calls made so far, per endpoint or method name.
    calls: Counter[str]

    def read(self, stream: str, start: Any, since: datetime | None = None) -> Iterator[LivePage]:
        """Yield the stream's pages after ``start`` (the stored cursor, None the first time).

        ``since`` asks for a backfill window instead (the cursor is not moved by the runner);
        a source that cannot go back raises :class:`~lms_bridge.errors.ConfigError` saying so.
        Errors are the project's own (:class:`~lms_bridge.errors.LmsBridgeError` subclasses),
        naming the source.
        """
        ...


@dataclass(frozen=True)
class LiveContext:
    """What an opener may use of the deployment besides its source's own settings.

    It is called like the secret lookup it wraps (``context("ENV_NAME")``), so an opener
    that only needs secrets treats it as one.

    Attributes:
        secret: the secret named by an environment variable (environment or 0600 secrets file).
        timezone: the deployment's time zone: local dates are read in it, as the export parsers do.
        pseudonymizer: builds the deployment's pseudonymiser (ConfigError without the key), so
            e-mails and chat ids become the same pseudonyms as in an imported export.
        resolve_path: a path from the config file, relative to that file's folder (key files).
    """

    secret: Callable[[str], SecretStr]
    timezone: ZoneInfo
    pseudonymizer: Callable[[], Callable[[str], str]]
    resolve_path: Callable[[Path], Path] = field(default=lambda path: path)

    def __call__(self, name: str) -> SecretStr:
        """The secret named ``name`` (see :attr:`secret`)."""
        return self.secret(name)


#: Opens a reader: (validated settings, the deployment context) -> context manager.
Opener = Callable[[Any, LiveContext], AbstractContextManager[LiveReader]]


@dataclass(frozen=True)
class LiveConnector:
    """What ``lms-bridge sync`` needs to know of a live connector.

    Attributes:
        type: the ``type`` of its ``[[sources]]`` entries (e.g. ``telegram_bot``).
        streams: its stream names, in the order they run.
        settings_model: the pydantic model validating a ``[[sources]]`` entry (``extra="forbid"``,
            with ``id`` and ``type`` fields).
        open: opens a reader for one source.
        link_source: the identity ``source`` name of the accounts in :attr:`LivePage.accounts`.
        site_url: the source's home URL for site-scoped actors, from its settings (or None).
        confirms_reads: reading past a page confirms it at the source, which then drops it
            (Telegram's ``getUpdates`` offset): a dry run, which stores nothing, reads one page only.
        reset_position: ``(stream, current position, to) -> position`` as if the stream had synced up
            to ``to`` (``lms-bridge cursors reset``), or None when its cursor is not a date.
    """

    type: str
    streams: tuple[str, ...]
    settings_model: type[BaseModel]
    open: Opener
    link_source: str
    site_url: Callable[[Any], str | None] = lambda settings: None
    confirms_reads: bool = False
    reset_position: Callable[[str, Any, datetime], Any] | None = None


def connectors() -> dict[str, LiveConnector]:
    """The live connectors, by source type."""
    found: dict[str, LiveConnector] = {}
    for name in MODULES:
        connector: LiveConnector = importlib.import_module(name).CONNECTOR
        found[connector.type] = connector
    return found
