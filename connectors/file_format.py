"""What every file format shares: the FileFormat contract and the one bounded reader of export files.

A file format (a WhatsApp export, a Zoom report...) is told from a file's first bytes
(:meth:`FileFormat.detect`) and read whole (:meth:`FileFormat.read`). The registry of
formats is :data:`connectors.formats.FORMATS`; this module sits below the format modules
(they import it), the registry above them.

Every format reads its file through :func:`read_capped` (one size cap, one sentence when
it is exceeded), a zip member through :func:`read_zip_member`, and text through
:func:`decode_text` (a UTF-8 BOM dropped, Windows UTF-16 reports recognised).
"""

from __future__ import annotations

import codecs
import hashlib
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from connectors.base import Pseudonymizer, ReadStats
from lms_bridge.activity import Activity
from lms_bridge.errors import ConfigError, InputError
from lms_bridge.input_files import open_regular, read_regular

#: The bytes a format is told from: enough for any header or preamble of the known exports.
HEAD_BYTES = 64 * 1024

# How sure a format is that a file is its own, from the strongest evidence to the weakest.
# Detection takes the most confident format; the levels are the order in which the
# evidence has always been weighed (a zip is a WhatsApp export whatever it is named...).
#: The file is a zip archive (by its bytes or its name).
ZIP = 0.9
#: The file's extension names the format alone (``.jsonl``).
OWN_EXTENSION = 0.8
#: The file is JSON (by its extension or its first character) of the format's shape.
JSON_SHAPE = 0.7
#: The file's extension or first line is the format's (``.txt``, a WhatsApp header).
TEXT_SHAPE = 0.6
#: The operator gave what only this format takes (a column mapping).
BY_OPTION = 0.5
#: The file's header rows are the format's (an attendance report's columns).
HEADER_ROWS = 0.4
#: The file is named like the format's files but its first bytes are not readable text:
#: reading it says what is wrong, with the line.
NAMED_ONLY = 0.1
#: Not the format's file.
NO = 0.0


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes: the cursor key of one import."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- the bounded reader ------------------------------------------------------------------------------


def read_capped(path: Path, label: str, *, limit: int, refusal: str) -> bytes:
    """Read a whole regular file into memory, refusing one larger than ``limit`` bytes (or not a regular file).

    Args:
        path: the file.
        label: what the file is and its name, the start of every error ("whatsapp export chat.txt").
        limit: the largest size accepted, in bytes (a whole MB: the error states it in MB).
        refusal: what the error calls a file that large ("not a chat export").

    Raises:
        InputError: the file cannot be read or is larger than ``limit``.
    """
    return read_regular(path, label, limit=limit, refusal=refusal)


def read_zip_member(
    path: Path, label: str, *, limit: int, choose: Callable[[list[zipfile.ZipInfo]], zipfile.ZipInfo]
) -> tuple[str, bytes]:
    """Read the one member of a zip archive that ``choose`` picks, refusing one larger than ``limit`` bytes.

    The member's stated size is checked before it is inflated, and the inflated bytes
    again (a stated size can lie), so a zip bomb costs ``limit`` bytes at most.

    Args:
        path: the archive.
        label: what the file is and its name, the start of every error.
        limit: the largest member accepted, in bytes.
        choose: picks the member from the archive's entries; raises InputError when none fits.

    Returns:
        The member's name and bytes.

    Raises:
        InputError: the archive is not readable, ``choose`` refused it, or the member is too large.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            chosen = choose(archive.infolist())
            if chosen.file_size > limit:
                raise InputError(f"{label}: {chosen.filename} is larger than {limit >> 20} MB")
            with archive.open(chosen) as member:
                content = member.read(limit + 1)
    except InputError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        ValueError,
        zlib.error,
    ) as exc:
        raise InputError(f"{label}: not a readable zip archive ({exc.__class__.__name__})") from exc
    if len(content) > limit:
        raise InputError(f"{label}: {chosen.filename} is larger than {limit >> 20} MB")
    return chosen.filename, content


def deeper_than(value: object, limit: int) -> bool:
    """Whether parsed JSON nests more than ``limit`` levels (an object or array is one level), without recursion."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def too_deep(label: str, limit: int) -> InputError:
    """The refusal of JSON nested deeper than ``limit`` levels (also for JSON too deep for the parser itself)."""
    return InputError(
        f"{label}: JSON nested more than {limit} levels deep, not an export; "
        "raise [limits] max_json_depth if the file is genuine"
    )


