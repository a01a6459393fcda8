"""HR reports from the ledger: who met the yearly JP target, per unit and per person, with evidence.

Everything here reads the state store (the ledger mirrored from the LRS and the
HR roster), never the LRS itself. Names and units come from the roster; a person
with JP records but no roster row is listed by NIP as "not on roster". The unit
that counts is the one the roster gave the person on the as-of date.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import statistics
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Date,
    Engine,
    FromClause,
    Numeric,
    and_,
    cast,
    exists,
    false,
    func,
    null,
    or_,
    select,
    true,
    union,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select, operators
from sqlalchemy.sql.expression import UnaryExpression

from lms_bridge import i18n
from lms_bridge.config.settings import Settings
from lms_bridge.errors import InputError
from lms_bridge.jp.rules import MAPPINGS, load_rules, target_for
from lms_bridge.nip import parse_nip
from lms_bridge.store.models import Evidence, JPPending, LedgerEvidence, LedgerRecord, Person, PersonUnit

NOT_ON_ROSTER = "not on roster"


class ComplianceRow(NamedTuple):
    """One person's standing.

    A named tuple rather than a frozen dataclass: the report builds one per person
    (100,000 and more), and a tuple is built about three times faster.
    """

    nip: str
    name: str | None
    unit_code: str
    unit_name: str | None
    employee_type: str
    jp: Decimal
    target: int
    on_roster: bool
    #: Credits held as pending in the window (a course whose program JP is unknown): not in ``jp``.
    pending: int = 0

    @property
    def met(self) -> bool:
        """Whether the person reached the target."""
        return self.jp >= self.target

    @property
    def needed(self) -> Decimal:
        """JP still needed (0 when met)."""
        return max(Decimal(self.target) - self.jp, Decimal(0))


@dataclass(frozen=True)
class UnitSummary:
    """One unit's figures."""

    unit_code: str
    unit_name: str | None
    people: int
    met: int
    median_jp: Decimal
    #: Credits held as pending of the unit's people.
    pending: int = 0

    @property
    def share_met(self) -> float:
        """Share of people who met the target (0..1)."""
        return self.met / self.people if self.people else 0.0


@dataclass
class ComplianceReport:
    """The compliance report: rows sorted by unit and NIP, one summary per unit."""

    year: int
    as_of: date
    rows: list[ComplianceRow] = field(default_factory=list)
    units: list[UnitSummary] = field(default_factory=list)


def _year_window(year: int, as_of: date | None) -> tuple[date, date]:
    end = date(year, 12, 31)
    if as_of is not None:
        end = min(end, as_of)
    return date(year, 1, 1), end


def _counted_day(dialect: str) -> ColumnElement[date]:
    """``ledger_records.period_day`` as the compliance sum filters on it.

    On SQLite it is written ``+period_day``, SQLite's documented way to keep a term off
    an index: otherwise its planner, which cannot tell that a whole-year range covers
    most of the ledger, answers the range with ``ix_ledger_records_day`` (one table
    lookup per record, then a temporary B-tree for the GROUP BY: 3.6-5.7 s for
    2,000,000 records) instead of scanning the covering index ``ix_ledger_records_nip_day``
    in NIP order (0.3 s). PostgreSQL picks the covering index (an index-only scan) by itself.
    """
    column: ColumnElement[date] = LedgerRecord.__table__.c.period_day
    if dialect == "sqlite":
        return UnaryExpression(column, operator=operators.custom_op("+"), type_=Date())
    return column


def _unit_at(
    dialect: str, end: date, nip: str | None, members: FromClause | None = None
) -> tuple[FromClause, Callable[[Any], ColumnElement[bool]]]:
    """``person_units`` narrowed to each person's unit on ``end`` (the latest change not after it).

    Returns the FROM to outer-join (columns ``unit_code`` and ``unit_name``) and the
    join condition for a column holding the NIP. The two engines want different shapes
    (measured over 100,000 people): SQLite probes the unique index (nip, valid_from)
    once per person through a correlated MAX, 0.15 s CPU cheaper than materialising a
    window; PostgreSQL reads the table once in (nip, valid_from) order with a window
    function and hash-joins it, where the correlated form costs it 0.4 s more. ``members``
    (a report of some units: :func:`_members`) narrows the window to those people.
    """
    if dialect == "sqlite":
        unit = PersonUnit.__table__.alias("unit_at")

        def latest(nip_column: Any) -> ColumnElement[bool]:
            newest = (
                select(func.max(PersonUnit.valid_from))
                .where(PersonUnit.nip == nip_column, PersonUnit.valid_from <= end)
                .scalar_subquery()
            )
            return and_(unit.c.nip == nip_column, unit.c.valid_from == newest)

        return unit, latest
    ranked = select(
        PersonUnit.nip,
        PersonUnit.unit_code,
        PersonUnit.unit_name,
        func.row_number().over(partition_by=PersonUnit.nip, order_by=PersonUnit.valid_from.desc()).label("rank"),
    ).where(PersonUnit.valid_from <= end)
    if nip is not None:
        ranked = ranked.where(PersonUnit.nip == nip)
    if members is not None:
        ranked = ranked.where(PersonUnit.nip.in_(select(members.c.nip)))
    ranked_sub = ranked.subquery("ranked")
    window = (
        select(ranked_sub.c.nip, ranked_sub.c.unit_code, ranked_sub.c.unit_name)
        .where(ranked_sub.c.rank == 1)
        .cte("unit_at")
    )
    return window, lambda nip_column: window.c.nip == nip_column


