"""Syncing sources: every live source, each stream from its cursor, page by page, into the outbox.

One run loop (:func:`sync_source`) serves every connector of :data:`connectors.CONNECTORS`, in this
process (``sync``, ``backfill``, ``serve``) and on Celery workers (:mod:`lms_bridge.runtime.distributed`):
it records the run, reads each stream from its stored position, queues the voids of copies the
source voided, and commits every page (its statements, identity links and the position after it)
in one transaction; the pipeline's tombstone barrier orders each commit against ``forget``. It
holds the source's locks for the whole run (:mod:`lms_bridge.store.locks`): the site's sync lock
exclusive (``sync``, ``backfill``, ``serve``), or, on Celery workers, the site lock shared and the
one site-stream's lock exclusive; a lock another run holds raises :class:`LockBusy` before anything
is read or recorded. After each committed page it calls the caller's progress callback (which may
stop the loop: SIGTERM) and stops when one of its locks was lost.

A failure stops the source (never half a page: each page is one transaction),
is recorded in ``runs`` and leaves every cursor where its last committed page put it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from connectors import CONNECTORS
from connectors.base import Connector, Context, SourceVoid
from lms_bridge import store
from lms_bridge.activity import Activity
from lms_bridge.config.settings import Settings, SourceSettings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.ingest.pipeline import IngestReport, Pipeline
from lms_bridge.store.locks import DEFAULT_TTL, make_owner, site_lock, stream_lock, sync_lock_name
from lms_bridge.store.runs import RunInfo, completed_run
from xapi.vocabulary import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class SiteReport:
    """What one source's sync did, per stream.

    Attributes:
        site: the source id.
        streams: counts per stream name.
        calls: API calls per function or endpoint.
        error: the sentence that stopped the source, if one did.
        skipped: source records that became no statement, by reason.
        done_before: the run that already did this work (a ``task_key`` delivered again): nothing ran now,
            and ``streams``/``calls`` are that run's.
    """

    site: str
    streams: dict[str, IngestReport] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    done_before: int | None = None


class SyncSource(Protocol):
    """A source ``lms-bridge sync`` reads: a ``[[sources]]`` entry validated by its connector's settings model."""

    @property
    def id(self) -> str:
        """The source id (statement ids and cursors)."""
        ...

    @property
    def type(self) -> str:
        """The source type: its connector in :data:`connectors.CONNECTORS`."""
        ...


#: A request slot factory: ``slots -> context manager`` (see :attr:`connectors.base.Context.request_slot`).
RequestSlot = Callable[[int], AbstractContextManager[object]]


def connector_of(source: SyncSource | SourceSettings) -> Connector[Any]:
    """The connector of a source.

    Raises:
        ConfigError: the source's type has no connector (an imported file's type...).
    """
    connector = CONNECTORS.get(source.type)
    if connector is None:
        raise ConfigError(
            f"source {source.id} is of type {source.type}: sync reads sources of type {', '.join(CONNECTORS)}"
        )
    return connector


def sync_streams() -> dict[str, tuple[str, ...]]:
    """Source types ``lms-bridge sync`` reads, and their streams."""
    return {kind: connector.stream_names for kind, connector in CONNECTORS.items()}


def source_settings(source: SourceSettings) -> SyncSource:
    """Validate a ``[[sources]]`` entry with its connector's settings model.

    Raises:
        ConfigError: naming the source and the key that is wrong, or a type sync does not read.
    """
    settings: SyncSource = connector_of(source).settings(source.model_dump(exclude_none=True))
    return settings


def sync_sources(
    settings: Settings, site: str | None = None, streams: Sequence[str] = ()
) -> list[tuple[SyncSource, tuple[str, ...] | None]]:
    """The sources ``lms-bridge sync`` reads (or the one named ``site``), each with the streams to run.

    Args:
        settings: the configuration.
        site: one source id, or None for every source a connector reads.
        streams: stream names asked for (none: all). A source with none of them is left out.

    Returns:
        ``(source, streams)`` pairs; ``None`` streams means all of the source's streams.

    Raises:
        ConfigError: an unknown source or stream, a source of another type, or nothing to sync.
    """
    if site is not None:
        selected = [source_settings(settings.source(site))]
    else:
        selected = [source_settings(s) for s in settings.sources if s.type in CONNECTORS]
        if not selected:
            raise ConfigError(
                "no source to sync is configured: add a site with lms-bridge sites add, "
                f"or a [[sources]] entry of type {', '.join(CONNECTORS)}"
            )
    kinds = sync_streams()
    known = [name for source in selected for name in kinds[source.type]]
    unknown = [name for name in streams if name not in known]
    if unknown:
        raise ConfigError(f"unknown stream {unknown[0]!r} (streams: {', '.join(dict.fromkeys(known))})")
    plan: list[tuple[SyncSource, tuple[str, ...] | None]] = []
    for source in selected:
        mine = tuple(name for name in streams if name in kinds[source.type])
        if not streams:
            plan.append((source, None))
        elif mine:
            plan.append((source, mine))
    return plan


