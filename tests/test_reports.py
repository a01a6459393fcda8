"""HR reports end to end: JP records in a real Ralph -> ledger sync -> compliance, person, units, SIASN.

The figures are hand-computed from the records posted below (targets 20 JP):

| person | unit (to 30 Jun / from 1 Jul) | records (JP, day)                               | 2026 total | met |
|--------|-------------------------------|-------------------------------------------------|-----------:|-----|
| A      | U1                            | 12 (Mar 2), 4 (Apr 10), 4 (Nov 15)              | 20         | yes |
| B      | U1 / U2                       | 10 (Feb 1), 9.5 (Aug 3)                         | 19.5       | no  |
| C      | U2                            | 13 (Mar 3), 6 (May 5, voided), 6 (May 6)        | 19         | no  |
| D      | U2                            | none                                            | 0          | no  |
| X      | not on roster                 | 8 (Jan 20)                                      | 8          | no  |
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

from openpyxl import load_workbook
from sqlalchemy import insert

from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.config.settings import Settings
from lms_bridge.config.statements import statement_settings
from lms_bridge.ledger import reports
from lms_bridge.store import open_engine
from lms_bridge.store.models import LedgerRecord, Person, PersonUnit
from xapi.lrs_client import LRSClient
from xapi.statements import JPCreditIn, build_jp_statement, build_statement, build_void_statement

A, B, C, D, X = (
    "198805172014032004",
    "199001012015031001",
    "197504122000031002",
    "198203032010012003",
    "196811111990031001",
)
AUTHORITY = "https://siasn.bkn.go.id"
SETTINGS = statement_settings(Settings())
KEY = "report-test-pseudonym-key"


def _record(
    nip: str, jp: str, day: str, key: str, evidence: tuple[str, ...] = (), rule: str = "cop", code: str = "C10"
):
    moment = datetime.fromisoformat(day + "T03:00:00+00:00")
    return build_jp_statement(
        SETTINGS,
        JPCreditIn(
            nip=nip,
            rule_id=rule,
            rule_version=1,
            rule_code=code,
            period=day,
            activity_key=key,
            revision=1,
            jp=Decimal(jp),
            evidence_ids=evidence,
            occurred_at=moment,
        ),
        authority=AUTHORITY,
    )


def _evidence():
    course = ObjectRef("course", "12", "Pelatihan Evaluasi", "https://lms.example.go.id/course/view.php?id=12")
    activity = Activity(
        source="moodle",
        site="lms",
        kind=Kind.COURSE_COMPLETED,
        native_id="course=12|user=9",
        actor="9",
        object=course,
        occurred_at=datetime(2026, 3, 2, 2, 0, tzinfo=UTC),
    )
    return build_statement(SETTINGS, activity, {"objectType": "Agent", "account": {"homePage": AUTHORITY, "name": A}})


def _seed(lrs) -> dict[str, str]:
    evidence = _evidence()
    c_voided = _record(C, "6", "2026-05-05", "day")
    statements = [
        evidence,
        _record(A, "12", "2026-03-02", "moodle/lms/course:12", (evidence.id,), "training-completed", "B4"),
        _record(A, "4", "2026-04-10", "day"),
        _record(A, "4", "2026-11-15", "day"),
        _record(B, "10", "2026-02-01", "day"),
        _record(B, "9.5", "2026-08-03", "day"),
        _record(C, "13", "2026-03-03", "moodle/lms/course:13", (), "training-completed", "B4"),
        c_voided,
        _record(C, "6", "2026-05-06", "day"),
        _record(X, "8", "2026-01-20", "day"),
        # Another year: never counted in 2026.
        _record(A, "30", "2025-06-01", "day"),
    ]
    with LRSClient(lrs.url, lrs.username, lrs.password) as client:
        client.post_statements([s.body for s in statements])
    return {"c_voided": c_voided.id, "evidence": evidence.id}


def _void(lrs, target: str, nip: str) -> None:
    void = build_void_statement(
        SETTINGS, target, nip=nip, authority=AUTHORITY, occurred_at=datetime(2026, 5, 5, 3, tzinfo=UTC)
    )
    with LRSClient(lrs.url, lrs.username, lrs.password) as client:
        client.post_statements([void.body])


def _rosters(tmp_path):
    header = "nip,nama,unit_kode,unit_nama,jabatan,jenis_asn,telepon,telegram_id,email\n"
    first = tmp_path / "roster-jan.csv"
    first.write_text(
        header + f"{A},Ani,U1,Unit Satu,WI,PNS,,,\n{B},Budi,U1,Unit Satu,WI,PNS,,,\n"
        f"{C},Citra,U2,Unit Dua,WI,PNS,,,\n{D},Dedi,U2,Unit Dua,WI,PNS,,,\n"
    )
    second = tmp_path / "roster-jul.csv"
    second.write_text(
        header + f"{A},Ani,U1,Unit Satu,WI,PNS,,,\n{B},Budi,U2,Unit Dua,WI,PNS,,,\n"
        f"{C},Citra,U2,Unit Dua,WI,PNS,,,\n{D},Dedi,U2,Unit Dua,WI,PNS,,,\n"
    )
    return first, second


def _deploy(tmp_path, make_deployment, state_url, lrs):
    deployment = make_deployment(state_url, lrs.url, lrs.password)
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = KEY
    first, second = _rosters(tmp_path)
    deployment.run("people", "import", str(first), "--effective", "2026-01-01", check=True)
    deployment.run("people", "import", str(second), "--effective", "2026-07-01", check=True)
    return deployment


def _compliance(deployment, *args: str) -> tuple[dict[str, dict], dict[str, dict]]:
    result = deployment.run("report", "compliance", "--year", "2026", "--format", "json", *args, check=True)
    data = json.loads(result.stdout)
    return {row["nip"]: row for row in data["rows"]}, {unit["unit"]: unit for unit in data["units"]}


def test_compliance_from_the_ledger_matches_the_hand_computed_figures(
    tmp_path, state_url, fresh_ralph, make_deployment
):
    ids = _seed(fresh_ralph)
    deployment = _deploy(tmp_path, make_deployment, state_url, fresh_ralph)
    synced = deployment.run("ledger", "sync", check=True)
    assert "11 statements read, 10 JP records, 0 voids, 1 evidence" in synced.stdout, synced.stdout

    # A void posted after the first sync is picked up by the next (incremental) one.
    _void(fresh_ralph, ids["c_voided"], C)
    again = deployment.run("ledger", "sync", check=True)
    assert "1 voids" in again.stdout, again.stdout

    people, units = _compliance(deployment)
    assert {nip: (row["jp"], row["met"], row["jp_needed"], row["unit"]) for nip, row in people.items()} == {
        A: (20, "yes", 0, "U1"),
        B: (19.5, "no", 0.5, "U2"),
        C: (19, "no", 1, "U2"),
        D: (0, "no", 20, "U2"),
        X: (8, "no", 12, "not on roster"),
    }
    assert people[A]["name"] == "Ani" and people[X]["name"] is None
    assert units["U1"] == {
        "unit": "U1",
        "unit_name": "Unit Satu",
        "people": 1,
        "met": 1,
        "share_met": 1.0,
        "median_jp": 20,
        "pending": 0,
    }
    assert units["U2"]["people"] == 3 and units["U2"]["met"] == 0 and units["U2"]["median_jp"] == 19

    # As of 1 June: B is still in U1, A's November record does not count yet.
    people, units = _compliance(deployment, "--as-of", "2026-06-01")
    assert people[A]["jp"] == 16 and people[B]["unit"] == "U1" and people[B]["jp"] == 10
    assert units["U1"]["people"] == 2

    only_u2, _ = _compliance(deployment, "--unit", "U2")
    assert set(only_u2) == {B, C, D}


def test_exports_person_units_and_siasn(tmp_path, state_url, fresh_ralph, make_deployment):
    ids = _seed(fresh_ralph)
    _void(fresh_ralph, ids["c_voided"], C)
    deployment = _deploy(tmp_path, make_deployment, state_url, fresh_ralph)
    deployment.run("ledger", "sync", check=True)

    text = deployment.run("report", "compliance", "--year", "2026", "--format", "csv", check=True).stdout
    assert text.startswith("\ufeff")
    # Indonesian Excel's dialect by default: `;`, decimal comma, the NIP grouped as on paper (kept as text).
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    # Sorted by unit, then NIP; the people without a roster row last.
    assert [row["NIP"].replace(" ", "") for row in rows] == [A, C, D, B, X] and rows[3]["JP"] == "19,5"
    assert rows[0]["NIP"] == "19880517 201403 2 004" and rows[4]["Unit kerja"] == "(tidak ada di daftar pegawai)"

    xlsx = tmp_path / "compliance.xlsx"
    deployment.run("report", "compliance", "--year", "2026", "--format", "xlsx", "--output", str(xlsx), check=True)
    book = load_workbook(xlsx)
    assert book.sheetnames == ["Ringkasan", "Semua", "U1", "U2", "(tidak ada di daftar pegawai)"]
    people = book["Semua"]
    # Three title rows, a blank one, then the header (frozen, bold, with filter buttons).
    assert people.freeze_panes == "A6" and people["C5"].value == "NIP" and people["C5"].font.bold
    assert [people.cell(row=r, column=3).value for r in range(6, 11)] == [A, C, D, B, X]
    assert book["U2"].max_row == 8  # header + B, C, D
    assert people.column_dimensions["C"].width >= 18

    person = json.loads(deployment.run("report", "person", A, "--year", "2026", "--format", "json", check=True).stdout)
    assert person["jp"] == 20
    course = next(row for row in person["rows"] if row["rule"] == "training-completed")
    assert course["evidence_id"] == ids["evidence"] and course["evidence"].startswith("completed Pelatihan Evaluasi")
    voided = json.loads(deployment.run("report", "person", C, "--year", "2026", "--format", "json", check=True).stdout)
    assert [row["status"] for row in voided["rows"] if row["status"]] == ["counted", "voided", "counted"]

    units = json.loads(deployment.run("report", "units", "--year", "2026", "--format", "json", check=True).stdout)
    by_unit = {row["unit"]: row for row in units["rows"]}
    assert by_unit["U2"]["2026-08"] == 9.5 and by_unit["U2"]["2026-02"] == 10 and by_unit["U2"]["total"] == 38.5
    assert by_unit["not on roster"]["2026-01"] == 8

    # The roster here has no siasn_id column: SIASN rows are never filled with the NIP, the people are
    # listed instead (tests/test_targets_siasn.py has the export itself). This replaces the old
    # expectation of NIPs in pnsOrangId, which BKN's service does not take.
    siasn = deployment.run("report", "siasn", "--year", "2026", "--institution", "BPSDM Test", check=True)
    assert siasn.stdout.lstrip("\ufeff").splitlines() == [",".join(reports.SIASN_COLUMNS)]
    assert "4 orang tidak memiliki siasn_id" in siasn.stderr and A in siasn.stderr


def test_bad_report_requests_are_one_sentence(tmp_path, state_url, ralph, make_deployment):
    deployment = make_deployment(state_url, ralph.url, ralph.password)
    result = deployment.run("report", "compliance", "--year", "2026", "--format", "xlsx")
    assert result.returncode == 1 and "--output" in result.stderr and "Traceback" not in result.stderr
    result = deployment.run("report", "person", "12345", "--year", "2026")
    assert result.returncode == 1 and "bukan NIP yang sah" in result.stderr


def test_compliance_edge_cases_and_one_persons_standing(state_url):
    """Straight into the store (no LRS): cases the end-to-end fixture above does not have.

    The query differs per engine (SQLite finds the unit with a correlated MAX, PostgreSQL with a
    window function), so every case runs on both. Hand-computed, 2026, targets PNS 20 and PPPK 10:

    | person | roster / history                           | records                         | 31 Dec unit   | JP  |
    |--------|--------------------------------------------|---------------------------------|---------------|-----|
    | A      | R1; U1 from 2025, U2 from 1 Jul 2026       | 12.25 Mar, 7.75 Aug, 5 in 2025  | U2            | 20  |
    | B      | R2, no type (PNS by its NIP), no history   | 0.01 1 Jan, 19.99 31 Dec, 4 v.  | R2            | 20  |
    | C      | a person row, not on roster; a history row | 3.5                             | not on roster | 3.5 |
    | E      | R5; history from 1 Jan with no unit code   | 20                              | R5            | 20  |
    | F      | R6, PPPK; U9 from 1 Sep                    | none                            | U9            | 0   |
    | X      | no person row                              | 8                               | not on roster | 8   |
    """
    a, b, c, e, f, x = (
        "198805172014032004",
        "199001012015031001",
        "197504122000031002",
        "198203032010012004",
        "198203032010022005",
        "196811111990031001",
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def person(nip, name, code, unit_name, kind, on_roster=True):
        return {
            "nip": nip,
            "employee_type": kind,
            "created_at": now,
            "name": name,
            "unit_code": code,
            "unit_name": unit_name,
            "position": None,
            "roster_updated_at": now if on_roster else None,
        }

    def record(index, nip, jp, day, voided=False):
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
            "object_id": "o",
            "evidence_ids": "[]",
            "evidence_count": 0,
            "timestamp": moment,
            "stored": moment,
            "voided": voided,
        }

    engine = open_engine(state_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(Person),
                [
                    person(a, "Ani", "R1", "Roster Satu", "PNS"),
                    person(b, "Budi", "R2", "Roster Dua", None),
                    person(c, "Citra", "R3", "Roster Tiga", "PNS", on_roster=False),
                    person(e, "Eka", "R5", "Roster Lima", "PNS"),
                    person(f, "Fajar", "R6", "Roster Enam", "PPPK"),
                ],
            )
            connection.execute(
                insert(PersonUnit),
                [
                    {"nip": a, "unit_code": "U1", "unit_name": "Unit Satu", "valid_from": date(2025, 1, 1)},
                    {"nip": a, "unit_code": "U2", "unit_name": "Unit Dua", "valid_from": date(2026, 7, 1)},
                    {"nip": c, "unit_code": "U1", "unit_name": "Unit Satu", "valid_from": date(2026, 1, 1)},
                    {"nip": e, "unit_code": None, "unit_name": "tanpa kode", "valid_from": date(2026, 1, 1)},
                    {"nip": f, "unit_code": "U9", "unit_name": "Unit Sembilan", "valid_from": date(2026, 9, 1)},
                ],
            )
            connection.execute(
                insert(LedgerRecord),
                [
                    record(1, a, "12.25", "2026-03-01"),
                    record(2, a, "7.75", "2026-08-01"),
                    record(3, a, "5", "2025-12-31"),
                    record(4, b, "0.01", "2026-01-01"),
                    record(5, b, "19.99", "2026-12-31"),
                    record(6, b, "4", "2026-05-05", voided=True),
                    record(7, c, "3.5", "2026-02-02"),
                    record(8, e, "20", "2026-06-30"),
                    record(9, x, "8", "2026-01-20"),
                ],
            )
        settings = Settings(report={"targets": {"PNS": 20, "PPPK": 10}})

        def figures(row):
            return (
                row.unit_code,
                row.unit_name,
                row.employee_type,
                row.jp.normalize(),
                row.target,
                row.met,
                row.on_roster,
                row.name,
            )

        report = reports.compliance(engine, settings, 2026)
        assert [figures(row) for row in report.rows] == [
            ("R2", "Roster Dua", "PNS", Decimal(20), 20, True, True, "Budi"),
            ("R5", "Roster Lima", "PNS", Decimal(20), 20, True, True, "Eka"),
            ("U2", "Unit Dua", "PNS", Decimal(20), 20, True, True, "Ani"),
            ("U9", "Unit Sembilan", "PPPK", Decimal(0), 10, False, True, "Fajar"),
            ("not on roster", None, "PNS", Decimal(8), 20, False, False, None),  # X sorts before C
            ("not on roster", None, "PNS", Decimal("3.5"), 20, False, False, "Citra"),
        ]
        assert [row.nip for row in report.rows] == [b, e, a, f, x, c]
        assert [(u.unit_code, u.people, u.met, u.median_jp) for u in report.units] == [
            ("R2", 1, 1, 20),
            ("R5", 1, 1, 20),
            ("U2", 1, 1, 20),
            ("U9", 1, 0, 0),
            ("not on roster", 2, 0, Decimal("5.75")),
        ]

        mid_year = {
            row.nip: figures(row)[:4]
            for row in reports.compliance(engine, settings, 2026, as_of=date(2026, 6, 30)).rows
        }
        assert mid_year[a] == ("U1", "Unit Satu", "PNS", Decimal("12.25"))
        assert mid_year[b] == ("R2", "Roster Dua", "PNS", Decimal("0.01"))
        assert mid_year[f] == ("R6", "Roster Enam", "PPPK", Decimal(0))

        # One person, as the web page asks: the same figures as that person's report row.
        for row in report.rows:
            assert reports.person_standing(engine, settings, row.nip, 2026) == row
        assert figures(reports.person_standing(engine, settings, a, 2026, as_of=date(2026, 6, 30)))[:4] == mid_year[a]
        unknown = reports.person_standing(engine, settings, "199912312020121001", 2026)
        assert figures(unknown) == ("not on roster", None, "PNS", Decimal(0), 20, False, False, None)
    finally:
        engine.dispose()