def _members(end: date, unit: str | None, prefix: str | None) -> FromClause:
    """The NIPs that may be in ``unit`` (or under the unit code ``prefix``) on ``end``: a superset.

    A person's unit on ``end`` is the unit history's latest row not after ``end`` or, without
    one (or with a row without a code), the roster row's unit. Whoever is reported under a
    matching unit therefore has a matching history row from before ``end`` or a matching
    roster row: both are index range reads (``ix_person_units_unit``, ``ix_persons_unit_code``),
    and the few people who left the unit since are dropped by the exact filter in Python.
    """
    history: ColumnElement[bool]
    roster: ColumnElement[bool]
    if unit is not None:
        history, roster = PersonUnit.unit_code == unit, Person.unit_code == unit
    else:
        history = PersonUnit.unit_code.startswith(prefix or "", autoescape=True)
        roster = Person.unit_code.startswith(prefix or "", autoescape=True)
    return union(
        select(PersonUnit.nip).where(history, PersonUnit.valid_from <= end),
        select(Person.nip).where(roster),
    ).cte("members")


def _members_query(
    dialect: str,
    members: FromClause,
    totals: FromClause,
    unit: FromClause,
    unit_of: Callable[[Any], ColumnElement[bool]],
) -> Select[Any]:
    """:func:`_standings_query` for the members of some units: one row per member, in one pass.

    Every person such a report can list is a member, so the members drive the query (no union of people
    with JP and people without). On PostgreSQL the roster row is a ``LATERAL ... LIMIT 1`` subquery, one
    probe of the ``persons`` key per member: joined plainly, the planner misjudges the sums' size and
    hashes the whole roster (a sequential scan of every civil servant of the country, BENCHMARKS
    "National ledger"). A member without a roster row comes out as not on the roster (the caller's unit
    filter then drops it, as before).
    """
    columns = (Person.name, Person.employee_type, Person.roster_updated_at, Person.unit_code, Person.unit_name)
    if dialect == "postgresql":
        roster = select(*columns).where(Person.nip == members.c.nip).limit(1).lateral("roster")
        source = members.outerjoin(roster, true())
        picked: list[Any] = [roster.c[column.key] for column in columns]
    else:
        source = members.outerjoin(Person, Person.nip == members.c.nip)
        picked = list[Any](columns)
    name, employee_type, updated, code, code_name = picked
    query: Select[Any] = (
        select(  # type: ignore[assignment]  # the columns' types are mixed: Select[Never, ...] to mypy
            members.c.nip,
            name,
            employee_type,
            updated.is_not(None),
            code,
            code_name,
            unit.c.unit_code,
            unit.c.unit_name,
            totals.c.jp,
        )
        .select_from(source)
        .outerjoin(unit, unit_of(members.c.nip))
        .outerjoin(totals, totals.c.nip == members.c.nip)
    )
    return query


def _unit_match(column: Any, unit: str | None, prefix: str | None) -> ColumnElement[bool]:
    """``column`` is ``unit`` or, without one, starts with ``prefix`` (an index range either way)."""
    if unit is not None:
        return column == unit  # type: ignore[no-any-return]
    return column.startswith(prefix or "", autoescape=True)  # type: ignore[no-any-return]


def _ranges_query(start: date, end: date, unit: str | None, prefix: str | None) -> Select[Any]:
    """PostgreSQL: :func:`_standings_query` for the people of ``unit`` (or of the units under ``prefix``).

    Three index ranges replace the three probes per member of :func:`_members_query` (BENCHMARKS
    "National ledger"), thanks to the two columns migration 0013's triggers keep:

    - ``history``: the unit history rows in force on ``end`` (``valid_from <= end < valid_to``) whose
      unit matches: exactly the people whose unit on ``end`` comes from the history and matches, with
      that unit (``ix_person_units_unit``);
    - ``roster``: the roster rows whose current unit matches (``ix_persons_unit_code``);
    - ``tagged``: the JP of the window of every record tagged with a matching unit: the records of
      exactly the ``roster`` people, since a record's tag is its person's roster unit
      (``ix_ledger_records_unit``, index-only, one year's partition).

    Everyone reported under a matching unit is in ``history`` or in ``roster`` (a person without a
    history row in force, or with one without a code, is reported under the roster's unit), so their
    full join is a superset of the report, as :func:`_members` is; the caller's exact filter drops the
    rest. What a person lacks from one side is probed, gated by a one-time filter so that only those
    people pay: the roster row and the JP of a ``history`` person the roster puts elsewhere (a move
    the roster has, the history not yet), the unit on ``end`` of a ``roster`` person whose history
    row in force is elsewhere or absent. The rows are those of :func:`_standings_query`.
    """
    history = (
        select(PersonUnit.nip, PersonUnit.unit_code, PersonUnit.unit_name)
        .where(
            _unit_match(PersonUnit.unit_code, unit, prefix),
            PersonUnit.valid_from <= end,
            or_(PersonUnit.valid_to.is_(None), PersonUnit.valid_to > end),
        )
        .cte("history")
    )
    roster_columns = (Person.name, Person.employee_type, Person.roster_updated_at, Person.unit_code, Person.unit_name)
    roster = select(Person.nip, *roster_columns).where(_unit_match(Person.unit_code, unit, prefix)).cte("roster")
    counted = [LedgerRecord.voided == false(), LedgerRecord.period_day >= start, LedgerRecord.period_day <= end]
    # The sum in hundredths of a JP, as an integer: see _standings.
    hundredths = cast(func.round(func.sum(cast(LedgerRecord.jp, Numeric(12, 2))) * 100), BigInteger)
    tagged = (
        select(LedgerRecord.nip, hundredths.label("jp"))
        .where(_unit_match(LedgerRecord.unit_code, unit, prefix), *counted)
        .group_by(LedgerRecord.nip)
        .cte("tagged")
    )
    people = (
        select(
            func.coalesce(history.c.nip, roster.c.nip).label("nip"),
            history.c.nip.label("history_nip"),
            history.c.unit_code.label("history_code"),
            history.c.unit_name.label("history_name"),
            roster.c.nip.label("roster_nip"),
            *(roster.c[column.key] for column in roster_columns),
        )
        .select_from(history.outerjoin(roster, history.c.nip == roster.c.nip, full=True))
        .subquery("people")
    )
    roster_probe = (
        select(*roster_columns)
        .where(Person.nip == people.c.nip, people.c.roster_nip.is_(None))
        .limit(1)
        .lateral("roster_probe")
    )
    unit_probe = (
        select(PersonUnit.unit_code, PersonUnit.unit_name)
        .where(PersonUnit.nip == people.c.nip, PersonUnit.valid_from <= end, people.c.history_nip.is_(None))
        .order_by(PersonUnit.valid_from.desc())
        .limit(1)
        .lateral("unit_probe")
    )
    sum_probe = (
        select(hundredths.label("jp"))
        .where(LedgerRecord.nip == people.c.nip, people.c.roster_nip.is_(None), *counted)
        .lateral("sum_probe")
    )

    def either(name: str, probe: FromClause, probe_name: str | None = None) -> ColumnElement[Any]:
        # One side is always NULL: the probe is gated off when the range gave the person's row.
        return func.coalesce(people.c[name], probe.c[probe_name or name])

    query: Select[Any] = (
        select(  # type: ignore[assignment]  # the columns' types are mixed: Select[Never, ...] to mypy
            people.c.nip,
            either("name", roster_probe),
            either("employee_type", roster_probe),
            either("roster_updated_at", roster_probe).is_not(None),
            either("unit_code", roster_probe),
            either("unit_name", roster_probe),
            either("history_code", unit_probe, "unit_code"),
            either("history_name", unit_probe, "unit_name"),
            func.coalesce(tagged.c.jp, sum_probe.c.jp),
        )
        .select_from(people)
        .outerjoin(tagged, tagged.c.nip == people.c.nip)
        .outerjoin(roster_probe, true())
        .outerjoin(unit_probe, true())
        .outerjoin(sum_probe, true())
    )
    return query


