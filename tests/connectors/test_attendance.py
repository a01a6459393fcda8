"""Attendance reports (Zoom participants and webinar, Google Meet, Microsoft Teams)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.attendance import detect_format, read_attendance
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.errors import InputError
from tests.fixtures.community import DATA, EXPORTS, Pseudonyms, leaked, mutate, read_all, utc

SITE = "bpsdm-webinar"

RAW_VALUES = [
    "budi",
    "santoso",
    "siti",
    "rahmawati",
    "dewi",
    "lestari",
    "agus",
    "pratama",
    "tamu",
    "bkd jatim",
    "host bpsdm",
    "example.org",
    "812-0000-0202",
    "81200000202",
]


#: ``read(path)`` -> (activities, pseudonyms).
read = partial(read_all, read_attendance, site=SITE)


def by_person(activities: list[Activity], who: Pseudonyms) -> dict[str, Activity]:
    return {who.of(activity): activity for activity in activities}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (EXPORTS / "zoom_participants_with_meeting.csv", "zoom"),
        (EXPORTS / "zoom_participants_dmy_24h.csv", "zoom"),
        (EXPORTS / "meet_attendance.csv", "meet"),
        (EXPORTS / "teams_attendance.csv", "teams"),
        (DATA / "zoom_us_12h_guests.csv", "zoom"),
        (DATA / "zoom_webinar_attendee.csv", "zoom_webinar"),
        (DATA / "teams_activities_only.csv", "teams"),
        (DATA / "teams_legacy.csv", "teams"),
        (DATA / "teams_no_bom.csv", "teams"),
    ],
)
def test_detect_format(path: Path, expected: str) -> None:
    assert detect_format(path) == expected


@pytest.mark.parametrize(
    "path",
    [EXPORTS / "roster.csv", EXPORTS / "telegram_single_chat.json", EXPORTS / "whatsapp_android_id_24h.txt"],
)
def test_detect_format_refuses_other_files(path: Path) -> None:
    with pytest.raises(InputError, match=f"{path.name}: not a Zoom, Google Meet or Microsoft Teams"):
        detect_format(path)


# --- Zoom ---------------------------------------------------------------------------------------


def test_zoom_with_meeting_preamble_merges_rejoins() -> None:
    activities, who = read(EXPORTS / "zoom_participants_with_meeting.csv")
    people = by_person(activities, who)
    # "Tamu Umum" (a guest without e-mail) only sat in the waiting room: not present, not listed.
    assert sorted(people) == ["email:budi.s@example.org", "email:siti.r@example.org"]
    budi = people["email:budi.s@example.org"]
    # Two rows (a rejoin) become one attendance: earliest join, 64 + 58 minutes.
    assert budi.duration == timedelta(minutes=122)
    assert budi.occurred_at == utc(2024, 3, 12, 1, 58, 1)  # 03/12/2024 08:58:01 AM WIB, US m/d order
    assert budi.extras == {"identifier_kind": "email", "segments": 2, "guest": False}
    # The renamed participant "WI Siti (Siti Rahmawati)" is identified by her e-mail.
    assert people["email:siti.r@example.org"].duration == timedelta(minutes=90)
    meeting = ObjectRef(type="meeting", native_id="81200000001:2024-03-12", title="Webinar Evaluasi Pembelajaran")
    for activity in activities:
        assert activity.kind is Kind.MEETING_ATTENDED and activity.source == "zoom" and activity.site == SITE
        assert activity.object == meeting
        assert activity.native_id == f"81200000001:2024-03-12:{activity.actor}"


def test_zoom_day_first_24h_without_preamble() -> None:
    activities, who = read(EXPORTS / "zoom_participants_dmy_24h.csv")
    [dewi] = activities
    assert who.of(dewi) == "email:dewi.l@example.org"
    assert dewi.occurred_at == utc(2024, 3, 13, 6, 0)  # 13/03/2024 13:00:00 WIB
    assert dewi.duration == timedelta(minutes=90 + 25)
    # No meeting id in the file: a stable hash of topic and start time.
    meeting_id, day, actor = dewi.native_id.split(":")
    assert meeting_id.startswith("h") and len(meeting_id) == 17
    assert (day, actor) == ("2024-03-13", dewi.actor)
    assert read(EXPORTS / "zoom_participants_dmy_24h.csv")[0] == activities


def test_zoom_guests_renames_and_two_devices() -> None:
    activities, who = read(DATA / "zoom_us_12h_guests.csv")
    people = by_person(activities, who)
    assert sorted(people) == [
        "email:dewi.l@example.org",
        "name:ani (bkd jatim)",
        "name:budi (bkd jatim)",
        "name:siti rahmawati",
        "name:tamu menunggu",
    ]
    # "WI Siti (Siti Rahmawati)" is the renamed "Siti Rahmawati": one person, 30 + 25 minutes.
    siti = people["name:siti rahmawati"]
    assert (siti.duration, siti.extras["segments"], siti.extras["guest"]) == (timedelta(minutes=55), 2, True)
    assert siti.extras["identifier_kind"] == "name"
    # An office in parentheses is not a rename: two different people stay apart.
    assert people["name:budi (bkd jatim)"].duration == timedelta(minutes=60)
    assert people["name:ani (bkd jatim)"].duration == timedelta(minutes=45)
    # Laptop 09:00-10:00 and phone 09:30-10:15 at once: present 75 minutes, not 105.
    assert people["email:dewi.l@example.org"].duration == timedelta(minutes=75)
    # The waiting-room row does not count; "Hanya Menunggu" only waited and is not listed.
    waiting = people["name:tamu menunggu"]
    assert (waiting.duration, waiting.occurred_at) == (timedelta(minutes=40), utc(2024, 3, 14, 2, 5))
    assert {a.object.native_id.split(":")[1] for a in activities} == {"2024-03-14"}


def test_zoom_webinar_attendee_report() -> None:
    activities, who = read(DATA / "zoom_webinar_attendee.csv")
    people = by_person(activities, who)
    assert sorted(people) == [
        "email:budi.s@example.org",
        "email:host@example.org",
        "email:siti.r@example.org",
    ]
    assert people["email:host@example.org"].extras["role"] == "host"
    assert people["email:budi.s@example.org"].extras["role"] == "panelist"
    siti = people["email:siti.r@example.org"]
    assert (siti.duration, siti.extras["role"], siti.extras["segments"]) == (
        timedelta(minutes=85),
        "attendee",
        2,
    )
    assert siti.occurred_at == utc(2024, 3, 14, 2, 0)  # "Mar 14, 2024 09:00:00 AM" WIB
    # Agus registered but did not attend.
    assert all(a.object == ObjectRef("meeting", "81200000002:2024-03-14", "Webinar JP ASN 2024") for a in activities)
    assert all(a.source == "zoom" for a in activities)


def test_zoom_missing_column_names_the_row() -> None:
    with pytest.raises(InputError, match="zoom_missing_column.csv row 1: missing column 'name"):
        read(DATA / "zoom_missing_column.csv")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            ["Budi,b@x.org,03/14/2024 10:00:00 AM,03/14/2024 09:00:00 AM,60"],
            "row 2: the leave time is before",
        ),
        (["Budi,b@x.org,03/14/2024 09:00:00 AM,03/14/2024 10:00:00 AM,sixty"], "row 2: the duration is not"),
        (["Budi,b@x.org,yesterday,03/14/2024 10:00:00 AM,60"], "row 2: the join time is not a date"),
        (["Budi,b@x.org,03/14/2024 09:00"], "row 2: has 3 fields"),
        (
            [
                "Budi,b@x.org,13/03/2024 09:00,13/03/2024 10:00,60",
                "Ani,,03/14/2024 09:00,03/14/2024 10:00,60",
            ],
            "row 3: the date order contradicts row 2",
        ),
        (
            [",,03/14/2024 09:00:00 AM,03/14/2024 10:00:00 AM,60"],
            "row 2: a participant with neither e-mail nor name",
        ),
    ],
)
def test_bad_zoom_rows_name_the_row(tmp_path: Path, rows: list[str], message: str) -> None:
    path = tmp_path / "participants.csv"
    header = "Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes)"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read(path)


def test_zoom_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "participants.csv"
    path.write_bytes(
        b"Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes)\n"
        b"Jos\xe9,,03/14/2024 09:00:00 AM,03/14/2024 10:00:00 AM,60\n"
    )
    with pytest.raises(InputError, match="participants.csv line 2: not UTF-8"):
        read(path)


# --- Google Meet --------------------------------------------------------------------------------


def test_meet_needs_a_date_and_never_uses_today() -> None:
    with pytest.raises(InputError, match="meet_attendance.csv row 2: the join time has no date"):
        read(EXPORTS / "meet_attendance.csv")


def test_meet_takes_the_date_and_code_from_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "abc-defg-hij attendance 2024-03-12.csv"
    shutil.copy(EXPORTS / "meet_attendance.csv", path)
    activities, who = read(path)
    people = by_person(activities, who)
    budi = people["email:budi.s@example.org"]
    assert (budi.occurred_at, budi.duration) == (utc(2024, 3, 12, 2, 0), timedelta(hours=1, minutes=2))
    siti = people["email:siti.r@example.org"]
    assert (siti.occurred_at, siti.duration) == (utc(2024, 3, 12, 2, 15), timedelta(minutes=45))
    assert all(a.source == "meet" and a.object.native_id == "abc-defg-hij:2024-03-12" for a in activities)


# --- Microsoft Teams ----------------------------------------------------------------------------


def test_teams_utf16_report_uses_the_participants_section() -> None:
    activities, who = read(EXPORTS / "teams_attendance.csv")
    people = by_person(activities, who)
    assert sorted(people) == ["email:budi.s@example.org", "email:dewi.l@example.org"]
    budi = people["email:budi.s@example.org"]
    assert budi.occurred_at == utc(2024, 3, 14, 6, 0, 5)  # 3/14/24, 1:00:05 PM WIB
    assert budi.duration == timedelta(hours=1, minutes=4, seconds=55)
    assert budi.extras["role"] == "organizer"
    # Dewi joined twice (20m + 26m 6s); Teams' own merged row says 46m 6s.
    assert people["email:dewi.l@example.org"].duration == timedelta(minutes=46, seconds=6)
    assert all(a.source == "teams" and a.object.title == "CoP Sharing Session" for a in activities)


def test_teams_activities_only_day_first_merges_rejoins() -> None:
    activities, who = read(DATA / "teams_activities_only.csv")
    people = by_person(activities, who)
    budi = people["email:budi.s@example.org"]
    assert budi.occurred_at == utc(2024, 3, 14, 6, 0, 5)  # 14/03/2024 13:00:05
    assert budi.duration == timedelta(minutes=59, seconds=55)
    assert budi.extras["segments"] == 2
    assert people["name:tamu eksternal"].duration == timedelta(minutes=10)
    assert read(DATA / "teams_no_bom.csv")[0] == activities


def test_teams_legacy_join_leave_events() -> None:
    activities, who = read(DATA / "teams_legacy.csv")
    people = by_person(activities, who)
    assert people["name:budi santoso"].duration == timedelta(hours=1)
    # 13:00-13:20, then 13:25 until the report's last event at 14:00.
    assert people["name:dewi lestari"].duration == timedelta(minutes=55)


# --- privacy, keys, property tests --------------------------------------------------------------


def readable_reports(tmp_path: Path) -> list[Path]:
    meet = tmp_path / "meet 2024-03-12.csv"
    shutil.copy(EXPORTS / "meet_attendance.csv", meet)
    return [
        EXPORTS / "zoom_participants_with_meeting.csv",
        EXPORTS / "zoom_participants_dmy_24h.csv",
        EXPORTS / "teams_attendance.csv",
        meet,
        DATA / "zoom_us_12h_guests.csv",
        DATA / "zoom_webinar_attendee.csv",
        DATA / "teams_activities_only.csv",
        DATA / "teams_legacy.csv",
    ]


def test_no_name_email_or_phone_in_any_activity(tmp_path: Path) -> None:
    allowed = {"identifier_kind", "segments", "guest", "role"}
    count = 0
    for path in readable_reports(tmp_path):
        for activity in read(path)[0]:
            count += 1
            assert not leaked(activity, RAW_VALUES), path.name
            assert set(activity.extras) <= allowed
            assert activity.occurred_at.tzinfo is not None
    assert count == 19


def test_one_activity_per_person_per_session(tmp_path: Path) -> None:
    for path in readable_reports(tmp_path):
        activities = read(path)[0]
        assert len({a.native_id for a in activities}) == len(activities) == len({a.actor for a in activities})


def _only_input_error(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        detect_format(path)
        list(read_attendance(path, site=SITE, pseudonymize=Pseudonyms()))
    except InputError:
        pass


CSV_PIECES = [
    "Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes),Guest,In Waiting Room\n",
    "Meeting ID,Topic,Start Time\n",
    "Attendee Details\n",
    "Attended,User Name (Original Name),Email,Join Time,Leave Time\n",
    "1. Summary\n",
    "2. Participants\n",
    "Name\tFirst Join\tLast Leave\tIn-Meeting Duration\tEmail\n",
    "First name,Last name,Email,Duration,Time joined,Time exited\n",
    "Full Name\tUser Action\tTimestamp\n",
    "Budi,",
    "b@x.org,",
    "03/12/2024 09:00:00 AM,",
    "13/03/2024 25:00,",
    '"Mar 14, 2024 09:00:00 AM",',
    "60,",
    "1h 5m 3s\t",
    "09:00,",
    "Yes,",
    "--,",
    "\n",
    "\t",
    '"',
    ",",
    "Webinar ID,",
    "Joined\t",
    "Left\t",
    "\x00",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_input_error(scratch: Path, data: bytes) -> None:
    _only_input_error(scratch / "bytes.csv", data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.sampled_from(CSV_PIECES) | st.text(max_size=5), max_size=40), utf16=st.booleans())
def test_report_like_text_raises_only_input_error(scratch: Path, pieces: list[str], utf16: bool) -> None:
    text = "".join(pieces)
    data = b"\xff\xfe" + text.encode("utf-16-le", "surrogatepass") if utf16 else text.encode("utf-8", "surrogatepass")
    _only_input_error(scratch / "pieces.csv", data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_reports_raise_only_input_error(scratch: Path, data: st.DataObject) -> None:
    sources = sorted(EXPORTS.glob("*.csv")) + sorted(DATA.glob("*.csv"))
    source = data.draw(st.sampled_from(sources))
    inserts = st.sampled_from([b",", b"\t", b"\n", b'"', b"13", b"PM", b"--"])
    _only_input_error(scratch / "mutated.csv", mutate(source.read_bytes(), data.draw, inserts))


# --- Teams in other languages and Excel re-saves; Meet extensions (issue 16) ---------------------


def _teams_people(path: Path) -> dict[str, Activity]:
    activities, who = read(path)
    assert all(a.source == "teams" for a in activities)
    return by_person(activities, who)


@pytest.mark.parametrize(
    "name",
    ["teams_id.csv", "teams_tr_positional.csv", "teams_excel_comma.csv", "teams_excel_semicolon_id.csv"],
)
def test_teams_in_other_languages_and_excel_resaves(name: str) -> None:
    """Indonesian labels (data file), unknown labels (by position), Excel's comma+BOM and ';' re-saves."""
    path = DATA / name
    assert detect_format(path) == "teams"
    people = _teams_people(path)
    assert sorted(people) == ["email:budi.s@example.org", "email:dewi.l@example.org"]
    budi = people["email:budi.s@example.org"]
    assert budi.occurred_at.astimezone(utc(2024, 1, 1).tzinfo).replace(second=0) == utc(2024, 3, 14, 6, 0)
    resaved = name.startswith("teams_excel")  # Excel keeps the minutes of a date, not its seconds
    assert budi.duration == timedelta(hours=1, minutes=4, seconds=55)
    assert people["email:dewi.l@example.org"].duration == timedelta(minutes=46, seconds=6)
    if not resaved:
        assert budi.occurred_at == utc(2024, 3, 14, 6, 0, 5)
    title = "CoP Sharing Session" if "comma" in name else None if "_tr_" in name else "CoP Berbagi Praktik Baik"
    assert budi.object.title == title


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("Name\tFirst Join\tEmail\tRole", "last leave, duration"),
        ("Nama\tEmail\tGabung Pertama\tKeluar Terakhir\tDurasi Dalam Rapat", None),
        ("Ad\tİlk Katılma\tSon Ayrılma", "name, first join, last leave, duration"),
    ],
)
def test_teams_refusals_name_the_expected_columns(tmp_path: Path, header: str, missing: str | None) -> None:
    cells = ["Budi Santoso", "14/03/24 13.00.05", "14/03/24 14.05.00", "1j", "budi.s@example.org"]
    if missing is None:
        cells = [cells[0], cells[4], *cells[1:4]]
    row = "\t".join(cells)
    path = tmp_path / "teams.csv"
    path.write_text(f"1. Ringkasan\nJudul rapat\tX\n\n2. Peserta\n{header}\n{row}\n", encoding="utf-16")
    if missing is None:  # named columns in another order are read by name
        assert len(read(path)[0]) == 1
        return
    with pytest.raises(InputError) as refused:
        read(path)
    assert str(refused.value) == (
        f"teams attendance report teams.csv row 5: the participants table has no {missing} column; expected "
        "Name, First Join, Last Leave, In-Meeting Duration (then Email, Participant ID (UPN), Role), named in a "
        "language Teams writes or in this order"
    )


