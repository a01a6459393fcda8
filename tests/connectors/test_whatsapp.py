"""WhatsApp export reader: sample exports (tests/data/community_exports), own variants (tests/data/community)."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.whatsapp import read_whatsapp
from lms_bridge.activity import Kind
from lms_bridge.errors import DateOrderError, InputError
from lms_bridge.identifiers import (
    classify_identifier,
    email_identifier,
    name_identifier,
    normalize_phone,
    strip_invisible,
    telegram_identifier,
)
from tests.fixtures.community import DATA, EXPORTS, Pseudonyms, leaked, mutate, read_all, utc

SITE = "cop-wi-7"

# Raw personal data and message text that occur in the WhatsApp inputs: none may reach an Activity.
RAW_VALUES = [
    "budi santoso",
    "siti rahmawati",
    "dewi lestari",
    "agus pratama",
    "811-0000-0101",
    "81100000101",
    "812-0000-0202",
    "81200000202",
    "selamat pagi",
    "kirkpatrick",
    "good morning",
    "terima kasih",
    "needs observation",
    "late night",
    "rubrik",
    "multi-line message",
    "caption under",
    "maps.google",
]


#: ``read(path, **options)`` -> (activities, pseudonyms).
read = partial(read_all, read_whatsapp, site=SITE)


# --- sample exports ----------------------------------------------------------------------------


def test_android_id_counts_member_messages_only() -> None:
    activities, who = read(EXPORTS / "whatsapp_android_id_24h.txt")
    # 14 lines: 5 system lines, 1 deleted message and 3 continuation lines are not messages.
    assert [who.of(a) for a in activities] == [
        "name:budi santoso",
        "phone:+6281100000101",
        "name:siti rahmawati",
        "name:budi santoso",
        "phone:+6281100000101",
    ]
    assert all(a.kind is Kind.MESSAGE_POSTED and a.source == "whatsapp" and a.site == SITE for a in activities)
    # Local WIB times (UTC+7) become UTC.
    assert [a.occurred_at for a in activities] == [
        utc(2024, 3, 12, 2, 15),
        utc(2024, 3, 12, 2, 20),
        utc(2024, 3, 12, 2, 25),
        utc(2024, 3, 13, 3, 2),
        utc(2024, 3, 13, 3, 5),
    ]
    first, media, edited, _, last = activities
    # The multi-line body (with a blank line inside) stays one message: 3 lines, 133 characters.
    assert first.extras["text_length"] == len(
        "Selamat pagi rekan WI. Topik hari ini: desain evaluasi level 3.\n"
        "Silakan tanggapi sampai pukul 12.00.\n\nReferensi: Kirkpatrick 4 level."
    )
    assert media.extras == {"identifier_kind": "phone", "text_length": 0, "media": True, "edited": False}
    assert edited.extras["edited"] is True
    assert edited.extras["text_length"] == len("Menurut saya instrumen observasi perlu rubrik.")
    assert last.extras["text_length"] == len("Setuju 👍 &amp; terima kasih")
    # The group name comes from the "Anda membuat grup" system line.
    assert {a.grouping.title for a in activities if a.grouping} == {"CoP Widyaiswara Angkatan 7"}
    assert all(a.grouping is not None and a.grouping.native_id == SITE for a in activities)
    assert all(a.object.type == "message" and a.object.native_id == a.native_id for a in activities)
    assert len({a.native_id for a in activities}) == 5


def test_ios_id_skips_the_group_system_line_and_keeps_continuations() -> None:
    activities, who = read(EXPORTS / "whatsapp_ios_id.txt")
    assert [who.of(a) for a in activities] == [
        "name:budi santoso",
        "name:dewi lestari",
        "name:dewi lestari",
        "phone:+6281200000202",
    ]
    assert [a.occurred_at for a in activities] == [
        utc(2024, 3, 12, 2, 15, 2),
        utc(2024, 3, 12, 2, 16, 10),
        utc(2024, 3, 12, 2, 17, 44),
        utc(2024, 3, 14, 13, 1, 5),
    ]
    assert activities[1].extras["media"] is True  # "\u200egambar tidak disertakan"
    assert activities[2].extras["text_length"] == len("Terima kasih materinya\nbaris kedua dari pesan yang sama")


def test_zip_export_reads_chat_txt_like_the_text_file() -> None:
    from_zip, _ = read(EXPORTS / "whatsapp_ios_id.zip")
    from_txt, _ = read(EXPORTS / "whatsapp_ios_id.txt")
    assert from_zip == from_txt


def test_android_en_us_12h_is_month_first_from_content() -> None:
    # "3/13/24" has a second component > 12, so the file is m/d even if the caller says day_first.
    for day_first in (None, True):
        activities, who = read(EXPORTS / "whatsapp_android_en_us_12h.txt", day_first=day_first)
        assert [a.occurred_at for a in activities] == [
            utc(2024, 3, 12, 2, 15),
            utc(2024, 3, 12, 2, 16),
            utc(2024, 3, 13, 5, 31),
        ]
        # The join line is a system line, "This message was deleted" is not participation.
        assert [who.of(a) for a in activities] == [
            "name:budi santoso",
            "name:budi santoso",
            "name:dewi lestari",
        ]
        assert [a.extras["media"] for a in activities] == [False, True, False]
        assert activities[2].extras["edited"] is True
        assert activities[2].extras["text_length"] == len("Level 3 needs observation")


def test_ios_en_24h_four_digit_years_and_attachment() -> None:
    activities, _ = read(EXPORTS / "whatsapp_ios_en_24h.txt")
    assert [a.occurred_at for a in activities] == [
        utc(2024, 3, 12, 2, 15, 2),
        utc(2024, 3, 12, 2, 16, 10),
        utc(2024, 3, 13, 14, 0),
    ]
    assert [a.extras["media"] for a in activities] == [False, True, False]


def test_media_key_does_not_depend_on_the_export_language() -> None:
    # The same photo, same sender, same second: "<attached: ...>" (EN) and "gambar tidak disertakan" (ID).
    english, _ = read(EXPORTS / "whatsapp_ios_en_24h.txt")
    indonesian, _ = read(EXPORTS / "whatsapp_ios_id.txt")
    assert english[1].native_id == indonesian[1].native_id


def test_dates_that_read_both_ways_in_time_order_are_refused_not_guessed() -> None:
    # 01/02/24 then 02/03/24: 1 Feb then 2 Mar, or 2 Jan then 3 Feb; both are in time order.
    with pytest.raises(DateOrderError) as refused:
        read(EXPORTS / "whatsapp_ambiguous_dates.txt")
    assert str(refused.value) == (
        "whatsapp export whatsapp_ambiguous_dates.txt: every date reads both as day/month and as month/day and "
        "the order of the messages does not tell which (line 1: 01/02/24 could be 1 February or 2 January); "
        "pass --day-first or --month-first"
    )


def test_dates_that_read_both_ways_out_of_time_order_are_refused(tmp_path: Path) -> None:
    # d/m: 3 Apr, 4 Mar; m/d: 4 Mar, 3 Apr, 2 Jan: neither order is chronological (two exports pasted together).
    path = tmp_path / "chat.txt"
    path.write_text("03/04/24 09.00 - Budi: a\n04/03/24 09.00 - Budi: b\n01/02/24 09.00 - Budi: c\n", "utf-8")
    with pytest.raises(DateOrderError, match=r"line 1: 03/04/24 could be 3 April or 4 March\)"):
        read(path)


def test_dates_whose_day_equals_their_month_need_no_order(tmp_path: Path) -> None:
    # 01/01/24 and 02/02/24 are the same dates either way: nothing to refuse.
    path = tmp_path / "chat.txt"
    path.write_text("01/01/24 09.00 - Budi: a\n02/02/24 09.00 - Budi: b\n", "utf-8")
    activities, _ = read(path, tz=ZoneInfo("UTC"))
    assert [a.occurred_at for a in activities] == [utc(2024, 1, 1, 9), utc(2024, 2, 2, 9)]


def test_ambiguous_dates_are_read_in_the_order_given() -> None:
    day_first, _ = read(EXPORTS / "whatsapp_ambiguous_dates.txt", day_first=True)
    assert [a.occurred_at for a in day_first] == [utc(2024, 2, 1, 1, 0), utc(2024, 3, 2, 2, 0)]
    month_first, _ = read(EXPORTS / "whatsapp_ambiguous_dates.txt", day_first=False)
    assert [a.occurred_at for a in month_first] == [utc(2024, 1, 2, 1, 0), utc(2024, 2, 3, 2, 0)]
    assert {a.native_id for a in day_first}.isdisjoint(a.native_id for a in month_first)


def test_time_zone_argument_sets_the_local_time() -> None:
    wita, _ = read(EXPORTS / "whatsapp_android_id_24h.txt", tz=ZoneInfo("Asia/Makassar"))
    assert wita[0].occurred_at == utc(2024, 3, 12, 1, 15)


# --- own variants ------------------------------------------------------------------------------


def test_us_12h_four_digit_years_midnight_and_noon() -> None:
    activities, who = read(DATA / "whatsapp_android_en_us_12h_4digit.txt")
    assert [a.occurred_at for a in activities] == [
        utc(2024, 3, 9, 16, 58),  # 3/9/2024 11:58 PM WIB
        utc(2024, 3, 9, 17, 5),  # 3/10/2024 12:05 AM is 00:05
        utc(2024, 3, 10, 5, 30),  # 12:30 PM is 12:30
        utc(2024, 3, 14, 6, 5),
        utc(2024, 3, 14, 6, 6),
    ]
    # A subject change holding ": " is a system line; it also names the group.
    assert who.of(activities[3]) == "name:dewi lestari"
    assert activities[0].object.title == "CoP: Analis SDM"
    photo = activities[4]
    assert photo.extras["media"] is True
    assert photo.extras["text_length"] == len("Caption under the photo")


def test_ios_en_us_12h_with_nnbsp_marks_and_pasted_headers() -> None:
    activities, who = read(DATA / "whatsapp_ios_en_us_12h.txt")
    # Two group system lines and one deleted message are skipped.
    assert [who.of(a) for a in activities] == [
        "name:dewi lestari",
        "name:dewi lestari",
        "name:budi santoso",
        "name:dewi lestari",
        "name:agus pratama",  # "~ Agus Pratama": an unsaved member's push name
        "name:budi santoso",
    ]
    assert activities[0].occurred_at == utc(2024, 3, 14, 6, 5, 33)
    assert activities[2].extras["media"] is True  # "\u200eimage omitted"
    assert activities[3].extras["edited"] is True
    assert activities[4].extras["text_length"] == len("Multi-line message\nsecond line")
    # Lines in another header layout inside a body stay in that body.
    assert activities[5].occurred_at == utc(2024, 3, 15, 2, 0)
    assert activities[5].extras["text_length"] == len(
        "Quoting an Android export:\n"
        "[12/03/24, 09.15.02] Budi Santoso: a pasted header in another layout stays in the body\n"
        "12/03/24 09.15 - Budi Santoso: and so does this one"
    )
    # No group name in this file: the group sender of system lines is never used as a title.
    assert all(a.object.title is None for a in activities)


def test_indonesian_system_lines_with_colons_are_not_messages() -> None:
    activities, who = read(DATA / "whatsapp_android_id_system_colon.txt")
    assert [who.of(a) for a in activities] == [
        "name:budi santoso",
        "phone:+6281100000101",
        "name:siti rahmawati",
    ]
    # "Anda yang membuat grup", a subject change, a description change, adds, joins, two deleted
    # messages and a leave: none of them counts.
    agenda, location, thanks = activities
    # A continuation line that starts with a date stays in the body.
    assert agenda.extras["text_length"] == len("Agenda: diskusi rubrik observasi\n13/02/24 rapat lanjutan di aula")
    assert location.extras["media"] is True
    assert thanks.occurred_at == utc(2024, 2, 13, 3, 0)
    # The last name given to the group is its title.
    assert agenda.grouping is not None and agenda.grouping.title == "CoP WI: Evaluasi"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[2018/06/13, 21:25:15] Budi Santoso: halo", utc(2018, 6, 13, 14, 25, 15)),
        ("13.06.18 21.25.15: Budi Santoso: halo", utc(2018, 6, 13, 14, 25, 15)),
        ("3/6/2018 1:55 p.\u00a0m. - Budi Santoso: halo", utc(2018, 6, 3, 6, 55)),
        ("20/06/20, 00:08 - Budi Santoso: halo", utc(2020, 6, 19, 17, 8)),
        ("\u200f[8/16/26, 2:10:50\u2009PM] Budi Santoso: halo", utc(2026, 8, 16, 7, 10, 50)),
    ],
)
def test_other_header_layouts(tmp_path: Path, line: str, expected: datetime) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(line + "\n", encoding="utf-8")
    activities, who = read(path, day_first=True)  # "3/6/2018" alone cannot show its order: Spanish is d/m
    assert [a.occurred_at for a in activities] == [expected]
    assert who.of(activities[0]) == "name:budi santoso"


def test_identical_messages_get_distinct_stable_keys(tmp_path: Path) -> None:
    once = tmp_path / "once.txt"
    once.write_text("12/03/24 09.15 - Budi Santoso: ok\n", encoding="utf-8")
    thrice = tmp_path / "thrice.txt"
    thrice.write_text("12/03/24 09.15 - Budi Santoso: ok\n" * 3, encoding="utf-8")
    [single], _ = read(once, day_first=True)
    repeated, _ = read(thrice, day_first=True)
    assert len({a.native_id for a in repeated}) == 3
    # The first occurrence keeps the plain key; only the 2nd and later get a counter.
    assert repeated[0].native_id == single.native_id
    assert read(thrice, day_first=True)[0] == repeated


def test_overlapping_later_export_gives_the_same_keys(tmp_path: Path) -> None:
    lines = (EXPORTS / "whatsapp_android_id_24h.txt").read_text(encoding="utf-8-sig").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("12/03/24 09.15"))
    later = tmp_path / "later.txt"
    later.write_text(
        "\n".join(lines[start:] + ["14/03/24 07.00 - Siti Rahmawati: Pesan baru di ekspor berikutnya"]) + "\n",
        encoding="utf-8",
    )
    first, _ = read(EXPORTS / "whatsapp_android_id_24h.txt")
    second, _ = read(later)
    assert [a.native_id for a in second[: len(first)]] == [a.native_id for a in first]
    assert len(second) == len(first) + 1


def test_overlapping_generated_exports_share_keys_for_shared_messages(tmp_path: Path) -> None:
    lines = generated_export(600)
    first = tmp_path / "first.txt"
    first.write_text("\n".join(lines[:400]) + "\n", encoding="utf-8")
    second = tmp_path / "second.txt"
    second.write_text("\n".join(lines[200:]) + "\n", encoding="utf-8")
    old, _ = read(first)
    new, _ = read(second)
    old_keys = {a.native_id for a in old}
    new_keys = {a.native_id for a in new}
    shared = old_keys & new_keys
    assert len(shared) == len([line for line in lines[200:400] if " - " in line])
    assert len(old_keys | new_keys) == len(read(_write(tmp_path / "all.txt", lines))[0])


def test_rereading_gives_equal_activities() -> None:
    assert read(EXPORTS / "whatsapp_android_id_24h.txt")[0] == read(EXPORTS / "whatsapp_android_id_24h.txt")[0]


# --- errors: one InputError naming the file and line, nothing yielded ---------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "not_whatsapp.txt",
            "whatsapp export not_whatsapp.txt line 1: text before the first message header; nothing was imported",
        ),
        ("whatsapp_latin1.txt", "whatsapp export whatsapp_latin1.txt line 2: not UTF-8 text"),
        ("whatsapp_truncated.txt", "whatsapp export whatsapp_truncated.txt line 1: not UTF-8 text"),
        (
            "whatsapp_mixed_order.txt",
            "whatsapp export whatsapp_mixed_order.txt line 3: the date order contradicts",
        ),
    ],
)
def test_malformed_files_raise_input_error(name: str, message: str) -> None:
    with pytest.raises(InputError) as error:
        read(DATA / name)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: not a WhatsApp chat export"),
        ("\n\nhello\n", "line 3: not a WhatsApp chat export"),
        ("12/03/24 09.15 - Budi: a\n31/02/24 09.16 - Budi: b\n", "line 2: invalid date or time"),
        ("3/12/24, 13:05 PM - Budi: a\n", "line 1: hour 13 is not valid on a 12-hour clock"),
        ("12/03/24 25.15 - Budi: a\n", "line 1: invalid date or time"),
        # found by fuzzing: a year first and a 4-digit "day" once crashed the header scan
        ("[1992/03/2024, 09:15:02] Budi: a\n", "line 1: invalid date or time"),
    ],
)
def test_bad_headers_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read(path)


def test_a_bad_line_at_the_end_yields_nothing(tmp_path: Path) -> None:
    lines = [*generated_export(50), "30/02/24 09.00 - Budi Santoso: salah"]
    path = _write(tmp_path / "chat.txt", lines)
    activities = read_whatsapp(path, site=SITE, pseudonymize=Pseudonyms())
    with pytest.raises(InputError, match=f"chat.txt line {len(lines)}: invalid date"):
        next(activities)


def test_a_last_line_without_a_line_feed_ends_the_message_before_it(tmp_path: Path) -> None:
    # The second pass reads an unterminated last line as a chunk of its own: the message before
    # it must end at the line feed before that header, as when the file ends with one.
    path = tmp_path / "chat.txt"
    path.write_text("13/03/24 09.15 - Budi: halo\nlanjut\n13/03/24 09.16 - Siti: ok", encoding="utf-8")
    activities, _ = read(path)
    assert [a.extras["text_length"] for a in activities] == [len("halo\nlanjut"), len("ok")]


def test_zip_problems(tmp_path: Path) -> None:
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("photo.jpg", b"\xff\xd8")
    with pytest.raises(InputError, match="no chat .txt"):
        read(empty)
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.txt", "12/03/24 09.15 - Budi: a\n")
        archive.writestr("b.txt", "12/03/24 09.15 - Budi: b\n")
    with pytest.raises(InputError, match="2 .txt files"):
        read(two)
    broken = tmp_path / "broken.zip"
    broken.write_bytes((EXPORTS / "whatsapp_ios_id.zip").read_bytes()[:200])
    with pytest.raises(InputError, match="broken.zip"):
        read(broken)
    one = tmp_path / "Chat WhatsApp dengan CoP.zip"
    with zipfile.ZipFile(one, "w") as archive:
        archive.writestr("Chat WhatsApp dengan CoP.txt", "12/03/24 09.15 - Budi: a\n")
    assert len(read(one, day_first=True)[0]) == 1


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothing.txt: cannot be read"):
        read(tmp_path / "nothing.txt")


# --- privacy -----------------------------------------------------------------------------------


def all_inputs() -> list[Path]:
    return sorted(EXPORTS.glob("whatsapp_*")) + [
        path
        for path in sorted(DATA.glob("whatsapp_*"))
        if "latin1" not in path.name and "mixed" not in path.name and "truncated" not in path.name
    ]


def test_no_phone_name_or_text_in_any_activity() -> None:
    allowed_extras = {"identifier_kind", "text_length", "media", "edited"}
    count = 0
    for path in all_inputs():
        for activity in read(path, day_first=True)[0]:  # day/month when the file cannot tell
            count += 1
            found = leaked(activity, RAW_VALUES)
            assert not found, f"{path.name}: {found}"
            assert set(activity.extras) <= allowed_extras
    assert count > 20


# --- scale -------------------------------------------------------------------------------------


def generated_export(count: int) -> list[str]:
    """An Android ID export: count messages from 50 members, some multi-line, some media."""
    authors = ["Budi Santoso", "\u202a+62 811-0000-0101\u202c", "~\u202fAgus"] + [f"Anggota {i}" for i in range(47)]
    lines = []
    for i in range(count):
        day, minute = divmod(i // 3, 24 * 60)
        date = f"{1 + day % 28:02d}/{1 + (day // 28) % 12:02d}/{24 + day // 336}"
        stamp = f"{date} {minute // 60:02d}.{minute % 60:02d}"
        body = "<Media tidak disertakan>" if i % 7 == 0 else f"Diskusi evaluasi level 3 ke-{i} 👍"
        lines.append(f"{stamp} - {authors[i % len(authors)]}: {body}")
        if i % 11 == 0:
            lines.append("baris lanjutan")
    return lines


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_40000_message_export_is_read_whole(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.txt", generated_export(40_000))
    activities, who = read(path, day_first=True)  # its dates (01/01/24 to 10/01/24) read both ways in order
    assert len(activities) == 40_000
    assert len({a.native_id for a in activities}) == 40_000
    assert len(who.seen) == 50
    assert sum(1 for a in activities if a.extras["media"]) == len(range(0, 40_000, 7))


# --- property tests: nothing but InputError escapes -------------------------------------------

HEADER_PIECES = [
    "12/03/24 09.15 - ",
    "3/13/24, 1:05\u202fPM - ",
    "[12/03/24, 09.15.02] ",
    "\u200e[3/14/24, 1:00:00 PM] ",
    "13/13/24 09.15 - ",
    "00/00/0000 99.99 - ",
    "[2018/06/13, 21:25:15] ",
    "Budi: ",
    "Budi Santoso",
    ": ",
    "\n",
    "\u202a+62 811-0000-0101\u202c",
    "<Media omitted>",
    "Pesan ini dihapus",
    " <Pesan ini diedit>",
    "\u200e",
    'Anda membuat grup "X: Y"',
    "\ufeff",
    "\r\n",
    "12:00 AM",
    "\x00",
    "~ ",
    "null",
    "POLL:",
    "<attached: a>",
]


def _only_input_error(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        activities = list(read_whatsapp(path, site=SITE, pseudonymize=Pseudonyms()))
    except InputError:
        return
    for activity in activities:
        assert activity.occurred_at.tzinfo is not None


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    return mutate(data, draw, st.binary(min_size=1, max_size=8))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_input_error(scratch: Path, data: bytes) -> None:
    _only_input_error(scratch / "bytes.txt", data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.sampled_from(HEADER_PIECES) | st.text(max_size=6), max_size=40))
def test_chat_like_text_raises_only_input_error(scratch: Path, pieces: list[str]) -> None:
    _only_input_error(scratch / "pieces.txt", "".join(pieces).encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_fixtures_raise_only_input_error(scratch: Path, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(sorted(EXPORTS.glob("whatsapp_*")) + sorted(DATA.glob("whatsapp_*"))))
    mutated = _mutate(source.read_bytes(), data.draw)
    _only_input_error(scratch / ("mutated" + source.suffix), mutated)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_chat_inside_a_zip_raises_only_input_error(scratch: Path, data: st.DataObject) -> None:
    text = (EXPORTS / "whatsapp_ios_id.txt").read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("_chat.txt", _mutate(text, data.draw))
    _only_input_error(scratch / "mutated.zip", buffer.getvalue())


# --- identifiers (lms_bridge/identifiers.py) -----------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "0812-0000-1234",
        "62812 0000 1234",
        "+62 812-0000-1234",
        "\u202a+62 812-0000-1234\u202c",
        "+62 (0)812 0000 1234",
        "812 0000 1234",
        "0062 812 0000 1234",
    ],
)
def test_indonesian_numbers_normalise_to_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+6281200001234"
    assert classify_identifier(raw) == ("phone", "phone:+6281200001234")


@pytest.mark.parametrize("raw", ["", "+", "12", "Budi", "+62 abc", "1234567890123456789"])
def test_non_numbers_are_not_phones(raw: str) -> None:
    assert normalize_phone(raw) is None


def test_identifier_helpers() -> None:
    assert normalize_phone("+1 555 0100 200") == "+15550100200"
    assert email_identifier("  Budi.S@Example.ORG ") == "email:budi.s@example.org"
    assert email_identifier("not an email") is None
    assert email_identifier("a@b@c") is None
    assert telegram_identifier("user100000001") == "telegram:user100000001"
    assert telegram_identifier(100000001) == "telegram:user100000001"
    assert telegram_identifier("channel1000000002") is None
    assert name_identifier("  Budi\u00a0\u202aSANTOSO\u202c  ") == "name:budi santoso"
    assert name_identifier("Ｂｕｄｉ  Santoso") == "name:budi santoso"  # NFKC folds full-width letters
    assert name_identifier("\u200e\u202a\u202c") is None
    assert strip_invisible("\ufeff\u200eA\u2066B\u2069") == "AB"
    assert classify_identifier("Budi.S@example.org") == ("email", "email:budi.s@example.org")
    assert classify_identifier("Budi Santoso") == ("name", "name:budi santoso")
    assert classify_identifier("Anggota 2") == ("name", "name:anggota 2")
