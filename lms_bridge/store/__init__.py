"""The state store: cursors, outbox, runs. The only place that writes them.

Guard (the cursor rule, docs/design.md): :func:`commit_batch` writes a stream's
cursor and the outbox rows it produced in ONE transaction. Nothing else moves a
live cursor, so a crash at any instant leaves either both or neither.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from lms_bridge.nip import parse_nip
from lms_bridge.store.db import current_revision, describe, head_revision, make_engine, open_engine, upgrade
from lms_bridge.store.models import Cursor, Evidence, IdentityLink, OutboxRow, OutboxStatus, Person, Run, Site, utcnow
from xapi.statements import BuiltStatement

__all__ = [
    "BatchResult",
    "EvidenceIn",
    "LinkIn",
    "OutboxCounts",
    "commit_batch",
    "current_revision",
    "describe",
    "finish_run",
    "get_cursor",
    "head_revision",
    "make_engine",
    "open_engine",
    "outbox_counts",
    "requeue_dead",
    "site_nips",
    "start_run",
    "upgrade",
]


@dataclass(frozen=True)
class LinkIn:
    """A source-local account and the raw NIP it carries (blank, spaced or invalid allowed).

    Attributes:
        source: connector kind (``moodle``...).
        site_id: configured source id.
        local_id: the account's id on the source (never a raw phone number).
        raw_nip: the NIP as the source holds it, or None.
    """

    source: str
    site_id: str
    local_id: str
    raw_nip: str | None


@dataclass(frozen=True)
class EvidenceIn:
    """The facts of one statement that JP rules read (see ``models.Evidence``)."""

    statement_id: str
    source: str
    site_id: str
    local_actor: str
    nip: str | None
    kind: str
    occurred_at: datetime
    duration_seconds: int | None
    object_key: str
    community: str | None
    facts: str
    #: The source's reply link (object key of the item answered, same site), when it has one.
    reply_to: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """What one committed batch did to the outbox.

    Attributes:
        new: statements added to the outbox.
        unchanged: statements already there with the same content (a rerun).
        changed: statements already there with other content (the source changed
            after it was first pulled); the stored one is kept and they are not re-sent.
    """

    new: int = 0
    unchanged: int = 0
    changed: int = 0


def _sha256(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _insert(session: Session) -> Any:
    """The dialect's INSERT that can skip conflicting rows (both SQLite and PostgreSQL can)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _enqueue(
    session: Session, statements: Sequence[BuiltStatement], site_id: str | None, stream: str | None
) -> BatchResult:
    if not statements:
        return BatchResult()
    by_id = {s.id: s for s in statements}
    existing: dict[str, str] = {}
    ids = list(by_id)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = session.execute(
            select(OutboxRow.statement_id, OutboxRow.body_sha256).where(OutboxRow.statement_id.in_(chunk))
        )
        existing.update({row.statement_id: row.body_sha256 for row in rows})
    now = utcnow()
    fresh = [
        {
            "statement_id": s.id,
            "body": s.body,
            "body_sha256": _sha256(s.body),
            "site_id": site_id,
            "stream": stream,
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for s in by_id.values()
        if s.id not in existing
    ]
    if fresh:
        insert = _insert(session)
        # ON CONFLICT DO NOTHING: a concurrent writer of the same id wins harmlessly.
        session.connection().execute(
            insert(OutboxRow.__table__).on_conflict_do_nothing(index_elements=["statement_id"]), fresh
        )
    changed = sum(1 for sid, digest in existing.items() if digest != _sha256(by_id[sid].body))
    return BatchResult(new=len(fresh), unchanged=len(existing) - changed, changed=changed)


def _store_links(session: Session, links: Sequence[LinkIn]) -> int:
    """Upsert persons and identity links; return how many accounts carry a valid NIP.

    Two accounts with one NIP become one person. An account whose NIP appears later
    is linked then; a NIP that disappears from the source keeps the old link.
    """
    parsed = [(link, parse_nip(link.raw_nip)) for link in links]
    nips = {nip.value: nip.employee_type.value for _, nip in parsed if nip is not None}
    insert = _insert(session)
    if nips:
        now = utcnow()
        session.connection().execute(
            insert(Person.__table__).on_conflict_do_nothing(index_elements=["nip"]),
            [{"nip": value, "employee_type": kind, "created_at": now} for value, kind in nips.items()],
        )
    person_ids: dict[str, int] = {}
    values = list(nips)
    for start in range(0, len(values), 500):
        rows = session.execute(select(Person.nip, Person.id).where(Person.nip.in_(values[start : start + 500])))
        person_ids.update({row.nip: row.id for row in rows})
    now = utcnow()
    rows_in = [
        {
            "source": link.source,
            "site_id": link.site_id,
            "local_id": link.local_id,
            "person_id": person_ids.get(nip.value) if nip else None,
            "created_at": now,
            "updated_at": now,
        }
        for link, nip in parsed
    ]
    if rows_in:
        statement = insert(IdentityLink.__table__)
        session.connection().execute(
            statement.on_conflict_do_update(
                index_elements=["source", "site_id", "local_id"],
                set_={
                    "person_id": func.coalesce(statement.excluded.person_id, IdentityLink.__table__.c.person_id),
                    "updated_at": statement.excluded.updated_at,
                },
            ),
            rows_in,
        )
    return sum(1 for _, nip in parsed if nip is not None)


def site_nips(engine: Engine, source: str, site_id: str) -> dict[str, str]:
    """Every linked account of a site and its person's NIP (local id -> NIP)."""
    with Session(engine) as session:
        rows = session.execute(
            select(IdentityLink.local_id, Person.nip)
            .join(Person, Person.id == IdentityLink.person_id)
            .where(IdentityLink.source == source, IdentityLink.site_id == site_id)
        )
        return {row.local_id: row.nip for row in rows}


def _store_evidence(session: Session, evidence: Sequence[EvidenceIn]) -> None:
    """Upsert evidence rows: the facts are a pure function of the activity, so the newest read wins."""
    if not evidence:
        return
    insert = _insert(session)
    statement = insert(Evidence.__table__)
    columns = (
        "source",
        "site_id",
        "local_actor",
        "nip",
        "kind",
        "occurred_at",
        "duration_seconds",
        "object_key",
        "community",
        "facts",
        "reply_to",
    )
    # Core inserts on the tables (here and above), not ORM bulk inserts: the ORM path walked every row
    # through its persistence layer, a third of commit_batch's CPU (BENCHMARKS.md, client CPU per call).
    session.connection().execute(
        statement.on_conflict_do_update(
            index_elements=["statement_id"], set_={name: getattr(statement.excluded, name) for name in columns}
        ),
        [vars(row) for row in evidence],
    )


def commit_batch(
    engine: Engine,
    *,
    site_id: str,
    stream: str,
    statements: Sequence[BuiltStatement],
    position: Any | None,
    links: Sequence[LinkIn] = (),
    evidence: Sequence[EvidenceIn] = (),
    guard: Callable[[Session], None] | None = None,
) -> BatchResult:
    """Store statements in the outbox and move the stream's cursor, in one transaction.

    Idempotent: statements already in the outbox are skipped (the outbox is unique
    on statement id), so re-reading the tie at an inclusive cursor bound is safe.

    Args:
        engine: the state store.
        site_id: the configured source id.
        stream: the stream name (keys the cursor: never rename a stream).
        statements: validated statements built from the batch's activities.
        position: the JSON-able cursor covering this batch, or None to leave the
            cursor alone (backfills and dry runs never move it).
        links: identity links read with this batch (stored in the same transaction).
        evidence: the JP-relevant facts of the batch's statements (same transaction).
        guard: called first in the transaction; raising rolls it back (the tombstones check,
            :meth:`lms_bridge.identity.resolver.Tombstones.guard`).

    Returns:
        How many statements were new, unchanged or changed.
    """
    with Session(engine) as session, session.begin():
        if guard is not None:
            guard(session)
        result = _enqueue(session, statements, site_id, stream)
        if links:
            _store_links(session, links)
        _store_evidence(session, evidence)
        if position is not None:
            value = json.dumps(position, sort_keys=True)
            cursor = session.get(Cursor, (site_id, stream))
            if cursor is None:
                session.add(Cursor(site_id=site_id, stream=stream, position=value, updated_at=utcnow()))
            else:
                cursor.position = value
    return result


def enqueue(
    engine: Engine, statements: Sequence[BuiltStatement], *, site_id: str | None = None, stream: str | None = None
) -> BatchResult:
    """Store statements in the outbox with no cursor (JP records, voids, imports of dead letters)."""
    with Session(engine) as session, session.begin():
        return _enqueue(session, statements, site_id, stream)


def get_cursor(engine: Engine, site_id: str, stream: str) -> Any | None:
    """Return the stream's stored position (decoded JSON), or None before the first sync."""
    with Session(engine) as session:
        cursor = session.get(Cursor, (site_id, stream))
        return None if cursor is None else json.loads(cursor.position)


def ensure_site(engine: Engine, site_id: str, site_type: str, url: str | None) -> None:
    """Record a configured source in the store (idempotent; keeps the URL current)."""
    with Session(engine) as session, session.begin():
        site = session.get(Site, site_id)
        if site is None:
            session.add(Site(id=site_id, type=site_type, url=url, created_at=utcnow()))
        else:
            site.type, site.url = site_type, url


@dataclass(frozen=True)
class OutboxCounts:
    """Outbox rows by status, and when the oldest pending row was queued.

    ``by_status`` counts every status present (``forgotten`` too: rows ``forget`` scrubbed).
    """

    pending: int
    sent: int
    dead: int
    oldest_pending_at: datetime | None
    by_status: dict[str, int] = field(default_factory=dict)


def outbox_counts(engine: Engine) -> OutboxCounts:
    """Count outbox rows by status."""
    with Session(engine) as session:
        counts = dict(session.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status)).all())
        oldest = session.scalar(select(func.min(OutboxRow.created_at)).where(OutboxRow.status == OutboxStatus.PENDING))
    if isinstance(oldest, datetime) and oldest.tzinfo is None:  # SQLite aggregates bypass the column type
        oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=utcnow().tzinfo)
    elif isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest).replace(tzinfo=utcnow().tzinfo)
    return OutboxCounts(
        pending=counts.get(OutboxStatus.PENDING.value, 0),
        sent=counts.get(OutboxStatus.SENT.value, 0),
        dead=counts.get(OutboxStatus.DEAD.value, 0),
        oldest_pending_at=oldest,
        by_status={str(status): int(n) for status, n in counts.items()},
    )