@pytest.mark.parametrize(
    "name", ["meet_extension_attendance_list_2024-03-12.csv", "meet_attendance_tracker_2024-03-12.csv"]
)
def test_meet_attendance_extension_csvs(name: str) -> None:
    path = DATA / name
    assert detect_format(path) == "meet"
    activities, who = read(path)
    people = by_person(activities, who)
    assert sorted(people) == ["name:budi santoso", "name:siti rahmawati"]
    assert people["name:budi santoso"].occurred_at == utc(2024, 3, 12, 2, 0)  # 09:00 WIB, date from the name
    assert people["name:budi santoso"].duration == timedelta(hours=1, minutes=2)
    assert people["name:siti rahmawati"].duration == timedelta(minutes=45)


def test_meet_refusal_names_the_expected_columns(tmp_path: Path) -> None:
    path = tmp_path / "meet_2024-03-12.csv"
    path.write_text("Full Name,First Seen,Time in Call\nBudi,,1:00:00\n", encoding="utf-8")
    with pytest.raises(InputError, match="row 2: the join time is not a date and time"):
        read(path)
    no_join = tmp_path / "absen_2024-03-12.csv"
    no_join.write_text("Name,Email,Duration\nBudi,b@example.org,45 min\n", encoding="utf-8")
    with pytest.raises(InputError) as refused:
        read(no_join)
    assert "missing column 'Time joined'; expected a name (Name, or First name and Last name)" in str(refused.value)
    assert "an attendance extension's CSV (Full Name, First Seen, Time in Call)" in str(refused.value)
