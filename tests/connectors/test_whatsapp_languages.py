"""WhatsApp exports in the app's other languages: placeholders, notices and senders recognised positively.

The rule under test (connectors/whatsapp.py, connectors/whatsapp_strings.toml): a line
``Sender: body`` is a member's message unless its body is a known placeholder; a media
placeholder is a message (media), a deleted placeholder and a call log are not.
"""

from __future__ import annotations

import zipfile
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.whatsapp import UNNAMED_MEMBER, _parse_file, read_whatsapp
from connectors.whatsapp_strings import LANGUAGES
from lms_bridge.errors import InputError
from tests.fixtures.community import DATA, Pseudonyms, read_all, utc

UTC_ZONE = ZoneInfo("UTC")

SITE = "cop-wi-7"
# The exports below are written in day/month layouts and most hold one day (12/03/24), whose order the file
# cannot show: they are read day first as the operator would ask (--day-first); day_first=None lets the file decide.
read = partial(read_all, read_whatsapp, site=SITE, day_first=True)
LRM, RLM, NNBSP = "\u200e", "\u200f", "\u202f"

# The header layout each language's phones write (Android "date time - ", iOS "[date time] "),
# in layouts that carry no 12-hour marker of their own language. Both are 12 March 2024, 09:MM.
HEADERS: dict[str, tuple[str, str]] = {
    "en": ("3/12/24, 9:{m}\u202fAM - ", "[3/12/24, 9:{m}:00\u202fAM] "),
    "id": ("12/03/24 09.{m} - ", "[12/03/24, 09.{m}.00] "),
    "id-variants": ("12/03/24 09.{m} - ", "[12/03/24 09.{m}.00] "),
    "ms": ("12/03/2024, 09:{m} - ", "[12/03/2024, 09:{m}:00] "),
    "de": ("12.03.24, 09:{m} - ", "[12.03.24, 09:{m}:00] "),
    "nl": ("12-03-2024 09:{m} - ", "[12-03-2024 09:{m}:00] "),
    "fr": ("12/03/2024 09:{m} - ", "[12/03/2024 09:{m}:00] "),
    "es": ("12/3/24, 9:{m} - ", "[12/3/24, 9:{m}:00] "),
    "pt-BR": ("12/03/2024 09:{m} - ", "[12/03/2024 09:{m}:00] "),
    "pt-PT": ("12/03/24, 09:{m} - ", "[12/03/24, 09:{m}:00] "),
    "it": ("12/03/24, 09:{m} - ", "[12/03/24, 09:{m}:00] "),
    "ru": ("12.03.2024, 09:{m} - ", "[12.03.2024, 09:{m}:00] "),
    "uk": ("12.03.24, 09:{m} - ", "[12.03.24, 09:{m}:00] "),
    "cs": ("12.03.24 9:{m} - ", "[12.03.24 9:{m}:00] "),
    "pl": ("12.03.2024, 09:{m} - ", "[12.03.2024, 09:{m}:00] "),
    "tr": ("12.03.2024 09:{m} - ", "[12.03.2024 09:{m}:00] "),
    "ar": ("12/3/24 9:{m} - ", "[12/3/24 9:{m}:00] "),
    "hi": ("12/3/24, 9:{m} am - ", "[12/3/24, 9:{m}:00 AM] "),
    "th": ("12/3/24 09:{m} - ", "[12/3/24 09:{m}:00] "),
    "vi": ("12/3/24 09:{m} - ", "[12/3/24 09:{m}:00] "),
    "ja": ("2024/03/12 9:{m} - ", "[2024/03/12 9:{m}:00] "),
    "zh": ("2024/3/12 09:{m} - ", "[2024/3/12 09:{m}:00] "),
    "ko": ("2024/3/12 09:{m} - ", "[2024/3/12 09:{m}:00] "),
    "fi": ("12.3.2024 9.{m} - ", "[12.3.2024 9.{m}.00] "),
    "hu": ("2024/03/12 09:{m} - ", "[2024/03/12 09:{m}:00] "),
}


def test_every_language_of_the_tables_has_a_test_layout() -> None:
    assert set(HEADERS) == set(LANGUAGES)
    assert len(LANGUAGES) >= 25


def _banner(language: str) -> str:
    notices = LANGUAGES[language]["notices"] or LANGUAGES["id"]["notices"]
    return notices[0]


