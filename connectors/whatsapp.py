"""Read a WhatsApp "Export chat" file (``.txt`` or ``.zip``) into chat-message activities.

WhatsApp publishes no format. The layouts handled here are those of docs/domain.md
§2a: Android and iOS, 12h and 24h clocks, 2- and 4-digit years, ``.`` or ``:``
time separators, bracketed iOS headers, and the other app languages' layouts
(:mod:`connectors.whatsapp_layouts`), with the invisible marks listed there.

What counts as participation: a line ``Sender: body`` is a member's message unless
its body is a placeholder WhatsApp writes, listed per app language as data
(:mod:`connectors.whatsapp_strings`). A media placeholder is a message
(``extras["media"] = True``). System lines (joins, adds, leaves, group created,
subject changes, the encryption banner), call logs and deleted messages are not
participation and are skipped. An edited message counts once, with its edit
marker stripped before keying (``extras["edited"] = True``).

Privacy (docs/domain.md §3b): the author is normalised (``phone:+62...`` or
``name:...``, see :mod:`lms_bridge.identifiers`) and passed to the caller's
pseudonymiser at once. No author, phone number or message text is put in an
Activity: only the pseudonym, the body's length and the media/edited flags.
A group name found in the file ("created group", "changed the subject") is used
as a title; the file name is not, because for a 1:1 chat it holds a person's name.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors import whatsapp_layouts, whatsapp_strings
from connectors.base import Pseudonymizer, ReadStats, gc_paused
from connectors.file_format import (
    NO,
    TEXT_SHAPE,
    ZIP,
    FileContents,
    FileFormat,
    ReadRequest,
    Sample,
    decode_text,
    numbered,
    read_capped,
    read_zip_member,
)
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.errors import DateOrderError, InputError
from lms_bridge.identifiers import classify_identifier, strip_invisible

SOURCE = "whatsapp"
#: The most messages one file may hold unless the operator raises it (``--max-messages``): a real
#: group export holds at most about 40,000 (docs/domain.md §2a rule 7).
MAX_MESSAGES = 1_000_000
#: The default time zone of header times (WIB); pass the phone's zone for WITA/WIT groups.
JAKARTA = ZoneInfo("Asia/Jakarta")

# An export is capped at about 40,000 messages (docs/domain.md §2a rule 7), a few MB.
# Refuse anything far larger instead of reading it into memory (a zip bomb, a wrong file).
_MAX_BYTES = 256 * 1024 * 1024

# Rule 1 and 5: a header may be preceded by LRM/RLM (iOS system and media lines), and a
# BOM may precede line 1 (also seen mid-file when exports were concatenated).
_LEADING_MARKS = "\u200e\u200f\ufeff"

# One regex for every header layout of docs/domain.md §2a:
#   Android  "30/08/25 18.00 - "  "8/21/21, 11:06 PM - "  "3/6/2018 1:55 p. m. - "
#   iOS      "[28/04/26, 16.31.34] "  "[14/10/2021, 3:34:09 PM] "  "[2018/06/13, 21:25:15] "
#   other    "13.06.18 21.25.15: "
# Which of these a file uses is fixed by its first header (see _specialise): a pasted line in
# another layout inside a message body stays part of that body.
_LEAD = "^[\u200e\u200f\ufeff]*"
_HEADER = re.compile(
    _LEAD
    + r"""
    (?P<open>\[)?
    (?P<a>[0-9]{4}|[0-9]{1,2}) (?P<ds>[./-]) (?P<b>[0-9]{1,2}) (?P=ds) (?P<c>[0-9]{4}|[0-9]{1,2})
    (?P<comma>,|\x20à|\x20klo)?\x20
    (?P<h>[0-9]{1,2}) (?P<ts>[.:]) (?P<mi>[0-9]{2}) (?: (?P=ts) (?P<s>[0-9]{2}) )?
    (?: \x20? (?P<ampm>[AaPp]) \.? \x20? [Mm] \.? )?
    (?(open) \]\x20 | (?P<term>\x20[-\u2013]\x20 | :\x20) )
    """,
    re.VERBOSE | re.MULTILINE,
)

# Rule 4: "Author: body" splits on the first ": ". Indonesian and English system lines
# that contain ": " inside a quoted group name or subject are recognised by their verb
# (docs/domain.md §2a, "System and placeholder strings"); no saved contact name holds these.
_SYSTEM_IN_AUTHOR = re.compile(
    r"(?:^|\s)(?:"
    r"(?:yang\s)?membuat\sgrup|mengubah\s(?:subjek|nama|deskripsi|ikon|foto|gambar|setelan|pengaturan)"
    r"|menghapus\s(?:deskripsi|ikon|foto)|menyematkan|terenkripsi|mengganti\snomor"
    r"|created\s(?:group|this\sgroup)|changed\s(?:the|this|their|group)|deleted\sthe\sgroup"
    r"|pinned\sa\smessage|end-to-end\sencrypted)",
    re.IGNORECASE,
)
# The group's own name, from "Anda membuat grup "X"" / "X created group "G"" or a subject change.
_GROUP_TITLE = re.compile(
    r"(?:membuat\sgrup|created\sgroup|mengubah\s(?:subjek|nama\sgrup)\s.*?(?:menjadi|ke)"
    r"|changed\s(?:the\ssubject|the\sgroup\sname|this\sgroup's\sname)\s.*?to)"
    r"\s[\"\u201c](?P<title>[^\"\u201d]+)[\"\u201d]\s*$",
    re.IGNORECASE,
)
# Deleted placeholders (docs/domain.md §2a): not participation. Matched on the whole body.
_DELETED = re.compile(
    r"(?:pesan\sini\s(?:telah\s)?dihapus(?:\soleh\sadmin.*)?|anda\smenghapus\spesan\sini"
    r"|this\smessage\swas\sdeleted(?:\sby\sadmin.*)?|you\sdeleted\sthis\smessage)\.?",
    re.IGNORECASE,
)
# The edit marker is a suffix; it is not part of what the member wrote.
_EDITED = re.compile(r"\s*<(?:pesan\sini\sdiedit|this\smessage\swas\sedited)>\s*$", re.IGNORECASE)
# Media placeholders (docs/domain.md §2a), matched on the body's first line: Android without
# media, attachments, files exported with media, view-once ("null"), shared locations and
# polls. A media message is participation.
_MEDIA = re.compile(
    r"<(?:media\stidak\sdisertakan|media\somitted)>"
    r"|<(?:attached|terlampir):\s[^>]*>"
    r"|\S.*\s\((?:file\sattached|file\sterlampir)\)"
    r"|null"
    r"|(?:lokasi|location):\shttps?://\S+"
    r"|(?:poll|polling):",
    re.IGNORECASE,
)
# The first characters a _MEDIA match can start with, except "... (file attached)".
_MEDIA_FIRST = frozenset("<nNlLpP")
# iOS writes "<type> omitted" / "<jenis> tidak disertakan" behind a U+200E mark (rule 5).
# Only a marked body is read this way, so a member who types "... omitted" stays a text.
_MEDIA_MARKED = re.compile(r".*(?:omitted|tidak\sdisertakan)|(?:poll|polling|lokasi|location):.*", re.IGNORECASE)
# The hash input of a media message does not depend on the export language or on
# whether media was exported, so such a re-export keeps its keys.
_MEDIA_KEY_TEXT = "<media>"
# Headers that name the month, of exports from before about 2015 ("Mar 12, 2014, 9:05 PM - ",
# "12 Mar 2014 09:05 - "): recognised only to refuse them by their layout.
_MONTH_NAME_HEADER = re.compile(
    r"^[\u200e\u200f]*\[?(?:[^\W\d_]{3,10}\.?\s[0-9]{1,2},?\s[0-9]{4}|[0-9]{1,2}\s[^\W\d_]{3,10}\.?,?\s[0-9]{4}),?\s"
    r"[0-9]{1,2}[:.][0-9]{2}"
)
#: Month names for the date-order refusal ("03/04/24 could be 3 April or 4 March").
_MONTHS = tuple("January February March April May June July August September October November December".split())
# What _Parser._actor returns for the "author" part of a system line that contains ": ".
_SYSTEM = ("", "")
#: The identifier of a member whose name the export left out (sender "~" or empty).
UNNAMED_MEMBER = "name:~ (no name in the export)"
# Quotation marks a notice puts around a group name or subject: (opening, closings).
_QUOTES = (("\u201c", "\u201d"), ("\u201e", "\u201c\u201d"), ("\u00ab", "\u00bb"), ("\u300c", "\u300d"))


def _opens_a_quote(author: str) -> bool:
    """Whether ``author`` holds a quotation mark that could open a quoted group name (cheap pre-test)."""
    return '"' in author or any(opening in author for opening, _ in _QUOTES)


def _quote_spans(author: str, body: str) -> bool:
    """True when a quotation opened in ``author`` closes in ``body``: a notice whose quoted name holds ": ".

    'Budi hat den Betreff zu \u201eCoP: Evaluasi\u201c geändert' is one notice in any language,
    whereas a sender named 'Budi "Bud" Santoso' closes its own quotes.
    """
    if '"' in author and author.count('"') % 2 and '"' in body:
        return True
    for opening, closings in _QUOTES:
        if opening in author and not any(mark in author for mark in closings):
            if any(mark in body for mark in closings):
                return True
    return False


def read_whatsapp(
    path: Path,
    *,
    site: str,
    pseudonymize: Pseudonymizer,
    tz: ZoneInfo = JAKARTA,
    day_first: bool | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Activity]:
    """Yield one ``MESSAGE_POSTED`` activity per member message of a WhatsApp export.

    The whole file is parsed and validated before the first activity is yielded:
    a malformed file raises :class:`InputError` and yields nothing, so the caller
    never imports half a file.

    Keys: WhatsApp has no message ids, so ``native_id`` is the SHA-256 hex of
    (UTC timestamp, sender pseudonym, normalised text). An overlapping later
    export of the same group from the same phone gives the same keys for the same
    messages. Identical messages (same time, sender and text) inside one file get
    an occurrence counter from the second one on, so they stay distinct and stable.
    Guard: changing this recipe changes every statement id already in the LRS.

    Args:
        path: the ``.txt`` export, or a ``.zip`` holding ``_chat.txt`` or one ``.txt``.
        site: the configured community id; it is also the grouping's id.
        pseudonymize: turns a normalised identifier into an opaque pseudonym.
        tz: the exporting phone's time zone; header times are local times in it.
        day_first: the date order to use when the file cannot tell (every day and
            month <= 12). None lets the order that keeps the messages in time order
            decide, and refuses the file when that does not tell either. A file
            whose dates show their order always wins over this argument.
        stats: when given, set to the messages read (system lines included) and the
            ones skipped (system lines, deleted messages) once the file parsed.

    Yields:
        Activities in file order.

    Raises:
        InputError: the file cannot be read, is not UTF-8, or is not a WhatsApp
            export; the message names the file and line. A
            :class:`~lms_bridge.errors.DateOrderError` when ``day_first`` is None and
            the day/month order cannot be told.
    """
    activities = _parse_file(path, site=site, pseudonymize=pseudonymize, tz=tz, day_first=day_first, stats=stats)
    yield from activities


def _parse_file(
    path: Path,
    *,
    site: str,
    pseudonymize: Pseudonymizer,
    tz: ZoneInfo,
    day_first: bool | None,
    stats: ReadStats | None = None,
    skip_unreadable: bool = False,
    max_messages: int = MAX_MESSAGES,
    skipped_lines: list[int] | None = None,
) -> list[Activity]:
    label = f"whatsapp export {path.name}"
    data = read_capped(path, label, limit=_MAX_BYTES, refusal="not a chat export")
    if data.startswith(b"PK"):
        member, data = read_zip_member(
            path, label, limit=_MAX_BYTES, choose=lambda entries: _choose_chat(entries, label, path)
        )
        label = f"whatsapp export {path.name} ({member})"
    text = decode_text(data, label)
    with gc_paused():
        parser = _Parser(
            text,
            label,
            site=site,
            pseudonymize=pseudonymize,
            tz=tz,
            day_first=day_first,
            skip_unreadable=skip_unreadable,
            max_messages=max_messages,
        )
        activities = parser.parse()
    if skipped_lines is not None:
        skipped_lines.extend(line for line, _ in parser.unreadable)
    if stats is not None:
        stats.records, stats.skipped = parser.records, parser.records - len(activities)
    return activities


def _choose_chat(entries: list[zipfile.ZipInfo], label: str, path: Path | None = None) -> zipfile.ZipInfo:
    """The chat text member of an export zip (docs/domain.md §2a rule 7: iOS puts ``_chat.txt``).

    An Android export zip also carries the documents shared in the chat, ``.txt`` ones
    included: when several ``.txt`` files are there and none is ``_chat.txt``, the one
    whose first line is a message header is the chat.
    """
    texts = [
        info
        for info in entries
        if not info.is_dir() and info.filename.lower().endswith(".txt") and not info.filename.startswith("__MACOSX/")
    ]
    chats = [info for info in texts if info.filename.rsplit("/", 1)[-1] == "_chat.txt"]
    if len(chats) == 1:
        return chats[0]
    if len(texts) == 1:
        return texts[0]
    if not texts:
        raise InputError(f"{label}: the zip holds no chat .txt file")
    if path is not None:
        chats = [info for info in texts if _starts_like_a_chat(path, info)]
        if len(chats) == 1:
            return chats[0]
    raise InputError(
        f"{label}: the zip holds {len(texts)} .txt files and no _chat.txt"
        + ("" if path is None else f", and {len(chats)} of them start like a chat export")
    )


def _starts_like_a_chat(path: Path, info: zipfile.ZipInfo) -> bool:
    """Whether a zip member's first non-blank line is a message header (its first 4 KB are read)."""
    with zipfile.ZipFile(path) as archive, archive.open(info) as member:
        head = member.read(4096).decode("utf-8", "replace").replace("\ufeff", "").replace("\u202f", " ")
    lines = [line for line in whatsapp_layouts.rewrite(head).split("\n") if line.strip()]
    return bool(lines) and _HEADER.match(lines[0]) is not None


