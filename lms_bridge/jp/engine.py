"""JP records: from stored evidence, through the rules in ``mappings/``, to ``earned`` statements.

Two halves:

- :func:`compute_credits` is pure: evidence items of resolved people and the rules
  in, JP credits out. Caps are applied per person and cap group in time order
  (day, then month, then year), so the total of a period never exceeds its cap
  and does not depend on the order the evidence arrived in.
- :func:`run_jp` reads the evidence of whole years person by person (the store resolves
  each item's person through the identity links of *now*, so an account linked to a NIP
  later brings its past activity, and hands it over in NIP order), computes the
  credits, and diffs them against the records already
  posted: a new credit is posted, a changed one (other evidence, other JP, a new rule
  version) is voided and posted again as revision + 1, a vanished one is voided.
  Statements, voids and the record rows are written in one transaction through the
  outbox. Only closed periods are emitted (the local day has ended, plus a grace
  window), so a day still in progress is never credited half-way. Evidence whose
  void is queued or sent is left out even when a re-pull stored it again, and a
  forgotten person (``lms-bridge forget``) gets nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from functools import cached_property
from itertools import groupby
from operator import itemgetter
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from lms_bridge.config.settings import Settings
from lms_bridge.identity.resolver import (
    COMMUNITY_GROUPING,
    NAME_LINK_SOURCE,
    PSEUDONYM_LINK_SOURCE,
    PSEUDONYMOUS_SOURCES,
    Tombstones,
)
from lms_bridge.jp.rules import (
    ProgramJP,
    Rule,
    RuleSet,
    course_label,
    describes_course,
    load_program_jp,
    load_rules,
)
from lms_bridge.outbox.voids import voided_targets
from lms_bridge.store import jp as jp_store
from lms_bridge.store import report_version
from lms_bridge.store.models import Evidence, IdentityLink, Person
from xapi.statements import BuiltStatement, JPCreditIn, StatementSettings, build_jp_statement, build_void_statement

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvidenceItem:
    """One stored activity, its person resolved.

    Attributes:
        statement_id: the activity's statement.
        nip: the person.
        source, site_id, kind: where it came from and what happened.
        occurred_at: UTC time.
        local_date: the day in the deployment's time zone.
        duration_seconds: time present, when the source has it.
        object_key: ``type:native id`` of the object.
        facts: small facts the rules read (course shortname, category...).
    """

    statement_id: str
    nip: str
    source: str
    site_id: str
    kind: str
    occurred_at: datetime
    local_date: date
    duration_seconds: int | None
    object_key: str
    facts: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Credit:
    """One JP record as the rules compute it.

    Attributes:
        nip, rule, period, activity_key: the record's key.
        raw: JP before caps.
        jp: JP after caps, rounded down to the rules' precision (may be 0: capped away).
        evidence: the items behind it, in time order.
        capped_by: the cap period (``day``, ``month``, ``year``) that cut it, if any.
        pending: held, not credited: the program JP of its course is unknown (jp is 0 and
            nothing is posted; it posts once the course is configured).
    """

    nip: str
    rule: Rule
    period: str
    activity_key: str
    raw: Decimal
    jp: Decimal
    evidence: tuple[EvidenceItem, ...]
    capped_by: str | None = None
    pending: bool = False

    @property
    def code(self) -> str:
        """The conversion table row of the record (the activity's ``jp_form`` when the rule lists it)."""
        return self.rule.code_for(self.evidence[0].facts)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(NIP, rule id, period, activity key): one active record per key."""
        return (self.nip, self.rule.id, self.period, self.activity_key)

    @property
    def local_date(self) -> date:
        """The local day the record belongs to (its first evidence's day)."""
        return self.evidence[0].local_date

    @property
    def occurred_at(self) -> datetime:
        """The time of the latest evidence: the statement's timestamp."""
        return max(item.occurred_at for item in self.evidence)

    @cached_property
    def evidence_ids(self) -> tuple[str, ...]:
        """The evidence statement ids, sorted (what the record lists)."""
        return tuple(sorted(item.statement_id for item in self.evidence))

    def evidence_hash(self) -> str:
        """What identifies this record's content: JP, rule version and evidence."""
        return self._evidence_hash

    @cached_property
    def _evidence_hash(self) -> str:
        # Computed once per credit (a run compares it with the stored hash and stores it). The text is
        # ``json.dumps([str(jp), version, code, [ids]])``, written out with json's own string encoder:
        # tests/lms_bridge/test_jp_hash.py checks it against json.dumps byte for byte.
        version = self.rule.version
        if type(version) is not int:
            text = json.dumps([str(self.jp), version, self.code, list(self.evidence_ids)])
        else:
            ids = ", ".join(map(_json_string, self.evidence_ids))
            text = f"[{_json_string(str(self.jp))}, {version}, {_json_string(self.code)}, [{ids}]]"
        return hashlib.sha256(text.encode()).hexdigest()


#: ``json.dumps`` of one string (ASCII-escaped, quoted): the C encoder json.dumps itself uses.
_json_string = json.encoder.encode_basestring_ascii


def _round_down(value: Decimal, precision: Decimal) -> Decimal:
    return value.quantize(precision, rounding=ROUND_DOWN) if value > 0 else Decimal(0)


def _course_program_jp(program: ProgramJP, item: EvidenceItem) -> Decimal | None:
    """The program JP of the item's course: 0 when it names no course, None when unknown."""
    if not describes_course(item.facts):
        return Decimal(0)
    return program.jp_for(item.site_id, item.facts)


def _held(rule: Rule, nip: str, items: Sequence[EvidenceItem]) -> list[Credit]:
    """Pending credits: one per course and local day of items whose course's program JP is unknown."""
    by_course: dict[tuple[str, str], list[EvidenceItem]] = defaultdict(list)
    for item in items:
        if rule.record == "activity":
            key = f"{item.source}/{item.site_id}/{item.object_key}"
        else:
            key = f"held:{item.source}/{item.site_id}/{course_label(item.facts)}"
        by_course[(item.local_date.isoformat(), key)].append(item)
    return [
        Credit(
            nip=nip,
            rule=rule,
            period=period,
            activity_key=key,
            raw=Decimal(0),
            jp=Decimal(0),
            evidence=tuple(held),
            pending=True,
        )
        for (period, key), held in sorted(by_course.items())
    ]


def _present_seconds(rule: Rule, item: EvidenceItem) -> int | None:
    """Seconds present, or None when not known.

    The source's duration, else (``unknown_minutes = "session"``) the session's scheduled
    length the source states (``session_seconds``).
    """
    if item.duration_seconds is not None:
        return item.duration_seconds
    session_seconds = item.facts.get("session_seconds")
    if rule.unknown_minutes == "session" and isinstance(session_seconds, int) and session_seconds > 0:
        return session_seconds
    return None


def _minutes_credit(rule: Rule, rules: RuleSet, item: EvidenceItem) -> Decimal:
    minutes = Decimal(_present_seconds(rule, item) or 0) / 60
    session_seconds = item.facts.get("session_seconds")
    if isinstance(session_seconds, int) and session_seconds > 0:
        qualifies = minutes >= (rule.min_share or Decimal(0)) * Decimal(session_seconds) / 60
    else:
        qualifies = minutes >= (rule.min_minutes or 0)
    return minutes / rules.minutes_per_jp if qualifies and minutes > 0 else Decimal(0)


def _raw_credits(
    rule: Rule, rules: RuleSet, program: ProgramJP, nip: str, items: Sequence[EvidenceItem]
) -> list[Credit]:
    """Credits of one rule for one person's matching items, before caps (``jp_factor`` applied)."""
    credits = _unscaled_credits(rule, rules, program, nip, items)
    if rule.jp_factor is None:
        return credits
    return [replace(c, raw=c.raw * rule.jp_factor, jp=c.raw * rule.jp_factor) if not c.pending else c for c in credits]


def _unscaled_credits(
    rule: Rule, rules: RuleSet, program: ProgramJP, nip: str, items: Sequence[EvidenceItem]
) -> list[Credit]:
    credits: list[Credit] = []
    if rule.credit == "minutes":
        # Minutes nobody knows are never invented: the attendance is held until a duration
        # (or a session rule) is there, like a course whose program JP is unknown.
        known = [item for item in items if _present_seconds(rule, item) is not None]
        unknown = [item for item in items if _present_seconds(rule, item) is None]
        if rule.record == "activity":
            # One activity is one credit: when another account of the person states the minutes
            # of the same session, that account's record counts and nothing is held for it.
            credited = {activity_key(item) for item in known}
            unknown = [item for item in unknown if activity_key(item) not in credited]
        if unknown:
            credits.extend(_held(rule, nip, unknown))
        items = known
    if rule.record == "activity":
        first_by_key: dict[str, EvidenceItem] = {}
        for item in items:
            # Two accounts of one person completing one course count once.
            key = f"{item.source}/{item.site_id}/{item.object_key}"
            first_by_key.setdefault(key, item)
        for key, item in first_by_key.items():
            if rule.credit == "program":
                program_jp = program.jp_for(item.site_id, item.facts)
                if program_jp is None:
                    credits.extend(_held(rule, nip, [item]))
                    continue
                raw = program_jp
            elif rule.credit == "per_item":
                raw = rule.jp_per_item or Decimal(0)
            else:
                raw = _minutes_credit(rule, rules, item)
            credits.append(
                Credit(
                    nip=nip,
                    rule=rule,
                    period=item.local_date.isoformat(),
                    activity_key=key,
                    raw=raw,
                    jp=raw,
                    evidence=(item,),
                )
            )
        return credits
    by_day: dict[date, list[EvidenceItem]] = defaultdict(list)
    for item in items:
        by_day[item.local_date].append(item)
    for day, day_items in by_day.items():
        if rule.credit == "daily_tiers":
            reached = [
                tier.jp
                for tier in rule.tiers
                if sum(1 for item in day_items if not tier.kinds or item.kind in tier.kinds) >= tier.min_items
            ]
            raw = max(reached, default=Decimal(0))
        elif rule.credit == "per_item":
            raw = (rule.jp_per_item or Decimal(0)) * len(day_items)
        else:
            raw = sum((_minutes_credit(rule, rules, item) for item in day_items), Decimal(0))
        credits.append(
            Credit(
                nip=nip,
                rule=rule,
                period=day.isoformat(),
                activity_key="day",
                raw=raw,
                jp=raw,
                evidence=tuple(day_items),
            )
        )
    return credits


def _apply_caps(credits: list[Credit], rules: RuleSet) -> list[Credit]:
    """Cap one person's credits of one cap group, in time order; round down."""
    order = {rule.id: index for index, rule in enumerate(rules.rules)}
    credits = sorted(credits, key=lambda c: (c.local_date, c.evidence[0].occurred_at, order[c.rule.id], c.activity_key))
    used: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    capped: list[Credit] = []
    caps_of: dict[int, list[tuple[str, Decimal, int]]] = {}  # by id(rule): (period, cap, length of its text)
    for credit in credits:
        if credit.pending:  # held credits use no room under a cap
            capped.append(credit)
            continue
        rule = credit.rule
        caps = caps_of.get(id(rule))
        if caps is None:
            caps = caps_of[id(rule)] = [(period, cap, _PERIOD_LENGTH[period]) for period, cap in rule.caps().items()]
        day = credit.local_date.isoformat()
        jp, capped_by = _round_down(credit.raw, rules.precision), None
        for period, cap, length in caps:
            room = max(cap - used[(period, day[:length])], Decimal(0))
            if jp > room:
                jp, capped_by = room, period
        for period, _, length in caps:
            used[(period, day[:length])] += jp
        capped.append(
            Credit(credit.nip, rule, credit.period, credit.activity_key, credit.raw, jp, credit.evidence, capped_by)
        )
    return capped


#: The length of a cap period's text in an ISO day: ``2026-03-04`` (day), ``2026-03`` (month), ``2026`` (year).
_PERIOD_LENGTH = {"day": 10, "month": 7, "year": 4}


def _with_assigned_facts(rules: RuleSet, item: EvidenceItem) -> EvidenceItem:
    """The item with the facts ``[[assign]]`` gives it (its table row and column), if any."""
    if not rules.assignments:
        return item
    facts = rules.assigned_facts(item.source, item.site_id, item.kind, item.object_key, item.facts)
    return item if facts is item.facts else replace(item, facts=facts)


#: Why two items are one event (:attr:`Merge.reason`): a machine code; the reports put it in
#: words in the reader's language (``lms_bridge.ledger.labels.merge_reason``).
SAME_EVENT = "same_event"
SHARED_FACT = "shared_fact"


@dataclass(frozen=True)
class Merge:
    """One activity credited once: ``dropped`` is the same event as ``kept``, seen through another source.

    ``reason`` is :data:`SAME_EVENT` (both listed in one ``[[same_event]]``) or :data:`SHARED_FACT`
    (the same ``fact`` within ``window_minutes``).
    """

    kept: EvidenceItem
    dropped: EvidenceItem
    reason: str
    fact: str = ""
    window_minutes: int = 0

    @property
    def explanation(self) -> str:
        """The reason in English, for operators (``rules explain``)."""
        if self.reason == SAME_EVENT:
            return "listed in [[same_event]]"
        return f"same {self.fact} within {self.window_minutes} minutes"


def activity_key(item: EvidenceItem) -> str:
    """``source/site/object``: how a record, ``[[same_event]]`` and the audit name an activity."""
    return f"{item.source}/{item.site_id}/{item.object_key}"


def merge_duplicates(items: Sequence[EvidenceItem], rules: RuleSet) -> tuple[list[EvidenceItem], list[Merge]]:
    """One person's items with the same event through two sources left once (the earliest kept).

    See :class:`lms_bridge.jp.rules.Dedupe` for when two items are one event.
    """
    dedupe = rules.dedupe
    window = timedelta(minutes=dedupe.window_minutes)
    kept: list[EvidenceItem] = []
    merges: list[Merge] = []
    for item in sorted(items, key=lambda i: (i.occurred_at, i.statement_id)):
        merge = None
        for earlier in kept:
            if earlier.kind != item.kind or (earlier.source, earlier.site_id) == (item.source, item.site_id):
                continue
            keys = {activity_key(earlier), activity_key(item)}
            if any(keys <= group for group in dedupe.same_events):
                merge = Merge(kept=earlier, dropped=item, reason=SAME_EVENT)
            elif abs(item.occurred_at - earlier.occurred_at) <= window:
                shared = [
                    name
                    for name in dedupe.link_facts
                    if item.facts.get(name) not in (None, "") and item.facts.get(name) == earlier.facts.get(name)
                ]
                if shared:
                    merge = Merge(earlier, item, SHARED_FACT, fact=shared[0], window_minutes=dedupe.window_minutes)
            if merge is not None:
                merges.append(merge)
                break
        if merge is None:
            kept.append(item)
    return kept, merges


def compute_credits(items: Iterable[EvidenceItem], rules: RuleSet, program: ProgramJP) -> list[Credit]:
    """Turn resolved evidence into JP credits (pure; the same items in any order give the same credits).

    Args:
        items: evidence of resolved people (any order, any number of people).
        rules: the JP rules.
        program: program JP of courses.

    The same event seen through two sources counts once (:func:`merge_duplicates`).
    Each item goes to the first rule in force on its local day that matches it
    (:meth:`RuleSet.route`), so a rule change mid-year keeps each activity on its own rule.

    Returns:
        Every credit, capped and rounded, including those capped to 0 and those held
        as pending (``pending``: a course whose program JP is unknown), sorted by
        person, day and rule.
    """
    by_person: dict[str, list[EvidenceItem]] = defaultdict(list)
    for item in items:
        by_person[item.nip].append(item)
    result: list[Credit] = []
    for nip in sorted(by_person):
        # One credit per event: the same event through two sources counts once.
        person_items, _ = merge_duplicates(by_person[nip], rules)
        routed: dict[int, list[EvidenceItem]] = defaultdict(list)
        for item in person_items:
            item = _with_assigned_facts(rules, item)
            index = rules.route(item.source, item.kind, item.local_date, item.site_id, item.object_key, item.facts)
            if index >= 0:
                routed[index].append(item)
        by_group: dict[str, list[Credit]] = defaultdict(list)
        for index, rule in enumerate(rules.rules):
            matching = routed.get(index, [])
            if rule.skip_program_courses:
                # Items of a course whose program JP is unknown are held, not credited as e-learning:
                # once the course is configured they go to the training rule or here, without a void.
                unknown = [item for item in matching if _course_program_jp(program, item) is None]
                if unknown:
                    by_group[rule.cap_group].extend(_held(rule, nip, unknown))
                matching = [item for item in matching if _course_program_jp(program, item) == 0]
            if matching:
                by_group[rule.cap_group].extend(_raw_credits(rule, rules, program, nip, matching))
        for group in sorted(by_group):
            result.extend(_apply_caps(by_group[group], rules))
    result.sort(key=lambda c: (c.nip, c.period, c.rule.id, c.activity_key))
    return result


# --- reading evidence ------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolver:
    """Source-local actors -> NIP, from the identity links of the store."""

    accounts: dict[tuple[str, str, str], str]
    pseudonyms: dict[str, str]
    #: ``(Evidence.community, pseudonym) -> NIP``: display names linked within one community.
    names: dict[tuple[str, str], str] = field(default_factory=dict)

    def nip(self, row: Evidence) -> str | None:
        """The NIP of an evidence row's person, or None (unresolved)."""
        if row.nip:
            return row.nip
        if row.source in PSEUDONYMOUS_SOURCES:
            found = self.pseudonyms.get(row.local_actor)
            if found:
                return found
            if row.community:
                named = self.names.get((row.community, row.local_actor))
                if named:
                    return named
        return self.accounts.get((row.source, row.site_id, row.local_actor))


def load_resolver(session: Session) -> Resolver:
    """Every identity link that points at a person."""
    accounts: dict[tuple[str, str, str], str] = {}
    pseudonyms: dict[str, str] = {}
    names: dict[tuple[str, str], str] = {}
    rows = session.execute(
        select(IdentityLink.source, IdentityLink.site_id, IdentityLink.local_id, Person.nip).join(
            Person, Person.id == IdentityLink.person_id
        )
    )
    for row in rows:
        if row.source == PSEUDONYM_LINK_SOURCE:
            pseudonyms[row.local_id] = row.nip
        elif row.source == NAME_LINK_SOURCE:
            names[(f"{COMMUNITY_GROUPING}:{row.site_id}", row.local_id)] = row.nip
        else:
            accounts[(row.source, row.site_id, row.local_id)] = row.nip
    return Resolver(accounts=accounts, pseudonyms=pseudonyms, names=names)


def _year_bounds(year: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(date(year, 1, 1), time(), zone).astimezone(UTC)
    end = datetime.combine(date(year + 1, 1, 1), time(), zone).astimezone(UTC)
    return start, end


def read_evidence(
    session: Session,
    years: Sequence[int],
    zone: ZoneInfo,
    kinds: Iterable[str],
    resolver: Resolver,
    *,
    nip: str | None = None,
    namespace: uuid.UUID | None = None,
    tombstones: Tombstones | None = None,
) -> tuple[list[EvidenceItem], int]:
    """The evidence of whole local years, resolved; returns (items, unresolved count).

    Args:
        session: the state store.
        years: local years to read.
        zone: the deployment's time zone.
        kinds: activity kinds some rule reads.
        resolver: the identity links.
        nip: only this person's evidence.
        namespace: the deployment's statement namespace: with it, evidence whose void is
            queued or sent is left out (a backfill may have stored it again after ``void``).
        tombstones: forgotten people, whose evidence is left out (and not counted as unresolved).
    """
    items: list[EvidenceItem] = []
    unresolved = 0
    forgotten: dict[str, bool] = {}
    kinds = sorted(set(kinds))
    for year in years:
        start, end = _year_bounds(year, zone)
        query = (
            select(Evidence)
            .where(Evidence.occurred_at >= start, Evidence.occurred_at < end, Evidence.kind.in_(kinds))
            .order_by(Evidence.statement_id)
        )
        for row in session.execute(query).scalars():
            person = resolver.nip(row)
            if person is None:
                unresolved += 1
                continue
            if nip is not None and person != nip:
                continue
            if tombstones and forgotten.setdefault(person, tombstones.nip(person)):
                continue
            items.append(
                EvidenceItem(
                    statement_id=row.statement_id,
                    nip=person,
                    source=row.source,
                    site_id=row.site_id,
                    kind=row.kind,
                    occurred_at=row.occurred_at,
                    local_date=row.occurred_at.astimezone(zone).date(),
                    duration_seconds=row.duration_seconds,
                    object_key=row.object_key,
                    facts=json.loads(row.facts or "{}"),
                )
            )
    if namespace is not None and items:
        voided = voided_targets(session, namespace, [item.statement_id for item in items])
        items = [item for item in items if item.statement_id not in voided]
    return items, unresolved


# --- running ---------------------------------------------------------------------------------


@dataclass
class JPReport:
    """What one ``jp compute`` did.

    Attributes:
        years: the local years computed.
        people: people with at least one credit.
        posted: new records (revision 1).
        revised: records superseded by a new revision (each also counted in voided).
        voided: records voided (superseded or no longer earned).
        unchanged: records already posted with the same content.
        open: credits of periods not closed yet (emitted by a later run).
        unresolved: evidence whose person is not known (no NIP link).
        jp_posted: JP of the records posted by this run.
        held: credits held as pending (their course's program JP is unknown).
        held_courses: the distinct (site, course) pairs behind them.
    """

    years: list[int] = field(default_factory=list)
    people: int = 0
    posted: int = 0
    revised: int = 0
    voided: int = 0
    unchanged: int = 0
    open: int = 0
    unresolved: int = 0
    jp_posted: Decimal = Decimal(0)
    held: int = 0
    held_courses: int = 0


def _pending_row(credit: Credit) -> jp_store.PendingIn:
    first = credit.evidence[0]
    return jp_store.PendingIn(
        nip=credit.nip,
        rule_id=credit.rule.id,
        period=credit.period,
        period_day=credit.local_date,
        activity_key=credit.activity_key,
        site_id=first.site_id,
        course=course_label(first.facts),
        evidence_ids=credit.evidence_ids,
    )


def default_years(today: date) -> list[int]:
    """The years a plain ``jp compute`` looks at: this one, and last year during January."""
    return [today.year - 1, today.year] if today.month == 1 else [today.year]


def load_rule_files(settings: Settings) -> tuple[RuleSet, ProgramJP]:
    """The configured (or shipped) rules and program JP files, checked."""
    rules_file = settings.jp.rules_file
    program_file = settings.jp.program_jp_file
    rules = load_rules(settings.resolve_path(rules_file)) if rules_file else load_rules()
    program = load_program_jp(settings.resolve_path(program_file)) if program_file else load_program_jp()
    return rules, program


def is_closed(period_day: date, rules: RuleSet, zone: ZoneInfo, now: datetime) -> bool:
    """Whether a local day has ended, plus the grace window, at ``now``."""
    end = datetime.combine(period_day + timedelta(days=1), time(), zone) + timedelta(hours=rules.grace_hours)
    return now >= end


#: People computed per write: their statements, records and held credits are written together.
PEOPLE_PER_BATCH = 500
#: Rows fetched from the store at a time while streaming evidence and records.
FETCH_ROWS = 2000


def _resolved_evidence(session: Session, years: Sequence[int], zone: ZoneInfo, kinds: Sequence[str]) -> Any:
    """Rows of the evidence of whole local years with their person resolved in SQL, ordered by person.

    The same resolution as :meth:`Resolver.nip` (a NIP the source gave, else a chat pseudonym's
    link, else a display name linked within the community, else the account's link), as left joins
    on ``identity_links`` (each on its unique key), so the store can hand the evidence over
    person by person and nothing holds a year's evidence. Unresolved rows (``person`` NULL) come first.
    """
    dialect = session.get_bind().dialect.name
    pseudonym, pseudonym_person = aliased(IdentityLink), aliased(Person)
    named, named_person = aliased(IdentityLink), aliased(Person)
    account, account_person = aliased(IdentityLink), aliased(Person)
    chat = Evidence.source.in_(sorted(PSEUDONYMOUS_SOURCES))
    prefix = f"{COMMUNITY_GROUPING}:"
    person = func.coalesce(
        func.nullif(Evidence.nip, ""), pseudonym_person.nip, named_person.nip, account_person.nip
    ).label("person")
    ranges = [
        and_(Evidence.occurred_at >= start, Evidence.occurred_at < end)
        for start, end in (_year_bounds(year, zone) for year in years)
    ]
    query = (
        select(
            Evidence.statement_id,
            Evidence.source,
            Evidence.site_id,
            Evidence.kind,
            Evidence.occurred_at,
            Evidence.duration_seconds,
            Evidence.object_key,
            Evidence.facts,
            person,
        )
        .select_from(Evidence)
        .outerjoin(
            pseudonym,
            and_(
                chat,
                pseudonym.source == PSEUDONYM_LINK_SOURCE,
                pseudonym.site_id == "",
                pseudonym.local_id == Evidence.local_actor,
            ),
        )
        .outerjoin(pseudonym_person, pseudonym_person.id == pseudonym.person_id)
        .outerjoin(
            named,
            and_(
                chat,
                func.substr(Evidence.community, 1, len(prefix)) == prefix,
                named.source == NAME_LINK_SOURCE,
                named.site_id == func.substr(Evidence.community, len(prefix) + 1),
                named.local_id == Evidence.local_actor,
            ),
        )
        .outerjoin(named_person, named_person.id == named.person_id)
        .outerjoin(
            account,
            and_(
                account.source == Evidence.source,
                account.site_id == Evidence.site_id,
                account.local_id == Evidence.local_actor,
            ),
        )
        .outerjoin(account_person, account_person.id == account.person_id)
        .where(or_(*ranges), Evidence.kind.in_(kinds))
        .order_by(jp_store.in_nip_order(person, dialect).nulls_first(), Evidence.statement_id)
    )
    return session.execute(query.execution_options(yield_per=FETCH_ROWS))


def _evidence_by_person(
    session: Session,
    years: Sequence[int],
    zone: ZoneInfo,
    kinds: Iterable[str],
    report: JPReport,
    *,
    namespace: uuid.UUID | None,
    tombstones: Tombstones | None,
) -> Iterator[tuple[str, list[EvidenceItem]]]:
    """(NIP, that person's evidence) in NIP order, streamed: :func:`read_evidence`, one person at a time.

    Counts the unresolved evidence in ``report``. Evidence whose void is queued or sent is left
    out (looked up for :data:`PEOPLE_PER_BATCH` people at a time), and so are forgotten people.
    """
    rows = _resolved_evidence(session, years, zone, sorted(set(kinds)))
    batch: list[tuple[str, list[EvidenceItem]]] = []
    facts = _FactsCache()
    for person, group in groupby(rows, key=itemgetter(8)):  # the person: _resolved_evidence's last column
        if person is None:
            report.unresolved += sum(1 for _ in group)
            continue
        if tombstones and tombstones.nip(person):
            continue
        # Positional: a frozen dataclass's keyword call costs more, for the same item. The row's columns
        # are in _resolved_evidence's order.
        items = [
            EvidenceItem(
                statement_id,
                person,
                source,
                site_id,
                kind,
                occurred_at,
                occurred_at.astimezone(zone).date(),
                duration_seconds,
                object_key,
                facts.decode(text),
            )
            for statement_id, source, site_id, kind, occurred_at, duration_seconds, object_key, text, _ in group
        ]
        batch.append((person, items))
        if len(batch) >= PEOPLE_PER_BATCH:
            yield from _without_voided(session, namespace, batch)
            batch = []
    yield from _without_voided(session, namespace, batch)


class _FactsCache:
    """Decoded facts by their JSON text: most evidence of a run shares a few texts (``{}``, a course's).

    Items with the same text share one dict; nothing in ``jp compute`` changes an item's facts
    (``[[assign]]`` builds a new dict). Bounded: cleared when it holds :data:`FACTS_CACHED` texts.
    """

    def __init__(self) -> None:
        self._decoded: dict[str, dict[str, Any]] = {}

    def decode(self, text: str | None) -> dict[str, Any]:
        text = text or "{}"
        found = self._decoded.get(text)
        if found is None:
            if len(self._decoded) >= FACTS_CACHED:
                self._decoded.clear()
            found = self._decoded[text] = json.loads(text)
        return found


#: Distinct facts texts :class:`_FactsCache` keeps at most.
FACTS_CACHED = 10_000


def _without_voided(
    session: Session, namespace: uuid.UUID | None, batch: list[tuple[str, list[EvidenceItem]]]
) -> list[tuple[str, list[EvidenceItem]]]:
    if namespace is None or not batch:
        return batch
    voided = voided_targets(session, namespace, [item.statement_id for _, items in batch for item in items])
    if not voided:
        return batch
    kept = [(person, [item for item in items if item.statement_id not in voided]) for person, items in batch]
    return [(person, items) for person, items in kept if items]


_T = TypeVar("_T")


def _grouped(pairs: Iterable[tuple[str, _T]]) -> Iterator[tuple[str, list[_T]]]:
    """Consecutive ``(nip, value)`` pairs as ``(nip, [values])``."""
    for nip, group in groupby(pairs, key=lambda pair: pair[0]):
        yield nip, [value for _, value in group]


def _merge_by_nip(
    evidence: Iterator[tuple[str, list[EvidenceItem]]],
    records: Iterator[tuple[str, list[jp_store.Record]]],
    revisions: Iterator[tuple[str, list[tuple[jp_store.Key, int]]]],
) -> Iterator[tuple[str, list[EvidenceItem], list[jp_store.Record], list[tuple[jp_store.Key, int]]]]:
    """The three NIP-ordered streams joined on NIP: every person with evidence or records, once, in NIP order."""
    heads: list[Any] = [next(evidence, None), next(records, None), next(revisions, None)]
    streams: list[Iterator[Any]] = [evidence, records, revisions]
    while any(head is not None for head in heads):
        nip = min(head[0] for head in heads if head is not None)
        found: list[Any] = []
        for index, head in enumerate(heads):
            if head is not None and head[0] == nip:
                found.append(head[1])
                heads[index] = next(streams[index], None)
            else:
                found.append([])
        yield nip, found[0], found[1], found[2]


def run_jp(
    engine: Engine,
    settings: Settings,
    statement_settings: StatementSettings,
    *,
    years: Sequence[int] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> JPReport:
    """Compute JP records for whole years and queue what changed (see the module docstring).

    The store hands the evidence, the active records and the revisions over in NIP order, and
    each person is computed and diffed alone (:data:`PEOPLE_PER_BATCH` people written at a
    time, all in one transaction): memory holds one batch of people, not a year.

    Args:
        engine: the state store.
        settings: the configuration (time zone, identity authority, rule files).
        statement_settings: statement builders' settings.
        years: local years to compute (default :func:`default_years`).
        now: the moment that decides which periods are closed (default: now).
        dry_run: compute and count; write nothing.
    """
    rules, program = load_rule_files(settings)
    zone = ZoneInfo(settings.deployment.timezone)
    now = now or datetime.now(UTC)
    years = sorted(set(years or default_years(now.astimezone(zone).date())))
    report = JPReport(years=list(years))
    with Session(engine) as session, session.begin():
        jp_store.use_run_cache(session)
        evidence = _evidence_by_person(
            session,
            years,
            zone,
            rules.kinds,
            report,
            namespace=statement_settings.namespace,
            tombstones=Tombstones.load(session, settings),
        )
        records = _grouped((record.nip, record) for record in jp_store.iter_active_records(session, years))
        revisions = _grouped(
            (key[0], (key, revision)) for key, revision in jp_store.iter_last_revisions(session, years)
        )
        if not dry_run:
            jp_store.clear_pending(session, years)
        batch = _Batch()
        for nip, items, existing, used in _merge_by_nip(evidence, records, revisions):
            _diff_person(
                nip, items, existing, dict(used), rules, program, zone, now, settings, statement_settings, report, batch
            )
            if batch.people >= PEOPLE_PER_BATCH:
                batch.write(session, dry_run=dry_run)
        batch.write(session, dry_run=dry_run)
        report.held_courses = len(batch.held_courses)
        if dry_run:
            session.rollback()
            return report
        report_version.bump(session)  # jp_pending was rewritten: the report's held credits
    log.info(
        "jp compute %s: %d posted, %d revised, %d voided, %d unchanged, %d open, %d held",
        years,
        report.posted,
        report.revised,
        report.voided,
        report.unchanged,
        report.open,
        report.held,
    )
    return report


@dataclass
class _Batch:
    """What a batch of people queues: voids first, then new records (in key order), and held credits."""

    people: int = 0
    voids: list[BuiltStatement] = field(default_factory=list)
    posts: list[BuiltStatement] = field(default_factory=list)
    new_rows: list[jp_store.RecordIn] = field(default_factory=list)
    void_rows: list[int] = field(default_factory=list)
    pending: list[jp_store.PendingIn] = field(default_factory=list)
    #: The distinct (site, course) pairs held in the whole run (not reset by :meth:`write`).
    held_courses: set[tuple[str, str]] = field(default_factory=set)

    def write(self, session: Session, *, dry_run: bool) -> None:
        if not dry_run:
            jp_store.write(session, self.voids + self.posts, self.new_rows, self.void_rows)
            jp_store.add_pending(session, self.pending)
        self.people = 0
        self.voids, self.posts, self.new_rows, self.void_rows, self.pending = [], [], [], [], []


def _diff_person(
    nip: str,
    items: list[EvidenceItem],
    existing: list[jp_store.Record],
    revisions: dict[jp_store.Key, int],
    rules: RuleSet,
    program: ProgramJP,
    zone: ZoneInfo,
    now: datetime,
    settings: Settings,
    statement_settings: StatementSettings,
    report: JPReport,
    batch: _Batch,
) -> None:
    """One person's credits against their active records: what to void, what to post, what is held."""
    authority = settings.deployment.identity_authority
    computed = compute_credits(items, rules, program) if items else []
    pending_rows = [_pending_row(credit) for credit in computed if credit.pending]
    report.held += len(pending_rows)
    batch.pending.extend(pending_rows)
    batch.held_courses.update((row.site_id, row.course) for row in pending_rows)
    batch.people += 1
    closed = []
    for credit in computed:
        if credit.jp <= 0:
            continue
        if is_closed(credit.local_date, rules, zone, now):
            closed.append(credit)
        else:
            report.open += 1
    if closed:
        report.people += 1
    desired = {credit.key: credit for credit in closed}
    held_records = {record.key: record for record in existing}
    for key, record in held_records.items():
        wanted = desired.get(key)
        if wanted is not None and wanted.evidence_hash() == record.evidence_hash:
            report.unchanged += 1
            continue
        batch.voids.append(
            build_void_statement(
                statement_settings,
                record.statement_id,
                nip=record.nip,
                authority=authority,
                occurred_at=record.occurred_at,
            )
        )
        batch.void_rows.append(record.id)
        report.voided += 1
        if wanted is not None:
            report.revised += 1
    for key, credit in sorted(desired.items()):
        held = held_records.get(key)
        evidence_hash = credit.evidence_hash()
        if held is not None and evidence_hash == held.evidence_hash:
            continue
        revision = revisions.get(key, 0) + 1
        built = build_jp_statement(
            statement_settings,
            JPCreditIn(
                nip=credit.nip,
                rule_id=credit.rule.id,
                rule_version=credit.rule.version,
                rule_code=credit.code,
                period=credit.period,
                activity_key=credit.activity_key,
                revision=revision,
                jp=credit.jp,
                evidence_ids=credit.evidence_ids,
                occurred_at=credit.occurred_at,
            ),
            authority=authority,
        )
        batch.posts.append(built)
        batch.new_rows.append(
            jp_store.RecordIn(
                nip=credit.nip,
                rule_id=credit.rule.id,
                rule_version=credit.rule.version,
                period=credit.period,
                activity_key=credit.activity_key,
                revision=revision,
                jp=str(credit.jp),
                evidence_hash=evidence_hash,
                statement_id=built.id,
                occurred_at=credit.occurred_at,
            )
        )
        if held is None:
            report.posted += 1
        report.jp_posted += credit.jp


def explain(
    engine: Engine, settings: Settings, nip: str, year: int, *, now: datetime | None = None
) -> tuple[list[Credit], dict[tuple[str, str, str, str], jp_store.Record], bool]:
    """One person's credits for a year, the records already posted, and whether the person is known.

    Returns:
        (credits including those capped to 0, active records by key, person known).
    """
    rules, program = load_rule_files(settings)
    zone = ZoneInfo(settings.deployment.timezone)
    with Session(engine) as session:
        known = session.execute(select(Person.id).where(Person.nip == nip)).first() is not None
        resolver = load_resolver(session)
        items, _ = read_evidence(
            session,
            [year],
            zone,
            rules.kinds,
            resolver,
            nip=nip,
            namespace=settings.deployment.statement_namespace,
            tombstones=Tombstones.load(session, settings),
        )
        records = {key: record for key, record in jp_store.active_records(session, [year]).items() if key[0] == nip}
    return compute_credits(items, rules, program), records, known or bool(items) or bool(records)


def duplicates(engine: Engine, settings: Settings, year: int, *, nip: str | None = None) -> list[tuple[str, Merge]]:
    """Every (NIP, merge) of a year: activities left out as the same event through another source."""
    rules, _ = load_rule_files(settings)
    zone = ZoneInfo(settings.deployment.timezone)
    with Session(engine) as session:
        items, _ = read_evidence(
            session,
            [year],
            zone,
            rules.kinds,
            load_resolver(session),
            nip=nip,
            namespace=settings.deployment.statement_namespace,
            tombstones=Tombstones.load(session, settings),
        )
    by_person: dict[str, list[EvidenceItem]] = defaultdict(list)
    for item in items:
        by_person[item.nip].append(item)
    return [(person, merge) for person in sorted(by_person) for merge in merge_duplicates(by_person[person], rules)[1]]
