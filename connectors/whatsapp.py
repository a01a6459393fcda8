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

import bisect
import hashlib
import itertools
import operator
import os
import re
import unicodedata
import zipfile
import zlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO
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
    StreamedItems,
)
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.errors import DateOrderError, InputError
from lms_bridge.identifiers import classify_identifier, strip_invisible
from lms_bridge.input_files import open_regular

SOURCE = "whatsapp"
#: The most messages one file may hold unless the operator raises it (``--max-messages``): a real
#: group export holds at most about 40,000 (docs/domain.md §2a rule 7).
MAX_MESSAGES = 1_000_000
#: The default time zone of header times (WIB); pass the phone's zone for WITA/WIT groups.
JAKARTA = ZoneInfo("Asia/Jakarta")

# An export is capped at about 40,000 messages (docs/domain.md §2a rule 7), a few MB.
# Refuse anything far larger instead of reading it into memory (a zip bomb, a wrong file).
_MAX_BYTES = 256 * 1024 * 1024

#: The longest message read, in characters: WhatsApp sends at most 65,536 per message, so a far longer
#: "message" is not a chat (text appended after the last header); refusing it lets a reader hold
#: one message at a time whatever the file's size.
MAX_MESSAGE_CHARS = 1_000_000
#: The longest line read, in bytes (a longer one is refused before it is held).
MAX_LINE_BYTES = 4 * 1024 * 1024
# The characters of a file's first lines held to choose its layout rewrites (whatsapp_layouts looks at
# the first 64 KB; a rewrite can shorten a header, so twice that is held).
_REWRITE_HEAD = 2 * 64 * 1024
# Bytes read at a time (whole lines of them are decoded and scanned at once).
_CHUNK = 1024 * 1024
# The UTC seconds the first pass notes for a header it could not read (skipped with --skip-unreadable).
_UNREADABLE = -(2**63)
# Entries of a cache of header times before it is emptied (memory stays bounded on any file).
_CACHE = 50_000
# What a damaged zip raises while it is read.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    ValueError,
    zlib.error,
)

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
# The characters a _DELETED match can start with (its IGNORECASE letters match no other character).
_DELETED_FIRST = "pPaAtTyY"
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
    """Read the whole export into a list (titles from the whole file): :func:`read_whatsapp` and tests."""
    reading = _Reading(
        path,
        site=site,
        pseudonymize=pseudonymize,
        tz=tz,
        day_first=day_first,
        skip_unreadable=skip_unreadable,
        max_messages=max_messages,
    )
    with gc_paused():
        keyed = list(reading.messages())
        activities = reading.parser.build_all(keyed)
    if skipped_lines is not None:
        skipped_lines.extend(reading.skipped_lines)
    if stats is not None:
        stats.records, stats.skipped = reading.records, reading.records - len(activities)
    return activities