def _standings_query(
    dialect: str, start: date, end: date, nip: str | None = None, members: FromClause | None = None
) -> CompoundSelect | Select[Any]:
    """One row per person to report, all from one query (so from one snapshot of the store).

    Columns: nip, name, employee_type, on_roster, the roster's current unit (code, name),
    the unit on ``end`` from the unit history (code, name), and the unvoided JP of the
    window summed by the database in hundredths (NULL when the person has none).

    A person is reported when on the roster or with JP in the window: the first branch
    starts from the JP sums (GROUP BY over the covering index ``ix_ledger_records_nip_day``
    in NIP order), the second adds the people on the roster without any. ``nip`` narrows
    it to one person (:func:`person_standing`); ``members`` (:func:`_members`) to the people
    who may be in some units, so that a unit's or an institution's report in a national
    ledger reads their records (index probes by NIP in one year's partition) and not the
    whole year's (docs/scaling.md).
    """
    day = _counted_day(dialect)
    counted = [LedgerRecord.voided == false(), day >= start, day <= end]
    if nip is not None:
        counted.append(LedgerRecord.nip == nip)
    if members is not None:
        counted.append(LedgerRecord.nip.in_(select(members.c.nip)))
    # The sum in hundredths of a JP, as an integer: see _standings.
    hundredths = cast(func.round(func.sum(cast(LedgerRecord.jp, Numeric(12, 2))) * 100), BigInteger)
    totals = select(LedgerRecord.nip, hundredths.label("jp")).where(*counted).group_by(LedgerRecord.nip).cte("totals")
    unit, unit_of = _unit_at(dialect, end, nip, members)
    on_roster = Person.roster_updated_at.is_not(None)
    if members is not None:
        return _members_query(dialect, members, totals, unit, unit_of)
    with_jp = (
        select(
            totals.c.nip,
            Person.name,
            Person.employee_type,
            on_roster,
            Person.unit_code,
            Person.unit_name,
            unit.c.unit_code,
            unit.c.unit_name,
            totals.c.jp,
        )
        .select_from(totals)
        .outerjoin(Person, Person.nip == totals.c.nip)
        .outerjoin(unit, unit_of(totals.c.nip))
    )
    # PostgreSQL: NOT EXISTS (a hash anti-join). Its NOT IN hashes the subquery only while it fits in
    # work_mem, and falls back to one scan of the sums per roster row (quadratic: minutes for 50,000 people).
    without = (
        ~exists().where(totals.c.nip == Person.nip)
        if dialect == "postgresql"
        else Person.nip.not_in(select(totals.c.nip))
    )
    without_jp = (
        select(
            Person.nip,
            Person.name,
            Person.employee_type,
            on_roster,
            Person.unit_code,
            Person.unit_name,
            unit.c.unit_code,
            unit.c.unit_name,
            null(),
        )
        .select_from(Person)
        .outerjoin(unit, unit_of(Person.nip))
        .where(without)
    )
    # One person asked for by NIP is answered even without a roster row (as "not on roster").
    without_jp = without_jp.where(on_roster) if nip is None else without_jp.where(Person.nip == nip)
    if members is not None:
        without_jp = without_jp.where(Person.nip.in_(select(members.c.nip)))
    return union_all(with_jp, without_jp)


