"""Migration 0011 (the national ledger): every row kept, the same reports, units pushed into the query.

On PostgreSQL ``ledger_records`` becomes partitioned by year; SQLite keeps its plain table. On both, a
ledger filled at 0007 is migrated and must keep every row, give the same compliance reports as before,
and a report of one unit (or of a unit prefix: an institution's units), now answered from those people's
records only, must equal the whole report filtered as the code did before (in Python). The timings
are a benchmark (``bench/national_ledger.py``), not a test.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime

from alembic import command
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.settings import Settings
from lms_bridge.ledger import reports
from lms_bridge.ledger.mirror import _write_page
from lms_bridge.store.db import _alembic_config
from lms_bridge.store.models import LedgerRecord, Person, PersonUnit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Roster: A moves U1 -> U2 on 1 Jul 2025; B has no history (roster unit I1-U3); C is off the roster;
# E's history row has no code (roster unit I2-U1 counts); F moves from another institution into I1-U1.
A, B, C, E, F, X = (
    "198805172014032004",
    "199001012015031001",
    "197504122000031002",
    "198203032010012004",
    "198203032010022005",
    "196811111990031001",
)


def _person(nip: str, code: str, kind: str | None = "PNS", on_roster: bool = True) -> dict:
    return {
        "nip": nip,
        "employee_type": kind,
        "created_at": NOW,
        "name": f"P{nip[-3:]}",
        "unit_code": code,
        "unit_name": f"Unit {code}",
        "position": None,
        "roster_updated_at": NOW if on_roster else None,
    }


def _record(index: int, nip: str, jp: str, day: str, voided: bool = False) -> dict:
    moment = datetime.fromisoformat(day + "T03:00:00+00:00")
    return {
        "statement_id": f"00000000-0000-4000-8000-{index:012d}",
        "nip": nip,
        "jp": jp,
        "rule_id": "cop",
        "rule_version": 1,
        "rule_code": "C10",
        "period": day,
        "period_day": moment.date(),
        "object_id": f"o{index}",
        "evidence_ids": "[]",
        "evidence_count": 0,
        "timestamp": moment,
        "stored": moment,
        "voided": voided,
    }


RECORDS = [
    _record(1, A, "12.25", "2025-03-01"),
    _record(2, A, "7.75", "2025-08-01"),
    _record(3, A, "5", "2024-12-31"),
    _record(4, B, "0.01", "2025-01-01"),
    _record(5, B, "19.99", "2025-12-31"),
    _record(6, B, "4", "2025-05-05", voided=True),
    _record(7, C, "3.5", "2025-02-02"),
    _record(8, E, "20", "2025-06-30"),
    _record(9, X, "8", "2025-01-20"),
    _record(10, F, "2.5", "2025-04-04"),
    _record(11, A, "1", "2012-06-01"),  # before the default range of partitions: the migration makes one
    _record(12, F, "3", "2026-01-02"),
]


def _fill(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as connection:
        connection.execute(
            insert(Person),
            [
                _person(A, "I1-U2"),
                _person(B, "I1-U3", kind=None),
                _person(C, "I1-U1", on_roster=False),
                _person(E, "I2-U1"),
                _person(F, "I1-U1", kind="PPPK"),
            ],
        )
        connection.execute(
            insert(PersonUnit),
            [
                {"nip": A, "unit_code": "I1-U1", "unit_name": "Unit I1-U1", "valid_from": date(2020, 1, 1)},
                {"nip": A, "unit_code": "I1-U2", "unit_name": "Unit I1-U2", "valid_from": date(2025, 7, 1)},
                {"nip": C, "unit_code": "I1-U1", "unit_name": "Unit I1-U1", "valid_from": date(2024, 1, 1)},
                {"nip": E, "unit_code": None, "unit_name": "tanpa kode", "valid_from": date(2024, 1, 1)},
                {"nip": F, "unit_code": "I2-U1", "unit_name": "Unit I2-U1", "valid_from": date(2020, 1, 1)},
                {"nip": F, "unit_code": "I1-U1", "unit_name": "Unit I1-U1", "valid_from": date(2025, 3, 1)},
            ],
        )
        connection.execute(insert(LedgerRecord), RECORDS)


#: The record's columns at 0007-0012 (0013 adds the unit tag, checked in its own test below).
_COLUMNS = [column for column in LedgerRecord.__table__.c if column.name != "unit_code"]


def _rows(engine) -> list[tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(*_COLUMNS).order_by(LedgerRecord.statement_id))]


def _reports(engine, settings) -> dict:  # type: ignore[no-untyped-def]
    found = {}
    for year in (2012, 2024, 2025):
        for as_of in (None, date(year, 6, 30)):
            found[(year, as_of)] = reports.compliance(engine, settings, year, as_of=as_of)
    return found


def _filtered(report: reports.ComplianceReport, keep) -> reports.ComplianceReport:  # type: ignore[no-untyped-def]
    """What the code did before the push-down: the whole report, rows filtered in Python."""
    return replace(
        report,
        rows=[row for row in report.rows if keep(row.unit_code)],
        units=[unit for unit in report.units if keep(unit.unit_code)],
    )


def test_partitioned_ledger_keeps_every_row_and_gives_the_same_reports(state_url):
    engine = store.make_engine(state_url)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
    _fill(engine)
    settings = Settings(report={"targets": {"PNS": 20, "PPPK": 10}})
    rows_before, reports_before = _rows(engine), _reports(engine, settings)
    assert len(rows_before) == len(RECORDS)

    store.upgrade(engine)
    assert store.current_revision(engine) == store.head_revision()
    assert _rows(engine) == rows_before
    assert _reports(engine, settings) == reports_before
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            assert connection.execute(
                text("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'ledger_records'::regclass")
            ).scalar_one()
            per_partition = dict(
                connection.execute(
                    text("SELECT tableoid::regclass::text, count(*) FROM ledger_records GROUP BY 1")
                ).all()
            )
        assert per_partition == {
            "ledger_records_y2012": 1,
            "ledger_records_y2024": 1,
            "ledger_records_y2025": 9,
            "ledger_records_y2026": 1,
        }

    # One unit, or the units under a prefix, is answered from those people only: same rows as before.
    for (year, as_of), whole in reports_before.items():
        for unit in ("I1-U1", "I1-U2", "I1-U3", "I2-U1", reports.NOT_ON_ROSTER):
            got = reports.compliance(engine, settings, year, unit=unit, as_of=as_of)
            assert got == _filtered(whole, lambda code, unit=unit: code == unit), (year, as_of, unit)
        for prefix in ("I1-", "I2-", "I", "I1-U1", "Z"):
            got = reports.compliance(engine, settings, year, unit_prefix=prefix, as_of=as_of)
            assert got == _filtered(whole, lambda code, prefix=prefix: code.startswith(prefix)), (year, prefix)
    # Hand-checked: on 31 Dec 2025, I1-U1 holds F only (A left for I1-U2, C is off the roster); on 1 Feb, A
    # only (F came from I2 on 1 Mar), with A's JP up to that day.
    assert [(row.nip, row.jp) for row in reports.compliance(engine, settings, 2025, unit="I1-U1").rows] == [(F, 2.5)]
    early = reports.compliance(engine, settings, 2025, unit="I1-U1", as_of=date(2025, 2, 1))
    assert [(row.nip, row.jp) for row in early.rows] == [(A, 0)]

    # ledger sync's writer upserts into the partitioned table: a re-read record is updated, not doubled; a
    # void reaches it; a year beyond the partitions made lands in the default partition.
    again = dict(RECORDS[0], jp="13")
    later = _record(13, B, "2", "2051-01-01")
    with Session(engine) as session, session.begin():
        _write_page(session, [again, later], [{"statement_id": RECORDS[7]["statement_id"], "voided_by": "v"}], [], None)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(LedgerRecord)).scalar_one() == len(RECORDS) + 1
        assert (
            connection.execute(
                select(LedgerRecord.jp).where(LedgerRecord.statement_id == RECORDS[0]["statement_id"])
            ).scalar_one()
            == "13"
        )
        assert connection.execute(
            select(LedgerRecord.voided).where(LedgerRecord.statement_id == RECORDS[7]["statement_id"])
        ).scalar_one()

    # And back: the downgrade keeps every row as well.
    rows_now = _rows(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    assert _rows(engine) == rows_now
    engine.dispose()


def test_report_compliance_unit_prefix_on_the_command_line(state_url, make_deployment):
    """``report compliance --unit-prefix``: one institution's units; an unknown prefix is one sentence."""
    deployment = make_deployment(state_url, "http://127.0.0.1:9/", "unused")  # reports never ask the LRS
    engine = store.open_engine(state_url)
    _fill(engine)
    engine.dispose()
    result = deployment.run(
        "report", "compliance", "--year", "2025", "--unit-prefix", "I1-", "--format", "json", check=True
    )
    rows = json.loads(result.stdout)["rows"]
    assert {(row["nip"], row["unit"]) for row in rows} == {(A, "I1-U2"), (B, "I1-U3"), (F, "I1-U1")}
    result = deployment.run("report", "compliance", "--year", "2025", "--unit-prefix", "Z")
    assert result.returncode == 2 and "Traceback" not in result.stderr  # 2: an empty answer, as for --unit
    assert "tidak ada kode unit yang diawali 'Z'" in result.stderr