class _Source:
    """The chat's lines, decoded and normalised as the reader sees them, read again for each pass.

    The file is a ``.txt`` export or an export zip (the chat member is chosen once). Lines are read
    one at a time: memory holds one line, whatever the file's size (a line longer than
    :data:`MAX_LINE_BYTES` is refused). A file that changes between passes is refused.
    """

    def __init__(self, path: Path, label: str) -> None:
        self.path = path
        self.label = label
        self.member: zipfile.ZipInfo | None = None
        self.rewrites: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] | None = None
        with open_regular(path, label) as handle:
            info = os.fstat(handle.fileno())
            self.identity = (info.st_ino, info.st_size, info.st_mtime_ns)
            is_zip = handle.read(2) == b"PK"
        if not is_zip:
            if info.st_size > _MAX_BYTES:
                raise InputError(f"{label}: larger than {_MAX_BYTES >> 20} MB, not a chat export")
            return
        try:
            with zipfile.ZipFile(path) as archive:
                self.member = _choose_chat(archive.infolist(), label, path)
        except InputError:
            raise
        except _ZIP_ERRORS as exc:
            raise InputError(f"{label}: not a readable zip archive ({exc.__class__.__name__})") from exc
        if self.member.file_size > _MAX_BYTES:
            raise InputError(f"{label}: {self.member.filename} is larger than {_MAX_BYTES >> 20} MB")
        self.label = f"{label} ({self.member.filename})"

    def chunks(self) -> Iterator[tuple[int, str, bool]]:
        """``(number of the first line, text, the last line ends with a line feed)`` of whole lines, in order.

        Each chunk is about :data:`_CHUNK` bytes of whole lines, decoded and normalised as the
        reader sees them (no-break spaces, CRLF, BOMs, layout rewrites); it ends with a line feed
        unless it is the file's last line without one.
        """
        outer = self.label if self.member is None else self.label.rsplit(" (", 1)[0]
        try:
            with open_regular(self.path, outer) as handle:
                info = os.fstat(handle.fileno())
                if (info.st_ino, info.st_size, info.st_mtime_ns) != self.identity:
                    raise InputError(f"{outer}: the file changed while it was read; import it again once complete")
                if self.member is None:
                    yield from self._decoded(handle)
                    return
                with zipfile.ZipFile(handle) as archive, archive.open(self.member) as member:
                    yield from self._decoded(member)
        except InputError:
            raise
        except _ZIP_ERRORS as exc:
            raise InputError(f"{outer}: not a readable zip archive ({exc.__class__.__name__})") from exc

    def _decoded(self, stream: IO[bytes]) -> Iterator[tuple[int, str, bool]]:
        number = 1  # of the next chunk's first line
        consumed = 0  # bytes before the next chunk
        bom: bool | None = None
        rest = b""
        if self.rewrites is None:
            # The layout rewrites a file needs are told from its first 64 KB (whatsapp_layouts): from the
            # first MB here, once for every pass.
            rest = stream.read(_CHUNK)
            self.rewrites = whatsapp_layouts.active(_normalised(rest.decode("utf-8", "ignore"))[:_REWRITE_HEAD])
        while True:
            block = stream.read(_CHUNK)
            data = rest + block if rest else block
            if block:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    if len(data) > MAX_LINE_BYTES:
                        raise InputError(
                            f"{self.label} line {number}: longer than {MAX_LINE_BYTES >> 20} MB, not a chat export line"
                        )
                    rest = data
                    continue
                piece, rest = data[:cut], data[cut:]
            else:
                piece, rest = data, b""
                if not piece:
                    return
            if consumed + len(piece) > _MAX_BYTES:
                raise self._too_large()
            if bom is None:
                bom = piece.startswith(b"\xef\xbb\xbf")
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                # As the whole-file decoder said it: offsets after a leading BOM.
                line = number + piece.count(b"\n", 0, exc.start)
                offset = consumed + exc.start - (3 if bom else 0)
                raise InputError(f"{self.label} line {line}: not UTF-8 text (invalid byte at offset {offset})") from exc
            lines = piece.count(b"\n")
            consumed += len(piece)
            text = _normalised(text)
            for pattern, replace_header in self.rewrites:
                text = pattern.sub(replace_header, text)
            terminated = text.endswith("\n")
            yield number, text, terminated
            number += lines
            if not block:
                return

    def _too_large(self) -> InputError:
        if self.member is None:
            return InputError(f"{self.label}: larger than {_MAX_BYTES >> 20} MB, not a chat export")
        outer = self.label.rsplit(" (", 1)[0]
        return InputError(f"{outer}: {self.member.filename} is larger than {_MAX_BYTES >> 20} MB")


def _normalised(text: str) -> str:
    """Whole lines as the reader sees them: no-break and thin spaces as spaces, CRLF as LF, no BOM."""
    if not text.isascii():
        text = text.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2009", " ")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if "\ufeff" in text:
        text = text.replace("\ufeff", "")  # a BOM inside the first bracket, or mid-file after a concatenation
    return text


def _unpack_time(packed: int) -> tuple[int, int, int | None, str | None]:
    """Hour, minute, second (None) and AM/PM of a header time packed by the first pass.

    Packed as ``((hour * 100 + minute) * 101 + second (100: none)) * 3 + half`` (0 none, 1 AM, 2 PM).
    """
    rest, half = divmod(packed, 3)
    rest, second = divmod(rest, 101)
    hour, minute = divmod(rest, 100)
    return hour, minute, None if second == 100 else second, (None, "A", "P")[half]


def _time_state(packed: int) -> tuple[int, str, int]:
    """``(problem rank, problem, seconds after midnight)`` of a header time (:meth:`_Parser.timestamp`'s checks).

    Ranks order the problems as :meth:`_Parser.timestamp` meets them: 2 a 12-hour clock's hour,
    5 an impossible time (0: none).
    """
    hour, minute, second, ampm = _unpack_time(packed)
    if ampm is not None:
        if not 0 <= hour <= 12:
            return 2, f"hour {hour} is not valid on a 12-hour clock", 0
        hour = hour % 12 + (12 if ampm in "Pp" else 0)
    second = second or 0
    try:
        datetime(2000, 1, 1, hour, minute, second)
    except ValueError as exc:
        return 5, f"invalid date or time in the message header ({exc})", 0
    return 0, "", hour * 3600 + minute * 60 + second


def _tail(m: re.Match[str]) -> tuple[int, tuple[object, ...]]:
    """``(packed time, the layout's time half)`` of a header (see :func:`_unpack_time` for the packing)."""
    second, ampm = m["s"], m["ampm"]
    packed = ((int(m["h"]) * 100 + int(m["mi"])) * 101 + (100 if second is None else int(second))) * 3
    packed += 0 if ampm is None else 2 if ampm in "Pp" else 1
    return packed, (m["comma"], m["ts"], second is None, ampm is None, m["term"])


