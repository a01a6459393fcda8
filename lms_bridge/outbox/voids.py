"""Voiding statements (``lms-bridge void``) and data-subject deletion (``lms-bridge forget``).

Both queue ``voided`` statements through the outbox; the flush posts them, and
``ledger sync`` and the reports then count their targets as voided.

Guard (the void id recipe): a voiding statement's id is ``uuid5(ns, "void|{target id}")``,
the recipe of :func:`xapi.statements.build_void_statement`, so one target gets one
void whoever queued it, and a rerun queues nothing new. Its timestamp is the
target's, so a rebuild is byte-equal and the LRS answers 204.

Operator voids are made by lms-bridge itself: their actor is the deployment's own
account (``homePage`` = base IRI, name ``lms-bridge``), never the person, so a void
queued by ``forget`` carries no trace of the NIP it was asked to forget.

What ``forget NIP`` (UU 27/2022, a data subject's deletion request) does, in one
transaction:

- finds the person's statements: outbox rows whose body names the NIP, the
  statements of every account and pseudonym linked to the person (through the
  evidence rows), and the person's JP records;
- queues a void for each of them that may be in the LRS (pending or sent, not
  already voided, not a dead letter), and rewrites a pending void that names the
  NIP to the deployment's own actor;
- replaces the body of every one of those outbox rows by a placeholder (the id
  stays, so a later re-read of the source is recognised and never re-sent) and
  marks the unsent ones ``forgotten`` (never posted);
- deletes the person row, identity links, pseudonym links, evidence rows, JP record
  rows, unit history and ledger rows of the NIP, and the ledger evidence of the
  person's statements;
- leaves a tombstone (``forgotten_people``): keyed digests of the NIP and of each of
  the person's source accounts and chat pseudonyms, never the values themselves. A
  source or roster that still holds the person links nothing again: the ingest drops
  their records (nothing more about them reaches the LRS, not even under a site
  account), ``people import`` skips the NIP, ``ledger sync`` and ``jp compute`` skip it.

What it cannot do: the LRS keeps voided statements (xAPI has no delete), and the
sources keep the person's accounts. The report says both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, delete, select, update
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.settings import Settings
from lms_bridge.config.statements import statement_settings
from lms_bridge.errors import LmsBridgeError
from lms_bridge.identity.pseudonym import pseudonymizer_from_settings
from lms_bridge.identity.resolver import (
    COMMUNITY_GROUPING,
    NAME_LINK_SOURCE,
    PSEUDONYM_LINK_SOURCE,
    PSEUDONYMOUS_SOURCES,
    account,
    forgotten_digest,
    tombstone_barrier,
)
from lms_bridge.nip import normalise_nip
from lms_bridge.store import _enqueue, report_version
from lms_bridge.store.models import (
    Evidence,
    IdentityLink,
    JPPending,
    JPRecord,
    LedgerEvidence,
    LedgerRecord,
    OutboxRow,
    OutboxStatus,
    Person,
    PersonUnit,
    utcnow,
)
from lms_bridge.store.people import add_tombstones
from xapi.ids import prefixed_statement_ids, statement_id
from xapi.statements import LANGUAGE, BuiltStatement, StatementSettings, canonical_json, format_timestamp
from xapi.validate import validate_statement

log = logging.getLogger(__name__)

VOIDED = "http://adlnet.gov/expapi/verbs/voided"
#: Outbox status of a statement ``forget`` scrubbed before it was sent: never posted.
FORGOTTEN = "forgotten"
#: The reason ``forget`` writes into its voids (no personal data in it).
FORGET_REASON = "data subject deletion request (UU 27/2022)"
#: ``account.name`` of the deployment's own actor on operator voids.
SYSTEM_ACCOUNT = "lms-bridge"
_CHUNK = 500


def void_id(settings: StatementSettings, target_id: str) -> str:
    """The id of the statement voiding ``target_id`` (see the module guard)."""
    return _void_id(settings.namespace, target_id)


def _void_id(namespace: uuid.UUID, target_id: str) -> str:
    return statement_id(namespace, f"void|{target_id}")


def voided_targets(session: Session, namespace: uuid.UUID, statement_ids: Iterable[str]) -> set[str]:
    """The statements among ``statement_ids`` whose void is queued or sent (found by the void id recipe).

    ``jp compute`` reads evidence through this: a re-pull of the source (a backfill, a
    cursor reset) stores a voided activity's evidence again, and the outbox row of its void
    is what says it stays voided. One indexed lookup per 500 ids; a dead void (the LRS
    refused it) voids nothing.
    """
    targets = list(statement_ids)
    by_void = dict(zip(prefixed_statement_ids(namespace, "void|", targets), targets, strict=True))
    live = (OutboxStatus.PENDING.value, OutboxStatus.SENT.value)
    found: set[str] = set()
    for chunk in _chunks(list(by_void)):
        # The status is checked here, not in SQL: with ``status IN (...)`` in the WHERE clause SQLite
        # chose ix_outbox_status_due and read every pending row's page for each chunk (16 GB of reads for
        # a 100,000-activity jp compute, quadratic in a first run; BENCHMARKS.md 7.1).
        rows = session.execute(
            select(OutboxRow.statement_id, OutboxRow.status).where(OutboxRow.statement_id.in_(chunk))
        )
        found.update(by_void[row.statement_id] for row in rows if row.status in live)
    return found


def build_operator_void(
    settings: StatementSettings, target_id: str, *, occurred_at: datetime, reason: str
) -> BuiltStatement:
    """Build lms-bridge's own statement voiding ``target_id``, with the operator's reason.

    Args:
        settings: deployment facts (namespace, base IRI, vocabulary).
        target_id: the statement to void.
        occurred_at: the target's timestamp (so a rebuild is byte-equal).
        reason: why, in the operator's words (stored in the LRS: write no personal data).
    """
    verb = settings.vocabulary.verbs["voided"]
    data: dict[str, Any] = {
        "id": void_id(settings, target_id),
        "actor": account(settings.base_iri, SYSTEM_ACCOUNT),
        "verb": {"id": verb.id, "display": {LANGUAGE: verb.display}},
        "object": {"objectType": "StatementRef", "id": target_id},
        # No context.platform: xAPI forbids it when the object is a StatementRef (ADL's LRS answers 400).
        "context": {"extensions": {f"{settings.base_iri}/extensions/void-reason": reason}},
        "timestamp": format_timestamp(occurred_at),
    }
    validate_statement(data)
    return BuiltStatement(id=data["id"], body=canonical_json(data))


def _timestamp(statement: dict[str, Any]) -> datetime | None:
    value = statement.get("timestamp") or statement.get("stored")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True)
class Target:
    """A statement to void and its timestamp."""

    statement_id: str
    occurred_at: datetime


@dataclass
class VoidReport:
    """What a void did.

    Attributes:
        targets: statements asked to be voided.
        queued: voiding statements queued now.
        already: targets whose void was queued before (nothing new).
        evidence_removed: evidence rows of the targets deleted (``jp compute`` revises their JP).
        jp_records_voided: JP record rows of the targets marked voided.
    """

    targets: int = 0
    queued: int = 0
    already: int = 0
    evidence_removed: int = 0
    jp_records_voided: int = 0


def _affected(session: Session, statement: Any) -> int:
    """Run a bulk UPDATE or DELETE and return how many rows it touched."""
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount or 0


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _queue_voids(
    session: Session, settings: StatementSettings, targets: Sequence[Target], reason: str, report: VoidReport
) -> None:
    """Queue the voids of ``targets``; drop their evidence; mark their JP records voided."""
    ids = [t.statement_id for t in targets]
    existing: set[str] = set()
    for chunk in _chunks([void_id(settings, sid) for sid in ids]):
        existing.update(session.scalars(select(OutboxRow.statement_id).where(OutboxRow.statement_id.in_(chunk))))
    fresh = [
        build_operator_void(settings, t.statement_id, occurred_at=t.occurred_at, reason=reason)
        for t in targets
        if void_id(settings, t.statement_id) not in existing
    ]
    report.targets += len(targets)
    report.already += len(targets) - len(fresh)
    report.queued += _enqueue(session, fresh, None, "void").new
    for chunk in _chunks(ids):
        report.evidence_removed += _affected(session, delete(Evidence).where(Evidence.statement_id.in_(chunk)))
        report.jp_records_voided += _affected(
            session,
            update(JPRecord)
            .where(JPRecord.statement_id.in_(chunk), JPRecord.status != "voided")
            .values(status="voided"),
        )


def _known_target(session: Session, sid: str, fetch: Callable[[str], dict[str, Any] | None] | None) -> Target:
    row = session.scalars(select(OutboxRow).where(OutboxRow.statement_id == sid)).first()
    if row is not None:
        if row.status == OutboxStatus.DEAD.value:
            raise LmsBridgeError(
                f"statement {sid} is a dead letter: the LRS never stored it (see lms-bridge outbox list --status dead)"
            )
        if row.status == FORGOTTEN:
            raise LmsBridgeError(f"statement {sid} was forgotten: its void is queued already")
        body = json.loads(row.body)
        if (body.get("verb") or {}).get("id") == VOIDED:
            raise LmsBridgeError(f"statement {sid} is itself a voiding statement: xAPI cannot void it")
        moment = _timestamp(body)
        if moment is not None:
            return Target(sid, moment)
    ledger = session.get(LedgerRecord, sid)
    if ledger is not None:
        return Target(sid, ledger.timestamp)
    evidence = session.get(LedgerEvidence, sid)
    if evidence is not None:
        return Target(sid, evidence.timestamp)
    found = fetch(sid) if fetch is not None else None
    if found is not None:
        if (found.get("verb") or {}).get("id") == VOIDED:
            raise LmsBridgeError(f"statement {sid} is itself a voiding statement: xAPI cannot void it")
        moment = _timestamp(found)
        if moment is not None:
            return Target(sid, moment)
    raise LmsBridgeError(f"statement {sid} is neither in the outbox, nor in the ledger, nor in the LRS")


def void_statements(
    engine: Engine,
    settings: Settings,
    statement_ids: Sequence[str],
    *,
    reason: str,
    fetch: Callable[[str], dict[str, Any] | None] | None = None,
    dry_run: bool = False,
) -> VoidReport:
    """Queue voids of statements given by id (any statement in the LRS, whoever posted it).

    Args:
        engine: the state store.
        settings: the configuration.
        statement_ids: the statements to void.
        reason: why (goes into the voiding statements).
        fetch: reads a statement from the LRS by id, for targets the store does not know.
        dry_run: check and count, queue nothing.

    Raises:
        LmsBridgeError: a target is unknown, a dead letter, or itself a void.
    """
    built = statement_settings(settings)
    report = VoidReport()
    with Session(engine) as session:
        targets = [_known_target(session, sid, fetch) for sid in dict.fromkeys(statement_ids)]
        _queue_voids(session, built, targets, reason, report)
        if dry_run:
            session.rollback()
        else:
            session.commit()
    return report


def _person_links(session: Session, person_id: int | None) -> list[tuple[str, str, str]]:
    if person_id is None:
        return []
    rows = session.execute(
        select(IdentityLink.source, IdentityLink.site_id, IdentityLink.local_id).where(
            IdentityLink.person_id == person_id
        )
    )
    return [(row.source, row.site_id, row.local_id) for row in rows]


def _person_evidence(session: Session, nip: str, links: Sequence[tuple[str, str, str]]) -> list[Evidence]:
    """Evidence rows of the person: carrying the NIP, or by one of their accounts or pseudonyms."""
    scoped = {link for link in links if link[0] not in (PSEUDONYM_LINK_SOURCE, NAME_LINK_SOURCE)}
    pseudonyms = {link[2] for link in links if link[0] == PSEUDONYM_LINK_SOURCE}
    names = {(f"{COMMUNITY_GROUPING}:{link[1]}", link[2]) for link in links if link[0] == NAME_LINK_SOURCE}
    found = {row.statement_id: row for row in session.scalars(select(Evidence).where(Evidence.nip == nip))}
    local_ids = sorted({link[2] for link in links})
    for chunk in _chunks(local_ids):
        for row in session.scalars(select(Evidence).where(Evidence.local_actor.in_(chunk))):
            if (
                (row.source, row.site_id, row.local_actor) in scoped
                or (row.local_actor in pseudonyms and row.source in PSEUDONYMOUS_SOURCES)
                or ((row.community, row.local_actor) in names and row.source in PSEUDONYMOUS_SOURCES)
            ):
                found[row.statement_id] = row
    return list(found.values())


def void_person(
    engine: Engine, settings: Settings, nip: str, *, source: str, since: datetime, reason: str, dry_run: bool = False
) -> VoidReport:
    """Queue voids of a person's statements from one source since a date.

    The person's statements are found through their evidence: those carrying the NIP
    and those of every account and pseudonym linked to them.

    Args:
        engine: the state store.
        settings: the configuration.
        nip: the person's NIP.
        source: the source id (``[[sources]] id``, or the site an import was recorded under).
        since: the first moment (inclusive) whose activity is voided.
        reason: why (goes into the voiding statements).
        dry_run: count, queue nothing.

    Raises:
        LmsBridgeError: a NIP that is not 18 digits.
    """
    digits = normalise_nip(nip)
    if digits is None:
        raise LmsBridgeError(f"{nip!r} is not a NIP (18 digits)")
    built = statement_settings(settings)
    report = VoidReport()
    with Session(engine) as session:
        person = session.scalars(select(Person).where(Person.nip == digits)).first()
        links = _person_links(session, person.id if person else None)
        evidence = [
            row
            for row in _person_evidence(session, digits, links)
            if row.site_id == source and row.occurred_at >= since
        ]
        ids = [row.statement_id for row in evidence]
        targets: list[Target] = []
        for chunk in _chunks(ids):
            rows = session.scalars(
                select(OutboxRow).where(
                    OutboxRow.statement_id.in_(chunk),
                    OutboxRow.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENT.value]),
                )
            )
            for row in rows:
                moment = _timestamp(json.loads(row.body))
                if moment is not None:
                    targets.append(Target(row.statement_id, moment))
        targets.sort(key=lambda t: (t.occurred_at, t.statement_id))
        _queue_voids(session, built, targets, reason, report)
        if dry_run:
            session.rollback()
        else:
            session.commit()
    return report


@dataclass
class ForgetReport:
    """What ``forget`` did (counts; ``accounts`` names the source accounts to remove at the source).

    Attributes:
        person: a person row existed.
        accounts: the person's source accounts, ``source site user-id`` (not pseudonyms).
        identity_links: account links deleted.
        pseudonym_links: roster pseudonym links deleted.
        evidence: evidence rows deleted.
        jp_records: JP record rows deleted.
        held_credits: held JP credits deleted (``jp_pending``: a course whose program JP is unknown).
        ledger_records: ledger rows deleted.
        person_units: unit history rows deleted.
        statements: outbox rows scrubbed (body replaced by a placeholder).
        voids_queued: voiding statements queued.
        voids_already: statements voided before (by ``jp compute`` or an earlier void).
        voids_rewritten: pending voids that named the NIP, rewritten to lms-bridge's own actor.
        unsent: statements never sent, now ``forgotten`` (they will never be posted).
        tombstones: keyed digests kept so nothing links the person again (NIP, accounts, pseudonyms).
    """

    person: bool = False
    accounts: list[str] = field(default_factory=list)
    identity_links: int = 0
    pseudonym_links: int = 0
    evidence: int = 0
    jp_records: int = 0
    held_credits: int = 0
    ledger_records: int = 0
    person_units: int = 0
    statements: int = 0
    voids_queued: int = 0
    voids_already: int = 0
    voids_rewritten: int = 0
    unsent: int = 0
    tombstones: int = 0

    def counts(self) -> dict[str, int]:
        """The counts only (what the ``runs`` table keeps: no NIP, no account ids)."""
        return {key: value for key, value in vars(self).items() if isinstance(value, int | bool)}


def _sha256(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _placeholder(sid: str) -> str:
    return canonical_json({"forgotten": True, "id": sid})


def forget_person(engine: Engine, settings: Settings, nip: str, *, dry_run: bool = False) -> ForgetReport:
    """Remove a person from the state store and queue voids of their statements (module docstring).

    Idempotent: a second run finds nothing left and queues nothing.

    Args:
        engine: the state store.
        settings: the configuration.
        nip: the NIP (spaces and dots allowed).
        dry_run: count what would be done; change nothing.

    Raises:
        LmsBridgeError: a NIP that is not 18 digits.
        ConfigError: the pseudonym key is not set (the tombstone is keyed with it).
    """
    digits = normalise_nip(nip)
    if digits is None:
        raise LmsBridgeError(f"{nip!r} is not a NIP (18 digits)")
    pseudonymize = pseudonymizer_from_settings(settings)
    built = statement_settings(settings)
    report = ForgetReport()
    now = utcnow()
    with Session(engine) as session:
        # Before any read: a sync's batch commits wholly before this transaction reads (and its rows are
        # removed below) or waits and then sees the tombstones (identity.tombstone_barrier).
        tombstone_barrier(session, exclusive=True)
        person = session.scalars(select(Person).where(Person.nip == digits)).first()
        report.person = person is not None
        links = _person_links(session, person.id if person else None)
        report.accounts = sorted(
            f"{source} {site} user {local}"
            for source, site, local in links
            if source not in (PSEUDONYM_LINK_SOURCE, NAME_LINK_SOURCE)
        )
        evidence_ids = [row.statement_id for row in _person_evidence(session, digits, links)]
        rows: dict[int, OutboxRow] = {
            row.id: row for row in session.scalars(select(OutboxRow).where(OutboxRow.body.contains(digits)))
        }
        record_ids = list(session.scalars(select(JPRecord.statement_id).where(JPRecord.nip == digits)))
        for chunk in _chunks(evidence_ids + record_ids):
            rows.update(
                {row.id: row for row in session.scalars(select(OutboxRow).where(OutboxRow.statement_id.in_(chunk)))}
            )

        targets: list[Target] = []
        for row in sorted(rows.values(), key=lambda r: r.id):
            try:
                body = json.loads(row.body)
            except ValueError:
                body = {}
            if body.get("forgotten") is True:
                continue  # scrubbed by an earlier forget (its placeholder names no one)
            is_void = (body.get("verb") or {}).get("id") == VOIDED
            target = (body.get("object") or {}).get("id")
            moment = _timestamp(body)
            if (
                is_void
                and row.status == OutboxStatus.PENDING.value
                and isinstance(target, str)
                and moment
                and void_id(built, target) == row.statement_id
            ):
                # A void not posted yet (a superseded JP record): post it without the NIP instead.
                rewritten = build_operator_void(built, target, occurred_at=moment, reason=FORGET_REASON)
                row.body, row.body_sha256 = rewritten.body, _sha256(rewritten.body)
                report.voids_rewritten += 1
                continue
            if not is_void and row.status in (OutboxStatus.PENDING.value, OutboxStatus.SENT.value) and moment:
                targets.append(Target(row.statement_id, moment))
            row.body = _placeholder(row.statement_id)
            row.body_sha256 = _sha256(row.body)
            row.last_error = None
            if row.status != OutboxStatus.SENT.value:
                row.status = FORGOTTEN
                row.next_attempt_at = now
                report.unsent += 1
            report.statements += 1

        voids = VoidReport()
        _queue_voids(session, built, targets, FORGET_REASON, voids)
        report.voids_queued, report.voids_already = voids.queued, voids.already

        target_ids = [t.statement_id for t in targets]
        for chunk in _chunks(evidence_ids):
            report.evidence += _affected(session, delete(Evidence).where(Evidence.statement_id.in_(chunk)))
        report.evidence += voids.evidence_removed
        report.evidence += _affected(session, delete(Evidence).where(Evidence.nip == digits))
        for chunk in _chunks(target_ids):
            session.execute(delete(LedgerEvidence).where(LedgerEvidence.statement_id.in_(chunk)))
        report.jp_records = _affected(session, delete(JPRecord).where(JPRecord.nip == digits))
        # Held credits carry the NIP too (and the evidence ids): nothing of the person may stay behind.
        report.held_credits = _affected(session, delete(JPPending).where(JPPending.nip == digits))
        report.ledger_records = _affected(session, delete(LedgerRecord).where(LedgerRecord.nip == digits))
        report.person_units = _affected(session, delete(PersonUnit).where(PersonUnit.nip == digits))
        if person is not None:
            report.pseudonym_links = _affected(
                session,
                delete(IdentityLink).where(
                    IdentityLink.person_id == person.id,
                    IdentityLink.source.in_((PSEUDONYM_LINK_SOURCE, NAME_LINK_SOURCE)),
                ),
            )
            report.identity_links = _affected(session, delete(IdentityLink).where(IdentityLink.person_id == person.id))
            session.delete(person)
        # The tombstone, in the same transaction: a crash leaves the person either whole or forgotten for good.
        report.tombstones = add_tombstones(
            session,
            [forgotten_digest(pseudonymize, "nip", digits)]
            + [
                forgotten_digest(pseudonymize, "pseudonym", local)
                if source in (PSEUDONYM_LINK_SOURCE, NAME_LINK_SOURCE)
                else forgotten_digest(pseudonymize, "account", source, site, local)
                for source, site, local in links
            ],
        )
        if dry_run:
            session.rollback()
            return report
        report_version.bump(session)  # the person leaves the compliance report (web page cache)
        session.commit()
    run_id = store.start_run(engine, "forget")
    store.finish_run(engine, run_id, status="ok", counts=report.counts())
    log.info("forget: %s", report.counts(), extra={"counts": report.counts()})
    return report


def void_copies(
    engine: Engine, settings: StatementSettings, statement_ids: Sequence[str], *, reason: str, dry_run: bool = False
) -> dict[str, bool]:
    """Void those of ``statement_ids`` the outbox holds, in one transaction (a source voided what we mirrored).

    Ids the outbox does not hold are a no-op: candidates of statements lms-bridge never
    mirrored. Forgotten rows are left alone (``forget`` voided them). A dead letter is
    voided too: its evidence must stop counting, and xAPI lets a void precede its target.
    Idempotent: a void is queued once; the evidence is deleted again each time, since a
    re-read of the source statement before its void (an overlap) may have brought it back.

    Returns:
        Each id found in the outbox -> whether this call queued its void.
    """
    found: dict[str, bool] = {}
    statuses = [OutboxStatus.PENDING.value, OutboxStatus.SENT.value, OutboxStatus.DEAD.value]
    with Session(engine) as session:
        for chunk in _chunks(list(dict.fromkeys(statement_ids))):
            rows = session.scalars(
                select(OutboxRow).where(OutboxRow.statement_id.in_(chunk), OutboxRow.status.in_(statuses))
            )
            for row in rows.all():
                moment = _timestamp(json.loads(row.body))
                if moment is None:
                    continue
                report = VoidReport()
                _queue_voids(session, settings, [Target(row.statement_id, moment)], reason, report)
                found[row.statement_id] = report.queued > 0
        if dry_run:
            session.rollback()
        else:
            session.commit()
    return found