def skip_label(reason: str) -> str:
    """How a skip reason of :attr:`SiteReport.skipped` reads in a summary."""
    for connector in CONNECTORS.values():
        if connector.skip_labels and reason in connector.skip_labels:
            return connector.skip_labels[reason]
    return reason


def connector_context(
    settings: Settings, *, vocabulary: Vocabulary | None = None, request_slot: RequestSlot | None = None
) -> Context:
    """The deployment facts a connector may use: secrets, time zone, pseudonymiser, vocabulary, slots."""
    from zoneinfo import ZoneInfo

    from lms_bridge.identity.pseudonym import pseudonymizer_from_settings

    return Context(
        secret=settings.secret,
        timezone=ZoneInfo(settings.deployment.timezone),
        pseudonymizer=lambda: pseudonymizer_from_settings(settings),
        resolve_path=settings.resolve_path,
        vocabulary=vocabulary,
        base_iri=settings.deployment.base_iri,
        request_slot=request_slot,
    )


def unexpected(exc: BaseException) -> str:
    """One line for an error that is not the project's own (a database error...).

    Only the first line of its text: SQLAlchemy puts the SQL on the next ones, and the engine is made
    with ``hide_parameters`` so no statement body (personal data) is in the text at all.
    """
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"unexpected {exc.__class__.__name__}" + (f": {first}" if first else "")


def _abandon_run(engine: Engine, run_id: int | None, exc: Exception) -> None:
    """Mark a run failed when something other than a source error stopped it (a database error...).

    Without this the run stays ``running`` for ever in ``runs list``.
    """
    if run_id is None:
        return
    try:
        store.finish_run(
            engine,
            run_id,
            status="failed",
            counts={},
            error=f"stopped by an {unexpected(exc)} (rerun with --debug for details)",
        )
    except Exception:  # noqa: BLE001 - the store itself may be what failed; the original error matters more
        log.debug("could not record the failed run %s", run_id, exc_info=True)


@contextmanager
def _recorded_run(
    engine: Engine,
    report: SiteReport,
    *,
    dry_run: bool,
    counts: Callable[[], dict[str, Any]],
    command: str = "sync",
) -> Iterator[None]:
    """Record one sync of a source in ``runs``, around the block that pulls it.

    A source error (the project's own) stops the block and becomes ``report.error`` and a failed
    run; anything else marks the run failed and propagates. ``counts`` is read when the run ends.
    """
    run_id = None if dry_run else store.start_run(engine, command, report.site)
    try:
        yield
    except LmsBridgeError as exc:
        report.error = str(exc)
        log.error("%s: sync stopped: %s", report.site, exc, extra={"site": report.site})
    except Exception as exc:
        _abandon_run(engine, run_id, exc)
        raise
    if run_id is not None:
        store.finish_run(engine, run_id, status="failed" if report.error else "ok", counts=counts(), error=report.error)


def _window_check(since: datetime | None, until: datetime | None) -> None:
    if until is not None and since is None:
        raise ConfigError("until needs since: a window is a backfill, which never moves the cursors")


def _until(activities: Sequence[Activity], until: datetime | None) -> Sequence[Activity]:
    """The activities of a backfill window that happened up to ``until``."""
    return activities if until is None else [a for a in activities if a.occurred_at <= until]


