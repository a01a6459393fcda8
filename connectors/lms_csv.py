"""Read a completion report exported by an LMS as CSV, through a column mapping in TOML.

For LMSs that lms-bridge cannot pull from (no web services, no xAPI) but that can
export a report: one row per person and completed course. The mapping file says
which column holds what (see ``mappings/lms_csv_example.toml``, which documents
every key); the reader yields one ``COURSE_COMPLETED`` activity per person and
course, with ``source = "lms_csv"``.

Identity: a valid NIP in the row wins (``extras["nip"]``: the statement's actor
is the NIP account). Without one, the e-mail is normalised and pseudonymised at
once, as for chat members, so the HR roster can link it to a NIP; no e-mail or
name is put in an Activity. A row with neither is skipped and noted with its line.
A row whose completion cell is empty (enrolled, not completed) is skipped.

Facts for the JP rules: ``course_shortname`` (the shortname column, else the
course id), ``course_idnumber`` and ``course_category`` when mapped, and
``program_jp`` (the course's JP as the LMS states it, a decimal text) when the
mapping names that column and the cell is not empty.

Like every file reader here, the whole file is checked before anything is
yielded: a missing column, a bad date or a non-UTF-8 byte raises one
:class:`InputError` naming the file and line, and nothing is imported.
"""

from __future__ import annotations

import codecs
import csv
import io
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.base import Pseudonymizer, ReadStats
from connectors.file_format import (
    BY_OPTION,
    NO,
    FileContents,
    FileFormat,
    ReadRequest,
    Sample,
    decode_text,
    numbered,
    read_capped,
    refuse_nul,
)
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.errors import InputError, RuleError
from lms_bridge.identifiers import email_identifier, strip_invisible
from lms_bridge.nip import parse_nip

SOURCE = "lms_csv"

# A completion report of a ministry LMS is at most tens of MB; refuse what is far larger.
_MAX_BYTES = 256 * 1024 * 1024
_SITE_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")

#: [columns] keys: the required ones, then the optional ones.
_REQUIRED_COLUMNS = ("course_id", "completed_at")
_OPTIONAL_COLUMNS = (
    "nip",
    "email",
    "course_title",
    "course_shortname",
    "course_idnumber",
    "course_category",
    "program_jp",
)
_TOP_KEYS = frozenset({"format", "site", "course_url", "csv", "columns", "completed_at"})
_CSV_KEYS = frozenset({"delimiter", "encoding", "skip_rows"})
_TIME_KEYS = frozenset({"format", "timezone"})


@dataclass(frozen=True)
class LmsCsvMapping:
    """A validated column mapping (see ``mappings/lms_csv_example.toml``).

    Attributes:
        path: the mapping file (named in errors).
        site: the LMS's source id (statement ids, cursors, program JP tables).
        columns: mapping key (``nip``, ``course_id``...) -> header text in the report.
        time_format: a ``strptime`` format of the completion cell, or ``"iso"``.
        timezone: the zone of completion times that carry no offset; None: the
            caller's default (the deployment's time zone).
        delimiter: the CSV delimiter (one character).
        encoding: the report's text encoding.
        skip_rows: lines above the header row (a report title...).
        course_url: a URL template with ``{course_id}``, or None.
    """

    path: Path
    site: str
    columns: dict[str, str]
    time_format: str = "iso"
    timezone: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    skip_rows: int = 0
    course_url: str | None = None


