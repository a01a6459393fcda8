"""Read meeting attendance reports (Zoom, Google Meet, Microsoft Teams) into attendance activities.

Formats: docs/domain.md §2c and §2d. :func:`detect_format` tells them apart by
content, never by file name:

* ``zoom``: the Zoom participants report, with or without the meeting-info
  preamble ("Export with meeting data"); one row per join, so a rejoin is a new row.
* ``zoom_webinar``: the Zoom webinar attendee report (title block, webinar row,
  "Host/Panelist/Attendee Details" sections).
* ``meet``: a Google Meet attendance sheet exported to CSV.
* ``teams``: the Microsoft Teams attendance report: tab-separated, usually
  UTF-16LE with a BOM, in sections "1. Summary", "2. Participants",
  "3. In-Meeting Activities" (also the older "Full Name / User Action / Timestamp").

Each reader yields ONE ``MEETING_ATTENDED`` activity per person per session:
the person's rows are merged (earliest join, latest leave) and ``duration`` is
the time present. That is the sum of the rows' minutes, as the report states
them (docs/domain.md §2c), unless two rows of one person overlap (two devices
at once): then it is the length of the union of the rows, so nobody is present
twice. Zoom rows spent in the waiting room ("In Waiting Room" = Yes) are not
presence; a person who only waited is not listed. ``extras`` holds
``identifier_kind``, ``segments`` (report rows merged), ``guest`` (Zoom's Guest
column) and, when the report has one, ``role`` (host, panelist, organizer...).

Identity: the e-mail when the row has one, else the display name. A Zoom name
"New (Original)" is a renamed participant (docs/domain.md §2c); rows of a
person are merged under the original name when that name also appears on its
own in the report. Otherwise the full text is kept, because Indonesian
participants often write their office in parentheses ("Budi (BKD Jatim)"), and
reading that as a rename would merge different people into one. No name,
e-mail or phone number is put in an Activity: only the pseudonym; the meeting
topic is the object's title.

Times in the reports are local times of the account that downloaded them:
they are read in ``tz``. Day/month order is inferred from the whole file
(a first component > 12 means day-first, a second one > 12 month-first);
when every date is ambiguous, a file with AM/PM times is read month-first (US
layout) and a 24-hour file day-first.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from connectors.base import Pseudonymizer, ReadStats
from connectors.file_format import (
    HEADER_ROWS,
    NAMED_ONLY,
    NO,
    FileContents,
    FileFormat,
    ReadRequest,
    Sample,
    decode_text,
    numbered,
    read_capped,
    refuse_nul,
    report_encoding,
)
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.errors import InputError
from lms_bridge.identifiers import IdentifierKind, email_identifier, name_identifier, strip_invisible

AttendanceFormat = Literal["zoom", "zoom_webinar", "meet", "teams"]

#: The default time zone of report times (WIB).
JAKARTA = ZoneInfo("Asia/Jakarta")

# An attendance report is at most a few MB; refuse anything far larger.
_MAX_BYTES = 64 * 1024 * 1024

_SOURCE: dict[str, str] = {"zoom": "zoom", "zoom_webinar": "zoom", "meet": "meet", "teams": "teams"}
_LABEL: dict[str, str] = {
    "zoom": "zoom participants report",
    "zoom_webinar": "zoom webinar report",
    "meet": "google meet attendance",
    "teams": "teams attendance report",
}
_ROLE_RANK = {"organizer": 0, "host": 0, "co-organizer": 1, "presenter": 1, "panelist": 1, "attendee": 2}

_TIME = r"(?P<h>[0-9]{1,2})[:.](?P<mi>[0-9]{2})(?:[:.](?P<s>[0-9]{2}))?\s*(?P<ampm>[AaPp]\.?\s?[Mm]\.?)?"
# "03/12/2024 09:00:00 AM" (Zoom US), "13/03/2024 13:00:00" (Zoom d/m), "3/14/24, 1:00:00 PM" (Teams),
# "2024-03-12 09:00:00" (ISO).
_NUMERIC_DATETIME = re.compile(
    r"(?P<a>[0-9]{4}|[0-9]{1,2})[/.-](?P<b>[0-9]{1,2})[/.-](?P<c>[0-9]{4}|[0-9]{2}|[0-9])(?:,?\s+|T)" + _TIME,
    re.ASCII,
)
# "Mar 12, 2024 09:00:00 AM" (Zoom webinar reports) and "12 Mar 2024 09:00".
_NAMED_DATETIME = re.compile(
    r"(?:(?P<mon>[A-Za-z]{3,9})\.?\s+(?P<d>[0-9]{1,2})|(?P<d2>[0-9]{1,2})\s+(?P<mon2>[A-Za-z]{3,9})\.?)"
    r",?\s+(?P<y>[0-9]{4}),?\s+(?:at\s+)?" + _TIME,
    re.ASCII,
)
_TIME_ONLY = re.compile(_TIME, re.ASCII)
# English and Indonesian month names, by their first three letters.
_MONTHS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "mei": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "agu": 8,
    "agt": 8,
    "ags": 8,
    "sep": 9,
    "oct": 10,
    "okt": 10,
    "nov": 11,
    "dec": 12,
    "des": 12,
}
# Meet "1 hr 2 min", Teams "1h 5m 3s", Indonesian "1 jam 2 mnt".
_DURATION_PART = re.compile(
    # Indonesian Teams writes "1j 4m 55d" (jam, menit, detik).
    r"([0-9]+)\s*(h|hr|hrs|hour|hours|j|jam|m|min|mins|minute|minutes|mnt|menit|s|sec|secs|second|seconds|d|dtk|detik)\b",
    re.IGNORECASE | re.ASCII,
)
_CLOCK_DURATION = re.compile(r"([0-9]{1,3}):([0-9]{2})(?::([0-9]{2}))?", re.ASCII)
# A Zoom rename: "WI Siti (Siti Rahmawati)".
_RENAMED = re.compile(r"(?P<new>.*\S)\s*\((?P<orig>[^()]*[^()\s][^()]*)\)\s*")
_MEET_CODE = re.compile(r"(?<![a-z])([a-z]{3}-[a-z]{4}-[a-z]{3})(?![a-z])")
_ISO_DATE = re.compile(r"(?<![0-9])(20[0-9]{2})-([0-9]{2})-([0-9]{2})(?![0-9])")
_YES = frozenset({"yes", "ya", "true", "1", "y"})


#: Report labels per language (Indonesian first), kept as data: ``connectors/attendance_headers.toml``.
HEADERS_FILE = Path(__file__).with_name("attendance_headers.toml")
#: The columns of the Teams participants table, in the order Teams writes them (read by position
#: when the labels are in a language the data file does not hold).
_TEAMS_ORDER = ("name", "first_join", "last_leave", "duration", "email")
_TEAMS_EXPECTED = (
    "Name, First Join, Last Leave, In-Meeting Duration (then Email, Participant ID (UPN), Role), "
    "named in a language Teams writes or in this order"
)
_MEET_EXPECTED = (
    "a name (Name, or First name and Last name), Time joined (or First Seen) and Duration (or Time in Call) "
    "or Time exited, as in Meet's attendance report (First name, Last name, Email, Duration, Time joined, "
    "Time exited) or an attendance extension's CSV (Full Name, First Seen, Time in Call)"
)


@lru_cache(maxsize=1)
def _labels() -> dict[str, dict[str, frozenset[str]]]:
    """``{"teams.summary" | "teams.participants" | "meet": {field: labels}}`` from the data file."""
    data = tomllib.loads(HEADERS_FILE.read_text(encoding="utf-8"))
    sections = {"teams.summary": data["teams"]["summary"], "teams.participants": data["teams"]["participants"]}
    sections["meet"] = data["meet"]
    return {
        name: {field: frozenset(_key(label) for label in labels) for field, labels in section.items()}
        for name, section in sections.items()
    }


def _field_of(section: str, cell: str) -> str | None:
    """The field a header or summary label names in any known language, or None."""
    key = _key(cell).rstrip(":")
    return next((field for field, labels in _labels()[section].items() if key in labels), None)


def _delimiter(lines: list[str]) -> str:
    """Tab (Teams as downloaded), or ``;``/``,`` (the report re-saved by Excel in a ;- or ,-locale)."""
    for delimiter in ("\t", ";"):
        if sum(delimiter in line for line in lines) > len(lines) // 2:
            return delimiter
    return ","


def detect_format(path: Path) -> AttendanceFormat:
    """Tell which attendance report a file is, from its content.

    Args:
        path: a downloaded report.

    Returns:
        ``"zoom"`` (participants report), ``"zoom_webinar"`` (webinar attendee
        report), ``"meet"`` or ``"teams"``.

    Raises:
        InputError: the file cannot be read, is not text, or is none of these.
    """
    label = f"attendance report {path.name}"
    return _detect(_read_text(path, label), label)


def read_attendance(
    path: Path,
    *,
    site: str,
    pseudonymize: Pseudonymizer,
    tz: ZoneInfo = JAKARTA,
    meeting_date: date | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Activity]:
    """Yield one ``MEETING_ATTENDED`` activity per person of a Zoom, Meet or Teams report.

    The whole file is parsed and validated before the first activity is yielded:
    a malformed file raises :class:`InputError` and yields nothing.

    Keys: ``native_id`` = ``"{meeting id}:{session start date}:{actor pseudonym}"``.
    The meeting id is the report's own (Zoom meeting or webinar id, Meet code, Teams
    meeting id) or, when the report has none, a hash of the topic and the start
    time, so a re-download of the same report gives the same keys.
    Guard: changing this recipe changes every statement id already in the LRS.

    Args:
        path: the report file (``.csv``; Teams' ``.csv`` is really UTF-16 TSV).
        site: the configured source id.
        pseudonymize: turns a normalised identifier (``email:...``, ``name:...``)
            into an opaque pseudonym.
        tz: the time zone of the account that downloaded the report.
        meeting_date: the local date of a Google Meet sheet that states times of day
            only, when neither the sheet nor its file name gives the date.
        stats: when given, set once the file parsed: the presence rows read and the
            ones that are not presence (waiting room).

    Yields:
        Activities ordered by first join time.

    Raises:
        InputError: the file cannot be read, is not text, is not a known report,
            or has a bad row; the message names the file and the row.
    """
    yield from _parse_file(path, site=site, pseudonymize=pseudonymize, tz=tz, meeting_date=meeting_date, stats=stats)


# --- reading -----------------------------------------------------------------------------------------


def _read_text(path: Path, label: str) -> str:
    data = read_capped(path, label, limit=_MAX_BYTES, refusal="not an attendance report")
    encoding = report_encoding(data)
    if encoding == "utf-8":
        text = decode_text(data, label)
    else:
        text = decode_text(data, label, encoding=encoding, shown="UTF-16", by_line=False)
    refuse_nul(text, label)
    return text


def _rows(text: str, label: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """Split into (line number, cells), cells cleaned of invisible marks and outer spaces."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for cells in reader:
            rows.append((start, [_clean(cell) for cell in cells]))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"{label} row {reader.line_num}: not a valid CSV row ({exc})") from exc
    return rows


