"""The file-format contract, checked for every registered format (``connectors.formats.FORMATS``).

Each sample export is detected as its own format and refused by every other one; reading it
gives the counts the per-format tests and the import CLI tests expect; a file over the size
cap is refused in one sentence that names it; options a format does not take are refused.
"""

from __future__ import annotations

import hashlib
import zipfile
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.file_format import NO, FileFormat, ReadRequest, Sample, read_capped, read_head, read_zip_member
from connectors.formats import FORMATS, detect
from lms_bridge.config.inbox import CHAT_FORMATS, INBOX_FORMATS
from lms_bridge.errors import ConfigError, InputError
from lms_bridge.ingest import files as imports
from tests.fixtures.community import DATA, EXPORTS
from tests.fixtures.data import ROOT

MAPPING = ROOT / "mappings" / "lms_csv_example.toml"
ACTIVITIES = ROOT / "lms_bridge" / "demo" / "data" / "activities.jsonl"
JAKARTA = ZoneInfo("Asia/Jakarta")


def pseudonymizer() -> object:
    return lambda value: hashlib.sha256(value.encode()).hexdigest()[:16]


def request(**options: object) -> ReadRequest:
    return ReadRequest(tz=JAKARTA, pseudonymizer=pseudonymizer, **options)  # type: ignore[arg-type]


#: Sample file -> its format. Malformed samples too: detection looks at the first bytes only.
DETECTED = {
    EXPORTS / "whatsapp_android_id_24h.txt": "whatsapp",
    EXPORTS / "whatsapp_android_en_us_12h.txt": "whatsapp",
    EXPORTS / "whatsapp_ios_id.txt": "whatsapp",
    EXPORTS / "whatsapp_ios_id.zip": "whatsapp",
    EXPORTS / "whatsapp_ios_en_24h.txt": "whatsapp",
    EXPORTS / "whatsapp_ambiguous_dates.txt": "whatsapp",
    EXPORTS / "telegram_single_chat.json": "telegram",
    EXPORTS / "telegram_account_export.json": "telegram",
    EXPORTS / "zoom_participants_with_meeting.csv": "zoom",
    EXPORTS / "zoom_participants_dmy_24h.csv": "zoom",
    EXPORTS / "meet_attendance.csv": "meet",
    EXPORTS / "teams_attendance.csv": "teams",
    DATA / "not_whatsapp.txt": "whatsapp",
    DATA / "whatsapp_android_en_us_12h_4digit.txt": "whatsapp",
    DATA / "whatsapp_android_id_system_colon.txt": "whatsapp",
    DATA / "whatsapp_ios_en_us_12h.txt": "whatsapp",
    DATA / "whatsapp_ios_de.txt": "whatsapp",
    DATA / "whatsapp_ios_id_unnamed.txt": "whatsapp",
    DATA / "whatsapp_latin1.txt": "whatsapp",
    DATA / "whatsapp_mixed_order.txt": "whatsapp",
    DATA / "whatsapp_truncated.txt": "whatsapp",
    DATA / "telegram_account_mixed.json": "telegram",
    DATA / "telegram_bad_date.json": "telegram",
    DATA / "telegram_not_export.json": "telegram",
    DATA / "telegram_personal_chat.json": "telegram",
    DATA / "telegram_truncated.json": "telegram",
    DATA / "zoom_missing_column.csv": "zoom",
    DATA / "zoom_us_12h_guests.csv": "zoom",
    DATA / "zoom_webinar_attendee.csv": "zoom",
    DATA / "teams_activities_only.csv": "teams",
    DATA / "teams_legacy.csv": "teams",
    DATA / "teams_no_bom.csv": "teams",
    DATA / "whatsapp_id_display_names.txt": "whatsapp",
    DATA / "telegram_2019_account.json": "telegram",
    DATA / "telegram_2021_single_chat.json": "telegram",
    DATA / "telegram_only_personal.json": "telegram",
    DATA / "teams_id.csv": "teams",
    DATA / "teams_tr_positional.csv": "teams",
    DATA / "teams_excel_comma.csv": "teams",
    DATA / "teams_excel_semicolon_id.csv": "teams",
    DATA / "meet_extension_attendance_list_2024-03-12.csv": "meet",
    DATA / "meet_attendance_tracker_2024-03-12.csv": "meet",
    ACTIVITIES: "jsonl",
}
#: Files no format claims.
REFUSED = [EXPORTS / "roster.csv", ROOT / "tests" / "data" / "README.md"]


