"""Targets by institution and date, and the SIASN export, against hand-computed figures (no LRS: the
ledger rows are written straight into the store, as ``ledger sync`` would).

| who | type / unit     | siasn_id | unvoided records 2026 (code, JP, day)                             | total |
|-----|-----------------|----------|-------------------------------------------------------------------|-------|
| A   | PNS, DIKDAS-01  | A-1      | B4 12 (2 Mar), C10 1 (3 Mar) + 2 (4 Mar), C3 0.5 (5 Mar) + 1.5    | 20    |
|     |                 |          | (20 Mar), B6 2.22 (10 Apr), C3 0.78 (1 Jun); C10 5 (1 May) voided |       |
| P   | PPPK, DIKDAS-02 | P-2      | C9 0.6 (1 Aug) + 0.6 (2 Aug), B4 9.8 (1 Sep)                      | 11    |
| B   | PNS, OTHER-01   | (none)   | C10 3 (1 Feb)                                                     | 3     |

Targets: 20 JP ([report] default) until 30 Jun 2026; from 1 Jul 2026 the DIKDAS units take
30 JP for PNS and 24 for PPPK (Permendikdasmen 6/2025 style), other units stay at 20.
SIASN rows of A (whole hours, fractions carried): 12, 3 (C10 March), 2 (C3 March), 2 (19.22), 1 (20.00).
P: 1 (C9 August, 1.2), 10 (11.0). B: no siasn_id, listed and left out.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert

from lms_bridge.config.settings import Settings
from lms_bridge.jp.rules import DEFAULT_RULES
from lms_bridge.ledger import reports
from lms_bridge.store import open_engine
from lms_bridge.store.models import Evidence, LedgerEvidence, LedgerRecord

A, P, B = "198805172014032004", "199202142022211007", "199001012015031001"
TARGETS = """
[[targets]]
institution = "Kemendikdasmen"
unit_prefixes = ["DIKDAS"]
employee_type = "PNS"
jp = 30
effective_from = 2026-07-01
citation = "Permendikdasmen 6/2025"