def _clean(cell: str) -> str:
    if not cell.isascii():
        cell = strip_invisible(cell.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2009", " "))
    return cell.strip()


def _key(cell: str) -> str:
    """A header cell as a lookup key: casefolded, whitespace collapsed."""
    return " ".join(cell.casefold().split())


def _detect(text: str, label: str) -> AttendanceFormat:
    # Teams reports start with a numbered section heading in the report's language ("1. Summary",
    # "1. Ringkasan") and are tab-separated, or ;/,-separated once re-saved by Excel (docs/domain.md §2d).
    # Commas inside their dates ("3/14/24, 1:00:00 PM") make counting commas alone unreliable.
    lines = [line for line in text[:8192].split("\n") if line.strip()][:12]
    tabbed = sum("\t" in line for line in lines)
    numbered = bool(lines) and re.match(r"[1-9]\.\s+\S", lines[0].strip()) is not None
    if numbered or tabbed > len(lines) // 2:
        keys = {_key(cell) for _, cells in _rows(text, label, _delimiter(lines)) for cell in cells[:1]}
        if numbered or keys & {"full name", "meeting title", "judul rapat"}:
            return "teams"
        raise InputError(f"{label}: a tab-separated file that is not a Teams attendance report")
    for _, cells in _rows(text, label, ","):
        keys = {_key(cell) for cell in cells}
        if "webinar id" in keys or (cells and _key(cells[0]) == "attendee report"):
            return "zoom_webinar"
        if "join time" in keys and "leave time" in keys:
            return "zoom"
        if _meet_header(keys):
            return "meet"
    raise InputError(f"{label}: not a Zoom, Google Meet or Microsoft Teams attendance report")


_MEET_NAME_COLUMNS = frozenset({"first name", "name", "full name", "participant name"})


def _meet_header(keys: set[str]) -> bool:
    """A Meet attendance header: Workspace's sheet, or an attendance extension's CSV (data file ``[meet]``)."""
    if "time joined" in keys or ("email" in keys and "duration" in keys and keys & _MEET_NAME_COLUMNS):
        return True
    meet = _labels()["meet"]
    named = bool(keys & (meet["name"] | meet["first_name"]))
    return named and bool(keys & meet["joined"]) and bool(keys & (meet["duration"] | meet["exited"]))


def _parse_file(
    path: Path,
    *,
    site: str,
    pseudonymize: Pseudonymizer,
    tz: ZoneInfo,
    meeting_date: date | None = None,
    stats: ReadStats | None = None,
) -> list[Activity]:
    generic = f"attendance report {path.name}"
    text = _read_text(path, generic)
    fmt = _detect(text, generic)
    label = f"{_LABEL[fmt]} {path.name}"
    if fmt == "zoom":
        session = _zoom(text, label, tz)
    elif fmt == "zoom_webinar":
        session = _zoom_webinar(text, label, tz)
    elif fmt == "meet":
        session = _meet(text, label, tz, path.name, meeting_date)
    else:
        session = _teams(text, label, tz)
    activities = _build(session, _SOURCE[fmt], site, pseudonymize)
    if stats is not None:
        stats.records = len(session.rows) + session.skipped
        stats.skipped = session.skipped
    return activities


# --- shared model ------------------------------------------------------------------------------------


@dataclass
class _Row:
    """One presence interval of one person."""

    line: int
    identity: tuple[IdentifierKind, str]
    join: datetime
    leave: datetime | None
    seconds: int  # the time present the report states for this row
    guest: bool = False
    role: str | None = None


@dataclass
class _Session:
    meeting_id: str | None
    topic: str | None
    start: datetime | None
    rows: list[_Row] = field(default_factory=list)
    skipped: int = 0  # report rows that are not presence (waiting room)


class _Clock:
    """Reads the date-times of one report, with one day/month order for the whole file."""

    def __init__(self, label: str, tz: ZoneInfo, cells: list[tuple[int, str]]) -> None:
        self.label = label
        self.tz = tz
        first_big = second_big = None
        twelve_hour = False
        for line, cell in cells:
            match = _NUMERIC_DATETIME.fullmatch(cell)
            if match is None or len(match["a"]) == 4:
                continue
            twelve_hour = twelve_hour or match["ampm"] is not None
            if first_big is None and int(match["a"]) > 12:
                first_big = line
            if second_big is None and int(match["b"]) > 12:
                second_big = line
        if first_big is not None and second_big is not None:
            raise InputError(
                f"{label} row {max(first_big, second_big)}: the date order contradicts row "
                f"{min(first_big, second_big)} (both d/m and m/d dates)"
            )
        if first_big is not None:
            self.day_first = True
        elif second_big is not None:
            self.day_first = False
        else:
            self.day_first = not twelve_hour  # US reports use AM/PM and m/d; 24h ones d/m

    def error(self, line: int, what: str) -> InputError:
        return InputError(f"{self.label} row {line}: {what}")

    def parse(self, cell: str, line: int, what: str) -> datetime:
        """Return the cell as a tz-aware local date-time."""
        numeric = _NUMERIC_DATETIME.fullmatch(cell)
        if numeric is not None:
            a, b, c = int(numeric["a"]), int(numeric["b"]), int(numeric["c"])
            if len(numeric["a"]) == 4:
                year, month, day = a, b, c
            else:
                if len(numeric["c"]) == 1:
                    raise self.error(line, f"the {what} has a one-digit year")
                year = c + 2000 if len(numeric["c"]) == 2 else c
                day, month = (a, b) if self.day_first else (b, a)
            return self._combine(date_parts=(year, month, day), match=numeric, line=line, what=what)
        named = _NAMED_DATETIME.fullmatch(cell)
        if named is not None:
            month_name = (named["mon"] or named["mon2"]).casefold()
            named_month = _MONTHS.get(month_name[:3])
            if named_month is None:
                raise self.error(line, f"the {what} has an unknown month name")
            parts = (int(named["y"]), named_month, int(named["d"] or named["d2"]))
            return self._combine(date_parts=parts, match=named, line=line, what=what)
        raise self.error(line, f"the {what} is not a date and time")

    def parse_time_on(self, cell: str, day: date | None, line: int, what: str) -> datetime:
        """Return a time-only cell ("09:00", "9:00 AM") on the given day, or a full date-time cell."""
        match = _TIME_ONLY.fullmatch(cell)
        if match is None:
            return self.parse(cell, line, what)
        if day is None:
            # Never "today": an activity is a pure function of its source.
            raise self.error(
                line,
                f"the {what} has no date, and neither the file nor its name gives the meeting date "
                "(name the file with the date, e.g. ...-2024-03-12.csv)",
            )
        return self._combine(date_parts=(day.year, day.month, day.day), match=match, line=line, what=what)

    def _combine(self, *, date_parts: tuple[int, int, int], match: re.Match[str], line: int, what: str) -> datetime:
        year, month, day = date_parts
        hour, minute = int(match["h"]), int(match["mi"])
        second = int(match["s"]) if match["s"] is not None else 0
        if match["ampm"] is not None:
            if not 1 <= hour <= 12:
                raise self.error(line, f"the {what} has hour {hour} on a 12-hour clock")
            hour = hour % 12 + (12 if match["ampm"][0] in "Pp" else 0)
        if not 1970 <= year <= 2999:
            raise self.error(line, f"the {what} has year {year}, out of range")
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=self.tz)
        except ValueError as exc:
            raise self.error(line, f"the {what} is not a valid date and time ({exc})") from exc