class _Unreadable(Exception):
    """A header line the reader cannot read (its date or time is impossible, text before the first header)."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what


class _Raw:
    """One header line and its continuation lines, before interpretation.

    Attributes:
        line: the header's line number (1-based).
        match: the header match.
        rest: the rest of the header line (``Author: body`` or a system text).
        more: the continuation lines, joined by newlines ("" when there are none).
    """

    __slots__ = ("line", "match", "rest", "more")

    def __init__(self, line: int, match: re.Match[str], rest: str, more: str) -> None:
        self.line = line
        self.match = match
        self.rest = rest
        self.more = more


class _Message:
    """A member message, interpreted but not yet keyed."""

    __slots__ = ("occurred_at", "stamp", "actor", "key_text", "extras")

    def __init__(self, occurred_at: datetime, stamp: str, actor: str, key_text: str, extras: dict[str, object]) -> None:
        self.occurred_at = occurred_at
        self.stamp = stamp
        self.actor = actor
        self.key_text = key_text
        self.extras = extras


def _specialise(match: re.Match[str]) -> re.Pattern[str]:
    """A header regex for exactly the layout of ``match``, the export's first header.

    Every header of one export has the same layout, so a line in another layout (a
    pasted header inside a body) is a continuation line. Matching the exact layout
    is also faster than the general regex.
    """
    if len(match["a"]) == 4:
        # Same day shapes as _HEADER, so the first header always matches its own layout;
        # a 4-digit "day" is then refused as an invalid date (fuzzing found "[1992/03/2024, ...]").
        date = r"(?P<a>[0-9]{4})%s(?P<b>[0-9]{1,2})%s(?P<c>[0-9]{4}|[0-9]{1,2})"
    else:
        date = r"(?P<a>[0-9]{1,2})%s(?P<b>[0-9]{1,2})%s(?P<c>[0-9]{" + str(len(match["c"])) + "})"
    ds = re.escape(match["ds"])
    ts = re.escape(match["ts"])
    parts = [
        r"\[" if match["open"] else "",
        date % (ds, ds),
        re.escape(match["comma"]) if match["comma"] else "",
        r"\x20(?P<h>[0-9]{1,2})" + ts + r"(?P<mi>[0-9]{2})",
        # "(?P<x>(?!))?" keeps a group that never takes part, so m["s"]/m["ampm"] are None.
        r"(?P<s>(?!))?" if match["s"] is None else ts + r"(?P<s>[0-9]{2})",
        r"(?P<ampm>(?!))?" if match["ampm"] is None else r"\x20?(?P<ampm>[AaPp])\.?\x20?[Mm]\.?",
        r"\]\x20" if match["open"] else re.escape(match["term"]),
    ]
    return re.compile(_LEAD + "".join(parts), re.ASCII | re.MULTILINE)


class _Parser:
    """Parses one decoded export. Separate from I/O so the rules are testable on text."""

    def __init__(
        self,
        text: str,
        label: str,
        *,
        site: str,
        pseudonymize: Pseudonymizer,
        tz: ZoneInfo,
        day_first: bool | None,
        skip_unreadable: bool = False,
        max_messages: int = MAX_MESSAGES,
    ) -> None:
        self.text = text
        self.label = label
        self.site = site
        self.pseudonymize = pseudonymize
        self.tz = tz
        self.day_first_given = day_first  # None: let the file's dates decide, or refuse
        self.group_title: str | None = None
        self._actors: dict[str, tuple[str, str]] = {}
        self._quoting: dict[str, bool] = {}  # author text -> it opens a quotation (see _quote_spans)
        self._chat_name: str | None = None  # the sender iOS writes group notices under
        self._first_line = 0  # the first header's line (set by parse)
        self.records = 0  # messages read, system lines included (set by parse)
        self._offsets: dict[tuple[int, int, int], timedelta | None] = {}
        self.skip_unreadable = skip_unreadable
        self.switched = False  # the header layout changed part-way (set by _split)
        self.max_messages = max_messages
        #: (line, what) of every line that could not be read, in file order.
        self.unreadable: list[tuple[int, str]] = []

    def error(self, line: int, what: str) -> InputError:
        return InputError(f"{self.label} line {line}: {what}")

    def parse(self) -> list[Activity]:
        raws = self._split()
        self.records = len(raws)
        self._first_line = raws[0].line
        day_first, undecided = self._infer_day_first(raws)
        messages: list[_Message] = []
        # Chats post many messages per minute: convert each distinct header time once.
        times: dict[str, tuple[datetime, str]] = {}
        unreadable = self.unreadable
        for raw in raws:
            stamp_key = raw.match.group(0)
            occurred = times.get(stamp_key)
            if occurred is None:
                try:
                    occurred = times[stamp_key] = self._timestamp(raw, day_first)  # validates system lines too
                except _Unreadable as bad:
                    unreadable.append((bad.line, bad.what))
                    continue
            message = self._interpret(raw, occurred)
            if message is not None:
                messages.append(message)
        if unreadable and not self.skip_unreadable:
            line, what = unreadable[0]
            more = "" if len(unreadable) == 1 else f" (and {len(unreadable) - 1} more unreadable lines)"
            raise self.error(
                line, f"{what}{more}; nothing was imported: fix the file or pass --skip-unreadable to import the rest"
            )
        if undecided is not None:
            # After the unreadable lines: their errors do not depend on the order (every part is <= 12).
            raise undecided
        self.records -= len([1 for line, _ in unreadable if line >= self._first_line])
        return self._build(messages)

    def _split(self) -> list[_Raw]:
        """Group lines into messages (docs/domain.md §2a rule 1).

        One multiline regex scan finds the headers; the text between two headers is
        the first message's continuation lines. Only a line feed ends a line: U+2028, U+0085
        and the other separators str.splitlines() knows can occur inside a body.
        """
        text = self.text
        if not text.isascii():
            text = text.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2009", " ")
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        if "\ufeff" in text:
            text = text.replace("\ufeff", "")  # a BOM inside the first bracket, or mid-file after a concatenation
        text = whatsapp_layouts.rewrite(text)
        first = _HEADER.search(text)
        prefix = text if first is None else text[: first.start()]
        text_lines = [
            number
            for number, text_line in enumerate(prefix.split("\n"), start=1)
            if text_line.strip(_LEADING_MARKS + " \t\r")
        ]
        if first is None:
            number = text_lines[0] if text_lines else 1
            if text_lines and _MONTH_NAME_HEADER.match(prefix.split("\n")[number - 1]):
                raise self.error(
                    number,
                    "a message header with the month as a word (an old export layout, 'Mar 12, 2014, 9:05 PM - ') "
                    "is not read; re-export the chat from a current WhatsApp",
                )
            raise self.error(number, "not a WhatsApp chat export (no message header found)")
        self.unreadable.extend((number, "text before the first message header") for number in text_lines)
        # At most one header past the cap is kept: a file far over it is refused without
        # holding a match for each of its headers.
        matches = list(itertools.islice(_specialise(first).finditer(text, first.start()), self.max_messages + 1))
        line = prefix.count("\n") + 1
        if not matches or matches[0].start() != first.start():  # guard: both regexes must agree
            raise self.error(line, "not a WhatsApp chat export (malformed message header)")
        if len(matches) <= self.max_messages:
            switched = self._after_a_layout_switch(text, matches[-1])
            self.switched = bool(switched)
            matches.extend(switched)
        if len(matches) > self.max_messages:
            over = matches[self.max_messages]
            raise self.error(
                line + text.count("\n", first.start(), over.start()),
                f"more than {self.max_messages:,} messages in one file (this is message {self.max_messages + 1:,}); "
                "split the export or raise the cap with --max-messages",
            )
        raws: list[_Raw] = []
        position = first.start()
        for index, match in enumerate(matches):
            line += text.count("\n", position, match.start())
            position = match.start()
            end = matches[index + 1].start() - 1 if index + 1 < len(matches) else len(text)
            rest, _, more = text[match.end() : end].partition("\n")
            raws.append(_Raw(line, match, rest, more))
        return raws

    @staticmethod
    def _after_a_layout_switch(text: str, last: re.Match[str]) -> list[re.Match[str]]:
        """The headers after the export's header layout changed, or [] when it did not.

        An export's layout changes when the phone's language or clock setting changed
        between two exports that were concatenated, or mid-chat on some builds. It shows
        as lines in another header layout after the last header in the first one. At least
        two such lines are required: one alone is a header pasted into the last message.
        The new layout may change again.
        """
        found: list[re.Match[str]] = []
        while True:
            end_of_line = text.find("\n", last.end())
            other = None if end_of_line < 0 else _HEADER.search(text, end_of_line + 1)
            if other is None:
                return found
            switched = list(_specialise(other).finditer(text, other.start()))
            if len(switched) < 2 or switched[0].start() != other.start():
                return found
            found.extend(switched)
            last = switched[-1]

    def _infer_day_first(self, raws: list[_Raw]) -> tuple[bool, DateOrderError | None]:
        """docs/domain.md §2a rule 2: a first component > 12 means d/m, a second one > 12 means m/d.

        Returns:
            Whether dates are day first, and the refusal to raise once the lines have been read
            when neither the numbers, the caller nor the messages' time order tell (the order
            returned with it is only provisional).
        """
        if len(raws[0].match["a"]) == 4:
            return True, None  # year first ("[2018/06/13, ...]"): the order is year/month/day
        first_big: _Raw | None = None
        second_big: _Raw | None = None
        if self.switched:
            raws = [raw for raw in raws if len(raw.match["a"]) != 4]  # the year-first part of a switched file
        for raw in raws:
            if first_big is None and int(raw.match["a"]) > 12:
                first_big = raw
            if second_big is None and int(raw.match["b"]) > 12:
                second_big = raw
        if first_big is not None and second_big is not None:
            earlier, later = sorted((first_big, second_big), key=lambda raw: raw.line)
            raise self.error(later.line, f"the date order contradicts line {earlier.line} (both d/m and m/d dates)")
        if first_big is not None:
            return True, None
        if second_big is not None:
            return False, None
        if self.day_first_given is not None:
            return self.day_first_given, None
        # Every date reads both ways. An export is in time order, so when only one reading
        # keeps the dates in order, that is the phone's. Otherwise a guess would silently
        # move messages by months (and change their keys): refuse, unless both readings agree.
        dates = dict.fromkeys((raw.match["a"], raw.match["b"], raw.match["c"]) for raw in raws)
        years = [(int(c) + (2000 if len(c) == 2 else 0), int(a), int(b)) for a, b, c in dates]
        day_month = [(year, b, a) for year, a, b in years]
        month_day = [(year, a, b) for year, a, b in years]
        day_month_ordered = all(x <= y for x, y in zip(day_month, day_month[1:], strict=False))
        month_day_ordered = all(x <= y for x, y in zip(month_day, month_day[1:], strict=False))
        if month_day_ordered and not day_month_ordered:
            return False, None
        if day_month_ordered and not month_day_ordered:
            return True, None
        example = next((raw for raw in raws if raw.match["a"] != raw.match["b"]), None)
        if example is None:
            return True, None  # every date has day == month (or there are none): both readings are the same
        match = example.match
        day, month = int(match["a"]), int(match["b"])
        return True, DateOrderError(
            f"{self.label}: every date reads both as day/month and as month/day and the order of the messages "
            f"does not tell which (line {example.line}: {match.string[match.start('a') : match.end('c')]} could be "
            f"{day} {_MONTHS[month - 1]} or {month} {_MONTHS[day - 1]})"
        )

    def _timestamp(self, raw: _Raw, day_first: bool) -> tuple[datetime, str]:
        """Return the header time in UTC, and as the ISO text the message key is built from."""
        m = raw.match
        a, b, c = int(m["a"]), int(m["b"]), int(m["c"])
        if len(m["a"]) == 4:
            year, month, day = a, b, c
        else:
            if len(m["c"]) == 1:
                raise _Unreadable(raw.line, "the year in the message header has one digit")
            year = c + 2000 if len(m["c"]) == 2 else c
            day, month = (a, b) if day_first else (b, a)
        hour, minute = int(m["h"]), int(m["mi"])
        second = int(m["s"]) if m["s"] is not None else 0
        if m["ampm"] is not None:
            # 12h clock: "12:05 AM" is 00:05 and "12:05 PM" is 12:05 (docs/domain.md §2a rule 3).
            # Some Android builds write the hour after midnight and noon as 0 ("0:51 PM", "00:08 a. m.").
            if not 0 <= hour <= 12:
                raise _Unreadable(raw.line, f"hour {hour} is not valid on a 12-hour clock")
            hour = hour % 12 + (12 if m["ampm"] in "Pp" else 0)
        if year >= 2400:
            year -= 543  # a Thai phone writes Buddhist-era years (2567 is 2024)
        if not 1970 <= year <= 2999:
            raise _Unreadable(raw.line, f"year {year} is out of range")
        try:
            offset = self._offset(year, month, day)
            if offset is None:  # a day with a time-zone transition: ask the zone for this time
                utc = datetime(year, month, day, hour, minute, second, tzinfo=self.tz).astimezone(UTC)
            else:
                utc = datetime(year, month, day, hour, minute, second, tzinfo=UTC) - offset
        except ValueError as exc:
            raise _Unreadable(raw.line, f"invalid date or time in the message header ({exc})") from exc
        return utc, utc.isoformat().replace("+00:00", "Z")

    def _offset(self, year: int, month: int, day: int) -> timedelta | None:
        """The zone's UTC offset for a whole local day, or None when it changes that day.

        Asking ZoneInfo once per day instead of once per message is a measured 2x on
        the header-time step of a 40,000-message export.
        """
        key = (year, month, day)
        if key in self._offsets:
            return self._offsets[key]
        start = self.tz.utcoffset(datetime(year, month, day))
        end = self.tz.utcoffset(datetime(year, month, day, 23, 59, 59))
        offset = start if start == end else None
        self._offsets[key] = offset
        return offset

    def _interpret(self, raw: _Raw, occurred: tuple[datetime, str]) -> _Message | None:
        """Classify one header and its continuation lines.

        Returns:
            The member message, or None for a system line, a deleted message or an
            author with nothing visible in it. A system line that names the group
            sets ``self.group_title``.
        """
        author, sep, body = raw.rest.partition(": ")
        quoting = self._quoting.get(author)
        if quoting is None:
            quoting = self._quoting[author] = _opens_a_quote(author)
        identity = self._actor(author) if sep and not (quoting and _quote_spans(author, body)) else _SYSTEM
        if identity is _SYSTEM:
            self._note_title(raw.rest)
            return None
        actor, kind = identity
        if raw.more:
            body = body + "\n" + raw.more
        # iOS marks system, call-log and media bodies with a leading U+200E (rule 5), but so
        # do members: Arabic-script texts start with U+200F/U+200E, WhatsApp's invite-link
        # message with U+200E. So a mark alone decides nothing; the tables do.
        marked = body.startswith("\u200e")
        text = _normalise_text(body)
        edited = False
        if text.endswith(">"):
            edit = _EDITED.search(text)
            if edit is not None:
                edited = True
                text = text[: edit.start()]
        if _DELETED.fullmatch(text):
            return None
        first, _, caption = text.partition("\n")
        # The first-character test skips the regex for ordinary texts (a measured 1 us a message).
        head = first[:1]
        shaped = head == "<" or first.endswith(")")
        media = (shaped or head in _MEDIA_FIRST) and _MEDIA.fullmatch(first) is not None
        # The pre-test keeps classify() (a function call and regex tests) off ordinary texts.
        if not media and (marked or shaped or first in whatsapp_strings.FORMS or "://" in first):
            placeholder = whatsapp_strings.classify(first, marked=marked)
            if placeholder == "call" or (placeholder == "deleted" and not caption):
                return None
            media = placeholder == "media"
        if marked and not media:
            media = _MEDIA_MARKED.fullmatch(first) is not None
        if not media and not marked and "\u200e" in body:
            # An iOS document: "Materi.pdf \u2022 \u200e12 pages \u200edocument omitted" without media,
            # "... \u200e<attached: 00000005-Materi.pdf>" with it. The placeholder follows the last
            # mark; both exports must key the message alike ("<media>"), or it counts twice.
            raw_first = body.partition("\n")[0]
            tail = _normalise_text(raw_first[raw_first.rfind("\u200e") + 1 :])
            media = bool(tail) and (
                _MEDIA.fullmatch(tail) is not None
                or _MEDIA_MARKED.fullmatch(tail) is not None
                or whatsapp_strings.classify(tail) == "media"
            )
        if marked and not media:
            # iOS writes group notices under the group's own name, which the encryption
            # banner on line 1 shows ("<group>: \u200eMessages and calls are end-to-end
            # encrypted."; fixture whatsapp_ios_id.txt line 1); a few notices are recognised
            # by their wording wherever they are. Any other marked body is a member's text.
            if self._chat_name is None and raw.line == self._first_line and whatsapp_strings.is_notice(text):
                self._chat_name = author
            if author == self._chat_name or whatsapp_strings.is_notice(text):
                self._note_title(text)
                return None
        if media:
            caption = caption.strip()
            key_text = _MEDIA_KEY_TEXT + ("\n" + caption if caption else "")
            length = len(caption)
        else:
            key_text = text
            length = len(text)
        extras: dict[str, object] = {
            "identifier_kind": kind,
            "text_length": length,
            "media": media,
            "edited": edited,
        }
        return _Message(occurred[0], occurred[1], actor, key_text, extras)

    def _note_title(self, system_text: str) -> None:
        match = _GROUP_TITLE.search(strip_invisible(system_text))
        if match is not None and match["title"].strip():
            self.group_title = match["title"].strip()  # the last name the group was given wins

    def _actor(self, author: str) -> tuple[str, str]:
        """Return (pseudonym, identifier kind), or ``_SYSTEM`` for the start of a system line.

        Each distinct author text is classified and pseudonymised once per file: the
        caller's HMAC is the costly part.
        """
        if author in self._actors:
            return self._actors[author]
        if _SYSTEM_IN_AUTHOR.search(author):
            self._actors[author] = _SYSTEM
            return _SYSTEM
        visible = strip_invisible(author).strip()
        # Newer builds show an unsaved member's push name as "~ Name" (rule 6): the tilde
        # is decoration, and the same person is "Name" once saved as a contact.
        if visible.startswith("~"):
            visible = visible[1:].strip()
        classified: tuple[str, str] | None = classify_identifier(visible)
        if classified is None:
            # "~" alone or nothing: a member whose push name the export left out (one real
            # Indonesian group had 442 of its 1,111 messages so). The message is real
            # participation, so it is counted, under ONE stable placeholder identity per
            # community: which member wrote it is unknowable, and a placeholder per line
            # would invent hundreds of people. The placeholder never matches a roster entry.
            classified = ("name", UNNAMED_MEMBER)
        result = (self.pseudonymize(classified[1]), classified[0])
        self._actors[author] = result
        return result

    def _build(self, messages: list[_Message]) -> list[Activity]:
        grouping = ObjectRef(type="community", native_id=self.site, title=self.group_title)
        seen: dict[str, int] = {}
        activities: list[Activity] = []
        for message in messages:
            # Guard: the key recipe (docs/xapi.md "Deterministic ids"); changing it changes every
            # statement id. NUL never occurs in a normalised text, so fields cannot run together.
            base = f"{message.stamp}\x00{message.actor}\x00{message.key_text}"
            count = seen.get(base, 0) + 1
            seen[base] = count
            hashed = base if count == 1 else f"{base}\x00{count}"
            native_id = hashlib.sha256(hashed.encode("utf-8", "surrogatepass")).hexdigest()
            activities.append(
                Activity(
                    source=SOURCE,
                    site=self.site,
                    kind=Kind.MESSAGE_POSTED,
                    native_id=native_id,
                    actor=message.actor,
                    object=ObjectRef(type="message", native_id=native_id, title=self.group_title),
                    occurred_at=message.occurred_at,
                    grouping=grouping,
                    extras=message.extras,
                )
            )
        return activities


def _normalise_text(body: str) -> str:
    """The text a message is keyed on: invisible marks and NULs removed, NFC, lines right-trimmed."""
    text = strip_invisible(body).replace("\x00", "")
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if "\n" in text:
        text = "\n".join(line.rstrip() for line in text.split("\n"))
    return text.strip()


# The first line of an export: "12/03/24 08.00 - ", "[12/03/24, 09.15.02] ", "3/12/24, 9:15 AM - ".
_FIRST_HEADER = re.compile(r"^[\u200e\u200f]*\[?[0-9]{1,4}[./-][0-9]{1,2}[./-][0-9]{1,4},? [0-9]{1,2}[.:][0-9]{2}")


class WhatsAppFormat(FileFormat):
    """``.txt``/``.zip`` "Export chat" files of a WhatsApp group (``import --source whatsapp``)."""

    name = "whatsapp"
    description = "WhatsApp chat"
    unit = "messages"
    skip_reason = "system lines and deleted messages"
    community = "required"

    def detect(self, sample: Sample) -> float:
        """A zip is an export (of its ``_chat.txt``); so is a ``.txt`` or a file whose first line is a header."""
        if sample.is_zip:
            return ZIP
        if sample.is_json or sample.suffix == ".jsonl":
            return NO
        if sample.suffix == ".txt" or (sample.suffix != ".csv" and _FIRST_HEADER.match(sample.first_line)):
            return TEXT_SHAPE
        return NO

    def read(self, path: Path, request: ReadRequest) -> FileContents:
        """Read the export; its messages are grouped under the community."""
        site = request.site or request.community or self.name
        pseudonymize = request.pseudonymizer()  # before the file is read: no key, nothing read or stored
        stats = ReadStats()
        skipped_lines: list[int] = []
        activities = _parse_file(
            path,
            site=site,
            pseudonymize=pseudonymize,
            tz=request.tz,
            day_first=False if request.month_first else True if request.day_first else None,
            stats=stats,
            skip_unreadable=request.skip_unreadable,
            max_messages=request.max_messages or MAX_MESSAGES,
            skipped_lines=skipped_lines,
        )
        # The group name a WhatsApp file shows comes from its system lines ("created group",
        # "changed the subject"), which a later, overlapping export may lack or change. A
        # message's statement must not depend on which export it was read from (same id,
        # same content), so WhatsApp messages carry no title: the community id names the group.
        if request.community is None:
            activities = [replace(activity, object=replace(activity.object, title=None)) for activity in activities]
        else:
            # One ``replace`` per message, not two: it re-runs the dataclass checks (40,000 messages).
            grouping = ObjectRef(type="community", native_id=request.community, title=None)
            activities = [
                replace(activity, object=replace(activity.object, title=None), grouping=grouping)
                for activity in activities
            ]
        return FileContents(site=site, items=numbered(activities), stats=stats, skipped_lines=skipped_lines)


FORMAT = WhatsAppFormat()
