"""Importing files (``lms-bridge import``): chat exports, attendance reports, LMS reports, activity files.

Two steps, so that nothing is stored from a file that is not understood:

1. :func:`read_import_file` tells the format (or checks the one given), checks the
   options, makes the pseudonymiser (a chat or attendance file needs the key) and
   parses the WHOLE file. It touches no database: a malformed file, a missing key or
   a missing option stops here, and nothing is stored.
2. :func:`store_import` builds the statements and commits them batch by batch, each
   batch with the file's cursor (the cursor rule). The cursor is keyed by the file's
   SHA-256, so re-importing the same file adds nothing and an import killed half-way
   resumes after its last committed batch. Statement ids come from the parsers'
   stable natural keys, so an overlapping later export adds only what is new.

Formats (``--source``): ``whatsapp`` (``.txt``/``.zip``), ``telegram`` (``result.json``),
``zoom``/``meet``/``teams`` (attendance reports), ``csv`` (an LMS completion report
read through a column mapping) and ``jsonl`` (normalised activities).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from connectors.base import ReadStats
from lms_bridge import store
from lms_bridge.activity import Activity, ObjectRef
from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError, InputError
from lms_bridge.identity.resolver import IdentityResolver
from lms_bridge.ingest.pipeline import IngestReport, ingest

#: Source id of activity-file imports that name no site.
DEFAULT_IMPORT_SOURCE = "import"

#: The values of ``--source``.
FORMATS = ("whatsapp", "telegram", "zoom", "meet", "teams", "csv", "jsonl")
CHAT_FORMATS = frozenset({"whatsapp", "telegram"})
ATTENDANCE_FORMATS = frozenset({"zoom", "meet", "teams"})

#: A site or community id: the shape of ``[[sources]] id`` in the configuration.
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
# The first line of a WhatsApp export: "12/03/24 08.00 - ", "[12/03/24, 09.15.02] ", "3/12/24, 9:15 AM - ".
_WHATSAPP_HEAD = re.compile(r"^[\u200e\u200f]*\[?[0-9]{1,4}[./-][0-9]{1,2}[./-][0-9]{1,4},? [0-9]{1,2}[.:][0-9]{2}")
_SNIFF_BYTES = 64 * 1024
# What connectors.attendance.detect_format says of a readable file that is no report it knows.
_NOT_A_REPORT = re.compile(
    r": (?:not a Zoom, Google Meet or Microsoft Teams attendance report|a tab-separated file "
    r"that is not a Teams attendance report)$"
)

_DESCRIPTION = {
    "whatsapp": ("WhatsApp chat", "messages", "system lines and deleted messages"),
    "telegram": ("Telegram chat", "messages", "service messages and posts of no person"),
    "zoom": ("Zoom attendance report", "rows", "waiting room"),
    "meet": ("Google Meet attendance sheet", "rows", "waiting room"),
    "teams": ("Teams attendance report", "rows", "waiting room"),
    "csv": ("LMS completion report", "rows", "not completed, repeated, or no valid NIP or e-mail"),
    "jsonl": ("activity file", "activities", ""),
}
_ATTENDANCE_SOURCE = {"zoom": "zoom", "zoom_webinar": "zoom", "meet": "meet", "teams": "teams"}

log = logging.getLogger(__name__)


@dataclass
class ParsedFile:
    """A file read whole and checked, ready to be stored.

    Attributes:
        path: the file.
        format: one of :data:`FORMATS`.
        site: the source id the import is recorded under (cursor key, statement ids).
        community: the Community of Practice its activities are grouped under, or None.
        stream: the cursor stream: ``file:`` + the file's SHA-256.
        items: every activity of the file with its position (1-based index; line for ``jsonl``).
        records: the file's own records read (messages, report rows, activities).
        skipped: records that are not participation (system lines, deleted messages...).
        notes: ``(line, reason)`` for rows skipped for a reason the operator can fix.
    """

    path: Path
    format: str
    site: str
    community: str | None
    stream: str
    items: list[tuple[Activity, int]]
    records: int = 0
    skipped: int = 0
    notes: list[tuple[int, str]] = field(default_factory=list)

    @property
    def description(self) -> str:
        """What the file is, for people ("WhatsApp chat")."""
        return _DESCRIPTION[self.format][0]

    @property
    def unit(self) -> str:
        """What ``records`` counts ("messages", "rows", "activities")."""
        return _DESCRIPTION[self.format][1]

    @property
    def skip_reason(self) -> str:
        """Why records are skipped, in a few words."""
        return _DESCRIPTION[self.format][2]


@dataclass
class ImportSummary:
    """What one import did.

    Attributes:
        parsed: the file as read.
        report: the pipeline's counts for the activities not imported before.
        pending: activities after the file's cursor (0: the file was imported whole before).
        people: distinct people in the file's activities.
        matched: of those, people resolved to a NIP (the roster or the source's own NIP).
    """

    parsed: ParsedFile
    report: IngestReport
    pending: int
    people: int
    matched: int

    @property
    def pseudonymous(self) -> int:
        """People not resolved to a NIP."""
        return self.people - self.matched


# --- telling the format ----------------------------------------------------------------------


def detect_format(path: Path, *, mapping: bool = False) -> str:
    """Tell a file's format from its extension and its first bytes.

    ``.zip`` (or zip bytes) and ``.txt`` are WhatsApp exports; ``.jsonl``, or JSON whose
    first line is a normalised activity, an activity file; other JSON a Telegram export;
    a CSV is what :func:`connectors.attendance.detect_format` recognises (Zoom, Meet,
    Teams), else, with a column mapping, an LMS completion report.

    Args:
        path: the file.
        mapping: a column mapping was given (an unrecognised CSV is then an LMS report).

    Returns:
        One of :data:`FORMATS`.

    Raises:
        InputError: the file is missing or its format cannot be told (one sentence naming it).
    """
    from connectors import attendance

    head = _head(path)
    suffix = path.suffix.lower()
    if head.startswith(b"PK\x03\x04") or suffix == ".zip":
        return "whatsapp"
    if suffix == ".jsonl":
        return "jsonl"
    text = _sniff_text(head)
    stripped = text.lstrip("\ufeff \t\r\n")
    if suffix == ".json" or stripped.startswith("{"):
        return "jsonl" if _is_activity_line(stripped.split("\n", 1)[0]) else "telegram"
    first_line = stripped.split("\n", 1)[0]
    if suffix == ".txt" or (suffix != ".csv" and _WHATSAPP_HEAD.match(first_line)):
        return "whatsapp"
    if mapping:
        return "csv"
    try:
        return _ATTENDANCE_SOURCE[attendance.detect_format(path)]
    except InputError as exc:
        # A .csv that cannot be decoded or split says so (file and line); only a readable
        # CSV of another kind, or a file of no known kind, gets the sentence below.
        if suffix in (".csv", ".tsv") and not _NOT_A_REPORT.search(str(exc)):
            raise
    raise InputError(
        f"cannot tell what {path} is: it is not a WhatsApp export (.txt/.zip), a Telegram result.json, a Zoom, "
        "Meet or Teams attendance report or an activity file (.jsonl); name the format with --source "
        "(and give --mapping for an LMS completion report)"
    )


def _head(path: Path) -> bytes:
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an export file")
    try:
        with path.open("rb") as handle:
            return handle.read(_SNIFF_BYTES)
    except FileNotFoundError as exc:
        raise InputError(f"{path} does not exist") from exc
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror or exc.__class__.__name__})") from exc


def _sniff_text(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace")


def _is_activity_line(line: str) -> bool:
    try:
        data = json.loads(line)
    except ValueError:
        return False
    return isinstance(data, dict) and {"kind", "native_id", "actor"} <= set(data)


def _check_declared(path: Path, declared: str) -> None:
    """An attendance ``--source`` must name what the report is (a Meet sheet read as Zoom gives nonsense)."""
    from connectors import attendance

    actual = _ATTENDANCE_SOURCE[attendance.detect_format(path)]
    if actual != declared:
        raise InputError(f"{path} is {_a(actual)}, not {_a(declared)}: give --source {actual} or leave --source out")


def _a(fmt: str) -> str:
    """The format's description with its article: "a WhatsApp chat", "an LMS completion report"."""
    description = _DESCRIPTION[fmt][0]
    return ("an " if description[0] in "aeiouAEIOU" or description.startswith("LMS") else "a ") + description


# --- reading ---------------------------------------------------------------------------------


def _check_id(value: str, what: str) -> str:
    if not _SITE_ID.fullmatch(value):
        slug = re.sub(r"[^a-z0-9_.-]+", "-", value.lower()).strip("-._")[:63] or "cop-name"
        raise ConfigError(
            f"{what} {value!r} is not an id (lowercase letters, digits, '-', '_' and '.'; "
            f"e.g. {slug!r}); it is part of every statement id, so choose it once"
        )
    return value


def read_import_file(
    settings: Settings,
    path: Path,
    *,
    source: str | None = None,
    community: str | None = None,
    site: str | None = None,
    mapping: Path | None = None,
    chat: str | None = None,
    meeting_date: date | None = None,
    month_first: bool = False,
) -> ParsedFile:
    """Tell the format, check the options, pseudonymise and parse the whole file; store nothing.

    Args:
        settings: the configuration (time zone, pseudonym key).
        path: the file.
        source: one of :data:`FORMATS`, or None to detect it.
        community: the CoP a chat or meeting belongs to (required for chat exports).
        site: the source id to record the import under; default: the community, else
            the format (``zoom``...), the mapping's ``site`` or ``import`` (activity files).
        mapping: the column mapping of an LMS completion report (``csv``).
        chat: the chat (id or name) to import from a Telegram export that holds several.
        meeting_date: the date of a Meet sheet that states times of day only.
        month_first: a WhatsApp export whose dates cannot show their order is m/d.

    Returns:
        The parsed file.

    Raises:
        InputError: the file is missing, of an unknown format, or malformed (names file and line).
        ConfigError: an option is missing or wrong, or the pseudonym key is not set.
    """
    fmt = source or detect_format(path, mapping=mapping is not None)
    if fmt not in FORMATS:
        raise ConfigError(f"--source {fmt!r} is not one of {', '.join(FORMATS)}")
    if source is not None:
        _head(path)  # a missing file is named before any option problem
    if source in ATTENDANCE_FORMATS:
        _check_declared(path, source)
    if mapping is not None and fmt != "csv":
        raise ConfigError(f"--mapping applies to LMS completion reports (--source csv), not to {_a(fmt)}")
    if fmt == "csv" and mapping is None:
        raise ConfigError(
            "an LMS completion report needs its column mapping: give --mapping FILE (see mappings/lms_csv_example.toml)"
        )
    if community is not None:
        _check_id(community, "--community")
        if fmt in ("jsonl", "csv"):
            raise ConfigError(
                f"--community names the CoP of a chat export or meeting report; {_a(fmt)} has no community"
            )
    elif fmt in CHAT_FORMATS:
        raise ConfigError(
            f"a {_DESCRIPTION[fmt][0]} export needs the Community of Practice it belongs to: "
            "give --community NAME (e.g. --community cop-wi-7)"
        )
    if site is not None:
        _check_id(site, "--site")
    if chat is not None and fmt != "telegram":
        raise ConfigError(f"--chat picks one chat of a Telegram export; it does not apply to {_a(fmt)}")
    if meeting_date is not None and fmt != "meet":
        raise ConfigError(f"--meeting-date applies to Google Meet sheets, not to {_a(fmt)}")

    zone = ZoneInfo(settings.deployment.timezone)
    stats = ReadStats()
    notes: list[tuple[int, str]] = []
    if fmt == "jsonl":
        from connectors import jsonl

        chosen = site or DEFAULT_IMPORT_SOURCE
        items = list(jsonl.read_activities(path))
        stats.records = len(items)
    elif fmt == "csv" and mapping is not None:
        from connectors import lms_csv

        table = lms_csv.load_mapping(mapping)
        chosen = site or table.site
        pseudonymize = _pseudonymizer(settings) if "email" in table.columns else None
        activities = list(
            lms_csv.read_lms_csv(path, table, pseudonymize=pseudonymize, tz=zone, site=chosen, stats=stats, notes=notes)
        )
        items = [(activity, index) for index, activity in enumerate(activities, start=1)]
    else:
        chosen = site or community or fmt
        pseudonymize = _pseudonymizer(settings)  # before the file is read: no key, nothing read or stored
        activities = _read_community_file(
            path,
            fmt,
            chosen,
            community,
            pseudonymize,
            zone,
            stats,
            chat=chat,
            meeting_date=meeting_date,
            month_first=month_first,
        )
        items = [(activity, index) for index, activity in enumerate(activities, start=1)]

    from connectors.jsonl import file_digest

    return ParsedFile(
        path=path,
        format=fmt,
        site=chosen,
        community=community,
        stream=f"file:{file_digest(path)}",
        items=items,
        records=stats.records,
        skipped=stats.skipped,
        notes=notes,
    )


def _pseudonymizer(settings: Settings) -> Callable[[str], str]:
    from lms_bridge.identity.pseudonym import pseudonymizer_from_settings

    return pseudonymizer_from_settings(settings)


def _read_community_file(
    path: Path,
    fmt: str,
    site: str,
    community: str | None,
    pseudonymize: Callable[[str], str],
    zone: ZoneInfo,
    stats: ReadStats,
    *,
    chat: str | None,
    meeting_date: date | None,
    month_first: bool,
) -> list[Activity]:
    from connectors import attendance, telegram, whatsapp

    if fmt == "whatsapp":
        activities = list(
            whatsapp.read_whatsapp(
                path,
                site=site,
                pseudonymize=pseudonymize,
                tz=zone,
                day_first=False if month_first else None,
                stats=stats,
            )
        )
    elif fmt == "telegram":
        activities = list(telegram.read_telegram(path, site=site, pseudonymize=pseudonymize, stats=stats))
        activities = _one_telegram_chat(path, activities, stats, chat)
    else:
        try:
            activities = list(
                attendance.read_attendance(
                    path, site=site, pseudonymize=pseudonymize, tz=zone, meeting_date=meeting_date, stats=stats
                )
            )
        except InputError as exc:
            if fmt == "meet" and "gives the meeting date" in str(exc):
                raise InputError(f"{exc}, or give --meeting-date YYYY-MM-DD") from exc
            raise
    if fmt == "whatsapp":
        # The group name a WhatsApp file shows comes from its system lines ("created group",
        # "changed the subject"), which a later, overlapping export may lack or change. A
        # message's statement must not depend on which export it was read from (same id,
        # same content), so WhatsApp messages carry no title: the community id names the group.
        if community is None:
            return [replace(activity, object=replace(activity.object, title=None)) for activity in activities]
        # One ``replace`` per message, not two: it re-runs the dataclass checks (40,000 messages).
        grouping = ObjectRef(type="community", native_id=community, title=None)
        return [
            replace(activity, object=replace(activity.object, title=None), grouping=grouping) for activity in activities
        ]
    if community is None:
        return activities
    # One CoP across its platforms: the grouping is the community (titled with a Telegram chat's own name).
    return [
        replace(
            activity,
            grouping=ObjectRef(
                type="community", native_id=community, title=activity.grouping.title if activity.grouping else None
            ),
        )
        for activity in activities
    ]


def _one_telegram_chat(path: Path, activities: list[Activity], stats: ReadStats, chat: str | None) -> list[Activity]:
    """Keep the activities of one chat of a Telegram account export (every chat of a single-chat export)."""
    groups = stats.groups
    if chat is None:
        if len(groups) <= 1:
            return activities
        listed = ", ".join(f"{name or 'unnamed'} (id {chat_id})" for chat_id, (name, _) in groups.items())
        raise InputError(
            f"telegram export {path.name} holds {len(groups)} group chats: {listed}; import one at a "
            "time with --chat ID (each under its own --community)"
        )
    wanted = chat.strip().casefold()
    chosen = [
        chat_id
        for chat_id, (name, _) in groups.items()
        if wanted in (chat_id.casefold(), (name or "").strip().casefold())
    ]
    if len(chosen) != 1:
        problem = "no chat" if not chosen else f"{len(chosen)} chats"
        raise InputError(f"telegram export {path.name} has {problem} with the id or name {chat!r}")
    chat_id = chosen[0]
    kept = [activity for activity in activities if activity.grouping and activity.grouping.native_id == chat_id]
    stats.records = groups[chat_id][1]
    stats.skipped = stats.records - len(kept)
    return kept


# --- storing ---------------------------------------------------------------------------------

#: Activities per committed batch of an import. A file is read whole before anything is stored, so a
#: batch costs memory only for its statements; each commit is a synchronous disk flush (about 20 ms on
#: SQLite), which at the LRS's POST size (500) was a third of a 40,000-message import.
IMPORT_BATCH = 5000


def store_import(
    engine: Engine,
    settings: Settings,
    parsed: ParsedFile,
    *,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
    batch_size: int = IMPORT_BATCH,
) -> ImportSummary:
    """Queue the statements of a parsed file, batch by batch with the file's cursor.

    Args:
        engine: the state store.
        settings: the configuration.
        parsed: the file from :func:`read_import_file`.
        dry_run: build and validate only; store nothing (not even a run row).
        on_progress: called with the number of activities of each committed batch.
        batch_size: activities per committed batch (a resumed import restarts after the last one).

    Returns:
        The counts, and the people matched to a NIP.
    """
    after = int(store.get_cursor(engine, parsed.site, parsed.stream) or 0)
    pending = [(activity, position) for activity, position in parsed.items if position > after]
    run_id = None if dry_run or not pending else store.start_run(engine, "import", parsed.site)
    try:
        report = ingest(
            engine,
            settings,
            site_id=parsed.site,
            stream=parsed.stream,
            items=pending,
            batch_size=batch_size,
            dry_run=dry_run,
            on_progress=on_progress,
        )
    except Exception as exc:
        if run_id is not None:
            store.finish_run(engine, run_id, status="failed", counts={}, error=str(exc))
        raise
    if run_id is not None:
        store.finish_run(engine, run_id, status="ok", counts={parsed.stream: report.as_dict()})
    people, matched = _people(engine, settings, [activity for activity, _ in parsed.items])
    summary = ImportSummary(parsed=parsed, report=report, pending=len(pending), people=people, matched=matched)
    log.info(
        "import %s: %s",
        parsed.path.name,
        report.as_dict(),
        extra={"source": parsed.site, "file": parsed.path.name, "counts": report.as_dict()},
    )
    return summary


def _people(engine: Engine, settings: Settings, activities: list[Activity]) -> tuple[int, int]:
    """Distinct people of the activities, and how many of them resolve to a NIP."""
    authority = settings.deployment.identity_authority
    resolver = IdentityResolver(engine, authority=authority, base_iri=settings.deployment.base_iri)
    accounts: set[tuple[str, str]] = set()
    seen: set[tuple[str, str, str, str]] = set()
    for activity in activities:
        key = (activity.source, activity.site, activity.actor, str(activity.extras.get("nip") or ""))
        if key in seen:
            continue
        seen.add(key)
        account = resolver.actor(activity, None)["account"]
        accounts.add((account["homePage"], account["name"]))
    return len(accounts), sum(1 for home, _ in accounts if home == authority)


def import_activity_file(
    engine: Engine,
    settings: Settings,
    path: Path,
    *,
    source_id: str = DEFAULT_IMPORT_SOURCE,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Import a JSON Lines activity file into the outbox (see :func:`store_import`).

    Raises:
        InputError: when the file is malformed (nothing is imported from it).
    """
    if not path.is_file():
        raise InputError(f"activity file {path} does not exist")
    parsed = read_import_file(settings, path, source="jsonl", site=source_id)
    return store_import(engine, settings, parsed, dry_run=dry_run, on_progress=on_progress).report