class _Table:
    """A header row and the column positions it names."""

    def __init__(self, label: str, line: int, header: list[str]) -> None:
        self.label = label
        self.line = line
        self.columns: dict[str, int] = {}
        for index, cell in enumerate(header):
            self.columns.setdefault(_key(cell), index)

    def find(self, *names: str) -> int | None:
        for name in names:
            if name in self.columns:
                return self.columns[name]
        return None

    def need(self, *names: str) -> int:
        index = self.find(*names)
        if index is None:
            raise InputError(f"{self.label} row {self.line}: missing column {names[0]!r}")
        return index

    @staticmethod
    def cell(cells: list[str], index: int | None) -> str:
        if index is None or index >= len(cells):
            return ""
        return cells[index]


def _identity(email: str, name: str, line: int, label: str) -> tuple[IdentifierKind, str]:
    if email:
        identifier = email_identifier(email)
        if identifier is not None:
            return "email", identifier
    identifier = name_identifier(name)
    if identifier is None:
        raise InputError(f"{label} row {line}: a participant with neither e-mail nor name")
    return "name", identifier


def _resolve_renames(names: dict[int, str], rows: list[_Row]) -> None:
    """Merge "New (Original)" rows under the original name when it also appears on its own.

    ``names`` maps a row's line to its raw name cell, for rows identified by name.
    """
    standalone = {row.identity[1] for row in rows if row.identity[0] == "name"}
    for row in rows:
        raw = names.get(row.line)
        if raw is None:
            continue
        match = _RENAMED.fullmatch(raw)
        if match is None:
            continue
        original = name_identifier(match["orig"])
        if original is not None and original != row.identity[1] and original in standalone:
            row.identity = ("name", original)


