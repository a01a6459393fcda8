"""HR reports from the ledger: who met the yearly JP target, per unit and per person, with evidence.

Everything here reads the state store (the ledger mirrored from the LRS and the
HR roster), never the LRS itself. Names and units come from the roster; a person
with JP records but no roster row is listed by NIP as "not on roster". The unit
that counts is the one the roster gave the person on the as-of date.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, Numeric, cast, func, select
from sqlalchemy.orm import Session

from lms_bridge.config import Settings
from lms_bridge.nip import parse_nip
from lms_bridge.store.models import Evidence, LedgerEvidence, LedgerRecord, Person, PersonUnit

NOT_ON_ROSTER = "not on roster"
HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True)
class ComplianceRow:
    """One person's standing."""

    nip: str
    name: str | None
    unit_code: str
    unit_name: str | None
    employee_type: str
    jp: Decimal
    target: int
    on_roster: bool

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


def _units_at(session: Session, as_of: date) -> dict[str, tuple[str | None, str | None]]:
    """Each person's unit on ``as_of`` (the latest roster change not after it)."""
    units: dict[str, tuple[date, str | None, str | None]] = {}
    rows = session.execute(select(PersonUnit.nip, PersonUnit.valid_from, PersonUnit.unit_code, PersonUnit.unit_name)
                           .where(PersonUnit.valid_from <= as_of))
    for nip, valid_from, code, name in rows:
        if nip not in units or valid_from > units[nip][0]:
            units[nip] = (valid_from, code, name)
    return {nip: (code, name) for nip, (_, code, name) in units.items()}


def _jp_by_person(session: Session, start: date, end: date) -> dict[str, Decimal]:
    """Unvoided JP per person in the window, summed by the database.

    JP are stored as decimal text with at most two decimals; PostgreSQL sums them as
    NUMERIC (exact), SQLite as REAL, whose error stays far below 0.005 for any
    realistic count of records, so rounding to hundredths gives the exact sum.
    """
    total = func.sum(cast(LedgerRecord.jp, Numeric(12, 2)))
    rows = session.execute(select(LedgerRecord.nip, total).where(
        LedgerRecord.voided.is_(False), LedgerRecord.period_day >= start, LedgerRecord.period_day <= end)
        .group_by(LedgerRecord.nip))
    return {nip: Decimal(str(value)).quantize(HUNDREDTH) for nip, value in rows if value is not None}


def compliance(engine: Engine, settings: Settings, year: int, *, unit: str | None = None,
               as_of: date | None = None) -> ComplianceReport:
    """Who has reached the JP target in ``year`` up to ``as_of`` (default: the year's end or today).

    Args:
        engine: the state store.
        settings: targets per employee type.
        year: the calendar year.
        unit: only this unit code (``not on roster`` selects people without a roster row).
        as_of: count records of periods up to this day; units as of this day.
    """
    start, end = _year_window(year, as_of)
    report = ComplianceReport(year=year, as_of=end)
    targets = settings.report.targets
    with Session(engine) as session:
        totals = _jp_by_person(session, start, end)
        units = _units_at(session, end)
        persons = {row.nip: row for row in session.execute(
            select(Person.nip, Person.name, Person.unit_code, Person.unit_name, Person.employee_type,
                   Person.roster_updated_at))}
    nips = {nip for nip, p in persons.items() if p.roster_updated_at is not None} | set(totals)
    for nip in sorted(nips):
        person = persons.get(nip)
        on_roster = person is not None and person.roster_updated_at is not None
        code, name = units.get(nip, (None, None))
        if on_roster and code is None and person is not None:
            code, name = person.unit_code, person.unit_name
        employee_type = (person.employee_type if person and person.employee_type else None) or (
            parsed.employee_type.value if (parsed := parse_nip(nip)) else "PNS")
        row = ComplianceRow(nip=nip, name=person.name if person else None,
                            unit_code=(code or NOT_ON_ROSTER) if on_roster else NOT_ON_ROSTER,
                            unit_name=name if on_roster else None, employee_type=employee_type,
                            jp=totals.get(nip, Decimal(0)), target=targets.get(employee_type, 20),
                            on_roster=on_roster)
        if unit is None or row.unit_code == unit:
            report.rows.append(row)
    report.rows.sort(key=lambda r: (r.unit_code == NOT_ON_ROSTER, r.unit_code, r.nip))
    by_unit: dict[str, list[ComplianceRow]] = defaultdict(list)
    for row in report.rows:
        by_unit[row.unit_code].append(row)
    for code, rows in by_unit.items():
        report.units.append(UnitSummary(
            unit_code=code, unit_name=next((r.unit_name for r in rows if r.unit_name), None), people=len(rows),
            met=sum(1 for r in rows if r.met),
            median_jp=Decimal(str(statistics.median([r.jp for r in rows]))).normalize(),
        ))
    return report


@dataclass(frozen=True)
class EvidenceLine:
    """One piece of evidence behind a record."""

    statement_id: str
    when: str
    what: str
    where: str


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


def _verb_word(verb: str) -> str:
    return verb.rstrip("/").rsplit("/", 1)[-1]