def _tags(engine) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return dict(connection.execute(select(LedgerRecord.statement_id, LedgerRecord.unit_code)).all())


def _ends(engine) -> dict[tuple[str, date], date | None]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        rows = connection.execute(select(PersonUnit.nip, PersonUnit.valid_from, PersonUnit.valid_to)).all()
    return {(nip, start): end for nip, start, end in rows}


def _roster_units(engine) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return dict(connection.execute(select(Person.nip, Person.unit_code)).all())


def _all_filtered_reports_agree(engine, settings) -> None:  # type: ignore[no-untyped-def]
    """Every unit's and prefix's report equals the whole report filtered, for years and as-of dates."""
    for (year, as_of), whole in _reports(engine, settings).items():
        for unit in ("I1-U1", "I1-U2", "I1-U3", "I2-U1", "I3-U1", reports.NOT_ON_ROSTER):
            got = reports.compliance(engine, settings, year, unit=unit, as_of=as_of)
            assert got == _filtered(whole, lambda code, unit=unit: code == unit), (year, as_of, unit)
        for prefix in ("I1-", "I2-", "I3-", "I", "Z"):
            got = reports.compliance(engine, settings, year, unit_prefix=prefix, as_of=as_of)
            assert got == _filtered(whole, lambda code, prefix=prefix: code.startswith(prefix)), (year, prefix)


