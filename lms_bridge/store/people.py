"""Persons and identity links from the HR roster, and the queries behind ``lms-bridge people``.

A roster identity (phone number, Telegram id, e-mail) is stored only as its keyed
pseudonym: an :class:`~lms_bridge.store.models.IdentityLink` with
``source = "pseudonym"``, ``site_id = ""`` and ``local_id = <pseudonym>``. Chat and
attendance evidence carries the same pseudonym as its ``local_actor``, so it
resolves to the person through that link whatever group it came from.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from lms_bridge.store import _insert, report_version
from lms_bridge.store.models import Evidence, ForgottenPerson, IdentityLink, JPRecord, Person, PersonUnit, utcnow

#: ``IdentityLink.source`` of roster pseudonyms (their ``site_id`` is ``""``).
PSEUDONYM_SOURCE = "pseudonym"
PSEUDONYM_SITE = ""
#: ``IdentityLink.source`` of operator-confirmed display-name links (``people link-names``): ``site_id`` is
#: the community, ``local_id`` the pseudonym of the normalised name. A name links only within its community
#: (two groups may each have a "Budi"), so it matches evidence whose ``community`` is ``community:<site_id>``.
NAME_SOURCE = "name"
#: How the ingest writes ``Evidence.community`` for a CoP (the grouping's type and id).
COMMUNITY_PREFIX = "community:"

_CHUNK = 500
_ROSTER_FIELDS = ("employee_type", "name", "unit_code", "unit_name", "position")


@dataclass(frozen=True)
class RosterPerson:
    """One good roster row, ready to store (no raw phone, e-mail or Telegram id in it).

    Attributes:
        nip: the 18 digits.
        employee_type: ``PNS``/``PPPK`` (from the file, else from the NIP).
        name: full name, or None.
        unit_code: work unit code, or None.
        unit_name: work unit name, or None.
        position: jabatan, or None.
        pseudonyms: pseudonyms of the member's consented identifiers.
        siasn_id: SIASN's own person id (``pnsOrangId``); None keeps the one stored.
    """

    nip: str
    employee_type: str | None
    name: str | None
    unit_code: str | None
    unit_name: str | None
    position: str | None
    pseudonyms: frozenset[str] = frozenset()
    siasn_id: str | None = None


@dataclass(frozen=True)
class RosterCounts:
    """What storing a roster did.

    Attributes:
        imported: persons new to the roster (created, or known only from an LMS until now).
        updated: roster persons whose fields changed.
        unchanged: roster persons whose fields were already the same.
        links_added: pseudonym links created.
        links_moved: pseudonym links moved from another person to this row's person.
        links_removed: pseudonym links of imported persons that the roster no longer lists.
    """

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    links_added: int = 0
    links_moved: int = 0
    links_removed: int = 0


def _chunks(values: Sequence[str]) -> list[Sequence[str]]:
    return [values[start : start + _CHUNK] for start in range(0, len(values), _CHUNK)]


def _record_unit(session: Session, nip: str, code: str | None, name: str | None, effective: date) -> None:
    """Start a unit period for ``nip`` on ``effective`` (replacing one that starts the same day)."""
    row = session.scalars(select(PersonUnit).where(PersonUnit.nip == nip, PersonUnit.valid_from == effective)).first()
    if row is None:
        session.add(PersonUnit(nip=nip, unit_code=code, unit_name=name, valid_from=effective))
    else:
        row.unit_code, row.unit_name = code, name


def store_roster(
    engine: Engine, people: Sequence[RosterPerson], *, dry_run: bool = False, effective: date | None = None
) -> RosterCounts:
    """Upsert roster persons and their pseudonym links, in one transaction.

    A pseudonym listed for another NIP than before is moved to this row's person;
    a pseudonym link of an imported person that its row no longer lists (consent
    withdrawn, number changed) is deleted. Persons missing from the file are kept.

    Args:
        engine: the state store.
        people: the good rows (one per NIP; a pseudonym on at most one row).
        dry_run: compute the counts, then roll back.
        effective: the day the roster's units take effect (default: today, UTC); a
            person whose unit changed gets a new ``person_units`` row from that day.

    Returns:
        The counts.
    """
    effective = effective or datetime.now(UTC).date()
    now = utcnow()
    imported = updated = unchanged = added = moved = removed = 0
    with Session(engine) as session:
        try:
            nips = [person.nip for person in people]
            existing: dict[str, Person] = {}
            for chunk in _chunks(nips):
                existing.update({p.nip: p for p in session.scalars(select(Person).where(Person.nip.in_(chunk)))})
            for row in people:
                person = existing.get(row.nip)
                if person is None:
                    person = Person(nip=row.nip, created_at=now)
                    session.add(person)
                    existing[row.nip] = person
                    imported += 1
                elif person.roster_updated_at is None:
                    imported += 1
                elif any(getattr(person, name) != getattr(row, name) for name in _ROSTER_FIELDS) or (
                    row.siasn_id is not None and row.siasn_id != person.siasn_id
                ):
                    updated += 1
                else:
                    unchanged += 1
                if (person.unit_code, person.unit_name) != (row.unit_code, row.unit_name) or (
                    person.roster_updated_at is None
                ):
                    _record_unit(session, row.nip, row.unit_code, row.unit_name, effective)
                for name in _ROSTER_FIELDS:
                    if getattr(person, name) != getattr(row, name):
                        setattr(person, name, getattr(row, name))
                if row.siasn_id is not None:  # a roster without the column keeps the ids already stored
                    person.siasn_id = row.siasn_id
                person.roster_updated_at = now
            session.flush()

            wanted = {pseudonym: existing[row.nip].id for row in people for pseudonym in row.pseudonyms}
            links: dict[str, IdentityLink] = {}
            for chunk in _chunks(sorted(wanted)):
                links.update(
                    {
                        link.local_id: link
                        for link in session.scalars(
                            select(IdentityLink).where(
                                IdentityLink.source == PSEUDONYM_SOURCE,
                                IdentityLink.site_id == PSEUDONYM_SITE,
                                IdentityLink.local_id.in_(chunk),
                            )
                        )
                    }
                )
            for pseudonym, person_id in sorted(wanted.items()):
                change = _put_link(session, links.get(pseudonym), PSEUDONYM_SITE, pseudonym, person_id, now)
                added += int(change == "added")
                moved += int(change == "moved")
            session.flush()

            person_ids = sorted({existing[nip].id for nip in nips})
            for start in range(0, len(person_ids), _CHUNK):
                chunk_ids = person_ids[start : start + _CHUNK]
                for link in session.scalars(
                    select(IdentityLink).where(
                        IdentityLink.source == PSEUDONYM_SOURCE,
                        IdentityLink.site_id == PSEUDONYM_SITE,
                        IdentityLink.person_id.in_(chunk_ids),
                    )
                ).all():
                    if link.local_id not in wanted:
                        session.delete(link)
                        removed += 1
            session.flush()
        except BaseException:
            session.rollback()
            raise
        if dry_run:
            session.rollback()
        else:
            report_version.bump(session)  # names, units and the roster change the compliance report
            session.commit()
    return RosterCounts(
        imported=imported,
        updated=updated,
        unchanged=unchanged,
        links_added=added,
        links_moved=moved,
        links_removed=removed,
    )


# --- display-name links ------------------------------------------------------------------------


@dataclass(frozen=True)
class NameLinkCounts:
    """What storing display-name links did: links created, moved to another person, already so."""

    added: int = 0
    moved: int = 0
    unchanged: int = 0


def roster_names(engine: Engine) -> list[tuple[str, str]]:
    """``(nip, name)`` of every person with a name (the roster), by NIP."""
    with Session(engine) as session:
        rows = session.execute(select(Person.nip, Person.name).where(Person.name.is_not(None)).order_by(Person.nip))
        return [(row.nip, row.name) for row in rows if row.name]


def person_ids(engine: Engine, nips: Sequence[str]) -> dict[str, int]:
    """The stored persons among ``nips``: NIP -> person id."""
    found: dict[str, int] = {}
    with Session(engine) as session:
        for chunk in _chunks(sorted(set(nips))):
            found.update(
                {row.nip: row.id for row in session.execute(select(Person.nip, Person.id).where(Person.nip.in_(chunk)))}
            )
    return found


def linked_chat_actors(engine: Engine, community: str) -> set[str]:
    """Chat pseudonyms already linked to a person: by the roster (anywhere) or by name within ``community``."""
    with Session(engine) as session:
        rows = session.scalars(
            select(IdentityLink.local_id).where(
                IdentityLink.person_id.is_not(None),
                or_(
                    and_(IdentityLink.source == PSEUDONYM_SOURCE, IdentityLink.site_id == PSEUDONYM_SITE),
                    and_(IdentityLink.source == NAME_SOURCE, IdentityLink.site_id == community),
                ),
            )
        )
        return set(rows)


def store_name_links(engine: Engine, community: str, links: Sequence[tuple[str, int]]) -> NameLinkCounts:
    """Link display-name pseudonyms to persons within a community, in one transaction.

    Args:
        engine: the state store.
        community: the community id the names were seen in.
        links: ``(pseudonym of the normalised name, person id)``, one per pseudonym.

    Returns:
        The counts; a link that named another person before is moved.
    """
    added = moved = unchanged = 0
    now = utcnow()
    with Session(engine) as session, session.begin():
        existing = {
            link.local_id: link
            for link in session.scalars(
                select(IdentityLink).where(IdentityLink.source == NAME_SOURCE, IdentityLink.site_id == community)
            )
        }
        for pseudonym, person_id in links:
            change = _put_link(session, existing.get(pseudonym), community, pseudonym, person_id, now, NAME_SOURCE)
            added += int(change == "added")
            moved += int(change == "moved")
            unchanged += int(change == "unchanged")
    return NameLinkCounts(added=added, moved=moved, unchanged=unchanged)


def _put_link(
    session: Session,
    link: IdentityLink | None,
    site_id: str,
    local_id: str,
    person_id: int,
    now: datetime,
    source: str = PSEUDONYM_SOURCE,
) -> str:
    """Make ``link`` (None: not stored yet) point at ``person_id``: ``added``, ``moved`` or ``unchanged``."""
    if link is None:
        session.add(
            IdentityLink(
                source=source,
                site_id=site_id,
                local_id=local_id,
                person_id=person_id,
                created_at=now,
                updated_at=now,
            )
        )
        return "added"
    if link.person_id != person_id:
        link.person_id, link.updated_at = person_id, now
        return "moved"
    return "unchanged"


# --- tombstones of forgotten people ----------------------------------------------------------


def forgotten_digests(session: Session) -> frozenset[str]:
    """Every tombstone digest (``lms-bridge forget``); a small table, read whole."""
    return frozenset(session.scalars(select(ForgottenPerson.digest)))


def add_tombstones(session: Session, digests: Sequence[str]) -> int:
    """Store tombstone digests (idempotent: a digest stored before is kept with its first date).

    Returns:
        How many digests were asked for (new or not).
    """
    unique = sorted(set(digests))
    if unique:
        now = utcnow()
        session.execute(
            _insert(session)(ForgottenPerson).on_conflict_do_nothing(index_elements=["digest"]),
            [{"digest": digest, "forgotten_at": now} for digest in unique],
        )
    return len(unique)


# --- queries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteAccount:
    """A site account (e.g. a Moodle user) linked to a person.

    Attributes:
        source: connector kind (``moodle``...).
        site_id: configured source id.
        local_id: the account's id on the site.
    """

    source: str
    site_id: str
    local_id: str


@dataclass(frozen=True)
class PersonView:
    """What ``lms-bridge people show`` prints about one person.

    Attributes:
        nip: the 18 digits.
        employee_type: ``PNS``/``PPPK``, or None.
        name: from the roster, or None.
        unit_code: from the roster, or None.
        unit_name: from the roster, or None.
        position: from the roster, or None.
        roster_updated_at: when a roster last listed the person (None: never).
        accounts: linked site accounts.
        chat_identities: how many pseudonymous identities (phones, Telegram ids, e-mails) are linked.
        evidence: activity counts per source.
        jp_by_year: active JP per year (``"2026"`` -> total).
    """

    nip: str
    employee_type: str | None
    name: str | None
    unit_code: str | None
    unit_name: str | None
    position: str | None
    roster_updated_at: datetime | None
    accounts: list[SiteAccount] = field(default_factory=list)
    chat_identities: int = 0
    evidence: dict[str, int] = field(default_factory=dict)
    jp_by_year: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class UnresolvedActor:
    """An actor seen without a NIP, and how much activity it has.

    Attributes:
        source: connector kind (``moodle``, ``whatsapp``...).
        site_id: configured source id (a site, a chat group).
        local_id: the site's user id, or the chat pseudonym.
        activities: evidence rows (0 for a site account seen without activity).
        first_at: the earliest activity, or None.
        last_at: the latest activity, or None.
    """

    source: str
    site_id: str
    local_id: str
    activities: int
    first_at: datetime | None
    last_at: datetime | None


def _link_matches_evidence() -> ColumnElement[bool]:
    """An identity link that names the evidence's actor: by its site account, its pseudonym or its display name."""
    return or_(
        and_(
            IdentityLink.source == NAME_SOURCE,
            Evidence.community == literal(COMMUNITY_PREFIX) + IdentityLink.site_id,
            IdentityLink.local_id == Evidence.local_actor,
        ),
        and_(
            IdentityLink.source == Evidence.source,
            IdentityLink.site_id == Evidence.site_id,
            IdentityLink.local_id == Evidence.local_actor,
        ),
        and_(
            IdentityLink.source == PSEUDONYM_SOURCE,
            IdentityLink.site_id == PSEUDONYM_SITE,
            IdentityLink.local_id == Evidence.local_actor,
        ),
    )