class _Export:
    """Lines of a generated export and how many member and media messages they hold."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []  # (sender, body); a marked body starts with a mark
        self.members = 0
        self.media = 0

    def add(self, sender: str, body: str, *, member: bool = True, media: bool = False) -> None:
        self.lines.append((sender, body))
        self.members += member
        self.media += media


def _ios_export(language: str) -> tuple[str, int, int]:
    """An iOS group export in ``language``: its text, member messages and media messages in it."""
    table = LANGUAGES[language]
    _, ios = HEADERS[language]
    export = _Export()
    export.add("CoP Widyaiswara", LRM + _banner(language) + ".", member=False)
    export.add("Budi Santoso", "Selamat pagi semua")
    for placeholder in table["media"]:
        if not placeholder.startswith("<"):  # iOS writes the marked forms; "<...>" ones are Android's
            export.add("Budi Santoso", LRM + placeholder, media=True)
    for word in table["attachment"]:
        export.add("Dewi Lestari", f"{LRM}<{word}: 00000012-PHOTO-2024-03-12-09-15-02.jpg>", media=True)
    for word in table["location"][:1]:
        export.add("Dewi Lestari", f"{LRM}{word}: https://maps.google.com/?q=-6.2,106.8", media=True)
    for placeholder in table["deleted"]:
        export.add("Dewi Lestari", LRM + placeholder + ".", member=False)
    for call in table["calls"]:
        export.add("Agus Pratama", f"{LRM}{call}, {LRM}Tap to call back", member=False)
    # A notice under the group's name in wording no table lists, and the member lines that
    # start with a mark: an Arabic-script greeting, WhatsApp's invite-link message.
    export.add("CoP Widyaiswara", LRM + "Budi Santoso \u27e8unlisted notice wording\u27e9 Siti", member=False)
    export.add("Siti Rahmawati", RLM + "السلام عليكم ورحمة الله")
    export.add("Siti Rahmawati", LRM + "Follow this link to join my WhatsApp group: https://chat.whatsapp.com/Ab12")
    export.add(f"~{NNBSP}Rina", "ok")
    text = "".join(
        (LRM if body.startswith(LRM) else "") + ios.format(m=f"{minute:02d}") + f"{sender}: {body}\n"
        for minute, (sender, body) in enumerate(export.lines)
    )
    return text, export.members, export.media


def _android_export(language: str) -> tuple[str, int, int]:
    """An Android group export in ``language``: its text, member messages and media messages in it."""
    table = LANGUAGES[language]
    android, _ = HEADERS[language]
    export = _Export()
    export.add("Budi Santoso", "Selamat pagi semua")
    for placeholder in table["media"]:
        if placeholder.startswith("<"):
            export.add("Budi Santoso", placeholder, media=True)
    for word in table["file_attached"]:
        export.add("Dewi Lestari", f"IMG-20240312-WA0001.jpg ({word})\nketerangan foto", media=True)
    for placeholder in table["deleted"]:
        export.add("Dewi Lestari", placeholder, member=False)
    export.add("Siti Rahmawati", f"{RLM}السلام عليكم")
    text = "".join(
        android.format(m=f"{minute:02d}") + f"{sender}: {body}\n" for minute, (sender, body) in enumerate(export.lines)
    )
    return text, export.members, export.media


@pytest.mark.parametrize("language", sorted(HEADERS))
def test_ios_placeholders_notices_and_calls(tmp_path: Path, language: str) -> None:
    text, members, media = _ios_export(language)
    path = tmp_path / "_chat.txt"
    path.write_text(text, encoding="utf-8")
    activities, who = read(path)
    assert len(activities) == members, language
    assert sum(1 for a in activities if a.extras["media"]) == media
    # The group's own name never becomes a member; the "~ Rina" sender is Rina.
    actors = {who.of(a) for a in activities}
    assert "name:cop widyaiswara" not in actors
    assert "name:rina" in actors


@pytest.mark.parametrize("language", sorted(HEADERS))
def test_android_media_file_attached_and_deleted(tmp_path: Path, language: str) -> None:
    text, members, media = _android_export(language)
    path = tmp_path / "chat.txt"
    path.write_text(text, encoding="utf-8")
    activities, _ = read(path)
    assert len(activities) == members, language
    assert sum(1 for a in activities if a.extras["media"]) == media
    captioned = [a for a in activities if a.extras["media"] and a.extras["text_length"]]
    assert len(captioned) == len(LANGUAGES[language]["file_attached"])


def test_a_german_ios_chat_keeps_all_its_messages() -> None:
    """20 lines, 2 of them notices, 1 deleted, 1 call log: 16 messages, 9 of them media."""
    activities, who = read(DATA / "whatsapp_ios_de.txt")
    assert len(activities) == 16
    assert sum(1 for a in activities if a.extras["media"]) == 9
    assert sorted({who.of(a) for a in activities}) == [
        "name:anna weber",
        "name:jonas becker",
        "name:lena",
        "name:lukas",
    ]


def test_senders_without_a_name_are_counted_under_one_placeholder() -> None:
    """An empty or lone-"~" sender is a member whose push name the export left out.

    Counting them keeps the community's message count right; one placeholder identity
    (not one per line) avoids inventing people. The file has 3 unnamed messages.
    """
    activities, who = read(DATA / "whatsapp_ios_id_unnamed.txt")
    unnamed = [a for a in activities if who.of(a) == UNNAMED_MEMBER]
    assert len(unnamed) == 3
    assert len(activities) == 6


def test_android_notice_with_a_quoted_colon_in_another_language(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(
        "12.03.24, 09:00 - Budi hat den Betreff zu \u201eCoP: Evaluasi\u201c geändert\n"
        '12.03.24, 09:01 - Budi "Bud" Santoso: Hallo\n',
        encoding="utf-8",
    )
    activities, who = read(path)
    assert [who.of(a) for a in activities] == ['name:budi "bud" santoso']


# --- property: a member line is never dropped, whatever its first character ----------------------

_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.characters(blacklist_categories=("Cs",), blacklist_characters=_LINE_BREAKS),
    where=st.sampled_from(["body", "sender"]),
    layout=st.sampled_from(["ios", "android", "ios-marked"]),
    rest=st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=_LINE_BREAKS), max_size=12),
)
def test_a_member_line_is_never_dropped_whatever_its_first_character(
    scratch: Path, first: str, where: str, layout: str, rest: str
) -> None:
    """Whatever character a member's name or text starts with (a mark, a quote, "~", "<", a digit...)
    and whatever follows it, the line is one member message, on iOS (also behind the U+200E
    iOS puts before media and notices) and on Android."""
    text = first + "rapat jam 10 ya " + rest
    sender, body = ("Budi Santoso", text) if where == "body" else (first + "Budi" + rest.replace(": ", " "), "rapat")
    header = {
        "ios": "[12/03/24, 09.01.00] ",
        "android": "12/03/24 09.01 - ",
        "ios-marked": "\u200e[12/03/24, 09.01.00] ",
    }[layout]
    mark = "\u200e" if layout == "ios-marked" else ""
    banner = (
        "12/03/24 09.00 - Messages and calls are end-to-end encrypted.\n"
        if layout == "android"
        else "\u200e[12/03/24, 09.00.00] CoP WI: \u200eMessages and calls are end-to-end encrypted.\n"
    )
    lines = [banner, f"{header}{sender}: {mark}{body}\n"]
    path = scratch / "_chat.txt"
    path.write_text("".join(lines), encoding="utf-8")
    activities, _ = read(path)
    assert len(activities) == 1
    assert activities[0].extras["media"] is False


# --- layouts ----------------------------------------------------------------------------------------

LAYOUTS = [
    # hour 0 on a 12-hour clock, anywhere in the file (Android en, es)
    ("hour 0 PM", "3/13/24, 0:51\u202fPM - Budi: halo", (2024, 3, 13, 12, 51)),
    ("hour 00 a. m.", "13/3/2024, 00:08\u00a0a.\u00a0m. - Budi: hola", (2024, 3, 13, 0, 8)),
    ("French à", "12/03/2024 à 09:05 - Budi: salut", (2024, 3, 12, 9, 5)),
    ("Finnish klo", "[12.3.2024 klo 9.05.00] Budi: moi", (2024, 3, 12, 9, 5)),
    ("Hungarian year. month. day.", "[2018. 06. 13. 9:05:00] Budi: szia", (2018, 6, 13, 9, 5)),
    ("Czech/Hungarian Android", "2018. 6. 13. 9:05 - Budi: ahoj", (2018, 6, 13, 9, 5)),
    ("Korean 오후", "2024. 3. 12. 오후 9:05 - Budi: 안녕", (2024, 3, 12, 21, 5)),
    (
        "Arabic-Indic digits with RLM",
        "\u0661\u0662\u200f/\u0663\u200f/\u0662\u0660\u0662\u0664\u060c \u0669:\u0660\u0665 \u0645 - Budi: مرحبا",
        (2024, 3, 12, 21, 5),
    ),
    ("Vietnamese iOS time first", "[09:05:00, 12/3/2024] Budi: xin chào", (2024, 3, 12, 9, 5)),
    ("Vietnamese Android time first", "09:05, 12/3/2024 - Budi: xin chào", (2024, 3, 12, 9, 5)),
    ("Buddhist era", "[12/3/2567 09:05:00] Budi: สวัสดี", (2024, 3, 12, 9, 5)),
    ("Japanese era R", "[R6/03/12 9:05:00] Budi: こんにちは", (2024, 3, 12, 9, 5)),
    ("Japanese era 令和", "[令和6/03/12 9:05:00] Budi: こんにちは", (2024, 3, 12, 9, 5)),
    ("Chinese 下午", "[2024/3/12 下午9:05:00] Budi: 你好", (2024, 3, 12, 21, 5)),
    ("Japanese 午前", "2024/03/12 午前9:05 - Budi: こんにちは", (2024, 3, 12, 9, 5)),
    ("in the morning", "12/03/2024, 9:05 in the morning - Budi: hello", (2024, 3, 12, 9, 5)),
    ("in the evening", "12/03/2024, 9:05 in the evening - Budi: hello", (2024, 3, 12, 21, 5)),
    ("BOM inside the first bracket", "[\ufeff12/03/24, 09.05.00] Budi: halo", (2024, 3, 12, 9, 5)),
    ("pre-2015 iOS", "12/03/2014 09:05:00: Budi: halo", (2014, 3, 12, 9, 5)),
    ("pre-2015 Android", "12/03/2014, 09:05 - Budi: halo", (2014, 3, 12, 9, 5)),
]


@pytest.mark.parametrize(("layout", "line", "local"), LAYOUTS, ids=[layout for layout, _, _ in LAYOUTS])
def test_header_layouts(tmp_path: Path, layout: str, line: str, local: tuple[int, int, int, int, int]) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(line + "\ncontinuation line\n", encoding="utf-8")
    activities, who = read(path, tz=UTC_ZONE)
    assert [a.occurred_at for a in activities] == [utc(*local)], layout
    assert who.of(activities[0]) == "name:budi"
    assert activities[0].extras["text_length"] > len("continuation line")


def test_day_month_is_decided_from_chronology(tmp_path: Path) -> None:
    """Every date reads both ways, but only month/day keeps the export in time order."""
    path = tmp_path / "chat.txt"
    path.write_text("03/04/24 09.00 - Budi: a\n03/05/24 09.00 - Budi: b\n04/01/24 09.00 - Budi: c\n", encoding="utf-8")
    activities, _ = read(path, tz=UTC_ZONE, day_first=None)
    assert [a.occurred_at for a in activities] == [utc(2024, 3, 4, 9), utc(2024, 3, 5, 9), utc(2024, 4, 1, 9)]
    forced, _ = read(path, tz=UTC_ZONE, day_first=True)
    assert forced[0].occurred_at == utc(2024, 4, 3, 9)


def test_a_header_layout_switch_mid_file_keeps_every_message(tmp_path: Path) -> None:
    """4 messages in the Android Indonesian layout, then 6 in the iOS English 12-hour one."""
    first = [f"12/03/24 09.0{i} - Budi: pesan {i}" for i in range(4)]
    then = [f"[3/13/24, 9:0{i}:00\u202fAM] Siti: message {i}" for i in range(6)]
    path = tmp_path / "chat.txt"
    path.write_text("\n".join(first + then) + "\n", encoding="utf-8")
    activities, who = read(path, tz=UTC_ZONE)
    assert len(activities) == 10
    assert [who.of(a) for a in activities] == ["name:budi"] * 4 + ["name:siti"] * 6
    assert activities[-1].occurred_at == utc(2024, 3, 13, 9, 5)
    assert all(a.extras["text_length"] <= len("message 0") for a in activities)


def _with_bad_lines(tmp_path: Path) -> Path:
    lines = [
        "Notulen rapat CoP (ditempel sebelum ekspor)",
        "12/03/24 09.00 - Budi: a",
        "31/02/24 09.01 - Budi: tanggal mustahil",
        "12/03/24 09.02 - Siti: b",
        "12/03/24 25.03 - Siti: jam mustahil",
        "lanjutan baris jam mustahil",
        "12/03/24 09.04 - Budi: c",
    ]
    path = tmp_path / "chat.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_unreadable_lines_are_refused_by_default_naming_the_first_and_the_count(tmp_path: Path) -> None:
    with pytest.raises(InputError) as refused:
        read(_with_bad_lines(tmp_path))
    message = str(refused.value)
    assert message.startswith("whatsapp export chat.txt line 1: text before the first message header")
    assert "(and 2 more unreadable lines)" in message and "--skip-unreadable" in message


def test_skip_unreadable_imports_the_rest_and_lists_the_lines(tmp_path: Path) -> None:
    skipped: list[int] = []
    activities = _parse_file(
        _with_bad_lines(tmp_path),
        site=SITE,
        pseudonymize=Pseudonyms(),
        tz=UTC_ZONE,
        day_first=None,
        skip_unreadable=True,
        skipped_lines=skipped,
    )
    assert len(activities) == 3
    assert skipped == [1, 3, 5]


def test_the_message_cap_is_a_clear_refusal(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text("".join(f"12/03/24 09.{i:02d} - Budi: {i}\n" for i in range(6)), encoding="utf-8")
    with pytest.raises(InputError, match=r"chat.txt line 6: more than 5 messages in one file .*--max-messages"):
        _parse_file(path, site=SITE, pseudonymize=Pseudonyms(), tz=UTC_ZONE, day_first=None, max_messages=5)
    assert len(_parse_file(path, site=SITE, pseudonymize=Pseudonyms(), tz=UTC_ZONE, day_first=True)) == 6


# --- zips -------------------------------------------------------------------------------------------


def test_an_android_zip_with_a_shared_txt_document_reads_the_chat(tmp_path: Path) -> None:
    path = tmp_path / "WhatsApp Chat with CoP.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Notulen rapat.txt", "Notulen rapat CoP\n1. Pembukaan\n")
        archive.writestr("WhatsApp Chat with CoP.txt", "12/03/24 09.15 - Budi: a\n12/03/24 09.16 - Budi: b\n")
        archive.writestr("IMG-20240312-WA0001.jpg", b"\xff\xd8")
    assert len(read(path)[0]) == 2


@pytest.mark.parametrize(
    ("without_media", "with_media"),
    [
        (
            "Materi.pdf \u2022 \u200e12 pages \u200edocument omitted",
            "Materi.pdf \u2022 \u200e12 pages \u200e<attached: 00000005-Materi.pdf>",
        ),
        (
            "Materi.pdf \u2022 \u200e12 Seiten \u200eDokument weggelassen",
            "Materi.pdf \u2022 \u200e12 Seiten \u200e<Anhang: 00000005-Materi.pdf>",
        ),
        ("\u200eimage omitted", "\u200e<attached: 00000006-PHOTO-2024-03-12-09-15-02.jpg>"),
    ],
)
def test_ios_exports_with_and_without_media_key_documents_alike(
    tmp_path: Path, without_media: str, with_media: str
) -> None:
    keys = []
    for name, body in (("without.txt", without_media), ("with.txt", with_media)):
        path = tmp_path / name
        mark = "\u200e" if body.startswith("\u200e") else ""
        path.write_text(f"{mark}[12/03/24, 09.15.02] Budi Santoso: {body}\n", encoding="utf-8")
        [activity], _ = read(path)
        assert activity.extras["media"] is True
        keys.append(activity.native_id)
    assert keys[0] == keys[1]


@pytest.mark.parametrize("line", ["Mar 12, 2014, 9:05 PM - Budi: hi", "12 Mar 2014 09:05 - Budi: hi"])
def test_a_month_name_layout_is_refused_by_its_layout(tmp_path: Path, line: str) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"chat.txt line 1: a message header with the month as a word"):
        read(path)
