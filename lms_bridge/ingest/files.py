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

import gc
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from connectors import formats
from connectors.base import Pseudonymizer, ReadStats
from connectors.file_format import FileContents, FileFormat, Items, ReadRequest, file_digest, read_head
from lms_bridge import store
from lms_bridge.activity import Activity
from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError, InputError
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
        stream: the cursor stream: ``file:`` + the file's SHA-256 (+ ``:day-first`` or ``:month-first``
            when its dates read both ways: the same bytes read in the other order are other statements).
        items: every activity of the file with its position (1-based index; line for activity files); a
            list, or for a format that streams (WhatsApp) the file read again at each iteration.
        stats: the file's records read and skipped (``skipped`` of a streamed file: once it was iterated).
        notes: ``(line, reason)`` for rows skipped for a reason the operator can fix.
        skipped_lines: unreadable lines skipped on request (``--skip-unreadable``), kept in the run.
        date_order: ``day-first``/``month-first`` when the file's dates read both ways, else None.
    """

    path: Path
    file_format: FileFormat
    site: str
    community: str | None
    stream: str
    items: Items
    stats: ReadStats = field(default_factory=ReadStats)
    notes: list[tuple[int, str]] = field(default_factory=list)
    skipped_lines: list[int] = field(default_factory=list)
    date_order: str | None = None

    @property
    def records(self) -> int:
        """The file's own records read (messages, report rows, activities)."""
        return self.stats.records

    @property
    def skipped(self) -> int:
        """Records that are not participation (system lines, deleted messages...)."""
        return self.stats.skipped

    @property
    def expected(self) -> int:
        """The activities to expect, for a progress bar: their number, or the records of a streamed file."""
        return len(self.items) if isinstance(self.items, list) else self.records

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

    @property
    def activities(self) -> int:
        """The file's activities (a streamed file's were counted as they were stored)."""
        return len(self.parsed.items)


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
        max_messages=max_messages or settings.limits.max_messages,
        max_rows=settings.limits.max_rows,
        max_json_depth=settings.limits.max_json_depth,
    )
    if month_first and day_first:
        raise ConfigError("--day-first and --month-first contradict each other; give one")
    file_format.check_options(request)
    contents = file_format.read(path, request)
    _check_caps(path, file_format, contents, request)
    stream = f"file:{file_digest(path)}"
    return ParsedFile(
        path=path,
        file_format=file_format,
        site=contents.site,
        community=community,
        stream=stream if contents.date_order is None else f"{stream}:{contents.date_order}",
        items=contents.items,
        stats=contents.stats,
        notes=contents.notes,
        skipped_lines=contents.skipped_lines,
        date_order=contents.date_order,
    )


def _check_caps(path: Path, file_format: FileFormat, contents: FileContents, request: ReadRequest) -> None:
    """Refuse a file that holds more records than ``[limits]`` allows (a format that streams refuses it itself)."""
    messages = file_format.unit == "messages"
    cap = (request.max_messages or 0) if messages else request.max_rows
    if cap and contents.stats.records > cap:
        setting = "--max-messages or [limits] max_messages" if messages else "[limits] max_rows"
        raise InputError(
            f"{path.name}: {contents.stats.records:,} {file_format.unit} in one file, more than the "
            f"{cap:,} allowed; split the file or raise {setting}"
        )


def _pseudonymizer(settings: Settings) -> Pseudonymizer:
    from lms_bridge.identity.pseudonym import pseudonymizer_from_settings

    return pseudonymizer_from_settings(settings)


# --- storing ---------------------------------------------------------------------------------

#: Activities per committed batch of an import. Each commit is a synchronous disk flush (about 20 ms on
#: SQLite), which at the LRS's POST size (500) was a third of a 40,000-message import; a batch costs memory
#: for its statements only (a streamed file is read one message at a time).
IMPORT_BATCH = 5000
#: Activities between two full garbage collections of an import (see ``store_import``).
GC_EVERY = 50_000