def test_unit_tags_and_history_ends_follow_every_writer(state_url):
    """Migration 0013's triggers: a record carries its person's roster unit, a history row the next row's day.

    The institution report on PostgreSQL trusts both columns (one index range each instead of a probe per
    person), so every way the roster, the history or the ledger changes must keep them right: roster
    imports that move people, a person row that arrives after its records, history rows added between two
    others or deleted, a person forgotten; and the reports must stay the whole report filtered.
    """
    from lms_bridge.store.people import RosterPerson, store_roster

    engine = store.open_engine(state_url)
    _fill(engine)
    settings = Settings(report={"targets": {"PNS": 20, "PPPK": 10}})

    def tags_match_the_roster() -> None:
        roster = _roster_units(engine)
        assert _tags(engine) == {r["statement_id"]: roster.get(r["nip"]) for r in _all_records(engine)}

    tags_match_the_roster()
    assert _tags(engine)[RECORDS[8]["statement_id"]] is None  # X has no person row
    assert _ends(engine) == {
        (A, date(2020, 1, 1)): date(2025, 7, 1),
        (A, date(2025, 7, 1)): None,
        (C, date(2024, 1, 1)): None,
        (E, date(2024, 1, 1)): None,
        (F, date(2020, 1, 1)): date(2025, 3, 1),
        (F, date(2025, 3, 1)): None,
    }
    _all_filtered_reports_agree(engine, settings)

    # The roster import: X arrives in I3-U1 (its record is tagged), B moves from I1-U3 to I2-U1 on
    # 1 Sep 2025 (its records follow, its history gets a row), A moves from I1-U2 to I3-U1 the same day
    # (a third history row closes the second).
    def person(nip: str, code: str) -> RosterPerson:
        return RosterPerson(nip=nip, employee_type="PNS", name=f"P{nip[-3:]}", unit_code=code, unit_name=code,
                            position=None)  # fmt: skip

    store_roster(engine, [person(X, "I3-U1"), person(B, "I2-U1"), person(A, "I3-U1")], effective=date(2025, 9, 1))
    tags_match_the_roster()
    assert _tags(engine)[RECORDS[8]["statement_id"]] == "I3-U1"
    assert {r["statement_id"] for r in RECORDS if r["nip"] == B} <= {
        k for k, v in _tags(engine).items() if v == "I2-U1"
    }
    ends = _ends(engine)
    assert ends[(A, date(2025, 7, 1))] == date(2025, 9, 1) and ends[(A, date(2025, 9, 1))] is None
    _all_filtered_reports_agree(engine, settings)

    # A history row inserted between two others, one deleted, one moved to another day: the chain is re-cut.
    with engine.begin() as connection:
        connection.execute(
            insert(PersonUnit), [{"nip": F, "unit_code": "I3-U1", "unit_name": "x", "valid_from": date(2024, 6, 1)}]
        )
    assert _ends(engine)[(F, date(2020, 1, 1))] == date(2024, 6, 1)
    assert _ends(engine)[(F, date(2024, 6, 1))] == date(2025, 3, 1)
    _all_filtered_reports_agree(engine, settings)
    with engine.begin() as connection:
        connection.execute(
            PersonUnit.__table__.delete().where(PersonUnit.nip == F, PersonUnit.valid_from == date(2025, 3, 1))
        )
        connection.execute(
            PersonUnit.__table__.update()
            .where(PersonUnit.nip == A, PersonUnit.valid_from == date(2025, 7, 1))
            .values(valid_from=date(2025, 1, 1))
        )
    ends = _ends(engine)
    assert ends[(F, date(2024, 6, 1))] is None
    assert ends[(A, date(2020, 1, 1))] == date(2025, 1, 1) and ends[(A, date(2025, 1, 1))] == date(2025, 9, 1)
    _all_filtered_reports_agree(engine, settings)

    # A record written by ledger sync takes its person's unit; a person row deleted leaves its records untagged;
    # a unit changed by hand (not by the import) re-tags too.
    with Session(engine) as session, session.begin():
        _write_page(session, [_record(20, E, "4", "2025-10-10")], [], [], None)
    with engine.begin() as connection:
        connection.execute(Person.__table__.delete().where(Person.nip == C))
        connection.execute(Person.__table__.update().where(Person.nip == E).values(unit_code="I1-U1"))
    tags_match_the_roster()
    assert _tags(engine)["00000000-0000-4000-8000-000000000020"] == "I1-U1"
    assert _tags(engine)[RECORDS[6]["statement_id"]] is None  # C's
    _all_filtered_reports_agree(engine, settings)
    engine.dispose()


def _all_records(engine) -> list[dict]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(LedgerRecord.statement_id, LedgerRecord.nip))]
