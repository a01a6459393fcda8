"""LMS completion CSV reader: the shipped example mapping, own reports, bad mappings and bad files."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import ReadStats
from connectors.lms_csv import load_mapping, read_lms_csv
from lms_bridge.activity import Kind
from lms_bridge.errors import InputError, RuleError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "mappings" / "lms_csv_example.toml"
JAKARTA = ZoneInfo("Asia/Jakarta")
BUDI = "198005122005011002"
DEWI = "199202142022211007"

HEADER = "ID Kursus,Nama Kursus,Kode Kursus,ID Number,NIP,Email,Tanggal Selesai,JP"
REPORT = [
    HEADER,
    f"101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,{BUDI[:8]} {BUDI[8:14]} {BUDI[14]} {BUDI[15:]},budi.s@example.org,"
    "12/03/2024 09:05,12",
    '101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,,Siti.R@Example.org,13/03/2024 10:00,"1,5"',
    "102,Latsar,,,,,14/03/2024 10:00,40",  # nobody: noted and skipped
    f"102,Latsar,,,{DEWI},,,40",  # enrolled, not completed
    f"101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,{BUDI},,11/03/2024 08:00,12",  # earlier completion of the same
    "",
]


def pseudonymize(identifier: str) -> str:
    return "p-" + re.sub(r"[^a-z0-9]", "", identifier)


def write(tmp_path: Path, lines: list[str], name: str = "report.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text("\r\n".join(lines), encoding=encoding)
    return path


def mapping_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_mapping_reads_a_report(tmp_path: Path) -> None:
    mapping = load_mapping(EXAMPLE)
    stats, notes = ReadStats(), []
    activities = list(
        read_lms_csv(write(tmp_path, REPORT), mapping, pseudonymize=pseudonymize, tz=JAKARTA, stats=stats, notes=notes)
    )
    assert (stats.records, stats.skipped) == (5, 3)
    assert notes == [(4, "no valid NIP or e-mail: row skipped")]
    assert len(activities) == 2
    budi, siti = activities
    assert budi.source == "lms_csv" and budi.site == "lms-example" and budi.kind is Kind.COURSE_COMPLETED
    assert budi.actor == BUDI and budi.native_id == f"101|{BUDI}"
    assert budi.occurred_at == datetime(2024, 3, 11, 1, 0, tzinfo=UTC)  # the earliest of two rows, WIB -> UTC
    assert budi.extras == {
        "nip": BUDI,
        "identifier_kind": "nip",
        "course_shortname": "PT-EVAL",
        "course_idnumber": "EVAL-JP12",
        "program_jp": "12",
    }
    assert budi.object.native_id == "101" and budi.object.title == "Pelatihan Evaluasi"
    assert budi.object.url == "https://lms.example.go.id/course/view.php?id=101"
    # No valid NIP: the e-mail, normalised and pseudonymised; never the address itself.
    assert siti.actor == pseudonymize("email:siti.r@example.org") and "nip" not in siti.extras
    assert siti.extras["program_jp"] == "1.5" and siti.extras["identifier_kind"] == "email"
    assert "siti.r@example.org" not in repr(siti)


def test_site_override_shortname_default_and_iso_times(tmp_path: Path) -> None:
    mapping = load_mapping(
        mapping_file(
            tmp_path,
            """
        format = 1
        site = "lms-a"
        [csv]
        delimiter = ";"
        skip_rows = 2
        [columns]
        nip = "nip"
        course_id = "course"
        completed_at = "done"
        [completed_at]
        format = "iso"
        """,
        )
    )
    report = write(
        tmp_path,
        [
            "Laporan penyelesaian",
            "diekspor 2024-03-20",
            "NIP;Course;Done",
            f"{BUDI};LATSAR;2024-03-12T09:05:00+07:00",
            f"{DEWI};LATSAR;2024-03-13",
        ],
    )
    activities = list(read_lms_csv(report, mapping, pseudonymize=None, tz=JAKARTA, site="lms-b"))
    assert [a.site for a in activities] == ["lms-b", "lms-b"]
    assert [a.extras["course_shortname"] for a in activities] == ["LATSAR", "LATSAR"]
    assert [a.occurred_at for a in activities] == [
        datetime(2024, 3, 12, 2, 5, tzinfo=UTC),
        datetime(2024, 3, 12, 17, 0, tzinfo=UTC),
    ]
    assert activities[0].object.url is None and "program_jp" not in activities[0].extras


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("site = 'x'\n[columns]\ncourse_id='a'\ncompleted_at='b'\nnip='c'\ncolour='d'\n", "[columns] colour"),
        ("site = 'x'\n[columns]\ncompleted_at='b'\nnip='c'\n", "[columns] course_id is missing"),
        ("site = 'x'\n[columns]\ncourse_id='a'\ncompleted_at='b'\n", "[columns] nip or [columns] email"),
        ("[columns]\ncourse_id='a'\ncompleted_at='b'\nnip='c'\n", "site is missing"),
        ("site = 'LMS A'\n[columns]\ncourse_id='a'\ncompleted_at='b'\nnip='c'\n", "site 'LMS A' is not a source id"),
        (
            "site = 'x'\n[columns]\ncourse_id='a'\ncompleted_at='b'\nnip='c'\n[completed_at]\nformat='dd/mm/yyyy'\n",
            "[completed_at] format 'dd/mm/yyyy' is not a strptime format",
        ),
        (
            "site = 'x'\n[columns]\ncourse_id='a'\ncompleted_at='b'\nnip='c'\n[completed_at]\ntimezone='WIB'\n",
            "[completed_at] timezone 'WIB' is not a time zone",
        ),
        (
            "site = 'x'\n[csv]\nencoding='utf-9'\n[columns]\ncourse_id='a'\ncompleted_at='b'\nnip='c'\n",
            "[csv] encoding 'utf-9' is not a known text encoding",
        ),
        (
            "site = 'x'\n[csv]\ndelimiter=',,'\n[columns]\ncourse_id='a'\ncompleted_at='b'\nnip='c'\n",
            "[csv] delimiter must be one character",
        ),
        ("site = 'x'\n[columns]\ncourse_id='a'\ncompleted_at='a'\nnip='c'\n", "[columns] names one report column"),
        (
            "site = 'x'\ncourse_url = 'https://lms/x'\n[columns]\ncourse_id='a'\ncompleted_at='b'\nnip='c'\n",
            "course_url must be an http(s) URL containing {course_id}",
        ),
        ("site = 'x'\n[columns\n", "not valid TOML"),
    ],
)
def test_a_bad_mapping_is_one_sentence_naming_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = mapping_file(tmp_path, text)
    with pytest.raises(RuleError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert message.startswith(f"column mapping {path}: ") and key in message and "\n" not in message


def test_a_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="column mapping .*nope.toml: file not found"):
        load_mapping(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [HEADER.replace("Tanggal Selesai", "Selesai"), REPORT[1]],
            "report.csv line 1: missing column 'Tanggal Selesai' (the mapping lms_csv_example.toml names it for "
            "completed_at)",
        ),
        (
            [HEADER, REPORT[1], REPORT[2].replace("13/03/2024 10:00", "13 Maret 2024")],
            "report.csv line 3: the completion time '13 Maret 2024' does not match the format '%d/%m/%Y %H:%M'",
        ),
        (
            [HEADER, REPORT[1].removesuffix(",12") + ",dua belas"],
            "report.csv line 2: the program JP 'dua belas' is not",
        ),
        ([HEADER, REPORT[1].replace("101,", ",", 1)], "report.csv line 2: the course id (ID Kursus) is empty"),
        ([HEADER, "101,Pelatihan"], "report.csv line 2: has 2 fields, fewer than the header's 8"),
        ([HEADER], "report.csv: no data rows under the header on line 1"),
        ([HEADER, '101,"Pelatihan'], "report.csv line "),
    ],
)
def test_a_bad_report_names_file_and_line_and_yields_nothing(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(InputError) as caught:
        list(read_lms_csv(write(tmp_path, lines), load_mapping(EXAMPLE), pseudonymize=pseudonymize, tz=JAKARTA))
    assert str(caught.value).startswith("LMS report ") and message in str(caught.value)


def test_a_report_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, [HEADER, REPORT[1], REPORT[2].replace("Pelatihan", "Pelatihan Café")], encoding="cp1252")
    with pytest.raises(InputError, match=r"report.csv line 3: not utf-8 text .*set \[csv\] encoding"):
        list(read_lms_csv(path, load_mapping(EXAMPLE), pseudonymize=pseudonymize, tz=JAKARTA))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lms_csv_fuzz")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=600)
    | st.lists(st.sampled_from([*REPORT, ",", "\n", '"', "\x00"]), max_size=12).map(
        lambda parts: "\n".join(parts).encode()
    )
)
def test_arbitrary_bytes_raise_only_input_error(scratch: Path, data: bytes) -> None:
    path = scratch / "fuzz.csv"
    path.write_bytes(data)
    try:
        activities = list(read_lms_csv(path, load_mapping(EXAMPLE), pseudonymize=pseudonymize, tz=JAKARTA))
    except InputError:
        return
    assert all(activity.occurred_at.tzinfo is not None for activity in activities)