def _as_utc(value: Any) -> datetime | None:
    """A timestamp from an aggregate, tz-aware UTC (SQLite may hand back text or a naive value)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _year(period: str) -> str:
    head = period[:4]
    return head if head.isdigit() else "unknown"


def person_view(engine: Engine, nip: str) -> PersonView | None:
    """Return the person with this NIP, with links, evidence counts and JP per year.

    Evidence counts are rows whose own NIP is this one, plus rows without a NIP whose
    actor is linked to the person (a site account or a roster pseudonym).

    Args:
        engine: the state store.
        nip: the 18 digits, already normalised.

    Returns:
        The view, or None when no person has this NIP.
    """
    with Session(engine) as session:
        person = session.scalar(select(Person).where(Person.nip == nip))
        if person is None:
            return None
        accounts: list[SiteAccount] = []
        chat = 0
        for link in session.scalars(
            select(IdentityLink)
            .where(IdentityLink.person_id == person.id)
            .order_by(IdentityLink.source, IdentityLink.site_id, IdentityLink.local_id)
        ):
            if link.source in (PSEUDONYM_SOURCE, NAME_SOURCE):
                chat += 1
            else:
                accounts.append(SiteAccount(link.source, link.site_id, link.local_id))
        linked = exists().where(IdentityLink.person_id == person.id, _link_matches_evidence())
        evidence = {
            source: int(n)
            for source, n in session.execute(
                select(Evidence.source, func.count())
                .where(or_(Evidence.nip == nip, and_(Evidence.nip.is_(None), linked)))
                .group_by(Evidence.source)
                .order_by(Evidence.source)
            )
        }
        jp: dict[str, Decimal] = defaultdict(Decimal)
        for period, value in session.execute(
            select(JPRecord.period, JPRecord.jp).where(JPRecord.nip == nip, JPRecord.status == "active")
        ):
            try:
                jp[_year(period)] += Decimal(value)
            except InvalidOperation:
                continue  # a malformed amount is not counted (the JP ledger validates what it writes)
        return PersonView(
            nip=person.nip,
            employee_type=person.employee_type,
            name=person.name,
            unit_code=person.unit_code,
            unit_name=person.unit_name,
            position=person.position,
            roster_updated_at=person.roster_updated_at,
            accounts=accounts,
            chat_identities=chat,
            evidence=evidence,
            jp_by_year=dict(sorted(jp.items())),
        )


def unresolved_actors(engine: Engine, *, limit: int | None = None) -> list[UnresolvedActor]:
    """Actors with no NIP: evidence nobody is linked to, then site accounts with no NIP and no evidence.

    Args:
        engine: the state store.
        limit: at most this many (the most active first).

    Returns:
        Actors sorted by activity count (descending), then source, site and local id.
    """
    linked = exists().where(IdentityLink.person_id.is_not(None), _link_matches_evidence())
    count = func.count().label("activities")
    evidence_query = (
        select(
            Evidence.source,
            Evidence.site_id,
            Evidence.local_actor,
            count,
            func.min(Evidence.occurred_at),
            func.max(Evidence.occurred_at),
        )
        .where(Evidence.nip.is_(None), ~linked)
        .group_by(Evidence.source, Evidence.site_id, Evidence.local_actor)
        .order_by(count.desc(), Evidence.source, Evidence.site_id, Evidence.local_actor)
    )
    has_evidence = exists().where(
        Evidence.source == IdentityLink.source,
        Evidence.site_id == IdentityLink.site_id,
        Evidence.local_actor == IdentityLink.local_id,
    )
    accounts_query = (
        select(IdentityLink.source, IdentityLink.site_id, IdentityLink.local_id)
        .where(
            IdentityLink.person_id.is_(None),
            IdentityLink.source.not_in((PSEUDONYM_SOURCE, NAME_SOURCE)),
            ~has_evidence,
        )
        .order_by(IdentityLink.source, IdentityLink.site_id, IdentityLink.local_id)
    )
    if limit is not None:
        evidence_query = evidence_query.limit(limit)
        accounts_query = accounts_query.limit(limit)
    with Session(engine) as session:
        actors = [
            UnresolvedActor(source, site, local, int(n), _as_utc(first), _as_utc(last))
            for source, site, local, n, first, last in session.execute(evidence_query)
        ]
        if limit is None or len(actors) < limit:
            actors.extend(
                UnresolvedActor(source, site, local, 0, None, None)
                for source, site, local in session.execute(accounts_query)
            )
    return actors if limit is None else actors[:limit]