def test_the_registry_names_each_format_by_its_own_name_and_the_configuration_agrees() -> None:
    assert list(FORMATS) == ["whatsapp", "telegram", "zoom", "meet", "teams", "csv", "jsonl"]
    for name, file_format in FORMATS.items():
        assert isinstance(file_format, FileFormat) and file_format.name == name
        assert file_format.description and file_format.unit
    assert imports.FORMATS == tuple(FORMATS)  # the values of import --source
    # The configuration may not import connectors: its copies of the names must match the registry.
    assert INBOX_FORMATS == tuple(name for name, fmt in FORMATS.items() if not fmt.needs_mapping)
    assert CHAT_FORMATS == tuple(name for name, fmt in FORMATS.items() if fmt.community == "required")


def test_every_sample_file_in_the_data_folders_has_an_expectation() -> None:
    samples = {path for path in [*DATA.iterdir(), *EXPORTS.iterdir()]}
    assert samples - set(DETECTED) - set(REFUSED) == set()


@pytest.mark.parametrize(("path", "expected"), DETECTED.items(), ids=lambda value: getattr(value, "name", value))
def test_detect_picks_the_sample_s_format_and_every_other_format_refuses_it(path: Path, expected: str) -> None:
    assert detect(path) is FORMATS[expected]
    sample = Sample(path=path, head=read_head(path))
    claims = {name: file_format.detect(sample) for name, file_format in FORMATS.items()}
    assert claims[expected] > NO
    assert {name for name, claim in claims.items() if claim > NO} == {expected}


@pytest.mark.parametrize("path", REFUSED, ids=lambda path: path.name)
def test_a_file_no_format_claims_is_refused_in_one_sentence(path: Path) -> None:
    with pytest.raises(InputError) as refused:
        detect(path)
    assert str(refused.value).startswith(f"cannot tell what {path} is: it is not a WhatsApp export")
    assert "\n" not in str(refused.value)


def test_a_column_mapping_makes_an_unknown_csv_an_lms_report_but_not_a_chat_or_a_meeting() -> None:
    assert detect(EXPORTS / "roster.csv", mapping=True) is FORMATS["csv"]
    assert detect(EXPORTS / "whatsapp_ios_id.zip", mapping=True) is FORMATS["whatsapp"]
    assert detect(EXPORTS / "telegram_single_chat.json", mapping=True) is FORMATS["telegram"]
    assert detect(EXPORTS / "zoom_participants_dmy_24h.csv", mapping=True) is FORMATS["csv"]


def test_a_json_file_of_activities_is_an_activity_file(tmp_path: Path) -> None:
    lines = [line for line in ACTIVITIES.read_text(encoding="utf-8").splitlines() if line and line[0] != "#"]
    path = tmp_path / "activities.json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert detect(path) is FORMATS["jsonl"]


def test_a_missing_file_or_a_folder_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.txt does not exist$"):
        detect(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="is a folder, not an export file$"):
        detect(tmp_path)