def _minutes(cell: str, line: int, label: str, what: str) -> int:
    if not cell.isdigit() or not cell.isascii() or len(cell) > 6:
        raise InputError(f"{label} row {line}: the {what} is not a whole number of minutes")
    return int(cell)


def _duration_seconds(cell: str, line: int, label: str, what: str) -> int:
    """Parse "1h 5m 3s", "1 hr 2 min", "45 min", "1:02:03" or a bare number of minutes."""
    text = cell.strip()
    if text.isascii() and text.isdigit() and len(text) <= 6:
        return int(text) * 60
    clock = _CLOCK_DURATION.fullmatch(text)
    if clock is not None:
        if clock[3] is None:
            return int(clock[1]) * 60 + int(clock[2])  # "MM:SS"
        return int(clock[1]) * 3600 + int(clock[2]) * 60 + int(clock[3])
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip(" ,"):
        raise InputError(f"{label} row {line}: the {what} is not a duration")
    total = 0
    for number, unit in parts:
        if len(number) > 7:
            raise InputError(f"{label} row {line}: the {what} is not a duration")
        unit = unit.casefold()
        scale = 3600 if unit[0] in "hj" else 1 if unit[0] in "sd" else 60
        total += int(number) * scale
    return total


def _leave_after_join(join: datetime, leave: datetime, line: int, label: str) -> None:
    if leave < join:
        raise InputError(f"{label} row {line}: the leave time is before the join time")


# --- Zoom participants -------------------------------------------------------------------------------


def _zoom(text: str, label: str, tz: ZoneInfo) -> _Session:
    rows = _rows(text, label, ",")
    header_at = next(i for i, (_, cells) in enumerate(rows) if {"join time", "leave time"} <= {_key(c) for c in cells})
    table = _Table(label, rows[header_at][0], rows[header_at][1])
    name_col = table.need("name (original name)", "name", "user name (original name)", "user name", "participant")
    email_col = table.find("user email", "email")
    join_col = table.need("join time")
    leave_col = table.need("leave time")
    minutes_col = table.find("duration (minutes)", "duration (minute)", "duration")
    guest_col = table.find("guest")
    waiting_col = table.find("in waiting room")

    # "Export with meeting data": a meeting-info header, one value row, a blank line (docs/domain.md §2c).
    meeting: dict[str, str] = {}
    preamble = [(line, cells) for line, cells in rows[:header_at] if any(cells)]
    if preamble:
        if len(preamble) < 2:
            raise InputError(f"{label} row {preamble[0][0]}: a meeting-info header without its value row")
        info = _Table(label, preamble[0][0], preamble[0][1])
        values = preamble[1][1]
        for key, index in info.columns.items():
            meeting[key] = _Table.cell(values, index)

    data = [(line, cells) for line, cells in rows[header_at + 1 :] if any(cells)]
    date_cells = [(line, _Table.cell(cells, col)) for line, cells in data for col in (join_col, leave_col)]
    if meeting.get("start time"):
        date_cells.append((preamble[1][0], meeting["start time"]))
    clock = _Clock(label, tz, date_cells)

    session = _Session(
        meeting_id=_digits(meeting.get("meeting id", "")),
        topic=meeting.get("topic") or None,
        start=clock.parse(meeting["start time"], preamble[1][0], "meeting start time")
        if meeting.get("start time")
        else None,
    )
    names: dict[int, str] = {}
    joins: list[datetime] = []
    for line, cells in data:
        if len(cells) <= max(join_col, leave_col, name_col):
            raise InputError(f"{label} row {line}: has {len(cells)} fields, fewer than the header")
        join = clock.parse(cells[join_col], line, "join time")
        leave = clock.parse(cells[leave_col], line, "leave time")
        _leave_after_join(join, leave, line, label)
        joins.append(join)
        if _Table.cell(cells, waiting_col).casefold() in _YES:
            session.skipped += 1
            continue  # time in the waiting room is not presence in the meeting
        minutes_cell = _Table.cell(cells, minutes_col)
        seconds = (
            _minutes(minutes_cell, line, label, "duration") * 60
            if minutes_cell
            else int((leave - join).total_seconds())
        )
        identity = _identity(_Table.cell(cells, email_col), cells[name_col], line, label)
        if identity[0] == "name":
            names[line] = cells[name_col]
        guest = _Table.cell(cells, guest_col).casefold() in _YES
        session.rows.append(_Row(line, identity, join, leave, seconds, guest=guest))
    _resolve_renames(names, session.rows)
    if session.start is None and joins:
        session.start = min(joins)  # no preamble: the session starts with its first join
    return session


