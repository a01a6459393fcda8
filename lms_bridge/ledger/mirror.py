"""The ledger: JP records (and their evidence) mirrored from the LRS into the state store.

The LRS is the record; reports read this mirror so that no HR query pages the
whole LRS. ``ledger sync`` reads statements in ``stored`` order from a cursor
with an overlap window and sorts them locally (Ralph's verb and activity filters
never match: docs/lrs.md §3):

- an ``earned`` statement with the JP extension and a NIP actor is a record,
  whoever posted it (other systems that follow the same profile count too);
- a ``voided`` statement marks its target voided (remembered even when the
  target arrives later);
- any other statement is kept as evidence: verb, object, platform and time only;
- a statement whose actor is a forgotten person (``lms-bridge forget``: a tombstoned
  NIP or chat pseudonym) is skipped, so a full re-read never mirrors them again.

Each page is written in one transaction, so a killed sync resumes without losing or
doubling anything (every write is an upsert). The cursor moves with a page only when
the LRS's order is trusted: with ``since_filter = "stored"`` the sync asks
``ascending=true`` (a conformant LRS orders by ``stored``, newest first unless asked),
so everything before a page's newest ``stored`` has been read. Otherwise (Ralph 5.1.0:
``ascending`` reverses each cut page, docs/lrs.md §3; or an LRS that answers newest
first) the cursor moves only after the last page: a sync interrupted half-way re-reads
from the old cursor instead of skipping the statements it had not reached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, false, select, update
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.settings import Settings
from lms_bridge.identity.resolver import Tombstones
from lms_bridge.nip import parse_nip
from lms_bridge.store import report_version
from lms_bridge.store.models import RECORD_KEY, Cursor, LedgerEvidence, LedgerRecord, LedgerVoid, utcnow
from lms_bridge.timeparse import parse_iso_time
from xapi.lrs_client import LRSClient

log = logging.getLogger(__name__)

CURSOR_SITE = "ledger"
CURSOR_STREAM = "statements"
EARNED = "http://id.tincanapi.com/verb/earned"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


@dataclass
class LedgerReport:
    """What one ``ledger sync`` did."""

    read: int = 0
    records: int = 0
    voids: int = 0
    evidence: int = 0
    skipped: int = 0
    forgotten: int = 0
    cursor: str | None = None


def _parse_time(value: Any) -> datetime | None:
    """A statement's time (xAPI times carry their zone: one without is None), in UTC."""
    return parse_iso_time(value, naive_is_utc=False, bounded=False)


def _period_day(period: Any, timestamp: datetime, zone: ZoneInfo) -> date:
    """The first day of an ISO date or range (``2026-03-01`` or ``2026-03-01/2026-03-31``)."""
    if isinstance(period, str):
        try:
            return date.fromisoformat(period.split("/")[0][:10])
        except ValueError:
            pass
    return timestamp.astimezone(zone).date()


def _name(definition: dict[str, Any]) -> str | None:
    names = definition.get("name")
    if isinstance(names, dict) and names:
        return str(names.get("en-US") or names.get("id-ID") or next(iter(names.values())))
    return None


def _forgotten_actor(
    statement: dict[str, Any], tombstones: Tombstones, *, base_iri: str, authorities: set[str]
) -> bool:
    """Whether a statement's actor is a forgotten person: a NIP account or a chat pseudonym with a tombstone."""
    account = (statement.get("actor") or {}).get("account") or {}
    home, name = account.get("homePage"), account.get("name")
    if not isinstance(home, str) or not isinstance(name, str):
        return False
    if home in authorities:
        return tombstones.nip(name)
    prefix = f"{base_iri}/pseudonym/"
    return home.startswith(prefix) and tombstones.actor(home[len(prefix) :], "", name)


@dataclass(frozen=True)
class _Classified:
    kind: str  # record, void, evidence, skip
    row: dict[str, Any] | None = None