class _Scan:
    """The first pass over an export: every line that reads as a header in some layout, in compact arrays.

    Attributes:
        lines: the line of each such header.
        sigs: its layout (an index into ``patterns``).
        dates: its date as written (an index into ``date_texts``).
        times: its time (see :func:`_unpack_time`).
        starts: the characters of the file before its line (message sizes).
        prefix: the non-blank lines before the first header.
    """

    def __init__(self) -> None:
        self.lines = array("I")  # 4 bytes: a file of at most 256 MB has fewer lines and characters than 2**32
        self.sigs = array("H")
        self.dates = array("I")
        self.times = array("I")
        self.starts = array("I")
        self.chars = 0
        self.patterns: list[re.Pattern[str]] = []
        self.date_texts: list[str] = []
        self.date_parts: list[tuple[str, str, str]] = []
        self.prefix = array("q")
        self.first_text: str | None = None

    def read(self, source: _Source, cap: int) -> None:
        """Scan the file; stop at the header past ``cap`` of the first layout (the file is refused there).

        A header is read in two halves, each looked up in a cache: its text up to the end of the date
        (the date, and the layout's date half) and the rest (the time of day, and the layout's time
        half). A chat repeats both many times, so most headers cost two look-ups, not a parse.
        """
        first_layout = 0  # headers of the first layout (signature 0) seen
        sig_ids: dict[tuple[object, ...], int] = {}  # (date half, time half) of a layout -> its signature
        heads: dict[str, tuple[int, tuple[object, ...]]] = {}  # header text to the date's end -> (date, half)
        tails: dict[str, tuple[int, tuple[object, ...]]] = {}  # the rest of the header -> (packed time, half)
        date_ids: dict[str, int] = {}
        finditer = _HEADER.finditer
        lines, sigs, dates, times, starts = self.lines, self.sigs, self.dates, self.times, self.starts
        last_halves: tuple[object, object] = (None, None)
        last_sig = 0
        chars = 0
        for number, text, _ in source.chunks():
            if not lines:  # before the first header, every non-blank line is unreadable text
                first = _HEADER.search(text)
                prefix = text if first is None else text[: first.start()]
                for offset, prefix_line in enumerate(prefix.split("\n")):
                    if prefix_line.strip(_LEADING_MARKS + " \t\r"):
                        self.prefix.append(number + offset)
                        if self.first_text is None:
                            self.first_text = prefix_line
                if first is None:
                    chars += len(text)
                    continue
            line, position = number, 0
            for m in finditer(text):
                start = m.start()
                line += text.count("\n", position, start)
                position = start
                middle = m.end(5)  # the date's end
                head = heads.get(text[start:middle])
                if head is None:
                    if len(heads) > _CACHE:
                        heads.clear()
                    head = heads[text[start:middle]] = self._head(m, date_ids)
                tail = tails.get(text[middle : m.end()])
                if tail is None:
                    if len(tails) > _CACHE:
                        tails.clear()
                    tail = tails[text[middle : m.end()]] = _tail(m)
                if head[1] is last_halves[0] and tail[1] is last_halves[1]:
                    sig = last_sig
                else:
                    key = head[1] + tail[1]
                    known = sig_ids.get(key)
                    sig = sig_ids[key] = self._signature(m) if known is None else known
                    last_halves, last_sig = (head[1], tail[1]), sig
                lines.append(line)
                sigs.append(sig)
                dates.append(head[0])
                times.append(tail[0])
                starts.append(chars + start)
                if sig == 0:
                    first_layout += 1
                    if first_layout > cap:
                        self.chars = chars + len(text)
                        return  # message cap + 1 is a header whatever follows: the file is refused there
            chars += len(text)
        self.chars = chars

    def _head(self, m: re.Match[str], date_ids: dict[str, int]) -> tuple[int, tuple[object, ...]]:
        """``(date, the layout's date half)`` of a header: the date is an index into ``date_texts``."""
        written = m.string[m.start(2) : m.end(5)]
        date = date_ids.get(written)
        if date is None:
            date = date_ids[written] = len(self.date_texts)
            self.date_texts.append(written)
            self.date_parts.append((m["a"], m["b"], m["c"]))
        return date, (m["open"], len(m["a"]), len(m["c"]), m["ds"])

    def _signature(self, m: re.Match[str]) -> int:
        """The layout of a header, an index into ``patterns``: halves that _specialise builds one regex from are one."""
        pattern = _specialise(m)
        for index, known in enumerate(self.patterns):
            if known.pattern == pattern.pattern:
                return index
        self.patterns.append(pattern)
        return len(self.patterns) - 1

    def segments(self) -> list[tuple[int, int, int]]:
        """``(first, last, layout)`` index ranges of the export's headers (docs/domain.md §2a: a layout switch).

        The first header sets the layout; its last header ends that part. The next header in
        another layout starts a new part when at least one more header of that layout follows
        (one alone is a header pasted into the last message); the new layout may change again.
        """
        if not self.lines:
            return []
        last: dict[int, int] = {}
        for index, sig in enumerate(self.sigs):
            last[sig] = index
        first_sig = self.sigs[0]
        parts = [(0, last[first_sig], first_sig)]
        end = last[first_sig]
        while end + 1 < len(self.lines):
            other = end + 1
            sig = self.sigs[other]
            if last[sig] <= other:
                break
            parts.append((other, last[sig], sig))
            end = last[sig]
        return parts