def report_encoding(data: bytes) -> str:
    """The encoding of a report a Windows program may have written: UTF-16 (with or without its BOM) or UTF-8.

    Teams writes UTF-16LE with a BOM (docs/domain.md §2d); a copy may have lost the BOM,
    which shows as NUL high bytes in the first characters.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(data) >= 4 and data[1:64:2].count(0) > len(data[1:64:2]) // 2 and data[0] != 0:
        return "utf-16-le"
    return "utf-8"


def decode_text(
    data: bytes, label: str, *, encoding: str = "utf-8", shown: str = "UTF-8", by_line: bool = True, hint: str = ""
) -> str:
    r"""Decode a file's bytes; a UTF-8 BOM is dropped.

    Args:
        data: the bytes (from :func:`read_capped`).
        label: what the file is and its name, the start of the error.
        encoding: the encoding; ``"utf-8"`` also drops a BOM.
        shown: the encoding's name in the error.
        by_line: the error names the line of the bad byte (counted by ``\n`` bytes: not for UTF-16).
        hint: what the operator can do, appended to the error.

    Raises:
        InputError: a byte is not of the encoding: the line (or only the offset) is named.
    """
    try:
        return data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        advice = f"; {hint}" if hint else ""
        if not by_line:
            raise InputError(f"{label}: not valid {shown} text (invalid bytes at offset {exc.start}){advice}") from exc
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{label} line {line}: not {shown} text (invalid byte at offset {exc.start}){advice}") from exc


def refuse_nul(text: str, label: str, *, hint: str = "") -> None:
    """A NUL character means binary data or a wrong encoding, not a text report."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError(f"{label} line {line}: a NUL character, not a text report{hint}")


# --- telling a format ---------------------------------------------------------------------------------


def read_head(path: Path) -> bytes:
    """The first :data:`HEAD_BYTES` of a file, or one sentence saying why there are none."""
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an export file")
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{path} does not exist")
    try:
        with open_regular(path, str(path)) as handle:  # a named pipe or a device is refused at once
            return handle.read(HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc.__class__.__name__})") from exc


@dataclass(frozen=True)
class Sample:
    """What a format is told from: the file's name, its first bytes, and whether a column mapping was given.

    Attributes:
        path: the file.
        head: its first :data:`HEAD_BYTES`.
        mapping: the operator gave a column mapping.
    """

    path: Path
    head: bytes
    mapping: bool = False

    @property
    def suffix(self) -> str:
        """The extension, lowercased (``".csv"``)."""
        return self.path.suffix.lower()

    @cached_property
    def text(self) -> str:
        """The head as text (UTF-16 when it starts with its BOM, else UTF-8), undecodable bytes replaced."""
        if self.head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return self.head.decode("utf-16", errors="replace")
        return self.head.decode("utf-8", errors="replace")

    @cached_property
    def stripped(self) -> str:
        """The text without a leading BOM and blank space."""
        return self.text.lstrip("\ufeff \t\r\n")

    @property
    def first_line(self) -> str:
        """The first line that is not blank."""
        return self.stripped.split("\n", 1)[0]

    @property
    def is_zip(self) -> bool:
        """A zip archive, by its bytes or its name."""
        return self.head.startswith(b"PK\x03\x04") or self.suffix == ".zip"

    @property
    def is_json(self) -> bool:
        """JSON, by its name or its first character (a zip is never JSON)."""
        return not self.is_zip and self.suffix != ".jsonl" and (self.suffix == ".json" or self.stripped.startswith("{"))

    def report_text(self) -> str | None:
        """The head as a report's text (see :func:`report_encoding`), cut at its last whole line; None if unreadable."""
        head = self.head
        decoder = codecs.getincrementaldecoder(report_encoding(head) if head else "utf-8")()
        try:
            text = decoder.decode(head, final=len(head) < HEAD_BYTES)
        except UnicodeDecodeError:
            return None
        text = text.removeprefix("\ufeff")
        if "\x00" in text:
            return None
        if len(head) == HEAD_BYTES and "\n" in text:
            text = text[: text.rindex("\n") + 1]
        return text


