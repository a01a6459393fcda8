"""Never a silent zero, end to end: a completion whose program JP is unknown is held, shown, then posted.

Hand-computed (Asia/Jakarta, March 2026), person NIP with the NIP in the LMS report:

| activity                                  | program JP (before / after config) | first compute   | after config   |
|-------------------------------------------|------------------------------------|-----------------|----------------|
| completes PT-EVAL (2 Mar)                 | 12 / 12                            | 12 JP posted    | unchanged      |
| completes LATSAR (4 Mar)                  | unknown / 40                       | held            | 40 JP posted   |
| 3 modules of LATSAR (3 Mar)               | unknown / 40 (a program course)    | held (one day)  | left to LATSAR |

Configuring LATSAR later posts its record and voids nothing.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.store.models import JPPending, JPRecord
from tests.fixtures.activities import write_activity_file

NIP = "198805172014032004"
UNKNOWN = """\
format = 1
[default]
[sites.lms]
shortnames = { "PT-EVAL" = "12" }
"""
KNOWN = UNKNOWN.replace('"PT-EVAL" = "12"', '"PT-EVAL" = "12", "LATSAR" = "40"')


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC) - timedelta(hours=7)


def _activities() -> list[Activity]:
    def course(number: str, shortname: str, title: str) -> tuple[ObjectRef, dict[str, object]]:
        url = f"https://lms.example.go.id/course/view.php?id={number}"
        return ObjectRef("course", number, title, url), {"nip": NIP, "course_shortname": shortname}

    eval_ref, eval_facts = course("12", "PT-EVAL", "Pelatihan Evaluasi")
    latsar_ref, latsar_facts = course("40", "LATSAR", "Latsar CPNS")
    found = [
        Activity("moodle", "lms", Kind.COURSE_COMPLETED, "c12", "101", eval_ref, _at(2, 10), extras=eval_facts),
        Activity("moodle", "lms", Kind.COURSE_COMPLETED, "c40", "101", latsar_ref, _at(4, 10), extras=latsar_facts),
    ]
    for number in range(3):
        module = ObjectRef("module", f"9{number}", f"Modul {number}", f"https://lms.example.go.id/mod/page/{number}")
        found.append(
            Activity(
                "moodle",
                "lms",
                Kind.MODULE_COMPLETED,
                f"m{number}",
                "101",
                module,
                _at(3, 9 + number),
                parent=latsar_ref,
                extras=latsar_facts,
            )
        )
    return found


def test_unknown_program_jp_is_held_then_posted_without_voids(tmp_path: Path, state_url, make_deployment):
    program = tmp_path / "program.toml"
    program.write_text(UNKNOWN, encoding="utf-8")
    deployment = make_deployment(
        state_url, "http://127.0.0.1:9", "unused", extra_toml='[jp]\nprogram_jp_file = "program.toml"\n'
    )
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = "test-pseudonym-key-0123456789"
    roster = tmp_path / "roster.csv"
    roster.write_text(f"nip,nama,unit_kode,jenis_asn\n{NIP},Budi,U1,PNS\n", encoding="utf-8")
    deployment.run("people", "import", str(roster), check=True)
    deployment.run("import", str(write_activity_file(tmp_path / "a.jsonl", _activities())), check=True)

    first = deployment.run("jp", "compute", "--year", "2026", check=True).stdout
    assert "queued 1 new records (12 JP" in first, first
    assert "held as pending: 2 credits of 1 course(s)" in first, first

    checked = deployment.run("rules", "check", check=True).stdout
    assert "LATSAR" in checked and "Held as pending" in checked, checked
    assert "Rule timeline" in checked and "2018-01-01" in checked and "first rule in force" in checked
    doctor = deployment.run("doctor")  # the LRS is unreachable here too; the held course must be named anyway
    assert doctor.returncode != 0
    held_line = next(line for line in doctor.stdout.splitlines() if "held JP" in line)
    assert held_line.startswith("FAIL") and "LATSAR" in held_line and "program_jp.toml" in held_line, held_line

    plain = ("--format", "csv", "--csv-dialect", "plain")
    compliance = deployment.run("report", "compliance", "--year", "2026", *plain, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(compliance)))
    # The ledger is empty: the held credits alone are the year's data (Ditunda: pending).
    assert [(row["NIP"], row["JP"], row["Ditunda"]) for row in rows] == [(NIP, "0", "2")]
    person = deployment.run("report", "person", NIP, "--year", "2026", *plain, check=True).stdout
    statuses = [row["Keadaan"] for row in csv.DictReader(io.StringIO(person))]
    assert statuses == ["ditunda", "ditunda"]
    explained = deployment.run("rules", "explain", NIP, "--year", "2026", check=True).stdout
    assert "2 held as pending" in explained and "12 JP posted for 2026" in explained

    program.write_text(KNOWN, encoding="utf-8")
    second = deployment.run("jp", "compute", "--year", "2026", check=True).stdout
    assert "queued 1 new records (40 JP" in second and "0 voided" in second and "1 unchanged" in second, second
    assert "held as pending" not in second
    engine = store.make_engine(state_url)
    with Session(engine) as session:
        records = session.execute(select(JPRecord.period, JPRecord.jp, JPRecord.status)).all()
        assert sorted(records) == [("2026-03-02", "12.00", "active"), ("2026-03-04", "40.00", "active")]
        assert session.scalars(select(JPPending)).all() == []
    engine.dispose()
    assert "held as pending: none" in deployment.run("rules", "check", check=True).stdout
    assert "ok   held JP: no completion is held" in deployment.run("doctor").stdout


def test_report_duplicates_and_explain_show_the_event_credited_once(tmp_path: Path, state_url, make_deployment):
    (tmp_path / "program.toml").write_text(KNOWN, encoding="utf-8")
    deployment = make_deployment(
        state_url, "http://127.0.0.1:9", "unused", extra_toml='[jp]\nprogram_jp_file = "program.toml"\n'
    )
    # Activity files pseudonymise their actors like every other import (issue 20), so the key must be set.
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = "held-test-key-0123456789"
    link = {"nip": NIP, "event_link": "https://zoom.us/j/81200000001"}
    meeting = ObjectRef("meeting", "812", "Webinar Kurikulum")
    activities = [
        Activity(
            "zoom",
            "zoom",
            Kind.MEETING_ATTENDED,
            "z1",
            "101",
            meeting,
            _at(5, 9),
            duration=timedelta(minutes=90),
            extras=link,
        ),
        Activity(
            "moodle",
            "lms",
            Kind.MEETING_ATTENDED,
            "b1",
            "101",
            ObjectRef("bigbluebuttonbn", "5", "Webinar"),
            _at(5, 9) + timedelta(minutes=10),
            duration=timedelta(minutes=80),
            extras=link,
        ),
    ]
    deployment.run("import", str(write_activity_file(tmp_path / "m.jsonl", activities)), check=True)
    computed = deployment.run("jp", "compute", "--year", "2026", check=True).stdout
    assert "queued 1 new records (2 JP" in computed, computed  # 90 / 45, once
    audit = deployment.run("report", "duplicates", "--year", "2026", "--format", "csv", check=True).stdout
    rows = list(csv.DictReader(io.StringIO(audit.lstrip("\ufeff")), delimiter=";"))
    assert [(r["NIP"].replace(" ", ""), r["Dihitung"], r["Tidak dihitung"], r["Alasan"]) for r in rows] == [
        (
            NIP,
            "zoom/zoom/meeting:812",
            "moodle/lms/bigbluebuttonbn:5",
            "tautan rapat daring sama dalam rentang 60 menit",
        )
    ]
    # JSON keeps the engine's reason code next to the words; English reports say it in English.
    coded = json.loads(deployment.run("report", "duplicates", "--year", "2026", "--format", "json", check=True).stdout)
    assert [(r["reason_code"], r["reason"]) for r in coded["rows"]] == [
        ("shared_fact", "tautan rapat daring sama dalam rentang 60 menit")
    ]
    english = deployment.run(
        "report",
        "duplicates",
        "--year",
        "2026",
        "--format",
        "csv",
        env={"LMS_BRIDGE_REPORT__LANGUAGE": "en"},
        check=True,
    ).stdout
    assert "same meeting link within 60 minutes" in english
    explained = deployment.run("rules", "explain", NIP, "--year", "2026", check=True).stdout
    assert "credited once: " in explained and "moodle/lms/bigbluebuttonbn:5" in explained