def _headers(scan: _Scan, parts: list[tuple[int, int, int]]) -> Iterator[int]:
    """The indices (into the scan's arrays) of the export's message headers, in file order."""
    sigs = scan.sigs
    for first, last, sig in parts:
        for index in range(first, last + 1):
            if sigs[index] == sig:
                yield index


class _Reading:
    """One export read in two passes: the first checks everything, the second yields its messages.

    The first pass (:meth:`check`, run on construction) reads every line and keeps a few
    numbers per header: layouts, the day/month order, unreadable lines, the message cap and
    the longest message are settled before any message is yielded, so a refused file yields
    nothing. The second pass (:meth:`messages`) reads the file again and yields the keyed
    messages one at a time: memory holds one message, not the file.
    """

    def __init__(
        self,
        path: Path,
        *,
        site: str,
        pseudonymize: Pseudonymizer,
        tz: ZoneInfo,
        day_first: bool | None,
        skip_unreadable: bool = False,
        max_messages: int = MAX_MESSAGES,
    ) -> None:
        self.source = _Source(path, f"whatsapp export {path.name}")
        self.parser = _Parser(
            self.source.label,
            site=site,
            pseudonymize=pseudonymize,
            tz=tz,
            day_first=day_first,
            skip_unreadable=skip_unreadable,
            max_messages=max_messages,
        )
        self.records = 0
        self.skipped_lines: list[int] = []
        #: "day-first" or "month-first" when the file's dates read both ways and an option or their time
        #: order chose (the import is recorded under it), else None.
        self.date_order: str | None = None
        self._recurring: set[int] = set()
        self._starts = array("q")  # where each message header starts, in characters of the file's text
        self._patterns: list[re.Pattern[str]] = []  # the header regex of each layout part
        self._part_starts = array("q")  # where each part's first header starts
        with gc_paused():
            self.check()

    def check(self) -> None:
        scan = _Scan()
        scan.read(self.source, self.parser.max_messages)
        parser = self.parser
        parser.label = self.source.label
        if not scan.lines:
            number = scan.prefix[0] if scan.prefix else 1
            if scan.first_text is not None and _MONTH_NAME_HEADER.match(scan.first_text):
                raise parser.error(
                    number,
                    "a message header with the month as a word (an old export layout, 'Mar 12, 2014, 9:05 PM - ') "
                    "is not read; re-export the chat from a current WhatsApp",
                )
            raise parser.error(number, "not a WhatsApp chat export (no message header found)")
        parts = scan.segments()
        parser.switched = len(parts) > 1
        # Every line that reads as a header is one unless the layout switched or a header in another
        # layout was pasted into a message (the usual file: one layout, every such line a header).
        headers: Sequence[int] = range(len(scan.sigs))
        if len(parts) > 1 or scan.sigs.count(parts[0][2]) != len(scan.sigs):
            headers = array("q", _headers(scan, parts))
        if len(headers) > parser.max_messages:
            over = headers[parser.max_messages]
            raise parser.error(
                scan.lines[over],
                f"more than {parser.max_messages:,} messages in one file (this is message "
                f"{parser.max_messages + 1:,}); split the export or raise the cap with --max-messages",
            )
        starts = scan.starts if isinstance(headers, range) else array("q", map(scan.starts.__getitem__, headers))
        # The longest message, told from the gaps between header starts without a Python loop per header.
        longest = max(map(operator.sub, itertools.islice(starts, 1, None), starts), default=0)
        for position, index in enumerate(headers if max(longest, scan.chars - starts[-1]) > MAX_MESSAGE_CHARS else ()):
            end = starts[position + 1] if position + 1 < len(starts) else scan.chars
            if end - starts[position] > MAX_MESSAGE_CHARS:
                raise parser.error(
                    scan.lines[index],
                    f"a message longer than {MAX_MESSAGE_CHARS:,} characters (WhatsApp sends at most 65,536); "
                    "not a chat export",
                )
        parser._first_line = scan.lines[headers[0]]
        day_first, undecided = parser.infer_day_first(scan, headers)
        if parser.order_chosen:
            self.date_order = "day-first" if day_first else "month-first"
        unreadable = array("q", scan.prefix)
        first_what = "text before the first message header" if scan.prefix else ""
        bad_headers = 0
        # Each date and each time of day is checked once (a date's problems do not depend on the time).
        date_states: dict[int, tuple[int, str, int, int | None]] = {}
        time_states: dict[int, tuple[int, str, int]] = {}
        runs = _Runs()
        when: int | None = None
        seconds_of = array("q")  # each header's UTC seconds (_UNREADABLE for a header skipped)
        dates, times = scan.dates, scan.times
        for index, date, packed in zip(
            headers, map(dates.__getitem__, headers), map(times.__getitem__, headers), strict=True
        ):
            day = date_states.get(date)
            if day is None:
                day = date_states[date] = parser.date_state(*scan.date_parts[date], day_first)
            clock = time_states.get(packed)
            if clock is None:
                if len(time_states) > _CACHE:
                    time_states.clear()
                clock = time_states[packed] = _time_state(packed)
            if day[0] or clock[0]:
                bad_headers += 1
                if not unreadable:
                    first_what = day[1] if day[0] and (not clock[0] or day[0] < clock[0]) else clock[1]
                unreadable.append(scan.lines[index])
                seconds_of.append(_UNREADABLE)
                continue
            if day[3] is None:  # a day with a time-zone transition: ask the zone
                a, b, c = scan.date_parts[date]
                utc, _ = parser.timestamp(0, a, b, c, *_unpack_time(packed), day_first)
                seconds = int(utc.timestamp())
            else:
                seconds = day[2] + clock[2] - day[3]
            seconds_of.append(seconds)
            if seconds != when:  # a chat posts many messages a minute: a run is noted once
                runs.add(seconds)
                when = seconds
        if unreadable and not parser.skip_unreadable:
            more = "" if len(unreadable) == 1 else f" (and {len(unreadable) - 1} more unreadable lines)"
            raise parser.error(
                unreadable[0],
                f"{first_what}{more}; nothing was imported: fix the file or pass --skip-unreadable to import the rest",
            )
        if undecided is not None:
            raise undecided  # after the unreadable lines: their errors do not depend on the order
        self.day_first = day_first
        self.records = len(headers) - bad_headers
        self.skipped_lines = list(unreadable)
        self._recurring = runs.recurring
        self._starts = starts
        self._seconds = seconds_of
        self._patterns = [scan.patterns[sig] for _, _, sig in parts]
        self._part_starts = array("I", (scan.starts[first] for first, _, _ in parts))

    def messages(self) -> Iterator[tuple[_Message, str]]:
        """Read the file again and yield each member message with its key (native id), in file order.

        The first pass noted where each header starts (characters into the file's text), so this pass
        matches one header there and slices the text up to the next, as a whole-text parse would:
        no line of a message body is looked at one by one.
        """
        keys = _Keys(self._recurring)
        clock = _Clock(self._seconds)
        starts, patterns, part_starts = self._starts, self._patterns, self._part_starts
        count, parts = len(starts), len(part_starts)
        part = 0
        position = 0  # the next header, an index into starts
        pending: _Raw | None = None
        pieces: list[str] = []  # the pending message's text after its header, when it began in an earlier chunk
        base = 0  # characters before this chunk
        for first, chunk, _ in self.source.chunks():
            size = len(chunk)
            line, counted = first, 0  # the line at character ``counted`` of the chunk
            taken = 0  # the chunk's characters before this are a message's or before the first header
            while position < count and (at := starts[position] - base) < size:
                if pending is not None:
                    # The message's text ends before the line feed that ends its last line.
                    if pieces:  # it began in an earlier chunk
                        pieces.append(chunk[taken:at])
                        text = "".join(pieces)[:-1]
                        pieces = []
                    else:
                        text = chunk[taken : at - 1]
                    keyed = self._message(pending, text, clock, keys)
                    if keyed is not None:
                        yield keyed
                while part + 1 < parts and starts[position] >= part_starts[part + 1]:
                    part += 1
                match = patterns[part].match(chunk, at)
                line += chunk.count("\n", counted, at)
                counted = at
                if match is None or (at and chunk[at - 1] != "\n"):  # guard: the second pass must see the first's
                    raise self.parser.error(line, "the file changed while it was read; import it again")
                pending = _Raw(line, position, "", "")
                taken = match.end()
                position += 1
            if pending is not None:
                pieces.append(chunk[taken:])
            base += size
        if position != count:
            raise InputError(f"{self.source.label}: the file changed while it was read; import it again")
        if pending is not None:
            keyed = self._message(pending, "".join(pieces), clock, keys)
            if keyed is not None:
                yield keyed

    def _message(self, raw: _Raw, text: str, clock: _Clock, keys: _Keys) -> tuple[_Message, str] | None:
        """The keyed member message of one header and the text after it, or None (a system line, an unreadable header).

        ``text`` runs from the end of the header to the line feed before the next header (to the end
        of the file for the last one): the header line's rest, then its continuation lines.
        """
        raw.rest, _, raw.more = text.partition("\n")
        occurred = clock.time(raw.header)
        if occurred is None:
            return None  # counted and reported by the first pass (skip_unreadable)
        message = self.parser._interpret(raw, occurred)
        if message is None:
            return None
        return message, keys.key(message, occurred[2])