def _digits(text: str) -> str | None:
    """A Zoom meeting id as digits: "812 0000 0001" and "'81200000001" give "81200000001"."""
    digits = "".join(ch for ch in text if ch.isascii() and ch.isdigit())
    return digits or None


# --- Zoom webinar ------------------------------------------------------------------------------------

_SECTIONS = {"host details": "host", "panelist details": "panelist", "attendee details": "attendee"}


def _zoom_webinar(text: str, label: str, tz: ZoneInfo) -> _Session:
    rows = [(line, cells) for line, cells in _rows(text, label, ",") if any(cells)]
    webinar: dict[str, str] = {}
    webinar_line = 0
    sections: list[tuple[str, int, list[str], list[tuple[int, list[str]]]]] = []
    index = 0
    while index < len(rows):
        line, cells = rows[index]
        keys = [_key(cell) for cell in cells]
        if "webinar id" in keys and index + 1 < len(rows):
            value_line, values = rows[index + 1]
            webinar = {key: _Table.cell(values, i) for i, key in enumerate(keys)}
            webinar_line = value_line
            index += 2
            continue
        role = _SECTIONS.get(keys[0].rstrip(":")) if keys else None
        if role is not None and index + 1 < len(rows):
            header_line, header = rows[index + 1]
            sections.append((role, header_line, header, []))
            index += 2
            continue
        if sections:
            sections[-1][3].append((line, cells))
        index += 1
    if not sections:
        raise InputError(f"{label}: no 'Attendee Details' section")

    tables = []
    date_cells: list[tuple[int, str]] = []
    for role, header_line, header, data in sections:
        table = _Table(label, header_line, header)
        if table.find("join time") is None:
            continue  # a section without join times (older host rows) states no presence
        join_col, leave_col = table.need("join time"), table.need("leave time")
        tables.append((role, table, data))
        for line, cells in data:
            for col in (join_col, leave_col):
                cell = _Table.cell(cells, col)
                if cell and cell != "--":
                    date_cells.append((line, cell))
    start_cell = webinar.get("actual start time") or webinar.get("start time") or ""
    if start_cell:
        date_cells.append((webinar_line, start_cell))
    clock = _Clock(label, tz, date_cells)
    session = _Session(
        meeting_id=_digits(webinar.get("webinar id", "")),
        topic=webinar.get("topic") or None,
        start=clock.parse(start_cell, webinar_line, "webinar start time") if start_cell else None,
    )
    names: dict[int, str] = {}
    for role, table, data in tables:
        name_col = table.need("user name (original name)", "name (original name)", "user name", "name")
        email_col = table.find("email", "user email")
        join_col, leave_col = table.need("join time"), table.need("leave time")
        minutes_col = table.find("time in session (minutes)", "duration (minutes)")
        attended_col = table.find("attended")
        guest_col = table.find("is guest", "guest")
        for line, cells in data:
            if attended_col is not None and _Table.cell(cells, attended_col).casefold() not in _YES:
                continue  # registered but did not attend
            join_cell, leave_cell = _Table.cell(cells, join_col), _Table.cell(cells, leave_col)
            if join_cell in ("", "--") or leave_cell in ("", "--"):
                continue
            join = clock.parse(join_cell, line, "join time")
            leave = clock.parse(leave_cell, line, "leave time")
            _leave_after_join(join, leave, line, label)
            minutes_cell = _Table.cell(cells, minutes_col)
            seconds = (
                _minutes(minutes_cell, line, label, "time in session") * 60
                if minutes_cell and minutes_cell != "--"
                else int((leave - join).total_seconds())
            )
            name = _Table.cell(cells, name_col)
            identity = _identity(_Table.cell(cells, email_col), name, line, label)
            if identity[0] == "name":
                names[line] = name
            guest = _Table.cell(cells, guest_col).casefold() in _YES
            session.rows.append(_Row(line, identity, join, leave, seconds, guest=guest, role=role))
    _resolve_renames(names, session.rows)
    if session.start is None and session.rows:
        session.start = min(row.join for row in session.rows)
    return session


# --- Google Meet -------------------------------------------------------------------------------------