def _void_copies(
    engine: Engine, pipeline: Pipeline, source_id: str, stream: str, source_voids: Sequence[SourceVoid], dry_run: bool
) -> int:
    """Void the copies we hold of statements the source voided; return how many voids were queued now."""
    from lms_bridge.outbox import voids
    from xapi.ids import statement_id

    copies = {statement_id(pipeline.builder.namespace, key): void for void in source_voids for key in void.copy_keys}
    found = voids.void_copies(
        engine,
        pipeline.builder,
        list(copies),
        dry_run=dry_run,
        reason=f"voided or deleted at its source ({source_id})",
    )
    where = {"site": source_id, "stream": stream}
    for copy_id, queued in found.items():
        void = copies[copy_id]
        log.log(
            logging.INFO if queued else logging.DEBUG,
            "%s: statement %s voids %s at the source: %s %s",
            source_id,
            void.statement_id,
            void.target,
            "queued the void of our copy" if queued else "already voided our copy",
            copy_id,
            extra=where,
        )
    held = {copies[copy_id].target for copy_id in found}
    for void in source_voids:
        if void.target not in held:
            log.debug(
                "%s: statement %s voids %s at the source, which lms-bridge never mirrored: nothing to void",
                source_id,
                void.statement_id,
                void.target,
                extra=where,
            )
    return sum(found.values())


@contextmanager
def _source_locks(
    engine: Engine,
    source_id: str,
    streams: Sequence[str] | None,
    *,
    wait: bool,
    ttl: float,
    per_stream: bool,
    task_key: str | None,
) -> Iterator[Callable[[], None]]:
    """Hold a source's locks for a run; yield the check the loop makes after each committed page.

    The check raises when a lock was lost (another run may be pulling the source now): the loop
    stops after its last committed page, which loses nothing (statement ids are deterministic).

    Raises:
        LockBusy: another run holds the source (and ``wait`` is False), or its stream (``per_stream``).
        ConfigError: ``per_stream`` without exactly one stream.
    """
    if per_stream:
        if streams is None or len(streams) != 1:
            raise ConfigError("a run that holds one stream's lock runs exactly one stream")
        with stream_lock(engine, source_id, streams[0], key=task_key) as stream_held:
            yield stream_held.check
        return
    owner = make_owner(task_key) if task_key else None
    with site_lock(engine, sync_lock_name(source_id), wait=wait, ttl=ttl, owner=owner) as held:

        def check() -> None:
            if held.lost:
                raise LmsBridgeError(f"lock {held.name} was lost: stopping so two runs do not do the same work")

        yield check


def sync_source(
    engine: Engine,
    settings: Settings,
    source: SyncSource,
    *,
    streams: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    dry_run: bool = False,
    on_progress: Callable[[str, int], None] | None = None,
    request_slot: RequestSlot | None = None,
    wait: bool = False,
    lock_ttl: float = DEFAULT_TTL,
    per_stream: bool = False,
    while_locked: Callable[[], AbstractContextManager[object]] | None = None,
    task_key: str | None = None,
) -> SiteReport:
    """Pull one source's streams into the outbox under its locks, one transaction per page (the run loop).

    Args:
        engine: the state store.
        settings: the configuration.
        source: the source's validated settings (:func:`source_settings`).
        streams: stream names to run (default all; streams the others need always run).
        since: re-pull from this time without moving the cursors (a backfill), where the source can;
            nothing is duplicated because statement ids are deterministic.
        until: with ``since``, keep only activities that happened up to this time.
        dry_run: read and build, store nothing.
        on_progress: called with (stream, records read) after each committed page; it may raise to
            stop the loop there (SIGTERM): the error is recorded as the run's, like a lost lock's.
        request_slot: holds one of a source's request slots shared by every worker (distributed syncs).
        wait: wait for another run of the source to end instead of raising :class:`LockBusy`.
        lock_ttl: the site lock's expiry (SQLite; see :func:`lms_bridge.store.locks.site_lock`).
        per_stream: hold the site lock shared and the one stream's lock exclusive (Celery workers,
            PostgreSQL), so the streams of one source run side by side; ``streams`` names one stream.
        while_locked: a context the run spans while it holds its locks (a worker logs its task there).
        task_key: what names this piece of work for good (a Celery task id). Brokers deliver a task at
            least once: again when its worker died before acknowledging it (even after its run ended),
            and Redis again when it outran the visibility timeout. So, once the locks are held, a run
            recorded ``ok`` under the same key ends the call at once with that run's counts
            (:attr:`SiteReport.done_before`): the work is done once, whatever the broker redelivers.

    Returns:
        Counts per stream, calls, skipped records by reason, and the error that stopped the source
        (each cursor keeps its last committed position). A source whose pages carry voids counts
        ``voided`` per stream: our copies voided because the source voided what they mirror.

    Raises:
        ConfigError: a missing secret, an unknown stream or a window without ``since``.
        LockBusy: another run holds the source's lock (or, ``per_stream``, its stream's) and ``wait``
            is False; nothing was read or recorded.
    """
    with _source_locks(
        engine, source.id, streams, wait=wait, ttl=lock_ttl, per_stream=per_stream, task_key=task_key
    ) as lock_check:
        # Checked under the locks: a copy of this task still running holds them, so it has either
        # recorded its run by now or it never will (it died, and its run reads abandoned).
        command = "sync" if since is None else "backfill"
        done = None if task_key is None or dry_run else completed_run(engine, command, source.id, task_key)
        if done is not None:
            return _done_before(source.id, done)
        with while_locked() if while_locked is not None else nullcontext():
            return _run(
                engine,
                settings,
                source,
                streams=streams,
                since=since,
                until=until,
                dry_run=dry_run,
                on_progress=on_progress,
                request_slot=request_slot,
                lock_check=lock_check,
            )


