"""JP record rows: which records are active, and writing new ones with their statements.

Guard: :func:`write` queues the statements (new records and voids) and updates the
record rows in the caller's ONE transaction, so a crash leaves either a record
with its statement queued or neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from lms_bridge.store import _enqueue
from lms_bridge.store.models import JPPending, JPRecord, utcnow
from xapi.statements import BuiltStatement

ACTIVE = "active"
VOIDED = "voided"

Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class RecordIn:
    """A record to insert (its statement is queued with it)."""

    nip: str
    rule_id: str
    rule_version: int
    period: str
    activity_key: str
    revision: int
    jp: str
    evidence_hash: str
    statement_id: str
    occurred_at: datetime


@dataclass(frozen=True)
class Record(RecordIn):
    """An active JP record as stored: a :class:`RecordIn` with its row id."""

    id: int

    @property
    def key(self) -> Key:
        """(NIP, rule id, period, activity key)."""
        return (self.nip, self.rule_id, self.period, self.activity_key)


def _in_years(years: Sequence[int]) -> ColumnElement[bool]:
    return or_(*(JPRecord.period.like(f"{year}-%") for year in years))


def active_records(session: Session, years: Sequence[int]) -> dict[Key, Record]:
    """The active records whose period lies in ``years``, by key."""
    if not years:
        return {}
    rows = session.execute(select(JPRecord).where(JPRecord.status == ACTIVE, _in_years(years))).scalars()
    found: dict[Key, Record] = {}
    for row in rows:
        record = _record(row)
        found[record.key] = record
    return found


#: :class:`Record`'s fields in order: the columns :func:`iter_active_records` reads.
_RECORD_COLUMNS = (
    "nip",
    "rule_id",
    "rule_version",
    "period",
    "activity_key",
    "revision",
    "jp",
    "evidence_hash",
    "statement_id",
    "occurred_at",
    "id",
)


def _record(row: JPRecord) -> Record:
    return Record(
        id=row.id,
        nip=row.nip,
        rule_id=row.rule_id,
        rule_version=row.rule_version,
        period=row.period,
        activity_key=row.activity_key,
        revision=row.revision,
        jp=row.jp,
        evidence_hash=row.evidence_hash,
        statement_id=row.statement_id,
        occurred_at=row.occurred_at,
    )


def in_nip_order(column: Any, dialect: str) -> Any:
    """``column`` for ``ORDER BY`` in byte order, the order of Python's ``<`` on the NIP text.

    PostgreSQL's ``C`` collation, SQLite's default: so NIP-ordered streams can be merged in Python.
    """
    return column.collate("C") if dialect == "postgresql" else column


def iter_active_records(session: Session, years: Sequence[int], *, fetch: int = 2000) -> Iterator[Record]:
    """The active records whose period lies in ``years``, streamed in NIP order (then row id)."""
    if not years:
        return
    dialect = session.get_bind().dialect.name
    columns = [getattr(JPRecord, name) for name in _RECORD_COLUMNS]
    query = (
        select(*columns)
        .where(JPRecord.status == ACTIVE, _in_years(years))
        .order_by(in_nip_order(JPRecord.nip, dialect), JPRecord.id)
        .execution_options(yield_per=fetch)
    )
    for row in session.execute(query):
        yield Record(*row)


def iter_last_revisions(session: Session, years: Sequence[int], *, fetch: int = 2000) -> Iterator[tuple[Key, int]]:
    """The highest revision ever used per key (voided ones included) in ``years``, streamed in NIP order."""
    if not years:
        return
    dialect = session.get_bind().dialect.name
    query = (
        select(JPRecord.nip, JPRecord.rule_id, JPRecord.period, JPRecord.activity_key, func.max(JPRecord.revision))
        .where(_in_years(years))
        .group_by(JPRecord.nip, JPRecord.rule_id, JPRecord.period, JPRecord.activity_key)
        .order_by(in_nip_order(JPRecord.nip, dialect))
        .execution_options(yield_per=fetch)
    )
    for row in session.execute(query):
        yield (row[0], row[1], row[2], row[3]), int(row[4])


#: SQLite page cache for a ``jp compute`` run, in KiB (``PRAGMA cache_size`` takes a negative figure for KiB).
RUN_CACHE_KIB = 65_536


def use_run_cache(session: Session) -> None:
    """Give this session's SQLite connection a page cache sized for a whole ``jp compute`` transaction.

    Why: the run writes records and outbox rows with random (uuid) keys in ONE transaction; with
    SQLite's default 2 MB cache the pages it has written spill into the WAL and are read back one
    ``pread`` at a time: 38 million reads (156 GB) and 54 s of system CPU in 11 minutes at 10,000
    people before this (BENCHMARKS.md 7.1). A fixed size keeps memory bounded; PostgreSQL has its
    own buffers, so nothing is done there. The pooled connection keeps the setting: harmless.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text(f"PRAGMA cache_size=-{RUN_CACHE_KIB}"))