def load_mapping(path: Path) -> LmsCsvMapping:
    """Read and check a column mapping file.

    Args:
        path: the TOML file.

    Returns:
        The mapping.

    Raises:
        RuleError: the file is missing, not TOML, or has a missing, unknown or
            wrong key; the one-sentence message names the file and the key.
    """
    where = f"column mapping {path}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RuleError(f"{where}: file not found") from exc
    except OSError as exc:
        raise RuleError(f"{where}: cannot be read ({exc.strerror or exc.__class__.__name__})") from exc
    except UnicodeDecodeError as exc:
        raise RuleError(f"{where}: not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{where}: not valid TOML ({exc})") from exc

    def fail(key: str, problem: str) -> RuleError:
        return RuleError(f"{where}: {key} {problem}")

    _no_unknown(data, _TOP_KEYS, "", fail)
    if data.get("format", 1) != 1:
        raise fail("format", "must be 1")
    site = _text(data, "site", "", fail, required=True) or ""
    if not (site[0].isalnum() and len(site) <= 63 and set(site) <= _SITE_ID_CHARS):
        raise fail("site", f"{site!r} is not a source id (lowercase letters, digits, '-', '_', '.'; at most 63)")
    course_url = _text(data, "course_url", "", fail)
    if course_url is not None and (
        "{course_id}" not in course_url or not course_url.startswith(("http://", "https://"))
    ):
        raise fail("course_url", "must be an http(s) URL containing {course_id}")

    csv_table = _table(data, "csv", fail)
    _no_unknown(csv_table, _CSV_KEYS, "[csv] ", fail)
    delimiter = _text(csv_table, "delimiter", "[csv] ", fail) or ","
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise fail("[csv] delimiter", "must be one character such as ',' ';' or '\\t'")
    encoding = _text(csv_table, "encoding", "[csv] ", fail) or "utf-8"
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError as exc:
        raise fail("[csv] encoding", f"{encoding!r} is not a known text encoding") from exc
    skip_rows = csv_table.get("skip_rows", 0)
    if isinstance(skip_rows, bool) or not isinstance(skip_rows, int) or not 0 <= skip_rows <= 100:
        raise fail("[csv] skip_rows", "must be a whole number from 0 to 100")

    columns_table = _table(data, "columns", fail)
    _no_unknown(columns_table, frozenset(_REQUIRED_COLUMNS + _OPTIONAL_COLUMNS), "[columns] ", fail)
    columns: dict[str, str] = {}
    for key in _REQUIRED_COLUMNS + _OPTIONAL_COLUMNS:
        value = _text(columns_table, key, "[columns] ", fail, required=key in _REQUIRED_COLUMNS)
        if value is not None:
            columns[key] = value
    if "nip" not in columns and "email" not in columns:
        raise fail("[columns] nip", "or [columns] email is required (who completed the course)")
    headers = [_header_key(value) for value in columns.values()]
    if len(set(headers)) != len(headers):
        raise fail("[columns]", "names one report column for two keys")

    time_table = _table(data, "completed_at", fail)
    _no_unknown(time_table, _TIME_KEYS, "[completed_at] ", fail)
    time_format = _text(time_table, "format", "[completed_at] ", fail) or "iso"
    if time_format != "iso":
        if "%" not in time_format:
            raise fail("[completed_at] format", f"{time_format!r} is not a strptime format (e.g. '%d/%m/%Y %H:%M')")
        try:
            datetime.strptime(datetime(2024, 3, 12, 9, 5).strftime(time_format), time_format)
        except ValueError as exc:
            raise fail("[completed_at] format", f"{time_format!r} is not a usable strptime format ({exc})") from exc
    timezone = _text(time_table, "timezone", "[completed_at] ", fail)
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise fail("[completed_at] timezone", f"{timezone!r} is not a time zone (e.g. 'Asia/Jakarta')") from exc
    return LmsCsvMapping(
        path=path,
        site=site,
        columns=columns,
        time_format=time_format,
        timezone=timezone,
        delimiter=delimiter,
        encoding=encoding,
        skip_rows=skip_rows,
        course_url=course_url,
    )


def _no_unknown(
    table: dict[str, Any], known: frozenset[str], prefix: str, fail: Callable[[str, str], RuleError]
) -> None:
    for key in table:
        if key not in known:
            raise fail(f"{prefix}{key}", f"is not a known key (known: {', '.join(sorted(known))})")


def _table(data: dict[str, Any], key: str, fail: Callable[[str, str], RuleError]) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise fail(f"[{key}]", "must be a table")
    return table


def _text(
    table: dict[str, Any], key: str, prefix: str, fail: Callable[[str, str], RuleError], *, required: bool = False
) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise fail(f"{prefix}{key}", "is missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{prefix}{key}", "must be a non-empty string")
    return value


def _header_key(cell: str) -> str:
    """A header cell as a lookup key: invisible marks dropped, casefolded, whitespace collapsed."""
    return " ".join(strip_invisible(cell).casefold().split())