def person_records(engine: Engine, nip: str, year: int) -> list[PersonRecord]:
    """Every JP record of a person in ``year`` (voided ones flagged), with the evidence behind each."""
    start, end = _year_window(year, None)
    with Session(engine) as session:
        rows = list(session.scalars(select(LedgerRecord).where(
            LedgerRecord.nip == nip, LedgerRecord.period_day >= start, LedgerRecord.period_day <= end)
            .order_by(LedgerRecord.period_day, LedgerRecord.rule_id, LedgerRecord.statement_id)))
        wanted = sorted({sid for row in rows for sid in json.loads(row.evidence_ids or "[]")})
        mirrored: dict[str, LedgerEvidence] = {}
        local: dict[str, Evidence] = {}
        for index in range(0, len(wanted), 500):
            chunk = wanted[index : index + 500]
            mirrored.update({e.statement_id: e for e in session.scalars(
                select(LedgerEvidence).where(LedgerEvidence.statement_id.in_(chunk)))})
            local.update({e.statement_id: e for e in session.scalars(
                select(Evidence).where(Evidence.statement_id.in_(chunk)))})
    records = []
    for row in rows:
        lines = []
        for sid in json.loads(row.evidence_ids or "[]"):
            if sid in mirrored:
                item = mirrored[sid]
                what = f"{_verb_word(item.verb)} {item.object_name or item.object_id}"
                lines.append(EvidenceLine(sid, f"{item.timestamp:%Y-%m-%d %H:%M}Z", what, item.platform or "-"))
            elif sid in local:
                found = local[sid]
                lines.append(EvidenceLine(sid, f"{found.occurred_at:%Y-%m-%d %H:%M}Z",
                                          f"{found.kind} {found.object_key}", f"{found.source}/{found.site_id}"))
            else:
                lines.append(EvidenceLine(sid, "-", "not in the ledger (posted by another system?)", "-"))
        records.append(PersonRecord(
            statement_id=row.statement_id, period=row.period, rule=row.rule_id or "-", code=row.rule_code or "-",
            jp=Decimal(row.jp), voided=row.voided, evidence_count=row.evidence_count, evidence=lines))
    return records


@dataclass(frozen=True)
class UnitMonths:
    """One unit's JP per month of a year."""

    unit_code: str
    unit_name: str | None
    people: int
    months: tuple[Decimal, ...]

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
        rows = session.execute(select(LedgerRecord.nip, LedgerRecord.period_day, LedgerRecord.jp).where(
            LedgerRecord.voided.is_(False), LedgerRecord.period_day >= start, LedgerRecord.period_day <= end))
        for nip, day, jp in rows:
            months[unit_of.get(nip, (NOT_ON_ROSTER, None))[0]][day.month - 1] += Decimal(jp)
    people: dict[str, int] = defaultdict(int)
    names: dict[str, str | None] = {}
    for code, name in unit_of.values():
        people[code] += 1
        names.setdefault(code, name)
    return [UnitMonths(unit_code=code, unit_name=names.get(code), people=people.get(code, 0),
                       months=tuple(months[code]))
            for code in sorted(set(people) | set(months), key=lambda c: (c == NOT_ON_ROSTER, c))]


#: BKN SIASN "riwayat kursus" columns (docs/DOMAIN.md §1b).
SIASN_COLUMNS = ("pnsOrangId", "instansiId", "institusiPenyelenggara", "jenisDiklatId", "jenisKursus",
                 "jenisKursusSertipikat", "jumlahJam", "lokasiId", "namaKursus", "nomorSertipikat", "tahunKursus",
                 "tanggalKursus", "tanggalSelesaiKursus")


def siasn_rows(engine: Engine, year: int, *, institution: str) -> list[dict[str, str]]:
    """SIASN "riwayat kursus" rows: one per training record (B codes), one per person and rule otherwise.

    ``pnsOrangId`` holds the NIP (SIASN's internal person id is not known here);
    the reference ids (``instansiId``, ``jenisDiklatId``, ``lokasiId``) are left blank for
    the operator to fill from BKN's reference lists. ``jumlahJam`` is whole JP, rounded down.
    """
    start, end = _year_window(year, None)
    with Session(engine) as session:
        rows = list(session.scalars(select(LedgerRecord).where(
            LedgerRecord.voided.is_(False), LedgerRecord.period_day >= start, LedgerRecord.period_day <= end)
            .order_by(LedgerRecord.nip, LedgerRecord.period_day, LedgerRecord.statement_id)))
    grouped: dict[tuple[str, str], list[LedgerRecord]] = defaultdict(list)
    for row in rows:
        code = row.rule_code or "-"
        key = (row.nip, f"{code}|{row.statement_id}" if code.startswith("B") else code)
        grouped[key].append(row)
    out = []
    for (nip, key), items in grouped.items():
        jp = sum((Decimal(item.jp) for item in items), Decimal(0))
        if jp < 1:
            continue
        first, last = min(i.period_day for i in items), max(i.period_day for i in items)
        code = items[0].rule_code or "-"
        out.append({
            "pnsOrangId": nip, "instansiId": "", "institusiPenyelenggara": institution, "jenisDiklatId": "",
            "jenisKursus": code, "jenisKursusSertipikat": "", "jumlahJam": str(int(jp)), "lokasiId": "",
            "namaKursus": f"{items[0].rule_id or code} {items[0].period}" if code.startswith("B") else
            f"{items[0].rule_id or code} {year}",
            "nomorSertipikat": key.split("|")[-1] if code.startswith("B") else "", "tahunKursus": str(year),
            "tanggalKursus": f"{first:%d-%m-%Y}", "tanggalSelesaiKursus": f"{last:%d-%m-%Y}",
        })
    return out