#: Sample -> (format, request options, records read, activities, skipped): the numbers the
#: per-format tests and tests/test_import_cli.py expect of the same files.
COUNTS = [
    (EXPORTS / "whatsapp_android_id_24h.txt", "whatsapp", {"community": "cop-a"}, 11, 5, 6),
    (EXPORTS / "whatsapp_ios_id.zip", "whatsapp", {"community": "cop-a"}, 5, 4, 1),
    (EXPORTS / "whatsapp_android_en_us_12h.txt", "whatsapp", {"community": "cop-a"}, 5, 3, 2),
    (DATA / "whatsapp_ios_en_us_12h.txt", "whatsapp", {"community": "cop-a"}, 9, 6, 3),
    (EXPORTS / "telegram_single_chat.json", "telegram", {"community": "cop-a"}, 7, 5, 2),
    (EXPORTS / "telegram_account_export.json", "telegram", {"community": "cop-a"}, 7, 5, 2),
    (EXPORTS / "zoom_participants_with_meeting.csv", "zoom", {}, 4, 2, 1),
    (DATA / "zoom_us_12h_guests.csv", "zoom", {}, 9, 5, 2),
    (DATA / "zoom_webinar_attendee.csv", "zoom", {}, 4, 3, 0),
    (EXPORTS / "meet_attendance.csv", "meet", {"meeting_date": date(2024, 3, 12)}, 2, 2, 0),
    (EXPORTS / "teams_attendance.csv", "teams", {}, 2, 2, 0),
    (DATA / "teams_legacy.csv", "teams", {}, 3, 2, 0),
    (ACTIVITIES, "jsonl", {}, 30, 30, 0),
]


@pytest.mark.parametrize(
    ("path", "name", "options", "records", "activities", "skipped"),
    COUNTS,
    ids=lambda value: getattr(value, "name", None),
)
def test_reading_a_sample_gives_the_expected_counts(
    path: Path, name: str, options: dict[str, object], records: int, activities: int, skipped: int
) -> None:
    file_format = FORMATS[name]
    asked = request(**options)
    file_format.check_options(asked)
    contents = file_format.read(path, asked)
    assert (contents.stats.records, len(contents.items), contents.stats.skipped) == (records, activities, skipped)
    positions = [position for _, position in contents.items]
    assert positions == sorted(set(positions)) and positions[0] >= 1  # the cursor counts them
    assert contents.site == options.get("community", "import" if name == "jsonl" else name)
    if "community" in options:
        assert {activity.grouping.native_id for activity, _ in contents.items if activity.grouping} == {"cop-a"}


def test_an_lms_report_is_read_through_its_mapping(tmp_path: Path) -> None:
    report = tmp_path / "laporan.csv"
    report.write_text(
        "ID Kursus,Nama Kursus,Kode Kursus,ID Number,NIP,Email,Tanggal Selesai,JP\n"
        "101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,19800512 200501 1 002,,12/03/2024 09:05,12\n"
        "101,Pelatihan Evaluasi,PT-EVAL,EVAL-JP12,,tamu@example.org,13/03/2024 11:00,12\n"
        "102,Latsar,LATSAR,,,,14/03/2024 10:00,40\n",
        encoding="utf-8",
    )
    assert detect(report, mapping=True) is FORMATS["csv"]
    contents = FORMATS["csv"].read(report, request(mapping=MAPPING))
    assert (contents.stats.records, len(contents.items), contents.stats.skipped) == (3, 2, 1)
    assert contents.notes == [(4, "no valid NIP or e-mail: row skipped")] and contents.site == "lms-example"


#: Format -> (file name, its size cap in MB, the request it is read with).
CAPS = {
    "whatsapp": ("chat.txt", 256, {"community": "cop-a"}),
    "telegram": ("result.json", 4096, {"community": "cop-a"}),  # streamed: the message cap bounds it
    "zoom": ("participants.csv", 64, {}),
    "meet": ("meet.csv", 64, {}),
    "teams": ("teams.csv", 64, {}),
    "csv": ("laporan.csv", 256, {"mapping": MAPPING}),
    "jsonl": ("activities.jsonl", 256, {}),
}


def test_every_format_has_a_size_cap() -> None:
    assert set(CAPS) == set(FORMATS)


@pytest.mark.parametrize("name", CAPS)
def test_a_file_over_the_cap_is_refused_in_one_sentence_without_being_read(tmp_path: Path, name: str) -> None:
    file_name, cap_mb, options = CAPS[name]
    path = tmp_path / file_name
    with path.open("wb") as handle:
        handle.truncate((cap_mb << 20) + 1)  # sparse: no disk, and nothing is read
    with pytest.raises(InputError) as refused:
        FORMATS[name].read(path, request(**options))
    message = str(refused.value)
    assert f"{file_name}: larger than {cap_mb} MB, not a" in message and "\n" not in message


