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

The formats (``--source``) and how each is told and read are in :mod:`connectors.formats`;
this module only dispatches through its registry.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from connectors import formats
from connectors.base import Pseudonymizer
from connectors.file_format import FileFormat, ReadRequest, file_digest, read_head
from lms_bridge import store
from lms_bridge.activity import Activity
from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError
from lms_bridge.identity.resolver import IdentityResolver
from lms_bridge.ingest.pipeline import IngestReport, ingest

#: The values of ``--source``: the names of the registered formats.
FORMATS = tuple(formats.FORMATS)

#: A site or community id: the shape of ``[[sources]] id`` in the configuration.
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")

log = logging.getLogger(__name__)


@dataclass
class ParsedFile:
    """A file read whole and checked, ready to be stored.

    Attributes:
        path: the file.
        file_format: how it was read (its name, description, what its records are).
        site: the source id the import is recorded under (cursor key, statement ids).
        community: the Community of Practice its activities are grouped under, or None.
        stream: the cursor stream: ``file:`` + the file's SHA-256.
        items: every activity of the file with its position (1-based index; line for activity files).
        records: the file's own records read (messages, report rows, activities).
        skipped: records that are not participation (system lines, deleted messages...).
        notes: ``(line, reason)`` for rows skipped for a reason the operator can fix.
        skipped_lines: unreadable lines skipped on request (``--skip-unreadable``), kept in the run.
    """

    path: Path
    file_format: FileFormat
    site: str
    community: str | None
    stream: str
    items: list[tuple[Activity, int]]
    records: int = 0
    skipped: int = 0
    notes: list[tuple[int, str]] = field(default_factory=list)
    skipped_lines: list[int] = field(default_factory=list)

    @property
    def format(self) -> str:
        """The format's name: one of :data:`FORMATS`."""
        return self.file_format.name

    @property
    def description(self) -> str:
        """What the file is, for people ("WhatsApp chat")."""
        return self.file_format.description

    @property
    def unit(self) -> str:
        """What ``records`` counts ("messages", "rows", "activities")."""
        return self.file_format.unit

    @property
    def skip_reason(self) -> str:
        """Why records are skipped, in a few words."""
        return self.file_format.skip_reason


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


# --- reading ---------------------------------------------------------------------------------


def check_id(value: str, what: str) -> str:
    """Refuse a site or community id that is not one (it is part of every statement id); return it."""
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
    observe: Callable[[Pseudonymizer], Pseudonymizer] | None = None,
    day_first: bool = False,
    skip_unreadable: bool = False,
    max_messages: int | None = None,
) -> ParsedFile:
    """Tell the format, check the options, pseudonymise and parse the whole file; store nothing.

    Args:
        settings: the configuration (time zone, pseudonym key).
        path: the file.
        source: one of :data:`FORMATS`, or None to detect it.
        community: the CoP a chat or meeting belongs to (required for chat exports).
        site: the source id to record the import under; default: the community, else
            the format's name, the mapping's ``site`` or ``import`` (activity files).
        mapping: the column mapping of an LMS completion report (``csv``).
        chat: the chat to import from a Telegram export that holds several.
        meeting_date: the date of a Meet sheet that states times of day only.
        month_first: a WhatsApp export whose dates cannot show their order is m/d.
        observe: wraps the deployment's pseudonymiser, to see the canonical identifiers it is
            given (``people suggest`` keeps display names in memory only); it must return the
            pseudonym unchanged.
        day_first: such an export is d/m even when only m/d keeps its dates in time order.
        skip_unreadable: import a chat export's readable lines and record the others in the run.
        max_messages: the most messages one chat export may hold (None: the format's cap).

    Returns:
        The parsed file.

    Raises:
        InputError: the file is missing, of an unknown format, or malformed (names file and line).
        ConfigError: an option is missing or wrong, or the pseudonym key is not set.
    """
    if source is None:
        file_format = formats.detect(path, mapping=mapping is not None)
    else:
        if source not in formats.FORMATS:
            raise ConfigError(f"--source {source!r} is not one of {', '.join(FORMATS)}")
        file_format = formats.FORMATS[source]
        read_head(path)  # a missing file is named before any option problem
        file_format.check_declared(path)
    if community is not None:
        check_id(community, "--community")
    if site is not None:
        check_id(site, "--site")
    request = ReadRequest(
        tz=ZoneInfo(settings.deployment.timezone),
        pseudonymizer=lambda: observe(_pseudonymizer(settings)) if observe else _pseudonymizer(settings),
        site=site,
        community=community,
        mapping=mapping,
        chat=chat,
        meeting_date=meeting_date,
        month_first=month_first,
        day_first=day_first,
        skip_unreadable=skip_unreadable,
        max_messages=max_messages,
    )
    if month_first and day_first:
        raise ConfigError("--day-first and --month-first contradict each other; give one")
    file_format.check_options(request)
    contents = file_format.read(path, request)
    return ParsedFile(
        path=path,
        file_format=file_format,
        site=contents.site,
        community=community,
        stream=f"file:{file_digest(path)}",
        items=contents.items,
        records=contents.stats.records,
        skipped=contents.stats.skipped,
        notes=contents.notes,
        skipped_lines=contents.skipped_lines,
    )


def _pseudonymizer(settings: Settings) -> Pseudonymizer:
    from lms_bridge.identity.pseudonym import pseudonymizer_from_settings

    return pseudonymizer_from_settings(settings)


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
        counts: dict[str, Any] = {parsed.stream: report.as_dict()}
        if parsed.skipped_lines:
            # Kept with the run so `runs show` says which lines of the file were not imported.
            counts["unreadable lines skipped"] = ", ".join(str(line) for line in parsed.skipped_lines)
        store.finish_run(engine, run_id, status="ok", counts=counts)
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