def _meet(text: str, label: str, tz: ZoneInfo, file_name: str, meeting_date: date | None = None) -> _Session:
    rows = [(line, cells) for line, cells in _rows(text, label, ",") if any(cells)]
    header_at = next(i for i, (_, cells) in enumerate(rows) if _meet_header({_key(c) for c in cells}))
    table = _Table(label, rows[header_at][0], rows[header_at][1])
    # Rows above the table (newer sheets) may hold "Meeting code", "Meeting title", "Date" pairs.
    meta = {_key(cells[0]).rstrip(":"): cells[1] for _, cells in rows[:header_at] if len(cells) >= 2}
    meet = _labels()["meet"]
    first_col = table.find(*sorted(meet["first_name"]))
    last_col = table.find(*sorted(meet["last_name"]))
    name_col = table.find("name", "full name", "participant name", "participant", *sorted(meet["name"]))
    email_col = table.find("email", "e-mail", *sorted(meet["email"]))
    duration_col = table.find("duration", "time in call", *sorted(meet["duration"]))
    join_col = table.find("time joined", "joined at", "first seen", "join time", *sorted(meet["joined"]))
    leave_col = table.find("time exited", "left at", "last seen", "leave time", *sorted(meet["exited"]))
    if first_col is None and name_col is None:
        raise InputError(
            f"{label} row {table.line}: missing column 'Name' (or 'First name'); expected {_MEET_EXPECTED}"
        )
    if join_col is None:
        raise InputError(f"{label} row {table.line}: missing column 'Time joined'; expected {_MEET_EXPECTED}")
    data = rows[header_at + 1 :]
    date_cells = [
        (line, _Table.cell(cells, col)) for line, cells in data for col in (join_col, leave_col) if col is not None
    ]
    clock = _Clock(label, tz, date_cells)

    # The sheet states times of day only. The date comes from a "Date" row above the table
    # or from an ISO date in the file name, never from "now" (activities are pure functions
    # of their source).
    day: date | None = None
    date_text = meta.get("meeting date") or meta.get("date") or ""
    if date_text:
        day = _parse_day(date_text, clock, rows[0][0], label)
    else:
        found = _ISO_DATE.search(file_name)
        if found is not None:
            try:
                day = date(int(found[1]), int(found[2]), int(found[3]))
            except ValueError as exc:
                raise InputError(f"{label}: the date in the file name is not valid ({exc})") from exc
    if day is None:
        day = meeting_date
    code = meta.get("meeting code") or ""
    found_code = _MEET_CODE.search(code or file_name.lower())
    session = _Session(
        meeting_id=found_code[1] if found_code else None,
        topic=meta.get("meeting title") or meta.get("title") or None,
        start=None,
    )
    for line, cells in data:
        join = clock.parse_time_on(_Table.cell(cells, join_col), day, line, "join time")
        leave: datetime | None = None
        leave_cell = _Table.cell(cells, leave_col)
        if leave_cell:
            leave = clock.parse_time_on(leave_cell, join.date(), line, "exit time")
            if leave < join:
                leave += timedelta(days=1)  # a time-only exit after midnight
        duration_cell = _Table.cell(cells, duration_col)
        if duration_cell:
            seconds = _duration_seconds(duration_cell, line, label, "duration")
        elif leave is not None:
            seconds = int((leave - join).total_seconds())
        else:
            raise InputError(
                f"{label} row {line}: neither a duration nor an exit time (expected Duration, Time in Call or "
                "Time exited)"
            )
        if name_col is not None:
            name = _Table.cell(cells, name_col)
        else:
            name = " ".join(part for part in (_Table.cell(cells, first_col), _Table.cell(cells, last_col)) if part)
        identity = _identity(_Table.cell(cells, email_col), name, line, label)
        session.rows.append(_Row(line, identity, join, leave, seconds))
    if session.rows:
        session.start = min(row.join for row in session.rows)
    return session


def _parse_day(text: str, clock: _Clock, line: int, label: str) -> date:
    found = _ISO_DATE.search(text)
    if found is not None:
        try:
            return date(int(found[1]), int(found[2]), int(found[3]))
        except ValueError as exc:
            raise InputError(f"{label} row {line}: the meeting date is not valid ({exc})") from exc
    return clock.parse(text + " 00:00", line, "meeting date").date()


# --- Microsoft Teams ---------------------------------------------------------------------------------


def _teams_columns(label: str, line: int, header: list[str]) -> dict[str, int]:
    """Where each participants-table field is: by its label in any known language, else by Teams' fixed order.

    Raises:
        InputError: a required column is neither named nor where Teams puts it; names the expected columns.
    """
    found: dict[str, int] = {}
    for index, cell in enumerate(header):
        field = _field_of("teams.participants", cell)
        if field is not None and field not in found:
            found[field] = index
    required = _TEAMS_ORDER[:4]
    if all(field in found for field in required):
        return found
    # Labels in a language the data file lacks: Teams writes the columns in one order whatever the
    # language. Read by position only when no recognised label contradicts that order.
    filled = len([cell for cell in header if cell])
    in_order = all(found.get(field, position) == position for position, field in enumerate(_TEAMS_ORDER))
    if filled >= 4 and in_order:
        positional = {field: position for position, field in enumerate(_TEAMS_ORDER) if position < len(header)}
        return {**positional, **found}
    missing = ", ".join(field.replace("_", " ") for field in required if field not in found)
    raise InputError(f"{label} row {line}: the participants table has no {missing} column; expected {_TEAMS_EXPECTED}")


