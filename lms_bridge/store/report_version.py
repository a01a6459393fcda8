"""The report version: a counter that moves whenever the compliance report can change.

:func:`lms_bridge.ledger.reports.compliance` reads ``ledger_records``, ``persons``,
``person_units`` and ``jp_pending``. Every transaction that writes one of them calls
:func:`bump` before it commits (the counter then commits, or rolls back, with the change),
and the web page compares :func:`current` with the version its cached report was computed
at (``lms_bridge.web.report_cache``). A reader that reads the version first and the report
after can only cache a report newer than its version, never an older one.

The bump is the transaction's last statement on purpose: on PostgreSQL it holds the
counter row's lock until the commit, so two writers wait on each other only that long.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from lms_bridge.store.models import ReportVersion, utcnow

#: The id of the one counter row (migration 0012 inserts it).
ROW = 1


def bump(session: Session | Connection) -> None:
    """Move the counter in the caller's transaction (call it last, just before the commit)."""
    session.execute(
        update(ReportVersion)
        .where(ReportVersion.id == ROW)
        .values(version=ReportVersion.version + 1, changed_at=utcnow())
    )


def current(session: Session | Connection) -> int:
    """The counter's value (0 before the first change)."""
    return int(session.scalar(select(ReportVersion.version).where(ReportVersion.id == ROW)) or 0)