def read_lms_csv(
    path: Path,
    mapping: LmsCsvMapping,
    *,
    pseudonymize: Pseudonymizer | None,
    tz: ZoneInfo,
    site: str | None = None,
    stats: ReadStats | None = None,
    notes: list[tuple[int, str]] | None = None,
) -> Iterator[Activity]:
    """Yield one ``COURSE_COMPLETED`` activity per person and course of a completion report.

    Keys: ``native_id`` = ``"{course id}|{NIP or e-mail pseudonym}"``; a person who
    completed a course twice in one report keeps the earliest completion. A later
    report that repeats rows gives the same keys. Guard: changing this recipe changes
    every statement id already in the LRS.

    Args:
        path: the CSV report.
        mapping: the column mapping (:func:`load_mapping`).
        pseudonymize: turns ``email:...`` into a pseudonym; needed when a row
            identifies its person by e-mail only (else that row is an error).
        tz: the zone of completion times without an offset, unless the mapping names one.
        site: the source id; default: the mapping's ``site``.
        stats: when given, set once the file parsed: data rows read and rows skipped.
        notes: when given, gets ``(line, reason)`` for each row skipped for a reason the
            operator can fix (no valid NIP or e-mail).

    Yields:
        Activities in report order.

    Raises:
        InputError: the file cannot be read or decoded, lacks a mapped column, or has
            a bad completion time or program JP; the message names the file and line.
    """
    yield from _parse(
        path, mapping, pseudonymize=pseudonymize, tz=tz, site=site or mapping.site, stats=stats, notes=notes
    )


def _parse(
    path: Path,
    mapping: LmsCsvMapping,
    *,
    pseudonymize: Pseudonymizer | None,
    tz: ZoneInfo,
    site: str,
    stats: ReadStats | None,
    notes: list[tuple[int, str]] | None,
) -> list[Activity]:
    label = f"LMS report {path.name}"
    rows = _rows(_read_text(path, mapping, label), mapping, label)
    zone = ZoneInfo(mapping.timezone) if mapping.timezone else tz
    header_line, header = rows[0] if rows else (mapping.skip_rows + 1, [])
    if not header:
        raise InputError(f"{label} line {header_line}: no header row")
    positions = {_header_key(cell): index for index, cell in reversed(list(enumerate(header)))}
    index: dict[str, int] = {}
    for key, column in mapping.columns.items():
        found = positions.get(_header_key(column))
        if found is None:
            raise InputError(
                f"{label} line {header_line}: missing column {column!r} "
                f"(the mapping {mapping.path.name} names it for {key})"
            )
        index[key] = found

    def cell(cells: list[str], key: str) -> str:
        position = index.get(key)
        return cells[position] if position is not None and position < len(cells) else ""

    best: dict[str, Activity] = {}
    read = skipped = 0
    skipped_notes: list[tuple[int, str]] = []
    for line, cells in rows[1:]:
        if not any(cells):
            continue  # a blank line (Excel leaves some at the end)
        read += 1
        if len(cells) < len(header) and max(index.values()) >= len(cells):
            raise InputError(f"{label} line {line}: has {len(cells)} fields, fewer than the header's {len(header)}")
        course_id = cell(cells, "course_id")
        if not course_id:
            raise InputError(f"{label} line {line}: the course id ({mapping.columns['course_id']}) is empty")
        completed_cell = cell(cells, "completed_at")
        if not completed_cell:
            skipped += 1  # enrolled, not completed
            continue
        occurred_at = _completion_time(completed_cell, mapping, zone, label, line)
        extras: dict[str, Any] = {}
        nip = parse_nip(cell(cells, "nip")) if "nip" in index else None
        if nip is not None:
            actor = nip.value
            extras["nip"] = nip.value
            extras["identifier_kind"] = "nip"
        else:
            email = email_identifier(cell(cells, "email")) if "email" in index else None
            if email is None:
                skipped += 1
                what = " or e-mail" if "email" in index else ""
                skipped_notes.append((line, f"no valid NIP{what}: row skipped"))
                continue
            if pseudonymize is None:
                raise InputError(
                    f"{label} line {line}: the row has an e-mail but no valid NIP, and no pseudonym "
                    "key was given to pseudonymise it"
                )
            actor = pseudonymize(email)
            extras["identifier_kind"] = "email"
        extras["course_shortname"] = cell(cells, "course_shortname") or course_id
        for key in ("course_idnumber", "course_category"):
            if cell(cells, key):
                extras[key] = cell(cells, key)
        if cell(cells, "program_jp"):
            extras["program_jp"] = _program_jp(cell(cells, "program_jp"), label, line)
        title = cell(cells, "course_title") or None
        url = mapping.course_url.replace("{course_id}", quote(course_id, safe="")) if mapping.course_url else None
        native_id = f"{course_id}|{actor}"
        activity = Activity(
            source=SOURCE,
            site=site,
            kind=Kind.COURSE_COMPLETED,
            native_id=native_id,
            actor=actor,
            object=ObjectRef(type="course", native_id=course_id, title=title, url=url),
            occurred_at=occurred_at,
            extras=extras,
        )
        earlier = best.get(native_id)
        if earlier is not None:
            skipped += 1  # the same completion twice: the earliest counts
            if activity.occurred_at >= earlier.occurred_at:
                continue
        best[native_id] = activity
    if read == 0:
        raise InputError(f"{label}: no data rows under the header on line {header_line}")
    if stats is not None:
        stats.records, stats.skipped = read, skipped
    if notes is not None:
        notes.extend(skipped_notes)
    return list(best.values())