def _teams(text: str, label: str, tz: ZoneInfo) -> _Session:
    lines = [line for line in text[:8192].split("\n") if line.strip()][:12]
    rows = _rows(text, label, _delimiter(lines))
    sections: dict[int, list[tuple[int, list[str]]]] = {}
    current = 0
    legacy_header: int | None = None
    for position, (line, cells) in enumerate(rows):
        if not any(cells):
            continue
        first = cells[0]
        if len(cells) == 1 or not any(cells[1:]):
            heading = re.fullmatch(r"([1-9])\.\s+\S.*", first)
            if heading is not None:
                current = int(heading[1])
                sections.setdefault(current, [])
                continue
        if current == 0 and _key(first) == "full name":
            legacy_header = position
            break
        sections.setdefault(current, []).append((line, cells))
    if legacy_header is not None:
        return _teams_legacy(rows[legacy_header:], label, tz)

    summary: dict[str, str] = {}
    for _, cells in sections.get(1, []):
        field = _field_of("teams.summary", cells[0]) if len(cells) >= 2 else None
        if field is not None:
            summary.setdefault(field, cells[1])
    # Prefer "2. Participants": Teams has already merged each person's joins there.
    # Without it, "3. In-Meeting Activities" has one row per join.
    table_rows = sections.get(2) or sections.get(3)
    if not table_rows:
        raise InputError(
            f"{label}: no '2. Participants' or '3. In-Meeting Activities' section (numbered headings of the "
            f"report, with the columns {_TEAMS_EXPECTED})"
        )
    header_line, header = table_rows[0]
    columns = _teams_columns(label, header_line, header)
    name_col, join_col = columns["name"], columns["first_join"]
    leave_col, duration_col = columns["last_leave"], columns["duration"]
    email_col = columns.get("email")
    upn_col = columns.get("upn")
    role_col = columns.get("role")
    data = table_rows[1:]
    date_cells = [(line, _Table.cell(cells, col)) for line, cells in data for col in (join_col, leave_col)]
    for key in ("start", "end"):
        if summary.get(key):
            date_cells.append((header_line, summary[key]))
    clock = _Clock(label, tz, date_cells)
    start_text = summary.get("start", "")
    session = _Session(
        meeting_id=summary.get("meeting_id") or None,
        topic=summary.get("title") or None,
        start=clock.parse(start_text, sections[1][0][0], "meeting start time") if start_text else None,
    )
    for line, cells in data:
        if len(cells) <= max(name_col, join_col, leave_col, duration_col):
            raise InputError(f"{label} row {line}: has {len(cells)} fields, fewer than the header")
        join = clock.parse(cells[join_col], line, "join time")
        leave = clock.parse(cells[leave_col], line, "leave time")
        _leave_after_join(join, leave, line, label)
        seconds = _duration_seconds(cells[duration_col], line, label, "duration")
        email = _Table.cell(cells, email_col) or _Table.cell(cells, upn_col)
        identity = _identity(email, cells[name_col], line, label)
        role = _Table.cell(cells, role_col).casefold() or None
        session.rows.append(_Row(line, identity, join, leave, seconds, role=role))
    if session.start is None and session.rows:
        session.start = min(row.join for row in session.rows)
    return session


def _teams_legacy(rows: list[tuple[int, list[str]]], label: str, tz: ZoneInfo) -> _Session:
    """The older Teams report: "Full Name, User Action, Timestamp", one row per join or leave."""
    table = _Table(label, rows[0][0], rows[0][1])
    name_col = table.need("full name")
    action_col = table.need("user action")
    time_col = table.need("timestamp")
    data = [(line, cells) for line, cells in rows[1:] if any(cells)]
    clock = _Clock(label, tz, [(line, _Table.cell(cells, time_col)) for line, cells in data])
    events: list[tuple[datetime, int, str, str]] = []
    for line, cells in data:
        action = _Table.cell(cells, action_col).casefold()
        if action not in ("joined", "joined before", "left"):
            raise InputError(f"{label} row {line}: unknown user action")
        events.append(
            (
                clock.parse(_Table.cell(cells, time_col), line, "timestamp"),
                line,
                action,
                _Table.cell(cells, name_col),
            )
        )
    if not events:
        return _Session(meeting_id=None, topic=None, start=None)
    last = max(event[0] for event in events)
    open_joins: dict[str, tuple[datetime, int]] = {}
    session = _Session(meeting_id=None, topic=None, start=min(event[0] for event in events))
    for moment, line, action, name in sorted(events, key=lambda event: (event[0], event[1])):
        identity = _identity("", name, line, label)
        if action.startswith("joined"):
            open_joins.setdefault(identity[1], (moment, line))
        elif identity[1] in open_joins:
            joined, join_line = open_joins.pop(identity[1])
            seconds = int((moment - joined).total_seconds())
            session.rows.append(_Row(join_line, identity, joined, moment, seconds))
    for identifier, (joined, join_line) in open_joins.items():
        # Still in the meeting when the report was made: present until its last event.
        session.rows.append(_Row(join_line, ("name", identifier), joined, last, int((last - joined).total_seconds())))
    return session


# --- building activities -----------------------------------------------------------------------------


def _build(session: _Session, source: str, site: str, pseudonymize: Pseudonymizer) -> list[Activity]:
    if not session.rows or session.start is None:
        return []
    start_utc = session.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    meeting_id = session.meeting_id
    if meeting_id is None:
        # No id in the report: a stable hash of topic and start time (same report, same id).
        digest = hashlib.sha256(f"{session.topic or ''}\x00{start_utc}".encode()).hexdigest()
        meeting_id = "h" + digest[:16]
    session_day = session.start.date().isoformat()  # the local date of the session start
    meeting = ObjectRef(type="meeting", native_id=f"{meeting_id}:{session_day}", title=session.topic)

    people: dict[str, list[_Row]] = {}
    for row in session.rows:
        people.setdefault(row.identity[1], []).append(row)
    activities: list[Activity] = []
    pseudonyms: dict[str, str] = {}
    for identifier, rows in people.items():
        actor = pseudonyms.setdefault(identifier, pseudonymize(identifier))
        first_join = min(row.join for row in rows)
        roles = sorted({row.role for row in rows if row.role}, key=lambda role: _ROLE_RANK.get(role, 9))
        extras: dict[str, object] = {
            "identifier_kind": rows[0].identity[0],
            "segments": len(rows),
            "guest": any(row.guest for row in rows),
        }
        if roles:
            extras["role"] = roles[0]
        activities.append(
            Activity(
                source=source,
                site=site,
                kind=Kind.MEETING_ATTENDED,
                # Guard: the key recipe; changing it changes every statement id already in the LRS.
                native_id=f"{meeting_id}:{session_day}:{actor}",
                actor=actor,
                object=meeting,
                occurred_at=first_join,
                duration=timedelta(seconds=_present_seconds(rows)),
                extras=extras,
            )
        )
    activities.sort(key=lambda activity: (activity.occurred_at, activity.actor))
    return activities