# --- reading --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadRequest:
    """What the operator said about a file, for :meth:`FileFormat.read`.

    Attributes:
        tz: the deployment's time zone (local times in the file are read in it).
        pseudonymizer: makes the keyed pseudonymiser; a format calls it only when its file
            holds people it must pseudonymise, before reading (no key: nothing read).
        site: the source id to record the import under, or None for the format's default.
        community: the Community of Practice the file's activities belong to, or None.
        mapping: the column mapping of an LMS completion report.
        chat: the chat to read from a Telegram export that holds several.
        meeting_date: the date of a Meet sheet that states times of day only.
        month_first: a WhatsApp export whose dates cannot show their order is m/d.
        day_first: a WhatsApp export whose dates cannot show their order is d/m (even when
            only m/d would keep them in time order).
        skip_unreadable: import a chat export whose few unreadable lines are skipped (and
            reported in :attr:`FileContents.skipped_lines`) instead of refusing it.
        max_messages: the most messages one chat export may hold, or None for the format's cap.
        max_rows: the most rows (activities) one report or activity file may hold.
        max_json_depth: how deeply a JSON file may nest.
    """

    tz: ZoneInfo
    pseudonymizer: Callable[[], Pseudonymizer]
    site: str | None = None
    community: str | None = None
    mapping: Path | None = None
    chat: str | None = None
    meeting_date: date | None = None
    month_first: bool = False
    day_first: bool = False
    skip_unreadable: bool = False
    max_messages: int | None = None
    max_rows: int = 1_000_000
    max_json_depth: int = 64


class StreamedItems:
    """The activities of a checked file, read again from the file each time they are iterated.

    A format that streams (a WhatsApp export) checks the whole file first, then hands these
    out: iterating yields ``(activity, position)`` (positions 1, 2, ...) while holding one
    message at a time. The count is known once an iteration has run to its end.
    """

    def __init__(self, produce: Callable[[], Iterator[Activity]]) -> None:
        self._produce = produce
        self.count: int | None = None

    def __iter__(self) -> Iterator[tuple[Activity, int]]:
        position = 0
        for position, activity in enumerate(self._produce(), start=1):  # noqa: B007 - counted after the loop
            yield activity, position
        self.count = position

    def __len__(self) -> int:
        if self.count is None:
            self.count = sum(1 for _ in self._produce())  # read the file once more, only to count
        return self.count

    def __bool__(self) -> bool:
        return len(self) > 0


#: The activities of a file: a list, or a stream re-read from the file (:class:`StreamedItems`).
Items = list[tuple[Activity, int]] | StreamedItems


@dataclass
class FileContents:
    """A file read and checked: nothing malformed is left to find in ``items``.

    Attributes:
        site: the source id the import is recorded under (the request's, or the format's default).
        items: every activity with its position (1-based index, or the line of an activity file).
        stats: the file's own records read and the ones skipped (not participation); a streamed
            file's ``skipped`` is set once its items have been iterated to the end.
        notes: ``(line, reason)`` for rows skipped for a reason the operator can fix.
        skipped_lines: lines that could not be read and were skipped on request (``--skip-unreadable``).
        date_order: ``day-first`` or ``month-first`` when the file's dates read both ways and an option
            or their time order chose one (the import is recorded under it), else None.
    """

    site: str
    items: Items
    stats: ReadStats = field(default_factory=ReadStats)
    notes: list[tuple[int, str]] = field(default_factory=list)
    skipped_lines: list[int] = field(default_factory=list)
    date_order: str | None = None


