"""The compliance report kept in the web process between requests, until the data behind it changes.

Computing :func:`lms_bridge.ledger.reports.compliance` for 100,000 people costs about a second of
CPU; every ``/compliance`` page and download needs it whole (then filters it for the user's units,
the search and the page). So the web process keeps the last computed reports per (year, as-of
date) and computes one again only when its stamp changed:

- the report version (:mod:`lms_bridge.store.report_version`): a counter row that every writer of
  the report's tables bumps in its own transaction (``ledger sync``, ``people import``,
  ``jp compute``, ``forget``); one primary-key read a request;
- the digest of the JP rules file, whose ``[[targets]]`` give the targets (a file, not the store:
  an edited file is seen at the next request, as before).

The version is read before the report, so a change committed in between makes the entry look
older than it is (computed again next time), never newer. At most ``[web] report_cache_entries``
reports are kept (the least recently used goes first; about 50 MB each for 100,000 people), and
requests that find the same key stale wait for one computation (a lock per key) instead of each
computing it; at most :data:`MAX_COMPUTING` reports are computed at once, whatever the keys.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from lms_bridge.config.settings import Settings
from lms_bridge.ledger import reports
from lms_bridge.store import report_version
from lms_bridge.store.models import LedgerRecord

#: Reports computed at the same time at most (each holds its rows while it is built).
MAX_COMPUTING = 2
#: Figures derived from one report (per units, unit and day) kept with it at most.
MAX_DERIVED = 64
#: Rendered page bodies kept with one report at most (~200 KB each for an institution's overview).
MAX_PAGES = 64

Stamp = tuple[int, str]


@dataclass
class Entry:
    """A computed report and what was derived from it, valid while the stamp stays the same."""

    stamp: Stamp
    report: reports.ComplianceReport
    #: When the LRS stored the newest JP record (the page's freshness line), read with the report.
    newest_record: datetime | None
    #: Figures the page derives from the rows (see :meth:`ReportCache.derived`), by the caller's key.
    derived: OrderedDict[Any, Any] = field(default_factory=OrderedDict)
    #: Rendered page bodies (see :meth:`ReportCache.page`), apart: a walk through many pages of people must not
    #: push out the derived figures every page needs.
    pages: OrderedDict[Any, Any] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    entry: Entry | None = None


class ReportCache:
    """Compliance reports per (year, as-of date), computed again only when the stamp changed."""

    def __init__(self, engine: Engine, settings: Settings, *, entries: int = 4) -> None:
        self.engine = engine
        self.settings = settings
        self.size = entries
        self._slots: OrderedDict[tuple[int, date], _Slot] = OrderedDict()
        self._guard = threading.Lock()
        self._computing = threading.BoundedSemaphore(MAX_COMPUTING)
        #: Reports computed so far (the tests count them).
        self.computed = 0

    def __len__(self) -> int:
        """How many (year, as-of date) keys are kept."""
        return len(self._slots)

    def stamp(self) -> Stamp:
        """The report version and the rules file's digest, as they are now."""
        with self.engine.connect() as connection:
            version = report_version.current(connection)
        rules_file = self.settings.jp.rules_file
        digest = ""
        if rules_file is not None:
            try:
                digest = hashlib.sha256(self.settings.resolve_path(rules_file).read_bytes()).hexdigest()
            except OSError:
                digest = "unreadable"  # computing the report then says why, as without the cache
        return version, digest

    def get(self, year: int, as_of: date) -> Entry:
        """The report of ``year`` up to ``as_of``: kept, or computed once for all who ask at the same time."""
        key = (year, as_of)
        stamp = self.stamp()
        with self._guard:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            self._slots.move_to_end(key)
            while len(self._slots) > self.size:
                self._slots.popitem(last=False)
            if slot.entry is not None and slot.entry.stamp == stamp:
                return slot.entry
        with slot.lock:
            # Another request may have computed it while this one waited: read the stamp again.
            stamp = self.stamp()
            if slot.entry is not None and slot.entry.stamp == stamp:
                return slot.entry
            with self._computing:
                report = reports.compliance(self.engine, self.settings, year, as_of=as_of)
                with self.engine.connect() as connection:
                    newest = connection.scalar(select(func.max(LedgerRecord.stored)))
            slot.entry = Entry(stamp, report, newest)
            self.computed += 1
            return slot.entry

    @staticmethod
    def derived(entry: Entry, key: Any, build: Any) -> Any:
        """``build()`` for ``key``, once per entry (figures of the rows that many requests show the same)."""
        return _kept(entry, entry.derived, MAX_DERIVED, key, build)

    @staticmethod
    def page(entry: Entry, key: Any, build: Any) -> Any:
        """A rendered page body for ``key``, once per entry.

        ``key`` must hold everything the body shows that the report does not (filters, language, the user's units...).
        """
        return _kept(entry, entry.pages, MAX_PAGES, key, build)


def _kept(entry: Entry, kept: OrderedDict[Any, Any], size: int, key: Any, build: Any) -> Any:
    """``kept[key]``, built and kept (at most ``size``, the least recently used goes first) when missing."""
    with entry.lock:
        if key in kept:
            kept.move_to_end(key)
            return kept[key]
    value = build()
    with entry.lock:
        kept[key] = value
        while len(kept) > size:
            kept.popitem(last=False)
    return value
