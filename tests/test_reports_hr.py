"""What HR reads (issue 19): Indonesian reports, XLSX as printed, CSV that Excel keeps exact, the
PDF Rekap JP, a terminal table that never cuts a NIP, and empty answers that explain themselves.

The state store is written directly (real SQLite, no LRS: tests/test_reports.py covers the way
there) and the real CLI runs as a subprocess at ``COLUMNS=80``. Hand-computed, 2026, target 20:

| person | unit                                | records                                   | JP   | status |
|--------|-------------------------------------|-------------------------------------------|-----:|--------|
| A      | BPK (Bidang Pengembangan Kompetensi) | 12.5 course (evidence, 31 Aug 21:25 UTC), 8 CoP | 20.5 | met    |
| B      | BPK                                 | 4.25 CoP, 6 voided                        | 4.25 | not    |
| C      | SET (Sekretariat)                   | 19 CoP; one credit pending                | 19   | not    |
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from pypdf import PdfReader
from sqlalchemy import insert

from lms_bridge.config.settings import Settings
from lms_bridge.errors import InputError
from lms_bridge.ledger import export, labels, reports
from lms_bridge.store import open_engine
from lms_bridge.store.models import JPPending, LedgerEvidence, LedgerRecord, Person, PersonUnit
from tests.fixtures.deployment import write_deployment

A, B, C = "198805172014032004", "199001012015031001", "197504122000031002"
EVIDENCE = "11111111-1111-4111-8111-111111111111"


def _seed(url: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def person(nip: str, name: str, code: str, unit: str) -> dict:
        return {
            "nip": nip,
            "employee_type": "PNS",
            "created_at": now,
            "name": name,
            "unit_code": code,
            "unit_name": unit,
            "position": None,
            "roster_updated_at": now,
        }

    def record(index: int, nip: str, jp: str, day: str, rule="cop", code="C10", evidence=(), voided=False) -> dict:
        moment = datetime.fromisoformat(day + "T03:00:00+00:00")
        return {
            "statement_id": f"00000000-0000-4000-8000-{index:012d}",
            "nip": nip,
            "jp": jp,
            "rule_id": rule,
            "rule_version": 1,
            "rule_code": code,
            "period": day,
            "period_day": moment.date(),
            "object_id": "o",
            "evidence_ids": json.dumps(list(evidence)),
            "evidence_count": len(evidence),
            "timestamp": moment,
            "stored": moment,
            "voided": voided,
        }

    engine = open_engine(url)
    with engine.begin() as connection:
        connection.execute(
            insert(Person),
            [
                person(A, "Rina Kartika", "BPK", "Bidang Pengembangan Kompetensi"),
                person(B, "Agus Santoso", "BPK", "Bidang Pengembangan Kompetensi"),
                person(C, "Sari Wulandari", "SET", "Sekretariat"),
            ],
        )
        connection.execute(
            insert(PersonUnit),
            [
                {
                    "nip": A,
                    "unit_code": "BPK",
                    "unit_name": "Bidang Pengembangan Kompetensi",
                    "valid_from": date(2026, 1, 1),
                },
                {
                    "nip": B,
                    "unit_code": "BPK",
                    "unit_name": "Bidang Pengembangan Kompetensi",
                    "valid_from": date(2026, 1, 1),
                },
                {"nip": C, "unit_code": "SET", "unit_name": "Sekretariat", "valid_from": date(2026, 1, 1)},
            ],
        )
        connection.execute(
            insert(LedgerEvidence),
            [
                {
                    "statement_id": EVIDENCE,
                    "verb": "http://adlnet.gov/expapi/verbs/completed",
                    "object_id": "https://lms.demo.go.id/course/view.php?id=12",
                    "object_type": "course",
                    "object_name": "Pelatihan Teknis Evaluasi",
                    "platform": "demo-lms",
                    "timestamp": datetime(2026, 8, 31, 21, 25, tzinfo=UTC),
                }
            ],
        )
        connection.execute(
            insert(LedgerRecord),
            [
                record(1, A, "12.5", "2026-09-01", "training-completed", "B4", (EVIDENCE,)),
                record(2, A, "8", "2026-10-02"),
                record(3, B, "4.25", "2026-03-03"),
                record(4, B, "6", "2026-03-04", voided=True),
                record(5, C, "19", "2026-05-05"),
            ],
        )
        connection.execute(
            insert(JPPending),
            [
                {
                    "nip": C,
                    "rule_id": "elearning",
                    "activity_key": "moodle/demo-lms/course:99",
                    "period": "2026-06-01",
                    "period_day": date(2026, 6, 1),
                    "site_id": "demo-lms",
                    "course": "EVAL-99",
                    "evidence_ids": "[]",
                    "evidence_count": 0,
                }
            ],
        )
    engine.dispose()


@pytest.fixture
def hr(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    _seed(url)
    deployment = write_deployment(
        tmp_path,
        state_url=url,
        lrs_url="http://127.0.0.1:9/xapi",
        password="unused",
        extra_toml='[report]\ninstitution = "BPSDM Provinsi Demo"\n',
    )
    deployment.env["COLUMNS"] = "80"
    return deployment


def test_terminal_report_is_indonesian_and_never_cuts_a_nip_at_80_columns(hr):
    result = hr.run("report", "compliance", "--year", "2026", check=True)
    out = result.stdout
    for nip in (A, B, C):
        assert nip in out, out
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "Rekap JP 2026 per tanggal 31 Desember 2026" in out
    assert "Belum memenuhi" in out and "Sudah memenuhi" in out and "Kekurangan JP" in out
    assert "20,5" in out and "4,25" in out  # decimal comma
    assert "1 dari 3 ASN sudah memenuhi target JP" in out

    units = hr.run("report", "units", "--year", "2026", check=True).stdout
    assert "…" not in units and max(len(line) for line in units.splitlines()) <= 80, units
    assert "Bidang Pengembangan Kompetensi" in units and "Sep" in units and "12,5" in units

    person = hr.run("report", "person", A, "--year", "2026", check=True).stdout
    assert A in person and "…" not in person
    # The course finished at 04:25 WIB on 1 September, the record's period: no UTC time under it.
    # (the rule label's regulation row takes room: at 80 columns the zone may wrap to the next line)
    assert "1 September 2026 04.25" in person and "WIB" in person and "21:25" not in person, person
    assert "C10 Komunitas" in person and "paling banyak 2 JP" in person
    assert "20,5 JP terhitung dari target 20; Sudah memenuhi" in person

    english = {"LMS_BRIDGE_REPORT__LANGUAGE": "en"}
    out = hr.run("report", "compliance", "--year", "2026", env=english, check=True).stdout
    assert "JP recap 2026 as of December 31, 2026" in out and "Not met" in out and A in out


def test_xlsx_is_what_hr_prints(hr, tmp_path):
    target = tmp_path / "rekap.xlsx"
    result = hr.run("report", "compliance", "--year", "2026", "--format", "xlsx", "-o", str(target), check=True)
    assert "ditulis" in result.stdout
    book = load_workbook(target)
    assert book.sheetnames == ["Ringkasan", "Semua", "BPK", "SET"]
    sheet = book["Semua"]
    assert sheet["A1"].value == "BPSDM Provinsi Demo \u2014 Rekap JP 2026"
    assert sheet["A2"].value == "per tanggal 31 Desember 2026"
    assert re.fullmatch(r"Dibuat \d{1,2} \w+ \d{4} \d\d\.\d\d WIB", sheet["A3"].value)
    header = [cell.value for cell in sheet[5]]
    assert header == [
        "Kode unit",
        "Unit kerja",
        "NIP",
        "Nama",
        "Jenis ASN",
        "JP",
        "Target",
        "Kekurangan JP",
        "Capaian",
        "Status",
        "Ditunda",
    ]
    rows = {row[2]: row for row in sheet.iter_rows(min_row=6, values_only=True)}
    assert rows[A][5] == 20.5 and rows[A][9] == "Sudah memenuhi"
    assert rows[B][7] == 15.75 and rows[B][9] == "Belum memenuhi"
    assert rows[C][10] == 1  # the pending credit
    nip_cell = sheet["C6"]
    assert nip_cell.data_type == "s" and nip_cell.number_format == "@" and len(nip_cell.value) == 18
    assert sheet["F6"].number_format == "#,##0.00" and sheet["I6"].number_format == "0%"
    assert sheet.auto_filter.ref == "A5:K8" and sheet.freeze_panes == "A6"
    assert sheet.print_title_rows == "$5:$5"
    # One page wide: fitToWidth 1 is the default (ECMA-376), which XlsxWriter leaves out of the file.
    assert sheet.page_setup.orientation == "landscape" and (sheet.page_setup.fitToWidth or 1) == 1
    assert sheet.page_setup.fitToHeight == 0  # as many pages down as it takes
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    rules = [rule for ranges in sheet.conditional_formatting for rule in ranges.rules]
    assert rules and rules[0].formula == ["$H6>0"]  # Kekurangan JP > 0: belum memenuhi
    assert book["BPK"].max_row == 7 and book["SET"].max_row == 6
    summary = [row for row in book["Ringkasan"].iter_rows(min_row=6, values_only=True)]
    assert summary[0][:5] == ("BPK", "Bidang Pengembangan Kompetensi", 2, 1, 1)


def test_csv_keeps_the_nip_exact_in_each_dialect(hr):
    text = hr.run("report", "compliance", "--year", "2026", "--format", "csv", check=True).stdout
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert rows[0][:4] == ["Kode unit", "Unit kerja", "NIP", "Nama"]
    by_nip = {row[2]: row for row in rows[1:]}
    # Grouped as on paper: Excel cannot read 8-6-1-3 digit groups as a number, so the NIP stays exact.
    assert by_nip["19880517 201403 2 004"][5] == "20,5"
    plain = hr.run("report", "compliance", "--year", "2026", "--format", "csv", "--csv-dialect", "plain", check=True)
    rows = list(csv.DictReader(io.StringIO(plain.stdout)))
    assert not plain.stdout.startswith("\ufeff") and {row["NIP"] for row in rows} == {A, B, C}
    assert next(row for row in rows if row["NIP"] == B)["JP"] == "4.25"


def test_pdf_rekap_reads_back_with_nip_totals_and_hash(hr, tmp_path):
    target = tmp_path / "rekap.pdf"
    result = hr.run("report", "person", A, "--year", "2026", "--format", "pdf", "-o", str(target), check=True)
    digest = re.search(r"hash verifikasi: ([0-9a-f]{64})", result.stdout).group(1)
    text = "\n".join(page.extract_text() for page in PdfReader(target).pages)
    assert "Rekap JP 2026" in text and "BPSDM Provinsi Demo" in text
    assert "19880517 201403 2 004" in text and "Rina Kartika" in text and "Bidang Pengembangan Kompetensi" in text
    assert "20,50" in text and "Sudah memenuhi" in text
    assert "Pelatihan Teknis Evaluasi" in text and "04.25 WIB" in text
    assert digest in text.replace("\n", "")
    # The same records give the same hash through the JSON listing (how a printed recap is verified).
    listed = json.loads(hr.run("report", "person", A, "--year", "2026", "--format", "json", check=True).stdout)
    assert listed["hash"] == digest

    pending = tmp_path / "pending.pdf"
    hr.run("report", "person", C, "--year", "2026", "--format", "pdf", "-o", str(pending), check=True)
    text = "\n".join(page.extract_text() for page in PdfReader(pending).pages)
    assert "ditunda" in text and "19,00" in text and "Belum memenuhi" in text


def test_pdf_rekap_counts_up_to_the_as_of_date_like_the_compliance_report(hr, tmp_path):
    """A's 8 CoP JP fall on 2 October: as of 30 September the recap, the JSON and the report all say 12.5."""
    target = tmp_path / "rekap.pdf"
    args = ("report", "person", A, "--year", "2026", "--as-of", "2026-09-30")
    result = hr.run(*args, "--format", "pdf", "-o", str(target), check=True)
    digest = re.search(r"hash verifikasi: ([0-9a-f]{64})", result.stdout).group(1)
    text = "\n".join(page.extract_text() for page in PdfReader(target).pages)
    assert "per tanggal 30 September 2026" in text
    assert "12,50" in text and "7,50" in text and "Belum memenuhi" in text
    assert "20,50" not in text and "2026-10-02" not in text
    assert digest in text.replace("\n", "")
    listed = json.loads(hr.run(*args, "--format", "json", check=True).stdout)
    assert listed["hash"] == digest and listed["as_of"] == "2026-09-30" and listed["jp"] == 12.5
    whole_year = json.loads(hr.run("report", "person", A, "--year", "2026", "--format", "json", check=True).stdout)
    assert whole_year["as_of"] == "2026-12-31" and whole_year["jp"] == 20.5 and whole_year["hash"] != digest
    report = hr.run("report", "compliance", "--year", "2026", "--as-of", "2026-09-30", "--format", "csv", check=True)
    rows = list(csv.reader(io.StringIO(report.stdout.lstrip("\ufeff")), delimiter=";"))
    assert next(row for row in rows if row[2] == "19880517 201403 2 004")[5] == "12,5"
    outside = hr.run(*args[:-1], "2025-09-30", "--format", "pdf", "-o", str(tmp_path / "x.pdf"))
    assert outside.returncode == 2 and "di luar tahun 2026" in outside.stderr
    assert not (tmp_path / "x.pdf").exists()