def test_a_zip_member_over_the_cap_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("_chat.txt", b"\n" * (2 << 20))
    with pytest.raises(InputError, match=r"^export bomb\.zip: _chat\.txt is larger than 1 MB$"):
        read_zip_member(path, "export bomb.zip", limit=1 << 20, choose=lambda entries: entries[0])
    assert read_zip_member(path, "export bomb.zip", limit=3 << 20, choose=lambda entries: entries[0])[0] == "_chat.txt"


def test_the_bounded_reader_reads_a_file_at_the_cap_and_names_an_unreadable_one(tmp_path: Path) -> None:
    path = tmp_path / "at-cap.txt"
    path.write_bytes(b"x" * (1 << 20))
    assert len(read_capped(path, "export at-cap.txt", limit=1 << 20, refusal="not a chat export")) == 1 << 20
    with pytest.raises(InputError, match=r"^export gone\.txt: cannot be read \(No such file or directory\)$"):
        read_capped(tmp_path / "gone.txt", "export gone.txt", limit=1 << 20, refusal="not a chat export")


#: Option -> (the formats that take it, the request that gives it).
OPTIONS = {
    "mapping": ({"csv"}, {"mapping": MAPPING}),
    "chat": ({"telegram"}, {"chat": "CoP Lama"}),
    "meeting_date": ({"meet"}, {"meeting_date": date(2024, 3, 12)}),
}


@pytest.mark.parametrize("name", FORMATS)
def test_options_a_format_does_not_take_are_refused_in_one_sentence(name: str) -> None:
    file_format = FORMATS[name]
    base: dict[str, object] = {"mapping": MAPPING} if file_format.needs_mapping else {}
    if file_format.community == "required":
        base["community"] = "cop-a"
    file_format.check_options(request(**base))
    for option, (takers, given_option) in OPTIONS.items():
        if name in takers:
            file_format.check_options(request(**(base | given_option)))
        else:
            with pytest.raises(ConfigError) as refused:
                file_format.check_options(request(**(base | given_option)))
            flag = "--" + option.replace("_", "-")
            assert str(refused.value).startswith(flag) and str(refused.value).endswith(
                f" to {file_format.with_article}"
            )
    community = base | {"community": "cop-a"}
    if file_format.community == "refused":
        with pytest.raises(ConfigError, match="has no community$"):
            file_format.check_options(request(**community))
    else:
        file_format.check_options(request(**community))
    if file_format.community == "required":
        with pytest.raises(ConfigError, match="give --community NAME"):
            file_format.check_options(request(**{k: v for k, v in base.items() if k != "community"}))


def test_a_named_attendance_format_refuses_another_platform_s_report() -> None:
    FORMATS["meet"].check_declared(EXPORTS / "meet_attendance.csv")
    with pytest.raises(InputError, match="is a Google Meet attendance sheet, not a Zoom attendance report: give"):
        FORMATS["zoom"].check_declared(EXPORTS / "meet_attendance.csv")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    head=st.one_of(
        st.binary(max_size=300),
        st.sampled_from([path.read_bytes()[:400] for path in DETECTED]).flatmap(
            lambda data: st.integers(0, len(data)).map(lambda cut: data[:cut])
        ),
    ),
    suffix=st.sampled_from([".txt", ".json", ".csv", ".tsv", ".zip", ".jsonl", ""]),
    mapping=st.booleans(),
)
def test_detect_never_raises_and_claims_with_a_known_confidence(head: bytes, suffix: str, mapping: bool) -> None:
    sample = Sample(path=Path(f"upload{suffix}"), head=head, mapping=mapping)
    for file_format in FORMATS.values():
        assert 0.0 <= file_format.detect(sample) <= 1.0