class _Clock:
    """The UTC time of each header of the second pass, from the seconds the first pass worked out."""

    def __init__(self, seconds: array[int]) -> None:
        self.seconds = seconds
        self.last: tuple[int, datetime, str] = (_UNREADABLE, datetime.fromtimestamp(0, UTC), "")

    def time(self, header: int) -> tuple[datetime, str, int] | None:
        """``(UTC time, its ISO text, UTC seconds)`` of a header (an index), or None when it is unreadable."""
        seconds = self.seconds[header]
        if seconds == _UNREADABLE:
            return None
        last = self.last
        if seconds != last[0]:  # consecutive messages often share their minute
            utc = datetime.fromtimestamp(seconds, UTC)
            last = self.last = (seconds, utc, utc.isoformat().replace("+00:00", "Z"))
        return last[1], last[2], seconds


class _Runs:
    """Which header times (UTC seconds) occur in more than one run of consecutive headers.

    Identical messages get an occurrence counter (see :class:`_Keys`), and only messages of
    one time can be identical; an export is in time order, so a time's messages are one run
    and its counter can be forgotten when the run ends, unless the time comes back later.
    """

    def __init__(self) -> None:
        self.recurring: set[int] = set()
        self._ordered = array("q")  # run times that came in time order: sorted
        self._others: set[int] = set()  # run times that came out of order
        self._current: int | None = None

    def add(self, when: int) -> None:
        if when == self._current:
            return
        self._current = when
        ordered = self._ordered
        if not ordered or when > ordered[-1]:
            ordered.append(when)
            return
        at = bisect.bisect_left(ordered, when)
        if (at < len(ordered) and ordered[at] == when) or when in self._others:
            self.recurring.add(when)
        else:
            self._others.add(when)