_ORDER_WORDS = {"day-first": "day/month", "month-first": "month/day"}


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

    The activities are taken one at a time from ``parsed.items`` (a streamed file is read
    again meanwhile) and committed with the cursor every ``batch_size``: an import killed
    half-way resumes after its last committed batch, adding nothing twice. A run row is
    started only when there is something after the cursor.

    Args:
        engine: the state store.
        settings: the configuration.
        parsed: the file from :func:`read_import_file`.
        dry_run: build and validate only; store nothing (not even a run row).
        on_progress: called with the number of activities of each committed batch.
        batch_size: activities per committed batch (a resumed import restarts after the last one).

    Returns:
        The counts, and the people matched to a NIP.

    Raises:
        InputError: the file's dates read both ways and it was imported before in the other order.
    """
    _refuse_other_order(engine, parsed)
    after = int(store.get_cursor(engine, parsed.site, parsed.stream) or 0)
    run: list[int] = []
    pending = 0
    people: dict[tuple[str, str, str, str], Activity] = {}  # one activity of each person: bounded by people

    def after_cursor() -> Iterator[tuple[Activity, int]]:
        nonlocal pending
        for activity, position in parsed.items:
            people.setdefault(
                (activity.source, activity.site, activity.actor, str(activity.extras.get("nip") or "")), activity
            )
            if position <= after:
                continue
            if not run and not dry_run:
                run.append(store.start_run(engine, "import", parsed.site))
            pending += 1
            if pending % GC_EVERY == 0:
                # A batch leaves garbage in reference cycles that outlives many young collections, and
                # Python's full collection runs ever more rarely as the heap grows: without this, a 200 MB
                # chat's import grew to 359 MB (BENCHMARKS.md, issue 16). A full collection here costs a
                # few tens of milliseconds per GC_EVERY activities.
                gc.collect()
            yield activity, position

    try:
        report = ingest(
            engine,
            settings,
            site_id=parsed.site,
            stream=parsed.stream,
            items=after_cursor(),
            batch_size=batch_size,
            dry_run=dry_run,
            on_progress=on_progress,
        )
    except Exception as exc:
        if run:
            store.finish_run(engine, run[0], status="failed", counts={}, error=str(exc))
        raise
    if run:
        counts: dict[str, Any] = {parsed.stream: report.as_dict()}
        if parsed.skipped_lines:
            # Kept with the run so `runs show` says which lines of the file were not imported.
            counts["unreadable lines skipped"] = ", ".join(str(line) for line in parsed.skipped_lines)
        store.finish_run(engine, run[0], status="ok", counts=counts)
    people_count, matched = _people(engine, settings, people.values())
    summary = ImportSummary(parsed=parsed, report=report, pending=pending, people=people_count, matched=matched)
    log.info(
        "import %s: %s",
        parsed.path.name,
        report.as_dict(),
        extra={"source": parsed.site, "file": parsed.path.name, "counts": report.as_dict()},
    )
    return summary


def _refuse_other_order(engine: Engine, parsed: ParsedFile) -> None:
    """Refuse a file whose dates read both ways that was imported before in the other order (it would count twice)."""
    if parsed.date_order is None:
        return
    other = "month-first" if parsed.date_order == "day-first" else "day-first"
    base = parsed.stream.rsplit(":", 1)[0]
    if store.get_cursor(engine, parsed.site, f"{base}:{other}") is not None:
        raise InputError(
            f"{parsed.path.name} was already imported into {parsed.site} with its dates read as "
            f"{_ORDER_WORDS[other]} (--{other}); reading them as {_ORDER_WORDS[parsed.date_order]} now would add "
            "every message a second time under other dates, so nothing was imported"
        )


def _people(engine: Engine, settings: Settings, activities: Iterable[Activity]) -> tuple[int, int]:
    """Distinct people of the activities (one activity per person), and how many of them resolve to a NIP."""
    authority = settings.deployment.identity_authority
    resolver = IdentityResolver(engine, authority=authority, base_iri=settings.deployment.base_iri)
    accounts: set[tuple[str, str]] = set()
    for activity in activities:
        account = resolver.actor(activity, None)["account"]
        accounts.add((account["homePage"], account["name"]))
    return len(accounts), sum(1 for home, _ in accounts if home == authority)