def _pending_counts(
    connection: Connection, start: date, end: date, nip: str | None = None, members: FromClause | None = None
) -> dict[str, int]:
    """Held credits per person in the window (``jp compute`` keeps them in ``jp_pending``)."""
    query = (
        select(JPPending.nip, func.count())
        .where(JPPending.period_day >= start, JPPending.period_day <= end)
        .group_by(JPPending.nip)
    )
    if nip is not None:
        query = query.where(JPPending.nip == nip)
    if members is not None:
        query = query.where(JPPending.nip.in_(select(members.c.nip)))
    return {row[0]: int(row[1]) for row in connection.execute(query)}


TargetOf = Callable[[str, str], int]


def target_function(settings: Settings, day: date) -> TargetOf:
    """(employee type, unit code) -> the JP target in force on ``day``.

    ``[[targets]]`` of the rules file (per institution's units and employee type, with
    effective dates) first, then ``[report] targets`` of the configuration (20 JP default).
    """
    rules_file = settings.jp.rules_file
    targets = (load_rules(settings.resolve_path(rules_file)) if rules_file else load_rules()).targets
    fallback = settings.report.targets
    cache: dict[tuple[str, str], int] = {}

    def target_of(employee_type: str, unit_code: str) -> int:
        key = (employee_type, unit_code)
        if key not in cache:
            cache[key] = target_for(targets, employee_type, unit_code, day, fallback.get(employee_type, 20))
        return cache[key]

    return target_of


def _standings(
    found: Iterable[Sequence[Any]], target_of: TargetOf, pending: dict[str, int] | None = None
) -> Iterator[ComplianceRow]:
    """Turn rows of :func:`_standings_query` into report rows (unit, type, target and JP resolved).

    JP are stored as decimal text with at most two decimals and summed by the database
    in hundredths, as an integer: PostgreSQL sums them as NUMERIC (exact), SQLite as
    REAL, whose error stays far below 0.005 for any realistic count of records, so
    rounding to hundredths gives the exact sum. Few sums are distinct, so each becomes
    a ``Decimal`` once (``seen``).
    """
    seen: dict[int, Decimal] = {}
    for nip, name, employee_type, on_roster, roster_code, roster_name, code, code_name, hundredths in found:
        if not on_roster:
            code, code_name = NOT_ON_ROSTER, None
        elif code is None:  # no unit history yet: the roster row's unit
            code, code_name = roster_code, roster_name
        if not employee_type:
            parsed = parse_nip(nip)
            employee_type = parsed.employee_type.value if parsed else "PNS"
        jp = Decimal(0) if hundredths is None else seen.get(hundredths)
        if jp is None:
            jp = seen[hundredths] = Decimal(hundredths).scaleb(-2)
        yield ComplianceRow(
            nip,
            name,
            code or NOT_ON_ROSTER,
            code_name,
            employee_type,
            jp,
            target_of(employee_type, code or NOT_ON_ROSTER),
            bool(on_roster),
            pending.get(nip, 0) if pending else 0,
        )


def _summary(code: str, rows: list[ComplianceRow]) -> UnitSummary:
    """A unit's figures from its rows (sorted by NIP: the first unit name found names the unit)."""
    return UnitSummary(
        unit_code=code,
        unit_name=next((r.unit_name for r in rows if r.unit_name), None),
        people=len(rows),
        met=sum(1 for r in rows if r.met),
        median_jp=Decimal(str(statistics.median([r.jp for r in rows]))).normalize(),
        pending=sum(r.pending for r in rows),
    )


def _probe_settings(connection: Connection) -> None:
    """Planner settings for a report of some units on PostgreSQL (this transaction only; measured, docs/scaling.md).

    - ``work_mem`` 64 MB: the members' set, its unit window and the sums of 50,000 people spill to disk at
      the default 4 MB (external merge sorts, batched hash aggregates);
    - ``random_page_cost`` 1.1 (the usual value for a cached or SSD store): at the default 4 the planner
      hashes the whole roster (a sequential scan of 800,000 persons, growing with the country) rather than
      probe the ``persons`` key once per member;
    - ``jit`` off: the cost of a national ledger's plan crosses the JIT threshold, and compiling it took
      160 ms of a query that reads a few thousand pages.
    """
    connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    connection.exec_driver_sql("SET LOCAL random_page_cost = 1.1")
    connection.exec_driver_sql("SET LOCAL jit = off")


def compliance(
    engine: Engine,
    settings: Settings,
    year: int,
    *,
    unit: str | None = None,
    unit_prefix: str | None = None,
    as_of: date | None = None,
) -> ComplianceReport:
    """Who has reached the JP target in ``year`` up to ``as_of`` (default: the year's end or today).

    One query does the work (:func:`_standings_query`); Python resolves each row once,
    groups the rows by unit and sorts each unit by NIP (the query returns them nearly in
    that order), which gives the rows sorted by unit and NIP and the per-unit summary.

    Args:
        engine: the state store.
        settings: targets (``[[targets]]`` of the rules file in force on the as-of day, else ``[report] targets``).
        year: the calendar year.
        unit: only this unit code (``not on roster`` selects people without a roster row).
        unit_prefix: only units whose code starts with this (an institution's units in a
            national ledger); with ``unit``, both must hold.
        as_of: count records of periods up to this day; units as of this day.

    A unit or a prefix is pushed down into the query: the report reads the records of the
    people who may be in those units only, whatever the ledger's size (PostgreSQL: three index
    ranges, :func:`_ranges_query`; SQLite: one probe per member, :func:`_members`).
    """
    start, end = _year_window(year, as_of)
    report = ComplianceReport(year=year, as_of=end)
    by_unit: dict[str, list[ComplianceRow]] = defaultdict(list)
    members = None
    if unit is not None and unit != NOT_ON_ROSTER:
        members = _members(end, unit, None)
    elif unit_prefix is not None and unit != NOT_ON_ROSTER:
        members = _members(end, None, unit_prefix)
    query: CompoundSelect | Select[Any]
    with engine.connect() as connection:
        if members is not None and engine.dialect.name == "postgresql":
            _probe_settings(connection)
            query = _ranges_query(start, end, unit, unit_prefix)
        else:
            query = _standings_query(engine.dialect.name, start, end, members=members)
        found = connection.execute(query).all()
        pending = _pending_counts(connection, start, end, members=members)
    for row in _standings(found, target_function(settings, end), pending):
        if (unit is None or row.unit_code == unit) and (
            unit_prefix is None or (row.on_roster and row.unit_code.startswith(unit_prefix))
        ):
            by_unit[row.unit_code].append(row)
    for code in sorted(by_unit, key=lambda c: (c == NOT_ON_ROSTER, c)):
        rows = by_unit[code]
        rows.sort(key=attrgetter("nip"))
        report.rows.extend(rows)
        report.units.append(_summary(code, rows))
    return report