class _Keys:
    """The native id of each message: SHA-256 of (UTC time, sender, text), with a counter for repeats.

    Guard: the key recipe (docs/xapi.md "Deterministic ids"); changing it changes every statement
    id. NUL never occurs in a normalised text, so fields cannot run together. Only messages of
    one time can repeat each other: the counts of a time are dropped when its run of headers ends,
    unless the first pass saw the time come back (:class:`_Runs`); those are kept, by the first
    16 bytes of the key (the time is part of it), about 90 bytes a message.
    """

    def __init__(self, recurring: set[int]) -> None:
        self.recurring = recurring
        self.kept: dict[bytes, int] = {}
        self.when: int | None = None
        self.seen: dict[bytes, int] = {}

    def key(self, message: _Message, when: int) -> str:
        if when != self.when:
            self.when = when
            self.seen = self.kept if when in self.recurring else {}
        base = f"{message.stamp}\x00{message.actor}\x00{message.key_text}".encode("utf-8", "surrogatepass")
        first = hashlib.sha256(base).digest()
        short = first[:16]
        count = self.seen.get(short, 0) + 1
        self.seen[short] = count
        if count == 1:
            return first.hex()
        return hashlib.sha256(base + f"\x00{count}".encode()).hexdigest()


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
        header: the header's index among the file's message headers.
        rest: the rest of the header line (``Author: body`` or a system text).
        more: the continuation lines, joined by newlines ("" when there are none).
    """

    __slots__ = ("line", "header", "rest", "more")

    def __init__(self, line: int, header: int, rest: str, more: str) -> None:
        self.line = line
        self.header = header
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
    """Interprets one export's headers and messages. Separate from I/O so the rules are testable on lines."""

    def __init__(
        self,
        label: str,
        *,
        site: str,
        pseudonymize: Pseudonymizer,
        tz: ZoneInfo,
        day_first: bool | None,
        skip_unreadable: bool = False,
        max_messages: int = MAX_MESSAGES,
    ) -> None:
        self.label = label
        self.site = site
        self.pseudonymize = pseudonymize
        self.tz = tz
        self.day_first_given = day_first  # None: let the file's dates decide, or refuse
        self.group_title: str | None = None
        self._actors: dict[str, tuple[str, str]] = {}
        self._quoting: dict[str, bool] = {}  # author text -> it opens a quotation (see _quote_spans)
        self._chat_name: str | None = None  # the sender iOS writes group notices under
        self._first_line = 0  # the first header's line (set by the first pass)
        self._offsets: dict[tuple[int, int, int], timedelta | None] = {}
        self.skip_unreadable = skip_unreadable
        self.switched = False  # the header layout changed part-way (set by the first pass)
        self.max_messages = max_messages
        #: The file's dates read both ways and the caller's order or their time order chose one.
        self.order_chosen = False

    def error(self, line: int, what: str) -> InputError:
        return InputError(f"{self.label} line {line}: {what}")

    def infer_day_first(self, scan: _Scan, headers: Sequence[int]) -> tuple[bool, DateOrderError | None]:
        """docs/domain.md §2a rule 2: a first component > 12 means d/m, a second one > 12 means m/d.

        Returns:
            Whether dates are day first, and the refusal to raise once the lines have been read
            when neither the numbers, the caller nor the messages' time order tell (the order
            returned with it is only provisional).
        """
        parts, lines, dates = scan.date_parts, scan.lines, scan.dates
        if len(parts[dates[headers[0]]][0]) == 4:
            return True, None  # year first ("[2018/06/13, ...]"): the order is year/month/day

        def first_line(date: int) -> int:
            return next(lines[index] for index in headers if dates[index] == date)

        first_big: int | None = None
        second_big: int | None = None
        ordered: dict[tuple[str, str, str], None] = {}
        example: tuple[int, int] | None = None  # (line, date) of the first date whose day and month differ
        # Each date once, in the order the headers first show it (a chat repeats a date many times).
        for date in dict.fromkeys(map(dates.__getitem__, headers)):
            a, b, c = parts[date]
            if self.switched and len(a) == 4:
                continue  # the year-first part of a switched file
            if first_big is None and int(a) > 12:
                first_big = first_line(date)
            if second_big is None and int(b) > 12:
                second_big = first_line(date)
            ordered[(a, b, c)] = None
            if example is None and a != b:
                example = (first_line(date), date)
        if first_big is not None and second_big is not None:
            earlier, later = sorted((first_big, second_big))
            raise self.error(later, f"the date order contradicts line {earlier} (both d/m and m/d dates)")
        if first_big is not None:
            return True, None
        if second_big is not None:
            return False, None
        if self.day_first_given is not None:
            self.order_chosen = example is not None
            return self.day_first_given, None
        # Every date reads both ways. An export is in time order, so when only one reading
        # keeps the dates in order, that is the phone's. Otherwise a guess would silently
        # move messages by months (and change their keys): refuse, unless both readings agree.
        years = [(int(c) + (2000 if len(c) == 2 else 0), int(a), int(b)) for a, b, c in ordered]
        day_month = [(year, b, a) for year, a, b in years]
        month_day = [(year, a, b) for year, a, b in years]
        day_month_ordered = all(x <= y for x, y in zip(day_month, day_month[1:], strict=False))
        month_day_ordered = all(x <= y for x, y in zip(month_day, month_day[1:], strict=False))
        if month_day_ordered and not day_month_ordered:
            self.order_chosen = True
            return False, None
        if day_month_ordered and not month_day_ordered:
            self.order_chosen = True
            return True, None
        if example is None:
            return True, None  # every date has day == month (or there are none): both readings are the same
        line, date = example
        day, month = int(parts[date][0]), int(parts[date][1])
        return True, DateOrderError(
            f"{self.label}: every date reads both as day/month and as month/day and the order of the messages "
            f"does not tell which (line {line}: {scan.date_texts[date]} could be "
            f"{day} {_MONTHS[month - 1]} or {month} {_MONTHS[day - 1]})"
        )

    def date_state(self, a: str, b: str, c: str, day_first: bool) -> tuple[int, str, int, int | None]:
        """``(problem rank, problem, UTC seconds of the local midnight, the day's UTC offset in seconds)`` of a date.

        The checks of :meth:`timestamp` on the date alone; ranks 1 (one-digit year), 3 (year out of
        range) and 4 (no such day) order them among the time's (:func:`_time_state`). The offset
        is None on a day with a time-zone transition.
        """
        if len(a) == 4:
            year, month, day = int(a), int(b), int(c)
        else:
            if len(c) == 1:
                return 1, "the year in the message header has one digit", 0, None
            year = int(c) + 2000 if len(c) == 2 else int(c)
            day, month = (int(a), int(b)) if day_first else (int(b), int(a))
        if year >= 2400:
            year -= 543
        if not 1970 <= year <= 2999:
            return 3, f"year {year} is out of range", 0, None
        try:
            offset = self._offset(year, month, day)
        except ValueError as exc:
            return 4, f"invalid date or time in the message header ({exc})", 0, None
        midnight = (datetime(year, month, day) - datetime(1970, 1, 1)).days * 86400
        return 0, "", midnight, None if offset is None else int(offset.total_seconds())

    def timestamp(
        self,
        line: int,
        written_a: str,
        written_b: str,
        written_c: str,
        hour: int,
        minute: int,
        written_second: int | None,
        ampm: str | None,
        day_first: bool,
    ) -> tuple[datetime, str]:
        """The UTC time of a header's fields (date parts as written), and its ISO text."""
        a, b, c = int(written_a), int(written_b), int(written_c)
        if len(written_a) == 4:
            year, month, day = a, b, c
        else:
            if len(written_c) == 1:
                raise _Unreadable(line, "the year in the message header has one digit")
            year = c + 2000 if len(written_c) == 2 else c
            day, month = (a, b) if day_first else (b, a)
        second = written_second if written_second is not None else 0
        if ampm is not None:
            # 12h clock: "12:05 AM" is 00:05 and "12:05 PM" is 12:05 (docs/domain.md §2a rule 3).
            # Some Android builds write the hour after midnight and noon as 0 ("0:51 PM", "00:08 a. m.").
            if not 0 <= hour <= 12:
                raise _Unreadable(line, f"hour {hour} is not valid on a 12-hour clock")
            hour = hour % 12 + (12 if ampm in "Pp" else 0)
        if year >= 2400:
            year -= 543  # a Thai phone writes Buddhist-era years (2567 is 2024)
        if not 1970 <= year <= 2999:
            raise _Unreadable(line, f"year {year} is out of range")
        try:
            offset = self._offset(year, month, day)
            if offset is None:  # a day with a time-zone transition: ask the zone for this time
                utc = datetime(year, month, day, hour, minute, second, tzinfo=self.tz).astimezone(UTC)
            else:
                utc = datetime(year, month, day, hour, minute, second, tzinfo=UTC) - offset
        except ValueError as exc:
            raise _Unreadable(line, f"invalid date or time in the message header ({exc})") from exc
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

    def _interpret(self, raw: _Raw, occurred: tuple[datetime, str, int]) -> _Message | None:
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
        if text[:1] in _DELETED_FIRST and _DELETED.fullmatch(text):
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

    def build_all(self, keyed: list[tuple[_Message, str]]) -> list[Activity]:
        """Activities of the keyed messages of a whole file, titled with the group's last name in it."""
        grouping = ObjectRef(type="community", native_id=self.site, title=self.group_title)
        return [self.build(message, native_id, grouping, self.group_title) for message, native_id in keyed]

    def build(self, message: _Message, native_id: str, grouping: ObjectRef, title: str | None) -> Activity:
        """The activity of one keyed message."""
        return Activity(
            source=SOURCE,
            site=self.site,
            kind=Kind.MESSAGE_POSTED,
            native_id=native_id,
            actor=message.actor,
            object=ObjectRef(type="message", native_id=native_id, title=title),
            occurred_at=message.occurred_at,
            grouping=grouping,
            extras=message.extras,
        )