#: One presence interval of one person: a report row, or a participant record of a live API.
PresenceRow = _Row
#: One session: meeting id, topic, LOCAL start (its date is part of the keys) and presence rows.
AttendanceSession = _Session


def merge_session(session: _Session, *, source: str, site: str, pseudonymize: Pseudonymizer) -> list[Activity]:
    """One ``MEETING_ATTENDED`` activity per person of a session, rows merged exactly as for a report.

    For live pulls (``connectors.zoom_api``): the same session then gives the same keys and
    content whether its report was imported or its API was pulled.
    """
    return _build(session, source, site, pseudonymize)


def _present_seconds(rows: list[_Row]) -> int:
    """Sum of the rows' stated time, or the union of their intervals when two of them overlap."""
    intervals = sorted((row.join, row.leave) for row in rows if row.leave is not None)
    overlap = any(later[0] < earlier[1] for earlier, later in zip(intervals, intervals[1:], strict=False))
    if not overlap or len(intervals) != len(rows):
        return sum(row.seconds for row in rows)
    union = 0.0
    current_start, current_end = intervals[0]
    for join, leave in intervals[1:]:
        if join <= current_end:
            current_end = max(current_end, leave)
        else:
            union += (current_end - current_start).total_seconds()
            current_start, current_end = join, leave
    union += (current_end - current_start).total_seconds()
    return math.ceil(union / 60) * 60


# --- the file formats -----------------------------------------------------------------------------------

#: The ``--source`` of each report kind: a webinar report is a Zoom report.
_FORMAT_NAME: dict[str, str] = {"zoom": "zoom", "zoom_webinar": "zoom", "meet": "meet", "teams": "teams"}


class AttendanceFileFormat(FileFormat):
    """The attendance reports of one meeting platform (``import --source zoom|meet|teams``)."""

    unit = "rows"
    skip_reason = "waiting room"

    def __init__(self, name: str, description: str, *, options: frozenset[str] = frozenset()) -> None:
        # One class for three platforms: they share the reader, which tells them apart by content.
        self.name = name
        self.description = description
        self.options = options

    def detect(self, sample: Sample) -> float:
        """A report whose header rows (in the file's first bytes) are this platform's.

        A ``.csv``/``.tsv`` whose first bytes are not readable text is the attendance
        reader's to refuse, naming the line (every platform says so; the first listed reads it).
        """
        kind = _sampled_kind(sample)
        if kind is None:
            return NO
        if kind == "unreadable":
            return NAMED_ONLY
        return HEADER_ROWS if _FORMAT_NAME[kind] == self.name else NO

    def check_declared(self, path: Path) -> None:
        """A Meet sheet read as a Zoom report gives nonsense: the report must be this platform's."""
        actual = FORMATS_BY_NAME[_FORMAT_NAME[detect_format(path)]]
        if actual is not self:
            raise InputError(
                f"{path} is {actual.with_article}, not {self.with_article}: "
                f"give --source {actual.name} or leave --source out"
            )

    def read(self, path: Path, request: ReadRequest) -> FileContents:
        """Read the report: one activity per person, grouped under the community when one is given."""
        site = request.site or request.community or self.name
        pseudonymize = request.pseudonymizer()  # before the file is read: no key, nothing read or stored
        stats = ReadStats()
        try:
            activities = _parse_file(
                path,
                site=site,
                pseudonymize=pseudonymize,
                tz=request.tz,
                meeting_date=request.meeting_date,
                stats=stats,
            )
        except InputError as exc:
            if "meeting_date" in self.options and "gives the meeting date" in str(exc):
                raise InputError(f"{exc}, or give --meeting-date YYYY-MM-DD") from exc
            raise
        if request.community is not None:
            # One CoP across its platforms: the grouping is the community (titled with the meeting's own name).
            activities = [
                replace(
                    activity,
                    grouping=ObjectRef(
                        type="community",
                        native_id=request.community,
                        title=activity.grouping.title if activity.grouping else None,
                    ),
                )
                for activity in activities
            ]
        return FileContents(site=site, items=numbered(activities), stats=stats)


@lru_cache(maxsize=1)
def _sampled_kind(sample: Sample) -> AttendanceFormat | Literal["unreadable"] | None:
    """The report kind of a sampled file, None for none; told once for the three platforms' formats."""
    text = sample.report_text()
    if text is None:
        return "unreadable" if sample.suffix in (".csv", ".tsv") else None
    try:
        return _detect(text, f"attendance report {sample.path.name}")
    except InputError as exc:
        # A readable file of another kind is not a report; a .csv the CSV reader cannot split is.
        if sample.suffix in (".csv", ".tsv") and not _NOT_A_REPORT.search(str(exc)):
            return "unreadable"
        return None


# What _detect says of a readable file that is no report it knows.
_NOT_A_REPORT = re.compile(
    r": (?:not a Zoom, Google Meet or Microsoft Teams attendance report|a tab-separated file "
    r"that is not a Teams attendance report)$"
)

ZOOM = AttendanceFileFormat("zoom", "Zoom attendance report")
MEET = AttendanceFileFormat("meet", "Google Meet attendance sheet", options=frozenset({"meeting_date"}))
TEAMS = AttendanceFileFormat("teams", "Teams attendance report")
FORMATS_BY_NAME = {fmt.name: fmt for fmt in (ZOOM, MEET, TEAMS)}