def person_standing(
    engine: Engine, settings: Settings, nip: str, year: int, *, as_of: date | None = None
) -> ComplianceRow:
    """One person's row of :func:`compliance` (same query, narrowed to ``nip``).

    A NIP without a roster row is answered as "not on roster" (with its JP, 0 when it
    has none in the window), whether or not the report would list it.
    """
    start, end = _year_window(year, as_of)
    with engine.connect() as connection:
        found = connection.execute(_standings_query(engine.dialect.name, start, end, nip)).all()
        pending = _pending_counts(connection, start, end, nip)
    unknown: list[Sequence[Any]] = [(nip, None, None, False, None, None, None, None, None)]
    return next(_standings(found or unknown, target_function(settings, end), pending))


@dataclass(frozen=True)
class EvidenceLine:
    """One piece of evidence behind a record."""

    statement_id: str
    when: str
    what: str
    where: str
    #: The moment itself (UTC), for writing it in the deployment's zone; None when unknown.
    at: datetime | None = None


@dataclass(frozen=True)
class PersonRecord:
    """One JP record of a person, with its evidence."""

    statement_id: str
    period: str
    rule: str
    code: str
    jp: Decimal
    voided: bool
    evidence_count: int
    evidence: list[EvidenceLine]
    #: Held, not posted: the course's program JP is unknown (``jp`` is 0 and not counted).
    pending: bool = False
    #: The day the record counts on (``period_day``).
    day: date | None = None


def _utc(moment: datetime) -> datetime:
    """A stored moment as an aware UTC datetime (SQLite gives it back naive)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def known_units(engine: Engine) -> dict[str, str | None]:
    """Every unit code the roster and its history know, with a name (for "unknown unit" answers)."""
    units: dict[str, str | None] = {}
    with engine.connect() as connection:
        for code, name in connection.execute(select(PersonUnit.unit_code, PersonUnit.unit_name).distinct()):
            if code and not units.get(code):
                units[code] = name
        for code, name in connection.execute(
            select(Person.unit_code, Person.unit_name).where(Person.roster_updated_at.is_not(None)).distinct()
        ):
            if code and not units.get(code):
                units[code] = name
    return dict(sorted(units.items()))


def unit_history(engine: Engine, nip: str) -> list[tuple[date, str | None]]:
    """A person's units from the roster history: ``(valid_from, unit_code)``, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(PersonUnit.valid_from, PersonUnit.unit_code)
            .where(PersonUnit.nip == nip)
            .order_by(PersonUnit.valid_from)
        ).all()
    return [(row[0], row[1]) for row in rows]


def unit_on(history: Sequence[tuple[date, str | None]], day: date) -> str | None:
    """The unit of :func:`unit_history` on ``day`` (None before the first entry)."""
    unit = None
    for valid_from, code in history:
        if valid_from > day:
            break
        unit = code
    return unit


def unit_known(engine: Engine, unit: str | None = None, prefix: str | None = None) -> bool:
    """Whether the roster or its history knows this unit code (or a code under ``prefix``): two index probes.

    What the CLI asks first: :func:`known_units` reads every unit code, seconds in a national roster.
    """
    with engine.connect() as connection:
        for column in (PersonUnit.unit_code, Person.unit_code):
            match = column == unit if unit is not None else column.startswith(prefix or "", autoescape=True)
            if connection.execute(select(column).where(match).limit(1)).first() is not None:
                return True
    return False


def person_known(engine: Engine, nip: str) -> bool:
    """Whether the roster, the ledger or the held credits know this NIP at all."""
    with engine.connect() as connection:
        for column in (Person.nip, LedgerRecord.nip, JPPending.nip):
            if connection.execute(select(column).where(column == nip).limit(1)).first() is not None:
                return True
    return False


def ledger_years(engine: Engine) -> list[int]:
    """The years with JP records in the ledger or credits held as pending ("no data for this year" answers)."""
    years: set[int] = set()
    with engine.connect() as connection:
        for column in (LedgerRecord.period_day, JPPending.period_day):
            first, last = connection.execute(select(func.min(column), func.max(column))).one()
            if first is not None:
                years.update(range(first.year, last.year + 1))
    return sorted(years)


def _verb_word(verb: str) -> str:
    return verb.rstrip("/").rsplit("/", 1)[-1]


def as_of_day(year: int, as_of: date | None) -> date:
    """The last day a report of ``year`` counts: ``as_of`` (within the year), else 31 December."""
    return _year_window(year, as_of)[1]