def _read_text(path: Path, mapping: LmsCsvMapping, label: str) -> str:
    data = read_capped(path, label, limit=_MAX_BYTES, refusal="not a completion report")
    text = decode_text(
        data,
        label,
        encoding=mapping.encoding,
        shown=mapping.encoding,
        hint="save the report as CSV UTF-8 or set [csv] encoding in the mapping",
    )
    refuse_nul(text, label, hint=" (check [csv] encoding)")
    return text


def _rows(text: str, mapping: LmsCsvMapping, label: str) -> list[tuple[int, list[str]]]:
    """(line, cells) of the header row and every row under it, cells stripped of marks and spaces."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter)
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for cells in reader:
            if start > mapping.skip_rows:
                rows.append((start, [strip_invisible(cell.replace("\u00a0", " ")).strip() for cell in cells]))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"{label} line {reader.line_num}: not a valid CSV row ({exc})") from exc
    while rows and not any(rows[0][1]):
        rows.pop(0)  # blank lines above the header
    return rows


def _completion_time(cell: str, mapping: LmsCsvMapping, zone: ZoneInfo, label: str, line: int) -> datetime:
    try:
        if mapping.time_format == "iso":
            moment = datetime.fromisoformat(cell.replace("Z", "+00:00") if cell.endswith("Z") else cell)
        else:
            moment = datetime.strptime(cell, mapping.time_format)  # the zone is set below
    except ValueError as exc:
        expected = "an ISO 8601 date" if mapping.time_format == "iso" else f"the format {mapping.time_format!r}"
        raise InputError(
            f"{label} line {line}: the completion time {cell!r} does not match {expected} "
            f"([completed_at] format in {mapping.path.name})"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if not 1990 <= moment.year <= 2999:
        raise InputError(f"{label} line {line}: the completion time {cell!r} is out of range")
    return moment.astimezone(UTC)


def _program_jp(cell: str, label: str, line: int) -> str:
    text = cell.replace(" ", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # Indonesian decimal comma: "1,5"
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise InputError(f"{label} line {line}: the program JP {cell!r} is not a number") from exc
    if not value.is_finite() or value < 0 or value > 1000:
        raise InputError(f"{label} line {line}: the program JP {cell!r} is out of range (0 to 1000)")
    return format(value.normalize(), "f")


class LmsCsvFormat(FileFormat):
    """An LMS completion report read through its column mapping (``import --source csv --mapping FILE``)."""

    name = "csv"
    description = "LMS completion report"
    unit = "rows"
    skip_reason = "not completed, repeated, or no valid NIP or e-mail"
    community = "refused"
    options = frozenset({"mapping"})
    needs_mapping = True
    people_by_pseudonym = False

    def detect(self, sample: Sample) -> float:
        """Any report is one when the operator gave its column mapping (its columns are the mapping's to say)."""
        return BY_OPTION if sample.mapping else NO

    def read(self, path: Path, request: ReadRequest) -> FileContents:
        """Load the mapping, then read the report; e-mails are pseudonymised (the key is needed only then)."""
        if request.mapping is None:
            raise ValueError("check_options refuses a completion report without its mapping")
        table = load_mapping(request.mapping)
        site = request.site or table.site
        pseudonymize = request.pseudonymizer() if "email" in table.columns else None
        contents = FileContents(site=site, items=[])
        activities = _parse(
            path,
            table,
            pseudonymize=pseudonymize,
            tz=request.tz,
            site=site,
            stats=contents.stats,
            notes=contents.notes,
        )
        contents.items = numbered(activities)
        return contents


FORMAT = LmsCsvFormat()