def test_write_and_mapping_errors_are_in_the_report_language(hr, tmp_path):
    nowhere = tmp_path / "no-such-folder" / "rekap.csv"
    result = hr.run("report", "compliance", "--year", "2026", "--format", "csv", "-o", str(nowhere))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"tidak dapat menulis {nowhere}: berkas atau folder tidak ada" in " ".join(result.stderr.split())
    english = hr.run(
        "report",
        "compliance",
        "--year",
        "2026",
        "--format",
        "xlsx",
        "-o",
        str(tmp_path / "no-such-folder" / "rekap.xlsx"),
        env={"LMS_BRIDGE_REPORT__LANGUAGE": "en"},
    )
    assert english.returncode != 0 and "cannot write" in english.stderr and "no such file or folder" in english.stderr

    mapping = tmp_path / "siasn.toml"
    mapping.write_text('format = 1\n[codes.C10]\njenisDiklatId = "dua"\n', encoding="utf-8")
    siasn = ("report", "siasn", "--year", "2026", "--institution", "BPSDM", "--mapping", str(mapping))
    result = hr.run(*siasn)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "pemetaan SIASN" in result.stderr and "harus bilangan bulat positif" in result.stderr
    assert "[codes.C10]" in result.stderr
    mapping.write_text("format = 1\n[codes\n", encoding="utf-8")
    result = hr.run(*siasn)
    assert result.returncode != 0 and "bukan TOML yang sah" in result.stderr
    english = hr.run(*siasn, env={"LMS_BRIDGE_REPORT__LANGUAGE": "en"})
    assert "SIASN mapping" in english.stderr and "is not valid TOML" in english.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("compliance", "--year", "2026", "--unit", "bpk"), "Maksud Anda BPK?"),
        (("compliance", "--year", "2026", "--unit", "XYZ"), "BPK (Bidang Pengembangan Kompetensi), SET (Sekretariat)"),
        (("person", "196811111990031001", "--year", "2026"), "tidak ada di daftar pegawai maupun di ledger"),
        (("compliance", "--year", "2025"), "tidak berisi catatan JP tahun 2025; tahun yang ada catatannya: 2026"),
        (("compliance", "--year", "2026", "--as-of", "2025-12-01"), "di luar tahun 2026"),
        (("units", "--year", "2099"), "tahun 2099 belum tiba"),
    ],
)
def test_every_empty_answer_explains_itself(hr, args, expected):
    result = hr.run("report", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_no_config_found_says_where_it_looked_and_creates_nothing(tmp_path, hr):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {key: value for key, value in hr.env.items() if key != "LMS_BRIDGE_CONFIG"}
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "lms_bridge.cli", "report", "compliance", "--year", "2026"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "konfigurasi tidak ditemukan" in result.stderr
    assert str(empty / "lms-bridge.toml") in result.stderr and "$LMS_BRIDGE_CONFIG" in result.stderr
    assert list(empty.iterdir()) == []

    missing = tmp_path / "other"
    missing.mkdir()
    config = missing / "lms-bridge.toml"
    config.write_text('[state]\nurl = "sqlite:///nothing-here.db"\n')
    result = subprocess.run(
        [sys.executable, "-m", "lms_bridge.cli", "--config", str(config), "report", "units", "--year", "2026"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "nothing-here.db tidak ada" in result.stderr
    assert sorted(p.name for p in missing.iterdir()) == ["lms-bridge.toml"]


def test_a_terminal_too_narrow_for_the_table_gets_one_block_per_person(hr):
    result = hr.run("report", "compliance", "--year", "2026", env={"COLUMNS": "40"}, check=True)
    lines = result.stdout.splitlines()
    for nip in (A, B, C):
        assert f"NIP            {nip}" in lines, result.stdout
    assert "Nama           Sari Wulandari" in lines and "JP             4,25" in lines
    assert "…" not in result.stdout and "┃" not in result.stdout.split("Per unit kerja")[0]


def test_messages_follow_the_report_language(hr):
    result = hr.run(
        "report", "compliance", "--year", "2026", "--unit", "bpk", env={"LMS_BRIDGE_REPORT__LANGUAGE": "en"}
    )
    assert result.returncode == 2
    assert "unknown unit 'bpk'" in result.stderr and "Did you mean BPK?" in result.stderr


def test_pdf_prints_any_name_exactly(tmp_path):
    """The recap embeds a Unicode font (DejaVu Sans): names outside Latin-1 read back as written."""
    name = "Ni Luh Putu Ayu Ṣ. Nguyễn Đức Łukasz"
    standing = reports.ComplianceRow(
        A, name, "BPK", "Bidang Pengembangan Kompetensi — Ṣub", "PNS", Decimal(8), 20, True
    )
    record = reports.PersonRecord(
        "00000000-0000-4000-8000-000000000002",
        "2026-10-02",
        "cop",
        "C10",
        Decimal(8),
        False,
        1,
        [
            reports.EvidenceLine(
                EVIDENCE,
                "2026-10-02T03:00:00Z",
                "replied Diskusi “Etika” — ASN Ṣehat",
                "cop-wi",
                datetime(2026, 10, 2, 3, tzinfo=UTC),
            )
        ],
    )
    data = export.person_pdf(
        standing,
        [record],
        2026,
        rules=labels.deployment_rules(Settings()),
        institution="BPSDM Provinsi Demo",
        now=datetime(2026, 12, 7, 8, tzinfo=UTC),
    )
    path = tmp_path / "rekap.pdf"
    path.write_bytes(data)
    text = "\n".join(page.extract_text() for page in PdfReader(path).pages)
    assert name in text and "Bidang Pengembangan Kompetensi — Ṣub" in text, text
    assert "Diskusi “Etika” — ASN Ṣehat" in text and "?" not in text
    assert "C10 Komunitas belajar (CoP): paling banyak 2 JP per hari" in " ".join(text.split())
    assert "8,00" in text and "12,00" in text and "Belum memenuhi" in text


def _read_back(path):
    """Everything HR sees of a workbook, as openpyxl reads it back: cells, layout and print setup per sheet."""
    book = load_workbook(path)
    sheets = {}
    for sheet in book.worksheets:
        cells = {}
        for row in sheet.iter_rows():
            for cell in row:
                if cell.value is None and cell.number_format == "General":
                    continue  # an empty cell, written or not
                font = cell.font
                cells[cell.coordinate] = (
                    cell.value,
                    cell.data_type,
                    cell.number_format,
                    bool(font.b),
                    bool(font.i),
                    font.sz or 11.0,  # openpyxl wrote no size for a plain bold header: Excel's 11
                    bool(cell.quotePrefix),
                )
        rules = [
            (str(ranges.sqref), rule.type, rule.formula, rule.dxf.fill.fgColor.rgb, rule.dxf.fill.bgColor.rgb)
            for ranges in sheet.conditional_formatting
            for rule in ranges.rules
        ]
        setup = sheet.page_setup
        sheets[sheet.title] = {
            "cells": cells,
            # XlsxWriter writes neighbours of the same width as one <col min max> range: each column's own width.
            "widths": {
                get_column_letter(index): dim.width
                for dim in sheet.column_dimensions.values()
                if dim.customWidth
                for index in range(dim.min, dim.max + 1)
            },
            "panes": sheet.freeze_panes,
            "filter": sheet.auto_filter.ref,
            "rules": rules,
            "print_titles": sheet.print_title_rows,
            # fitToWidth 1 is the default (ECMA-376): openpyxl writes it, XlsxWriter leaves it out.
            "setup": (setup.orientation, str(setup.paperSize), setup.fitToWidth or 1, setup.fitToHeight),
            "fit_to_page": sheet.sheet_properties.pageSetUpPr.fitToPage,
        }
    return book.sheetnames, sheets


def test_the_workbook_is_the_one_openpyxl_wrote_cell_by_cell(tmp_path):
    """XlsxWriter (issue 23: 7 s of CPU for 50,000 rows with openpyxl) writes what openpyxl's writer wrote."""
    from tests.fixtures.openpyxl_workbook import openpyxl_workbook

    columns = export.compliance_people_columns("id")
    rows = [
        ["U0001", "Unit Kerja 1", A, "Ani", "PNS", Decimal("20.50"), 20, Decimal(0), 1.025, "Sudah memenuhi", 0],
        [
            "U0001",
            '=HYPERLINK("http://x")',
            B,
            "+62 811",
            "PPPK",
            Decimal("4.25"),
            20,
            Decimal("15.75"),
            0.2125,
            "Belum memenuhi",
            2,
        ],
        ["-", "(tidak di roster)", C, "-", "#N/A", Decimal(12), 40, Decimal(28), 0.3, "Belum memenuhi", 1],
        ["U0002", None, None, "@mention", "-12", None, None, None, None, "x", None],
        [
            "U0002",
            "\u00c9l\u00e8ve \u2014 \u7532",
            "198805172014031999",
            "Budi",
            "PNS",
            7,
            20,
            13.5,
            0.35,
            "Belum memenuhi",
            0,
        ],
    ]
    summary_columns = export.compliance_summary_columns("en")
    summary = [["U0001", "Unit 1", 2, 1, 1, 0.5, Decimal("12.375"), 2], ["-", "-", 0, 0, 0, 0.0, Decimal(0), 0]]
    sheets = [
        export.Sheet("Ringkasan", summary_columns, summary),
        export.Sheet("Semua", columns, rows, flag=export.NEEDED_COLUMN),
        export.Sheet("semua", columns, rows[:2], flag=export.NEEDED_COLUMN),  # the same name in another case
        export.Sheet("a/b:c[1]", columns, [], flag=export.NEEDED_COLUMN),  # no rows
    ]
    titles = ["=Instansi \u2014 Rekap JP 2026", "per tanggal 31 Desember 2026", "Dibuat 8 Des 2026 09.00 WIB"]
    old, new = tmp_path / "openpyxl.xlsx", tmp_path / "xlsxwriter.xlsx"
    openpyxl_workbook(sheets, titles, old, "id")
    export.hr_workbook(sheets, titles, new, "id")
    old_names, old_sheets = _read_back(old)
    new_names, new_sheets = _read_back(new)
    assert new_names == old_names == ["Ringkasan", "Semua", "semua-2", "a_b_c_1_"]
    for name in old_names:
        assert new_sheets[name] == old_sheets[name], name
    everyone = new_sheets["Semua"]
    assert everyone["cells"]["B7"] == ('=HYPERLINK("http://x")', "s", "General", False, False, 11.0, True)
    assert everyone["cells"]["C6"][:3] == (A, "s", "@") and everyone["cells"]["E8"][:2] == ("#N/A", "s")
    assert everyone["cells"]["A1"][3:6] == (True, False, 13.0) and everyone["cells"]["A5"][3] is True
    assert everyone["widths"]["A"] == 11 and everyone["rules"][0][2] == ["$H6>0"]


def test_a_workbook_that_cannot_be_written_says_why(tmp_path):
    with pytest.raises(InputError, match="cannot write"):
        export.hr_workbook([export.Sheet("x", [export.Column("a")], [["b"]])], ["t"], tmp_path / "no" / "x.xlsx", "en")


def test_a_workbook_that_fails_half_way_leaves_no_temporary_file(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    rows = [["a", Decimal(1)]] * 100 + [["b", object()]]
    sheet = export.Sheet("x", [export.Column("a"), export.Column("n", "jp")], rows)
    with pytest.raises(TypeError, match="cannot hold object"):
        export.hr_workbook([sheet, sheet], ["t"], tmp_path / "x.xlsx", "en")
    assert list(scratch.iterdir()) == []
    export.hr_workbook([export.Sheet("x", sheet.columns, rows[:100])], ["t"], tmp_path / "x.xlsx", "en")
    assert list(scratch.iterdir()) == [] and load_workbook(tmp_path / "x.xlsx")["x"]["B6"].value == 1