def person_records(engine: Engine, nip: str, year: int, *, as_of: date | None = None) -> list[PersonRecord]:
    """Every JP record of a person in ``year`` up to ``as_of`` (voided ones flagged), with the evidence behind each.

    Credits held as pending (``jp_pending``: a course whose program JP is unknown) follow,
    flagged ``pending``, so HR sees what is waiting for configuration. With ``as_of`` the
    records are exactly those :func:`person_standing` counts for the same day (the Rekap JP
    lists what its totals add up); without it, the whole year.
    """
    start, end = _year_window(year, as_of)
    with Session(engine) as session:
        rows = list(
            session.scalars(
                select(LedgerRecord)
                .where(LedgerRecord.nip == nip, LedgerRecord.period_day >= start, LedgerRecord.period_day <= end)
                .order_by(LedgerRecord.period_day, LedgerRecord.rule_id, LedgerRecord.statement_id)
            )
        )
        held = list(
            session.scalars(
                select(JPPending)
                .where(JPPending.nip == nip, JPPending.period_day >= start, JPPending.period_day <= end)
                .order_by(JPPending.period_day, JPPending.rule_id, JPPending.activity_key)
            )
        )
        wanted = sorted(
            {sid for row in [*rows, *held] for sid in json.loads(row.evidence_ids or "[]")}  # type: ignore[attr-defined]
        )
        mirrored: dict[str, LedgerEvidence] = {}
        local: dict[str, Evidence] = {}
        for index in range(0, len(wanted), 500):
            chunk = wanted[index : index + 500]
            mirrored.update(
                {
                    e.statement_id: e
                    for e in session.scalars(select(LedgerEvidence).where(LedgerEvidence.statement_id.in_(chunk)))
                }
            )
            local.update(
                {e.statement_id: e for e in session.scalars(select(Evidence).where(Evidence.statement_id.in_(chunk)))}
            )

    def lines_of(evidence_ids: str) -> list[EvidenceLine]:
        lines = []
        for sid in json.loads(evidence_ids or "[]"):
            if sid in mirrored:
                item = mirrored[sid]
                what = f"{_verb_word(item.verb)} {item.object_name or item.object_id}"
                lines.append(
                    EvidenceLine(
                        sid, f"{item.timestamp:%Y-%m-%d %H:%M}Z", what, item.platform or "-", _utc(item.timestamp)
                    )
                )
            elif sid in local:
                found = local[sid]
                lines.append(
                    EvidenceLine(
                        sid,
                        f"{found.occurred_at:%Y-%m-%d %H:%M}Z",
                        f"{found.kind} {found.object_key}",
                        f"{found.source}/{found.site_id}",
                        _utc(found.occurred_at),
                    )
                )
            else:
                lines.append(EvidenceLine(sid, "-", "not in the ledger (posted by another system?)", "-"))
        return lines

    records = [
        PersonRecord(
            statement_id=row.statement_id,
            period=row.period,
            rule=row.rule_id or "-",
            code=row.rule_code or "-",
            jp=Decimal(row.jp),
            voided=row.voided,
            evidence_count=row.evidence_count,
            evidence=lines_of(row.evidence_ids),
            day=row.period_day,
        )
        for row in rows
    ]
    records.extend(
        PersonRecord(
            statement_id="-",
            period=row.period,
            rule=row.rule_id,
            code="-",
            jp=Decimal(0),
            voided=False,
            evidence_count=row.evidence_count,
            evidence=lines_of(row.evidence_ids),
            pending=True,
            day=row.period_day,
        )
        for row in held
    )
    return records


@dataclass(frozen=True)
class UnitMonths:
    """One unit's JP per month of a year."""

    unit_code: str
    unit_name: str | None
    people: int
    months: tuple[Decimal, ...]
    #: Credits held as pending of the unit's people (not in the months).
    pending: int = 0

    @property
    def total(self) -> Decimal:
        """JP of the whole year."""
        return sum(self.months, Decimal(0))


def units_by_month(engine: Engine, settings: Settings, year: int, *, as_of: date | None = None) -> list[UnitMonths]:
    """One row per unit (the unit on the as-of date) with JP per month."""
    report = compliance(engine, settings, year, as_of=as_of)
    start, end = _year_window(year, as_of)
    unit_of = {row.nip: (row.unit_code, row.unit_name) for row in report.rows}
    months: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 12)
    with Session(engine) as session:
        rows = session.execute(
            select(LedgerRecord.nip, LedgerRecord.period_day, LedgerRecord.jp).where(
                LedgerRecord.voided.is_(False), LedgerRecord.period_day >= start, LedgerRecord.period_day <= end
            )
        )
        for nip, day, jp in rows:
            months[unit_of.get(nip, (NOT_ON_ROSTER, None))[0]][day.month - 1] += Decimal(jp)
    people: dict[str, int] = defaultdict(int)
    names: dict[str, str | None] = {}
    for code, name in unit_of.values():
        people[code] += 1
        names.setdefault(code, name)
    held: dict[str, int] = defaultdict(int)
    for row in report.rows:
        held[row.unit_code] += row.pending
    return [
        UnitMonths(
            unit_code=code,
            unit_name=names.get(code),
            people=people.get(code, 0),
            months=tuple(months[code]),
            pending=held.get(code, 0),
        )
        for code in sorted(set(people) | set(months), key=lambda c: (c == NOT_ON_ROSTER, c))
    ]


#: BKN SIASN ``kursus/save`` fields, in the service's order (docs/domain.md §1b).
SIASN_COLUMNS = (
    "instansiId",
    "institusiPenyelenggara",
    "jenisDiklatId",
    "jenisKursus",
    "jenisKursusSertipikat",
    "jumlahJam",
    "lokasiId",
    "namaKursus",
    "nomorSertipikat",
    "pnsOrangId",
    "tahunKursus",
    "tanggalKursus",
    "tanggalSelesaiKursus",
)
DEFAULT_SIASN_MAPPING = MAPPINGS / "siasn.toml"
_MONTHS = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)