[[targets]]
institution = "Kemendikdasmen"
unit_prefixes = ["DIKDAS"]
employee_type = "PPPK"
jp = 24
effective_from = 2026-07-01
citation = "Permendikdasmen 6/2025"
"""

RECORDS = [
    # (nip, code, jp, day, voided, evidence id)
    (A, "B4", "12", "2026-03-02", False, "ev-course"),
    (A, "C10", "1", "2026-03-03", False, "ev-cop"),
    (A, "C10", "2", "2026-03-04", False, None),
    (A, "C3", "0.5", "2026-03-05", False, "ev-elearning"),
    (A, "C3", "1.5", "2026-03-20", False, None),
    (A, "B6", "2.22", "2026-04-10", False, "ev-webinar"),
    (A, "C10", "5", "2026-05-01", True, None),
    (A, "C3", "0.78", "2026-06-01", False, None),
    (P, "C9", "0.6", "2026-08-01", False, None),
    (P, "C9", "0.6", "2026-08-02", False, None),
    (P, "B4", "9.8", "2026-09-01", False, "ev-course-2"),
    (B, "C10", "3", "2026-02-01", False, None),
]


def _seed(state_url: str) -> None:
    engine = open_engine(state_url)
    rows = []
    for index, (nip, code, jp, day, voided, evidence) in enumerate(RECORDS, start=1):
        moment = datetime.fromisoformat(day + "T03:00:00+00:00")
        rows.append(
            {
                "statement_id": f"00000000-0000-4000-8000-{index:012d}",
                "nip": nip,
                "jp": jp,
                "rule_id": "r",
                "rule_version": 1,
                "rule_code": code,
                "period": day,
                "period_day": moment.date(),
                "object_id": "o",
                "evidence_ids": json.dumps([evidence] if evidence else []),
                "evidence_count": 1 if evidence else 0,
                "timestamp": moment,
                "stored": moment,
                "voided": voided,
            }
        )
    moment = datetime(2026, 3, 2, 3, tzinfo=UTC)
    named = [("ev-course", "Pelatihan Evaluasi"), ("ev-webinar", "Webinar Kurikulum"), ("ev-course-2", "Latsar")]
    with engine.begin() as connection:
        connection.execute(insert(LedgerRecord), rows)
        connection.execute(
            insert(LedgerEvidence),
            [
                {"statement_id": sid, "verb": "completed", "object_id": "o", "object_name": name, "timestamp": moment}
                for sid, name in named
            ],
        )
        connection.execute(
            insert(Evidence),
            [
                {
                    "statement_id": "ev-cop",
                    "source": "whatsapp",
                    "site_id": "wa-cop",
                    "local_actor": "x",
                    "kind": "message_posted",
                    "occurred_at": moment,
                    "object_key": "message:1",
                    "community": "community:cop-wi",
                    "facts": "{}",
                },
                {
                    "statement_id": "ev-elearning",
                    "source": "moodle",
                    "site_id": "lms-kemdik",
                    "local_actor": "y",
                    "kind": "module_completed",
                    "occurred_at": moment,
                    "object_key": "module:1",
                    "community": None,
                    "facts": "{}",
                },
            ],
        )
    engine.dispose()


def _deployment(tmp_path: Path, make_deployment, state_url: str):
    (tmp_path / "rules.toml").write_text(DEFAULT_RULES.read_text(encoding="utf-8") + TARGETS, encoding="utf-8")
    deployment = make_deployment(
        state_url, "http://127.0.0.1:9", "unused", extra_toml='[jp]\nrules_file = "rules.toml"\n'
    )
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = "test-pseudonym-key-0123456789"
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "nip,nama,unit_kode,jenis_asn,siasn_id\n"
        f"{A},Ani,DIKDAS-01,PNS,A-1\n{P},Putri,DIKDAS-02,PPPK,P-2\n{B},Budi,OTHER-01,PNS,\n",
        encoding="utf-8",
    )
    deployment.run("people", "import", str(roster), check=True)
    return deployment


def test_targets_change_mid_year_by_institution_and_type(tmp_path, state_url, make_deployment):
    deployment = _deployment(tmp_path, make_deployment, state_url)
    _seed(state_url)
    settings = Settings(jp={"rules_file": str(tmp_path / "rules.toml")})
    engine = open_engine(state_url)
    try:
        june = reports.compliance(engine, settings, 2026, as_of=date(2026, 6, 30))
        assert [(r.nip, r.jp, r.target, r.met) for r in june.rows] == [
            (A, Decimal(20), 20, True),
            (P, Decimal(0), 20, False),
            (B, Decimal(3), 20, False),
        ]
        december = reports.compliance(engine, settings, 2026)
        assert [(r.nip, r.jp, r.target, r.met) for r in december.rows] == [
            (A, Decimal(20), 30, False),
            (P, Decimal(11), 24, False),
            (B, Decimal(3), 20, False),
        ]
        assert reports.person_standing(engine, settings, P, 2026).target == 24

        # SIASN: every JP the compliance report counts, whole hours per person adding up to it.
        rows = reports.siasn_rows(engine, 2026, institution="BPSDM")
        for row in december.rows:
            mine = [r for r in rows if r.nip == row.nip]
            assert sum((r.jp for r in mine), Decimal(0)) == row.jp
            assert sum(r.payload["jumlahJam"] for r in mine) == int(row.jp)
        assert sum((r.jp for r in rows), Decimal(0)) == sum((r.jp for r in december.rows), Decimal(0)) == 34
    finally:
        engine.dispose()

    plain = ("--format", "csv", "--csv-dialect", "plain")
    text = deployment.run("report", "compliance", "--year", "2026", *plain, check=True).stdout
    assert [(r["NIP"], r["Target"]) for r in csv.DictReader(io.StringIO(text))] == [
        (A, "30"),
        (P, "24"),
        (B, "20"),
    ]


def test_siasn_export_payloads_reconcile_and_missing_ids(tmp_path, state_url, make_deployment):
    deployment = _deployment(tmp_path, make_deployment, state_url)
    _seed(state_url)
    result = deployment.run("report", "siasn", "--year", "2026", "--institution", "BPSDM", "--format", "json")
    assert result.returncode == 0, result.stderr
    payloads = json.loads(result.stdout)
    assert all(list(p) == list(reports.SIASN_COLUMNS) for p in payloads)
    assert [
        (
            p["pnsOrangId"],
            p["jenisDiklatId"],
            p["jenisKursusSertipikat"],
            p["jumlahJam"],
            p["namaKursus"],
            p["tanggalKursus"],
            p["tanggalSelesaiKursus"],
        )
        for p in payloads
    ] == [
        ("A-1", 2, "F", 12, "Pelatihan Evaluasi", "02-03-2026", "02-03-2026"),
        ("A-1", 23, "T", 3, "Komunitas Belajar cop-wi Maret 2026", "03-03-2026", "04-03-2026"),
        ("A-1", 16, "T", 2, "E-Learning lms-kemdik Maret 2026", "05-03-2026", "20-03-2026"),
        ("A-1", 9, "P", 2, "Webinar Kurikulum", "10-04-2026", "10-04-2026"),
        ("A-1", 16, "T", 1, "E-Learning Juni 2026", "01-06-2026", "01-06-2026"),
        ("P-2", 22, "T", 1, "Belajar Mandiri Agustus 2026", "01-08-2026", "02-08-2026"),
        ("P-2", 2, "F", 10, "Latsar", "01-09-2026", "01-09-2026"),
    ]
    assert all(p["tahunKursus"] == 2026 and p["institusiPenyelenggara"] == "BPSDM" for p in payloads)
    assert A not in result.stdout and P not in result.stdout  # never the NIP as pnsOrangId
    assert "1 orang tidak memiliki siasn_id" in result.stderr and B in result.stderr
    assert "34 JP dalam rekap capaian, 34 jam utuh" in " ".join(result.stderr.split())

    existing = tmp_path / "riwayat.json"
    existing.write_text(
        json.dumps(
            {"data": [{"pnsOrangId": "A-1", "namaKursus": "pelatihan  evaluasi", "tanggalKursus": "02-03-2026"}]}
        )
    )
    csv_run = deployment.run(
        "report", "siasn", "--year", "2026", "--institution", "BPSDM", "--reconcile", str(existing), check=True
    )
    rows = list(csv.DictReader(io.StringIO(csv_run.stdout.lstrip("\ufeff"))))
    assert list(rows[0]) == list(reports.SIASN_COLUMNS) and len(rows) == 6
    assert "Pelatihan Evaluasi" not in csv_run.stdout and "1 sudah ada di SIASN" in csv_run.stderr

    existing.write_text('[{"namaKursus": "x"}]')
    bad = deployment.run("report", "siasn", "--year", "2026", "--institution", "BPSDM", "--reconcile", str(existing))
    assert bad.returncode != 0 and "entri ke-1 tidak memuat" in bad.stderr and "Traceback" not in bad.stderr