def _done_before(source_id: str, run: RunInfo) -> SiteReport:
    """The report of a task delivered again after its run ``run`` already did the work."""
    report = SiteReport(site=source_id, done_before=run.id)
    fields = {f.name for f in dataclasses.fields(IngestReport)}
    for name, counts in run.streams().items():
        report.streams[name] = IngestReport(**{key: value for key, value in counts.items() if key in fields})
    calls = run.counts.get("calls")
    report.calls = dict(calls) if isinstance(calls, dict) else {}
    log.info("%s: run %d already did this work: nothing to do", source_id, run.id, extra={"site": source_id})
    return report


def _run(
    engine: Engine,
    settings: Settings,
    source: SyncSource,
    *,
    streams: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
    dry_run: bool,
    on_progress: Callable[[str, int], None] | None,
    request_slot: RequestSlot | None,
    lock_check: Callable[[], None],
) -> SiteReport:
    """The run loop of :func:`sync_source`, inside the source's locks."""
    _window_check(since, until)
    connector = connector_of(source)
    unknown = [name for name in streams or () if name not in connector.stream_names]
    if unknown:
        raise ConfigError(f"unknown stream {unknown[0]!r} (streams: {', '.join(connector.stream_names)})")
    report = SiteReport(site=source.id)
    site_url = connector.site_url(source)
    store.ensure_site(engine, source.id, source.type, site_url)
    pipeline = Pipeline(engine, settings, site_url=site_url, move_cursor=since is None, dry_run=dry_run)
    # Opened when the run starts; what it looks up now (a secret) fails before any run is recorded.
    opening = connector.open(
        source, connector_context(settings, vocabulary=pipeline.builder.vocabulary, request_slot=request_slot)
    )
    voided: Counter[str] = Counter()

    def counts() -> dict[str, Any]:
        found: dict[str, Any] = {
            name: r.as_dict() | ({"voided": voided[name]} if connector.voids else {})
            for name, r in report.streams.items()
        }
        found["calls"] = report.calls
        if connector.skip_labels is not None:
            found["skipped"] = report.skipped
        return found

    # A backfill (a window from ``since``, cursors untouched) is recorded as one, not as a sync (issue 17).
    command = "sync" if since is None else "backfill"
    with _recorded_run(engine, report, dry_run=dry_run, counts=counts, command=command), opening as reader:
        try:
            for name in connector.to_run(streams):
                stream_report = report.streams.setdefault(name, IngestReport())
                start = store.get_cursor(engine, source.id, name)
                for page in reader.read(name, start, since=since):
                    # Voids first, in their own transaction: the commit below is the one that moves the
                    # cursor, so it never passes a void that is not durably queued; a crash in between
                    # re-reads the void, which then queues nothing new.
                    if page.voids:
                        voided[name] += _void_copies(engine, pipeline, source.id, name, page.voids, dry_run)
                    links = [
                        store.LinkIn(connector.link_source, source.id, local_id, nip)
                        for local_id, nip in page.accounts.items()
                    ]
                    stream_report.add(
                        pipeline.commit(source.id, name, _until(page.activities, until), page.position, links)
                    )
                    stream_report.read += page.read
                    for reason, count in page.skipped.items():
                        report.skipped[reason] = report.skipped.get(reason, 0) + count
                    if on_progress is not None:
                        on_progress(name, page.read)
                    lock_check()
                    if dry_run and connector.confirms_reads:
                        break  # the next read would confirm (drop at the source) a page nothing stored
                log.info(
                    "%s/%s: %s%s",
                    source.id,
                    name,
                    counts()[name],
                    f", skipped {report.skipped}" if report.skipped else "",
                    extra={"site": source.id, "stream": name, "counts": stream_report.as_dict()},
                )
        finally:
            report.calls = dict(reader.calls)
    return report