@dataclass(frozen=True)
class SiasnCode:
    """How the records of one table code become SIASN rows (``mappings/siasn.toml``)."""

    jenis_diklat_id: int | None = None
    sertipikat: str = "T"
    jenis_kursus: str = ""
    label: str = ""
    per_record: bool = False


@dataclass(frozen=True)
class SiasnMapping:
    """Table code -> SIASN codes, with per course category overrides and the institution's ids."""

    codes: dict[str, SiasnCode]
    categories: dict[str, dict[str, Any]]
    instansi_id: str = ""
    lokasi_id: str = ""


def load_siasn_mapping(path: Path = DEFAULT_SIASN_MAPPING, language: str | None = None) -> SiasnMapping:
    """Read and check the SIASN mapping.

    Raises:
        InputError: naming the file and the key that is wrong (in ``language``, default Indonesian).
    """
    _ = i18n.translator(language)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(
            _("SIASN mapping {path} cannot be read: {reason}").format(path=path, reason=i18n.os_reason(exc, language))
        ) from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(_("SIASN mapping {path} is not valid TOML: {error}").format(path=path, error=exc)) from exc
    if data.get("format") != 1 or set(data) - {"format", "export", "codes", "categories"}:
        raise InputError(
            _("SIASN mapping {path}: needs format = 1 and only [export], [codes.*], [categories.*]").format(path=path)
        )

    def entry(where: str, table: Any) -> dict[str, Any]:
        keys = {"jenisDiklatId", "jenisKursusSertipikat", "jenisKursus", "label", "per_record"}
        if not isinstance(table, dict) or set(table) - keys:
            raise InputError(
                _("SIASN mapping {path}: {where} may hold only {keys}").format(
                    path=path, where=where, keys=", ".join(sorted(keys))
                )
            )
        diklat = table.get("jenisDiklatId")
        if diklat is not None and (isinstance(diklat, bool) or not isinstance(diklat, int) or diklat < 1):
            raise InputError(
                _("SIASN mapping {path}: {where} `jenisDiklatId` must be a positive integer").format(
                    path=path, where=where
                )
            )
        if table.get("jenisKursusSertipikat", "T") not in ("T", "F", "P"):
            raise InputError(
                _("SIASN mapping {path}: {where} `jenisKursusSertipikat` must be T, F or P").format(
                    path=path, where=where
                )
            )
        if not isinstance(table.get("per_record", False), bool):
            raise InputError(
                _("SIASN mapping {path}: {where} `per_record` must be true or false").format(path=path, where=where)
            )
        return table

    codes = {
        str(code): SiasnCode(
            jenis_diklat_id=table.get("jenisDiklatId"),
            sertipikat=table.get("jenisKursusSertipikat", "T"),
            jenis_kursus=str(table.get("jenisKursus", "")),
            label=str(table.get("label", code)),
            per_record=table.get("per_record", False),
        )
        for code, table in ((code, entry(f"[codes.{code}]", t)) for code, t in data.get("codes", {}).items())
    }
    categories = {str(key): entry(f"[categories.{key!r}]", t) for key, t in data.get("categories", {}).items()}
    export_ids = data.get("export", {})
    return SiasnMapping(
        codes=codes,
        categories=categories,
        instansi_id=str(export_ids.get("instansiId", "")),
        lokasi_id=str(export_ids.get("lokasiId", "")),
    )


@dataclass
class SiasnRow:
    """One ``kursus/save`` payload and what it stands for.

    Attributes:
        nip: the person (never exported: ``pnsOrangId`` is SIASN's own id).
        payload: the fields in :data:`SIASN_COLUMNS` order (``None`` ``pnsOrangId`` when unknown).
        jp: the exact JP of the records behind the row (``jumlahJam`` is whole hours).
        records: the JP record statement ids behind the row.
    """

    nip: str
    payload: dict[str, Any]
    jp: Decimal
    records: list[str]

    def key(self) -> tuple[str, str, str]:
        """What identifies a row already in SIASN: (pnsOrangId, namaKursus, tanggalKursus)."""
        return (
            str(self.payload["pnsOrangId"] or ""),
            " ".join(str(self.payload["namaKursus"]).lower().split()),
            str(self.payload["tanggalKursus"]),
        )


def _evidence_names(session: Session, ids: list[str]) -> tuple[dict[str, str], dict[str, Evidence]]:
    names: dict[str, str] = {}
    local: dict[str, Evidence] = {}
    for index in range(0, len(ids), 500):
        chunk = ids[index : index + 500]
        for item in session.scalars(select(LedgerEvidence).where(LedgerEvidence.statement_id.in_(chunk))):
            if item.object_name:
                names[item.statement_id] = item.object_name
        local.update(
            {e.statement_id: e for e in session.scalars(select(Evidence).where(Evidence.statement_id.in_(chunk)))}
        )
    return names, local