def classify(statement: dict[str, Any], *, base_iri: str, authorities: set[str], zone: ZoneInfo) -> _Classified:
    """Sort one LRS statement into a ledger record, a void, evidence or nothing."""
    sid = statement.get("id")
    verb = (statement.get("verb") or {}).get("id")
    timestamp = _parse_time(statement.get("timestamp")) or _parse_time(statement.get("stored"))
    obj = statement.get("object") or {}
    if not isinstance(sid, str) or timestamp is None or not isinstance(obj, dict):
        return _Classified("skip")
    if verb == VOIDED:
        target = obj.get("id")
        if obj.get("objectType") == "StatementRef" and isinstance(target, str):
            return _Classified("void", {"statement_id": target, "voided_by": sid})
        return _Classified("skip")
    result = statement.get("result") or {}
    extensions = (result.get("extensions") or {}) if isinstance(result, dict) else {}
    jp_value = extensions.get(f"{base_iri}/extensions/jp") if isinstance(extensions, dict) else None
    if verb == EARNED and jp_value is not None:
        account = (statement.get("actor") or {}).get("account") or {}
        nip = parse_nip(account.get("name")) if account.get("homePage") in authorities else None
        try:
            jp = Decimal(str(jp_value))
        except InvalidOperation:
            jp = Decimal(-1)
        if nip is None or not jp.is_finite() or jp < 0:
            return _Classified("skip")
        context = statement.get("context") or {}
        ctx_ext = context.get("extensions") or {}
        rule = ctx_ext.get(f"{base_iri}/extensions/rule") or {}
        evidence = ctx_ext.get(f"{base_iri}/extensions/evidence") or {}
        period = ctx_ext.get(f"{base_iri}/extensions/period")
        ids = [str(i) for i in evidence.get("ids") or []] if isinstance(evidence, dict) else []
        return _Classified(
            "record",
            {
                "statement_id": sid,
                "nip": nip.value,
                "jp": f"{jp.normalize():f}",
                "rule_id": str(rule.get("id")) if rule.get("id") else None,
                "rule_version": rule.get("version") if isinstance(rule.get("version"), int) else None,
                "rule_code": str(rule.get("code")) if rule.get("code") else None,
                "period": str(period) if period else timestamp.astimezone(zone).date().isoformat(),
                "period_day": _period_day(period, timestamp, zone),
                "object_id": str(obj.get("id") or ""),
                "evidence_ids": json.dumps(ids),
                "evidence_count": int(evidence.get("count") or len(ids)) if isinstance(evidence, dict) else 0,
                "timestamp": timestamp,
                "stored": _parse_time(statement.get("stored")),
                "voided": False,
            },
        )
    if obj.get("objectType", "Activity") != "Activity" or not isinstance(verb, str):
        return _Classified("skip")
    definition = obj.get("definition") or {}
    return _Classified(
        "evidence",
        {
            "statement_id": sid,
            "verb": verb,
            "object_id": str(obj.get("id") or ""),
            "object_type": definition.get("type"),
            "object_name": _name(definition),
            "platform": (statement.get("context") or {}).get("platform"),
            "timestamp": timestamp,
        },
    )


def _upsert(
    session: Session, model: type, rows: list[dict[str, Any]], key: str, conflict: tuple[str, ...] | None = None
) -> None:
    """Insert or update ``rows`` (unique by ``key``) on the unique index ``conflict`` (default: ``key`` alone)."""
    if not rows:
        return
    rows = list({row[key]: row for row in rows}.values())  # an overlap may repeat a statement
    insert = store._insert(session)  # noqa: SLF001 - the store's dialect-aware insert
    statement = insert(model)
    target = conflict or (key,)
    columns = [name for name in rows[0] if name not in target]
    session.execute(
        statement.on_conflict_do_update(
            index_elements=list(target), set_={name: getattr(statement.excluded, name) for name in columns}
        ),
        rows,
    )


def _stored_already(session: Session, records: list[dict[str, Any]]) -> set[str]:
    """Ids of ``records`` the ledger holds already with every column the same.

    A sync re-reads its overlap window every time: those records are not written again, so a run with
    nothing new writes nothing and does not move the report version (the web page keeps its report).
    """
    columns = [getattr(LedgerRecord, name) for name in records[0]]
    found = session.execute(select(*columns).where(LedgerRecord.statement_id.in_([r["statement_id"] for r in records])))
    stored = {row.statement_id: tuple(row) for row in found}
    return {r["statement_id"] for r in records if stored.get(r["statement_id"]) == tuple(r.values())}


