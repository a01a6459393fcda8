"""Live pulls from platform APIs (Telegram Bot API, Zoom Reports API, Google Classroom...).

An export is manual; an API can be pulled on a schedule like a Moodle site. A platform
connector module describes itself with one :class:`LiveConnector` (a
:class:`~connectors.base.Connector` built from a few values) and is registered in
:data:`connectors.CONNECTORS`; ``lms-bridge sync`` then runs each of its streams from the stream's
cursor, page by page, and commits every page in one transaction: the page's activities, its
identity links and the cursor after it (the cursor rule). A page must therefore carry the
position that covers exactly its activities.

A connector yields the same normalised :class:`~lms_bridge.activity.Activity` records as
the export parsers of the same platform (same ``source``, ``site`` and ``native_id`` where
the platform gives the same ids), so a group that is both exported and pulled gives each
statement once.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from connectors.base import Check, Connector, Context, Page, Reader, Retention, Stream
from lms_bridge.errors import ConfigError, LmsBridgeError

#: The contract's names under the names the live connectors first had.
LivePage = Page
LiveContext = Context
LiveReader = Reader

#: Opens a reader: (validated settings, the deployment context) -> context manager.
Opener = Callable[[Any, Context], AbstractContextManager[Reader]]
#: Checks a source: (validated settings, the deployment context) -> what it found. It makes the calls a
#: sync needs first (a token, one listing) and says what to fix; a missing secret may raise ConfigError.
Checker = Callable[[Any, Context], Check]


@dataclass(frozen=True)
class LiveConnector(Connector[Any]):
    """A platform API's connector, described by values.

    Attributes:
        type: the ``type`` of its ``[[sources]]`` entries (e.g. ``telegram_bot``).
        streams: its streams, in the order they run.
        settings_model: the pydantic model validating a ``[[sources]]`` entry.
        opener: opens a reader for one source (:meth:`open`).
        link_source: the identity ``source`` name of the accounts in :attr:`Page.accounts`.
        site_url_of: the source's home URL for site-scoped actors, from its settings (or None).
        confirms_reads: see :attr:`Connector.confirms_reads`.
        dated_position: ``(stream, current position, to) -> position`` as if the stream had synced
            up to ``to`` (``lms-bridge cursors reset``), or None when its cursor is not a date.
        retention: see :attr:`Connector.retention`.
        checker: the source's self-check (:meth:`check`), or None when it has none.
    """

    type: str
    streams: tuple[Stream, ...]
    settings_model: builtins.type[BaseModel]
    opener: Opener
    link_source: str
    site_url_of: Callable[[Any], str | None] = lambda settings: None
    confirms_reads: bool = False
    dated_position: Callable[[str, Any, datetime], Any] | None = None
    retention: Retention | None = None
    label: str = field(default="")
    checker: Checker | None = None

    def site_url(self, settings: Any) -> str | None:
        """See :meth:`Connector.site_url`."""
        return self.site_url_of(settings)

    def open(self, settings: Any, context: Context) -> AbstractContextManager[Reader]:
        """See :meth:`Connector.open`: the opener runs when the ``with`` enters it."""
        return self.opener(settings, context)

    def check(self, entry: Any, context: Context) -> Check | None:
        """See :meth:`Connector.check`: the entry is validated, then the :attr:`checker` calls the source."""
        if self.checker is None:
            return None
        name = f"{self.type} {entry.get('id')}"
        try:
            settings = self.settings(entry)
        except ConfigError as exc:
            return Check(name, False, str(exc), "fix the [[sources]] entry (lms-bridge config check shows it whole)")
        try:
            return self.checker(settings, context)
        except ConfigError as exc:  # a secret or key file that is missing or unsafe
            return Check(name, False, str(exc), "set it as the sentence says, then run lms-bridge doctor again")
        except LmsBridgeError as exc:  # what the checker did not name itself (a source that cannot be reached)
            return Check(name, False, str(exc), "check the source's URLs and that this machine can reach them")

    def reset_position(self, site: str, stream: str, before: Any, to: datetime) -> tuple[Any, bool]:
        """See :meth:`Connector.reset_position`: forward when any date in the cursor is before ``to``."""
        if self.dated_position is None or stream not in self.stream_names:
            return super().reset_position(site, stream, before, to)
        return self.dated_position(stream, before, to), any(moment < to for moment in iso_moments(before))


def iso_moments(position: Any) -> list[datetime]:
    """The ISO dates and times held anywhere in a live source's cursor (as UTC datetimes)."""
    if isinstance(position, dict):
        return [moment for value in position.values() for moment in iso_moments(value)]
    if isinstance(position, str):
        try:
            moment = datetime.fromisoformat(position)
        except ValueError:
            return []
        return [moment if moment.tzinfo else moment.replace(tzinfo=UTC)]
    return []