def siasn_rows(
    engine: Engine,
    year: int,
    *,
    institution: str,
    mapping: SiasnMapping | None = None,
    instansi_id: str | None = None,
    lokasi_id: str | None = None,
) -> list[SiasnRow]:
    """SIASN ``kursus/save`` rows for every JP the compliance report counts in ``year``.

    The records are exactly those :func:`compliance` sums (unvoided, period in the year).
    A code with ``per_record`` gives one row per record, named after its course or event;
    any other code one row per person, code and month ("Komunitas Belajar <community>",
    "E-Learning <site>"), so no small record is dropped. ``jumlahJam`` is whole hours: a
    person's rows are cut so that they add up to the person's JP rounded down, the
    fractions carried from row to row (a row that would be 0 is left out, its JP carried on).
    ``pnsOrangId`` is the roster's ``siasn_id``, ``None`` when the roster has none.
    """
    mapping = mapping or load_siasn_mapping()
    start, end = _year_window(year, None)
    with Session(engine) as session:
        records = list(
            session.scalars(
                select(LedgerRecord)
                .where(LedgerRecord.voided.is_(False), LedgerRecord.period_day >= start, LedgerRecord.period_day <= end)
                .order_by(LedgerRecord.nip, LedgerRecord.period_day, LedgerRecord.statement_id)
            )
        )
        siasn_ids = (
            dict(
                session.execute(
                    select(Person.nip, Person.siasn_id).where(Person.nip.in_({r.nip for r in records}))
                ).all()
            )
            if records
            else {}
        )
        first_evidence = {r.statement_id: (json.loads(r.evidence_ids or "[]") or [None])[0] for r in records}
        names, local = _evidence_names(session, sorted({sid for sid in first_evidence.values() if sid}))
    groups: dict[tuple[str, str, str], list[LedgerRecord]] = defaultdict(list)
    for record in records:
        code = record.rule_code or "-"
        per_record = mapping.codes.get(code, SiasnCode()).per_record
        group = record.statement_id if per_record else f"{record.period_day:%Y-%m}"
        groups[(record.nip, code, group)].append(record)
    rows: list[SiasnRow] = []
    carried: dict[str, Decimal] = defaultdict(Decimal)
    for (nip, code, group), items in sorted(
        groups.items(), key=lambda g: (g[0][0], min(i.period_day for i in g[1]), g[0][1], g[0][2])
    ):
        jp = sum((Decimal(item.jp) for item in items), Decimal(0))
        before = carried[nip]
        carried[nip] = before + jp
        hours = int(carried[nip]) - int(before)
        first, last = min(i.period_day for i in items), max(i.period_day for i in items)
        setting = mapping.codes.get(code, SiasnCode(label=code))
        evidence_id = first_evidence.get(items[0].statement_id)
        found = local.get(evidence_id) if evidence_id else None
        overrides: dict[str, Any] = {}
        if found is not None:
            category = json.loads(found.facts or "{}").get("course_category")
            overrides = mapping.categories.get(f"{found.site_id}/{category}", {}) if category is not None else {}
        if setting.per_record:
            title = names.get(evidence_id or "") or f"{setting.label} {first:%d-%m-%Y}"
            number = items[0].statement_id
        else:
            where = ""
            if found is not None:
                where = (found.community or "").split(":", 1)[-1] if code == "C10" else found.site_id
            title = f"{setting.label} {where}".strip() + f" {_MONTHS[first.month - 1]} {first.year}"
            number = "LB-" + hashlib.sha256(f"{nip}|{code}|{group}".encode()).hexdigest()[:16]
        payload = {
            "instansiId": instansi_id if instansi_id is not None else mapping.instansi_id,
            "institusiPenyelenggara": institution,
            "jenisDiklatId": overrides.get("jenisDiklatId", setting.jenis_diklat_id),
            "jenisKursus": str(overrides.get("jenisKursus", setting.jenis_kursus)),
            "jenisKursusSertipikat": overrides.get("jenisKursusSertipikat", setting.sertipikat),
            "jumlahJam": hours,
            "lokasiId": lokasi_id if lokasi_id is not None else mapping.lokasi_id,
            "namaKursus": title,
            "nomorSertipikat": number,
            "pnsOrangId": siasn_ids.get(nip) or None,
            "tahunKursus": year,
            "tanggalKursus": f"{first:%d-%m-%Y}",
            "tanggalSelesaiKursus": f"{last:%d-%m-%Y}",
        }
        rows.append(SiasnRow(nip=nip, payload=payload, jp=jp, records=[item.statement_id for item in items]))
    return rows


#: How a spreadsheet formula can start: OWASP's list and the full-width forms some Excel versions accept
#: (the CSV writers of :mod:`lms_bridge.ledger.export` escape text that starts so).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def read_siasn_riwayat(path: Path, language: str | None = None) -> set[tuple[str, str, str]]:
    """Keys (pnsOrangId, namaKursus, tanggalKursus) of an existing SIASN riwayat kursus export (CSV or JSON).

    JSON: a list of objects, or ``{"data": [...]}`` as the riwayat service answers; CSV:
    a header with those three columns (``,`` or ``;``).

    Raises:
        InputError: the file cannot be read or lacks those fields (in ``language``, default Indonesian).
    """
    _ = i18n.translator(language)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(_("SIASN export {path} cannot be read as UTF-8 text").format(path=path)) from exc
    fields = ("pnsOrangId", "namaKursus", "tanggalKursus")
    entries: list[Any]
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                _("SIASN export {path} is not valid JSON (line {line})").format(path=path, line=exc.lineno)
            ) from exc
        entries = data.get("data", []) if isinstance(data, dict) else data
    else:
        header = text.splitlines()[0] if text.strip() else ""
        delimiter = ";" if header.count(";") > header.count(",") else ","
        entries = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
    keys = set()
    for number, item in enumerate(entries if isinstance(entries, list) else [None], start=1):
        if not isinstance(item, dict) or any(item.get(name) in (None, "") for name in fields):
            raise InputError(
                _("SIASN export {path}: entry {number} lacks one of {fields}").format(
                    path=path, number=number, fields=", ".join(fields)
                )
            )
        title = str(item["namaKursus"])
        # Our CSV wrote a title that starts like a formula with a leading ' (export.defused_text): undo it.
        if title.startswith("'") and title[1:].startswith(FORMULA_START):
            title = title[1:]
        keys.add((str(item["pnsOrangId"]), " ".join(title.lower().split()), str(item["tanggalKursus"])))
    return keys