def write(
    session: Session, statements: Sequence[BuiltStatement], new: Sequence[RecordIn], voided: Sequence[int]
) -> None:
    """Queue the statements, mark ``voided`` record ids voided and insert ``new`` records."""
    if voided:
        for start in range(0, len(voided), 500):
            chunk = list(voided[start : start + 500])
            session.execute(update(JPRecord).where(JPRecord.id.in_(chunk)).values(status=VOIDED))
    if statements:
        _enqueue(session, statements, None, "jp")
    now = utcnow()
    if new:
        # A Core insert on the table: the ORM's bulk path costs per-row Python for the same statement.
        rows = [{"status": ACTIVE, "created_at": now, **vars(row)} for row in new]
        session.connection().execute(insert(cast(Table, JPRecord.__table__)), rows)


@dataclass(frozen=True)
class PendingIn:
    """A held credit to store (see :class:`lms_bridge.store.models.JPPending`)."""

    nip: str
    rule_id: str
    period: str
    period_day: date
    activity_key: str
    site_id: str
    course: str
    evidence_ids: tuple[str, ...]


def clear_pending(session: Session, years: Sequence[int]) -> None:
    """Remove the held credits of ``years`` (a run then adds its own with :func:`add_pending`)."""
    if years:
        session.execute(delete(JPPending).where(or_(*(JPPending.period.like(f"{year}-%") for year in years))))


def add_pending(session: Session, rows: Sequence[PendingIn]) -> None:
    """Store held credits."""
    if not rows:
        return
    now = utcnow()
    session.connection().execute(
        insert(cast(Table, JPPending.__table__)),
        [
            {
                "nip": row.nip,
                "rule_id": row.rule_id,
                "period": row.period,
                "period_day": row.period_day,
                "activity_key": row.activity_key,
                "site_id": row.site_id,
                "course": row.course,
                "evidence_ids": json.dumps(list(row.evidence_ids)),
                "evidence_count": len(row.evidence_ids),
                "computed_at": now,
            }
            for row in rows
        ],
    )


@dataclass(frozen=True)
class HeldCourse:
    """A course whose completions (or modules) are held: what to configure in program_jp.toml."""

    site_id: str
    course: str
    people: int
    items: int
    first: date
    last: date


def held_courses(session: Session) -> list[HeldCourse]:
    """Every course with held credits, the most held first."""
    rows = session.execute(
        select(
            JPPending.site_id,
            JPPending.course,
            func.count(func.distinct(JPPending.nip)),
            func.sum(JPPending.evidence_count),
            func.min(JPPending.period_day),
            func.max(JPPending.period_day),
        ).group_by(JPPending.site_id, JPPending.course)
    )
    found = [HeldCourse(row[0], row[1], int(row[2]), int(row[3] or 0), row[4], row[5]) for row in rows]
    return sorted(found, key=lambda held: (-held.items, held.site_id, held.course))