def _normalise_text(body: str) -> str:
    """The text a message is keyed on: invisible marks and NULs removed, NFC, lines right-trimmed."""
    if body.isascii():  # no invisible mark is ASCII, and ASCII text is its own NFC
        text = body.replace("\x00", "") if "\x00" in body else body
    else:
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
        """Check the whole export now; its messages are read again, one at a time, when the items are iterated.

        Every refusal (layout, dates, unreadable lines, caps) comes from this first pass, before any
        message is stored; the second pass holds one message at a time.
        """
        site = request.site or request.community or self.name
        pseudonymize = request.pseudonymizer()  # before the file is read: no key, nothing read or stored
        reading = _Reading(
            path,
            site=site,
            pseudonymize=pseudonymize,
            tz=request.tz,
            day_first=False if request.month_first else True if request.day_first else None,
            skip_unreadable=request.skip_unreadable,
            max_messages=request.max_messages or MAX_MESSAGES,
        )
        stats = ReadStats(records=reading.records)
        # The group name a WhatsApp file shows comes from its system lines ("created group",
        # "changed the subject"), which a later, overlapping export may lack or change. A
        # message's statement must not depend on which export it was read from (same id,
        # same content), so WhatsApp messages carry no title: the community id names the group.
        grouping = ObjectRef(type="community", native_id=request.community or site, title=None)

        def activities() -> Iterator[Activity]:
            count = 0
            with gc_paused():
                for message, native_id in reading.messages():
                    count += 1
                    yield reading.parser.build(message, native_id, grouping, None)
            stats.skipped = stats.records - count

        return FileContents(
            site=site,
            items=StreamedItems(activities),
            stats=stats,
            skipped_lines=reading.skipped_lines,
            date_order=reading.date_order,
        )


FORMAT = WhatsAppFormat()