def numbered(activities: list[Activity]) -> list[tuple[Activity, int]]:
    """Each activity with its position in the file, from 1 (the cursor of an import counts them)."""
    return [(activity, index) for index, activity in enumerate(activities, start=1)]


#: Options only some formats take: option -> the sentence refusing it for another format ({a}: that format).
_OPTION_MISUSE = {
    "mapping": "--mapping applies to LMS completion reports (--source csv), not to {a}",
    "chat": "--chat picks one chat of a Telegram export; it does not apply to {a}",
    "meeting_date": "--meeting-date applies to Google Meet sheets, not to {a}",
}


class FileFormat:
    """One kind of export file: how it is told from others and read.

    A subclass sets the attributes (as class attributes) and implements :meth:`detect` and :meth:`read`.

    Attributes:
        name: the format's name: the value of ``import --source`` and of an inbox's ``source``.
        description: what the file is, for people ("WhatsApp chat").
        unit: what ``stats.records`` counts ("messages", "rows", "activities").
        skip_reason: why records are skipped, in a few words.
        community: whether ``--community`` is ``"required"`` (a chat belongs to one CoP),
            ``"allowed"`` (a meeting may) or ``"refused"`` (the file names no community).
        options: the format-specific options it takes (``mapping``, ``chat``, ``meeting_date``).
        needs_mapping: it cannot be read without a column mapping.
        people_by_pseudonym: its people are pseudonyms the roster links to NIPs (chats,
            meetings), not NIPs the file states.
        shows_invalid: its summary always counts invalid activities (hand-made activity files).
    """

    name: str
    description: str
    unit: str
    skip_reason: str = ""
    community: Literal["required", "allowed", "refused"] = "allowed"
    options: frozenset[str] = frozenset()
    needs_mapping: bool = False
    people_by_pseudonym: bool = True
    shows_invalid: bool = False

    def detect(self, sample: Sample) -> float:
        """How sure this format is that the sampled file is its own: one of the levels above, :data:`NO` if not.

        Never raises: a file that cannot be understood is the reader's to refuse.
        """
        raise NotImplementedError

    def read(self, path: Path, request: ReadRequest) -> FileContents:
        """Read and check the whole file; nothing is returned from a malformed one.

        Raises:
            InputError: the file cannot be read, is too large or malformed (one sentence: file and line).
            ConfigError: the pseudonym key is not set (from ``request.pseudonymizer``).
        """
        raise NotImplementedError

    def check_declared(self, path: Path) -> None:
        """The operator named this format: refuse a file that is plainly another one (default: nothing to check).

        Raises:
            InputError: the file is of another format (one sentence naming the right ``--source``).
        """

    def check_options(self, request: ReadRequest) -> None:
        """Refuse options that do not apply to this format, and missing ones it needs.

        Raises:
            ConfigError: one sentence naming the option.
        """
        if request.mapping is not None and "mapping" not in self.options:
            raise ConfigError(_OPTION_MISUSE["mapping"].format(a=self.with_article))
        if self.needs_mapping and request.mapping is None:
            raise ConfigError(
                f"{self.with_article} needs its column mapping: give --mapping FILE (see mappings/lms_csv_example.toml)"
            )
        if request.community is not None and self.community == "refused":
            raise ConfigError(
                f"--community names the CoP of a chat export or meeting report; {self.with_article} has no community"
            )
        if request.community is None and self.community == "required":
            raise ConfigError(
                f"a {self.description} export needs the Community of Practice it belongs to: "
                "give --community NAME (e.g. --community cop-wi-7)"
            )
        if request.chat is not None and "chat" not in self.options:
            raise ConfigError(_OPTION_MISUSE["chat"].format(a=self.with_article))
        if request.meeting_date is not None and "meeting_date" not in self.options:
            raise ConfigError(_OPTION_MISUSE["meeting_date"].format(a=self.with_article))

    @property
    def with_article(self) -> str:
        """The description with its article: "a WhatsApp chat", "an LMS completion report"."""
        first = self.description[0]
        return ("an " if first in "aeiouAEIOU" or self.description.startswith("LMS") else "a ") + self.description