def _write_page(
    session: Session,
    records: list[dict[str, Any]],
    voids: list[dict[str, Any]],
    evidence: list[dict[str, Any]],
    cursor: str | None,
) -> None:
    _upsert(session, LedgerEvidence, evidence, "statement_id")
    _upsert(session, LedgerVoid, voids, "statement_id")
    changed = False
    if records:
        records = list({r["statement_id"]: r for r in records}.values())  # an overlap may repeat a statement
        known_voids = {
            row.statement_id
            for row in session.execute(
                select(LedgerVoid.statement_id).where(LedgerVoid.statement_id.in_([r["statement_id"] for r in records]))
            )
        }
        for record in records:
            record["voided"] = record["statement_id"] in known_voids
        same = _stored_already(session, records)
        records = [r for r in records if r["statement_id"] not in same]
    if records:
        # PostgreSQL's partitioned table is keyed by (statement_id, period_day) (migration 0011).
        key = RECORD_KEY.get(session.get_bind().dialect.name, ("statement_id",))
        _upsert(session, LedgerRecord, records, "statement_id", key)
        changed = True
    if voids:
        voided = session.execute(
            update(LedgerRecord)
            .where(LedgerRecord.statement_id.in_([v["statement_id"] for v in voids]), LedgerRecord.voided == false())
            .values(voided=True)
        )
        changed = changed or bool(voided.rowcount)  # type: ignore[attr-defined]
    if cursor is not None:
        row = session.get(Cursor, (CURSOR_SITE, CURSOR_STREAM))
        if row is None:
            session.add(
                Cursor(site_id=CURSOR_SITE, stream=CURSOR_STREAM, position=json.dumps(cursor), updated_at=utcnow())
            )
        else:
            row.position = json.dumps(cursor)
    if changed:
        report_version.bump(session)  # last: the compliance report counts these records (web page cache)


def sync_ledger(
    engine: Engine,
    settings: Settings,
    client: LRSClient,
    *,
    full: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> LedgerReport:
    """Mirror JP records, voids and evidence from the LRS (see the module docstring).

    Args:
        engine: the state store.
        settings: the configuration (base IRI, identity authority, ledger settings).
        client: an LRS client.
        full: ignore the cursor and read everything again (a repair).
        on_progress: called with the number of statements read per page.
    """
    ledger = settings.ledger
    zone = ZoneInfo(settings.deployment.timezone)
    base = settings.deployment.base_iri
    authorities = {settings.deployment.identity_authority}
    tombstones = Tombstones.load(engine, settings)
    cursor_text = None if full else store.get_cursor(engine, CURSOR_SITE, CURSOR_STREAM)
    cursor = _parse_time(cursor_text)
    floor = cursor - timedelta(seconds=ledger.overlap_seconds) if cursor else None
    params: dict[str, Any] = {"limit": ledger.page_size}
    ordered = ledger.since_filter == "stored"
    if ordered:
        params["ascending"] = "true"
        if floor is not None:
            params["since"] = floor.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    report = LedgerReport(cursor=cursor_text)
    newest = cursor
    records: list[dict[str, Any]] = []
    voids: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []
    pending = 0

    def flush(*, last: bool = False) -> None:
        nonlocal records, voids, evidence, pending
        # The cursor moves with a page only in an order we trust (see the module docstring).
        moved = newest.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if newest and (ordered or last) else None
        with Session(engine) as session, session.begin():
            _write_page(session, records, voids, evidence, moved)
        if on_progress is not None:
            on_progress(pending)
        records, voids, evidence, pending = [], [], [], 0

    for statement in client.iter_statements(params):
        report.read += 1
        pending += 1
        stored = _parse_time(statement.get("stored"))
        if floor is not None and stored is not None and stored < floor:
            report.skipped += 1
        elif tombstones and _forgotten_actor(statement, tombstones, base_iri=base, authorities=authorities):
            report.forgotten += 1  # the cursor still moves past it: it is never read as new again
            if stored is not None and (newest is None or stored > newest):
                newest = stored
        else:
            found = classify(statement, base_iri=base, authorities=authorities, zone=zone)
            if found.kind == "record":
                records.append(found.row or {})
                report.records += 1
            elif found.kind == "void":
                voids.append(found.row or {})
                report.voids += 1
            elif found.kind == "evidence":
                evidence.append(found.row or {})
                report.evidence += 1
            else:
                report.skipped += 1
            if stored is not None and (newest is None or stored > newest):
                newest = stored
        if pending >= 500:
            flush()
    flush(last=True)
    report.cursor = newest.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if newest else None
    log.info(
        "ledger sync: %d read, %d records, %d voids, %d evidence",
        report.read,
        report.records,
        report.voids,
        report.evidence,
    )
    return report