def requeue_dead(engine: Engine, row_ids: Iterable[int] | None = None) -> int:
    """Put dead letters back in the queue (all of them, or the given outbox row ids).

    Returns:
        How many rows were requeued.
    """
    now = utcnow()
    statement = (
        update(OutboxRow)
        .where(OutboxRow.status == OutboxStatus.DEAD.value)
        .values(status=OutboxStatus.PENDING.value, attempts=0, next_attempt_at=now)
    )
    if row_ids is not None:
        statement = statement.where(OutboxRow.id.in_(list(row_ids)))
    with Session(engine) as session, session.begin():
        result = cast(CursorResult[Any], session.execute(statement))  # an UPDATE's result has a rowcount
        return result.rowcount or 0


def start_run(engine: Engine, command: str, site_id: str | None = None) -> int:
    """Record the start of a run and return its id.

    A run started while this thread holds a lock records the lock's owner, so ``runs list`` can
    tell when the run was killed (its lock is gone, :mod:`lms_bridge.store.runs`).
    """
    from lms_bridge.store.locks import current_owner  # here: lms_bridge.store.locks imports this package's models

    with Session(engine) as session, session.begin():
        run = Run(
            command=command, site_id=site_id, started_at=utcnow(), status="running", counts="{}", owner=current_owner()
        )
        session.add(run)
        session.flush()
        return run.id


def finish_run(engine: Engine, run_id: int, *, status: str, counts: dict[str, Any], error: str | None = None) -> None:
    """Record how a run ended (``ok``, ``failed``...), with its counts and error sentence."""
    with Session(engine) as session, session.begin():
        run = session.get(Run, run_id)
        if run is not None:
            run.finished_at = utcnow()
            run.status = status
            run.counts = json.dumps(counts, sort_keys=True)
            run.error = error
