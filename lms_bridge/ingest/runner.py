"""Syncing sources: Moodle sites and source LRSs, each stream from its cursor, batch by batch, into the outbox.

A failure stops the site (never half a batch: each batch is one transaction),
is recorded in ``runs`` and leaves every cursor where its last committed batch put it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine

from connectors import live, lrs_source, moodle
from lms_bridge import store
from lms_bridge.activity import Activity
from lms_bridge.config.settings import Settings, SourceSettings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.ingest.pipeline import IngestReport, Pipeline

log = logging.getLogger(__name__)


@dataclass
class SiteReport:
    """What one site's sync did, per stream.

    Attributes:
        site: the site id.
        streams: counts per stream name.
        calls: web-service calls per function.
        error: the sentence that stopped the site, if one did.
        skipped: source records that became no statement, by reason (source LRSs).
    """

    site: str
    streams: dict[str, IngestReport] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)


#: A source ``lms-bridge sync`` reads: a Moodle site, a source LRS or a live connector's
#: settings model (:mod:`connectors.live`; each has ``id`` and ``type``).
SyncSource = moodle.MoodleSettings | lrs_source.LRSSourceSettings | BaseModel


def sync_streams() -> dict[str, tuple[str, ...]]:
    """Source types ``lms-bridge sync`` reads, and their streams."""
    streams: dict[str, tuple[str, ...]] = {"moodle": moodle.STREAM_NAMES, "lrs": (lrs_source.STREAM,)}
    streams.update({kind: connector.streams for kind, connector in live.connectors().items()})
    return streams


def _validated(model: type[Any], source: SourceSettings) -> Any:
    """Validate a ``[[sources]]`` entry with a connector's settings model.

    Raises:
        ConfigError: naming the source and the key that is wrong.
    """
    from pydantic import ValidationError

    try:
        return model.model_validate(source.model_dump(exclude_none=True))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "entry"
        message = "unknown key (check the spelling)" if error["type"] == "extra_forbidden" else error["msg"]
        raise ConfigError(f"source {source.id}: {key}: {message}") from None


def moodle_settings(source: SourceSettings) -> moodle.MoodleSettings:
    """Validate a ``[[sources]]`` entry as a Moodle site.

    Raises:
        ConfigError: naming the source and the key that is wrong.
    """
    return _validated(moodle.MoodleSettings, source)


def lrs_settings(source: SourceSettings) -> lrs_source.LRSSourceSettings:
    """Validate a ``[[sources]]`` entry as a source LRS.

    Raises:
        ConfigError: naming the source and the key that is wrong.
    """
    return _validated(lrs_source.LRSSourceSettings, source)


def _sync_settings(source: SourceSettings) -> SyncSource:
    if source.type == "moodle":
        return moodle_settings(source)
    if source.type == "lrs":
        return lrs_settings(source)
    return _validated(live.connectors()[source.type].settings_model, source)


def moodle_sources(settings: Settings, site: str | None = None) -> list[moodle.MoodleSettings]:
    """The configured Moodle sites (or the one named ``site``).

    Raises:
        ConfigError: when ``site`` is not a configured Moodle site, or none is configured.
    """
    if site is not None:
        source = settings.source(site)
        if source.type != "moodle":
            raise ConfigError(f"source {site} is of type {source.type}, not moodle")
        return [moodle_settings(source)]
    sites = [moodle_settings(s) for s in settings.sources if s.type == "moodle"]
    if not sites:
        raise ConfigError("no Moodle site is configured: add one with lms-bridge sites add")
    return sites


def sync_sources(
    settings: Settings, site: str | None = None, streams: Sequence[str] = ()
) -> list[tuple[SyncSource, tuple[str, ...] | None]]:
    """The sources ``lms-bridge sync`` reads (or the one named ``site``), each with the streams to run.

    Args:
        settings: the configuration.
        site: one source id, or None for every Moodle site and source LRS.
        streams: stream names asked for (none: all). A source with none of them is left out.

    Returns:
        ``(source, streams)`` pairs; ``None`` streams means all of the source's streams.

    Raises:
        ConfigError: an unknown source or stream, a source of another type, or nothing to sync.
    """
    kinds = sync_streams()
    if site is not None:
        source = settings.source(site)
        if source.type not in kinds:
            raise ConfigError(f"source {site} is of type {source.type}: sync reads sources of type {', '.join(kinds)}")
        selected = [_sync_settings(source)]
    else:
        selected = [_sync_settings(s) for s in settings.sources if s.type in kinds]
        if not selected:
            raise ConfigError(
                "no source to sync is configured: add a Moodle site with lms-bridge sites add, "
                'or a [[sources]] entry with type = "lrs"'
            )
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
    try:
        return lrs_source.SKIP_LABELS[lrs_source.Skip(reason)]
    except ValueError:
        return reason


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
) -> SiteReport:
    """Sync one source (see :func:`sync_site`, :func:`sync_lrs_source` and :func:`sync_live_source`)."""
    if not isinstance(source, moodle.MoodleSettings | lrs_source.LRSSourceSettings):
        return sync_live_source(
            engine,
            settings,
            source,
            streams=streams,
            since=since,
            until=until,
            dry_run=dry_run,
            on_progress=on_progress,
        )
    if isinstance(source, lrs_source.LRSSourceSettings):
        return sync_lrs_source(
            engine, settings, source, since=since, until=until, dry_run=dry_run, on_progress=on_progress
        )
    return sync_site(
        engine, settings, source, streams=streams, since=since, until=until, dry_run=dry_run, on_progress=on_progress
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
    engine: Engine, report: SiteReport, *, dry_run: bool, counts: Callable[[], dict[str, Any]]
) -> Iterator[None]:
    """Record one sync of a source in ``runs``, around the block that pulls it.

    A source error (the project's own) stops the block and becomes ``report.error`` and a failed
    run; anything else marks the run failed and propagates. ``counts`` is read when the run ends.
    """
    run_id = None if dry_run else store.start_run(engine, "sync", report.site)
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


def sync_lrs_source(
    engine: Engine,
    settings: Settings,
    source: lrs_source.LRSSourceSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    dry_run: bool = False,
    on_progress: Callable[[str, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SiteReport:
    """Pull a source LRS's new statements into the outbox, one transaction per page.

    Args:
        engine: the state store.
        settings: the configuration.
        source: the source LRS's settings.
        since: re-pull statements stored after this time without moving the cursor (a backfill).
        until: with ``since``, keep only activities that happened up to this time.
        dry_run: read and build, store nothing.
        on_progress: called with (stream, statements read) after each page.
        sleep: waits between retries.

    Returns:
        Counts for the ``statements`` stream, calls, skipped statements by reason, and the
        error that stopped the source (the cursor keeps its last committed position).
        The run's ``statements`` counts add ``voided``: our copies voided because the
        source voided what they mirror.
    """
    from lms_bridge.outbox import voids
    from xapi.ids import statement_id

    _window_check(since, until)
    password = settings.secret(source.password_env)
    stream = lrs_source.STREAM
    report = SiteReport(site=source.id)
    stream_report = report.streams.setdefault(stream, IngestReport())
    voided = 0
    store.ensure_site(engine, source.id, "lrs", source.url)
    pipeline = Pipeline(engine, settings, site_url=source.site_url, move_cursor=since is None, dry_run=dry_run)
    mapper = lrs_source.StatementMapper(
        source.id, pipeline.builder.vocabulary, settings.deployment.base_iri, source.identity_authorities
    )

    def void_copies(source_voids: Sequence[lrs_source.SourceVoid]) -> int:
        """Void the copies we hold of statements the source voided; return how many voids were queued now."""
        copies = {
            statement_id(pipeline.builder.namespace, key): void for void in source_voids for key in void.copy_keys
        }
        found = voids.void_copies(
            engine,
            pipeline.builder,
            list(copies),
            dry_run=dry_run,
            reason=f"voided at its source (source LRS {source.id})",
        )
        for copy_id, queued in found.items():
            void = copies[copy_id]
            log.log(
                logging.INFO if queued else logging.DEBUG,
                "%s: statement %s voids %s at the source: %s %s",
                source.id,
                void.statement_id,
                void.target,
                "queued the void of our copy" if queued else "already voided our copy",
                copy_id,
                extra={"site": source.id, "stream": stream},
            )
        held = {copies[copy_id].target for copy_id in found}
        for void in source_voids:
            if void.target not in held:
                log.debug(
                    "%s: statement %s voids %s at the source, which lms-bridge never mirrored: nothing to void",
                    source.id,
                    void.statement_id,
                    void.target,
                    extra={"site": source.id, "stream": stream},
                )
        return sum(found.values())

    def counts() -> dict[str, Any]:
        return {stream: stream_report.as_dict() | {"voided": voided}, "calls": report.calls, "skipped": report.skipped}

    with _recorded_run(engine, report, dry_run=dry_run, counts=counts), source.client(password) as client:
        reader = lrs_source.LRSSourceReader(source, client, mapper, sleep=sleep)
        try:
            start = store.get_cursor(engine, source.id, stream)
            for page in reader.read(start, since=since):
                # Voids first, in their own transaction: the commit below is the one that moves the
                # cursor, so it never passes a void that is not durably queued; a crash in between
                # re-reads the void, which then queues nothing new.
                if page.voids:
                    voided += void_copies(page.voids)
                links = [
                    store.LinkIn(lrs_source.SOURCE, source.id, local_id, nip) for local_id, nip in page.accounts.items()
                ]
                stream_report.add(
                    pipeline.commit(source.id, stream, _until(page.activities, until), page.position, links)
                )
                for reason, count in page.skipped.items():
                    report.skipped[reason.value] = report.skipped.get(reason.value, 0) + count
                if on_progress is not None:
                    on_progress(stream, page.statements)
            log.info(
                "%s/%s: %s, voided %d, skipped %s",
                source.id,
                stream,
                stream_report.as_dict(),
                voided,
                report.skipped,
                extra={"site": source.id, "stream": stream, "counts": stream_report.as_dict()},
            )
        finally:
            report.calls = dict(reader.calls)
    return report


def sync_live_source(
    engine: Engine,
    settings: Settings,
    source: BaseModel,
    *,
    streams: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    dry_run: bool = False,
    on_progress: Callable[[str, int], None] | None = None,
) -> SiteReport:
    """Pull a live source's streams (:mod:`connectors.live`) into the outbox, one transaction per page.

    Args:
        engine: the state store.
        settings: the configuration.
        source: the source's validated settings (its connector's ``settings_model``).
        streams: stream names to run (default all).
        since: re-pull from this time without moving the cursors (a backfill), where the source can.
        until: with ``since``, keep only activities that happened up to this time.
        dry_run: read and build, store nothing.
        on_progress: called with (stream, records read) after each page.

    Returns:
        Counts per stream, calls, skipped records by reason, and the error that stopped the source
        (each cursor keeps its last committed position).
    """
    _window_check(since, until)
    source_id: str = source.id  # type: ignore[attr-defined]
    source_type: str = source.type  # type: ignore[attr-defined]
    connector = live.connectors()[source_type]
    wanted = [name for name in connector.streams if not streams or name in streams]
    report = SiteReport(site=source_id)
    site_url = connector.site_url(source)
    store.ensure_site(engine, source_id, source_type, site_url)
    pipeline = Pipeline(engine, settings, site_url=site_url, move_cursor=since is None, dry_run=dry_run)

    def counts() -> dict[str, Any]:
        return {name: r.as_dict() for name, r in report.streams.items()} | {
            "calls": report.calls,
            "skipped": report.skipped,
        }

    with (
        _recorded_run(engine, report, dry_run=dry_run, counts=counts),
        connector.open(source, _live_context(settings)) as reader,
    ):
        try:
            for name in wanted:
                stream_report = report.streams.setdefault(name, IngestReport())
                start = store.get_cursor(engine, source_id, name)
                for page in reader.read(name, start, since=since):
                    links = [
                        store.LinkIn(connector.link_source, source_id, local_id, nip)
                        for local_id, nip in page.accounts.items()
                    ]
                    stream_report.add(
                        pipeline.commit(source_id, name, _until(page.activities, until), page.position, links)
                    )
                    for reason, count in page.skipped.items():
                        report.skipped[reason] = report.skipped.get(reason, 0) + count
                    if on_progress is not None:
                        on_progress(name, page.read)
                    if dry_run and connector.confirms_reads:
                        break  # the next read would confirm (drop at the source) a page nothing stored
                log.info(
                    "%s/%s: %s",
                    source_id,
                    name,
                    stream_report.as_dict(),
                    extra={"site": source_id, "stream": name, "counts": stream_report.as_dict()},
                )
        finally:
            report.calls = dict(reader.calls)
    return report


def _live_context(settings: Settings) -> live.LiveContext:
    """The deployment facts a live connector needs: secrets, time zone, pseudonymiser."""
    from zoneinfo import ZoneInfo

    from lms_bridge.identity.pseudonym import pseudonymizer_from_settings

    return live.LiveContext(
        secret=settings.secret,
        timezone=ZoneInfo(settings.deployment.timezone),
        pseudonymizer=lambda: pseudonymizer_from_settings(settings),
        resolve_path=settings.resolve_path,
    )


#: Streams whose position holds per-key watermarks (Unix seconds), and the key.
_WATERMARKS = {"course_completions": "courses", "activity_completions": "courses", "forum_posts": "forums"}


def since_position(stream: str, start: Any, since: datetime) -> Any:
    """The position a stream would hold had it synced up to ``since``: every watermark set to it."""
    key = _WATERMARKS.get(stream)
    if key is None:
        return start
    epoch = int(since.timestamp())
    return {key: dict.fromkeys((start or {}).get(key, {}), epoch), "default": epoch}


def sync_site(
    engine: Engine,
    settings: Settings,
    site: moodle.MoodleSettings,
    *,
    streams: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    dry_run: bool = False,
    on_progress: Callable[[str, int], None] | None = None,
) -> SiteReport:
    """Pull a Moodle site's streams into the outbox.

    Args:
        engine: the state store.
        settings: the configuration.
        site: the site's settings.
        streams: stream names to run (default all; the catalogue always loads).
        since: re-pull from this time without moving the live cursors (a backfill);
            nothing is duplicated because statement ids are deterministic.
        until: with ``since``, keep only activities that happened up to this time.
        dry_run: read and build, store nothing.
        on_progress: called with (stream, activities) after each batch.

    Returns:
        Counts per stream, calls per function, and the error that stopped the site.
    """
    _window_check(since, until)
    token = settings.secret(site.token_env)
    wanted = list(streams or moodle.STREAM_NAMES)
    unknown = [name for name in wanted if name not in moodle.STREAM_NAMES]
    if unknown:
        raise ConfigError(f"unknown stream {unknown[0]!r} (streams: {', '.join(moodle.STREAM_NAMES)})")
    report = SiteReport(site=site.id)
    store.ensure_site(engine, site.id, "moodle", site.url)
    pipeline = Pipeline(engine, settings, site_url=site.url, move_cursor=since is None, dry_run=dry_run)
    all_streams = moodle.make_streams(site)

    def counts() -> dict[str, Any]:
        return {name: r.as_dict() for name, r in report.streams.items()} | {"calls": report.calls}

    with _recorded_run(engine, report, dry_run=dry_run, counts=counts), site.client(token) as client:
        ctx = moodle.SiteContext(site=site.id, client=client, wwwroot=site.url.rstrip("/"))
        try:
            for name in moodle.STREAM_NAMES:
                # The catalogue and webinar names feed the other streams: always read them.
                if name not in wanted and name not in ("courses", "webinars"):
                    continue
                stream_report = report.streams.setdefault(name, IngestReport())
                start = store.get_cursor(engine, site.id, name)
                if since is not None:
                    start = since_position(name, start, since)
                for batch in all_streams[name].read(ctx, start):
                    links = [store.LinkIn("moodle", site.id, link.user_id, link.idnumber) for link in batch.links]
                    stream_report.add(
                        pipeline.commit(site.id, name, _until(batch.activities, until), batch.position, links)
                    )
                    if on_progress is not None:
                        on_progress(name, len(batch.activities) + len(batch.links))
                log.info(
                    "%s/%s: %s",
                    site.id,
                    name,
                    stream_report.as_dict(),
                    extra={"site": site.id, "stream": name, "counts": stream_report.as_dict()},
                )
        finally:
            report.calls = dict(client.calls)
    return report


def test_site(settings: Settings, site: moodle.MoodleSettings) -> tuple[dict[str, Any], list[str]]:
    """Call ``core_webservice_get_site_info``; return it and the functions the service lacks.

    Raises:
        MoodleAPIError, RetryableError: the site refused or did not answer.
    """
    token = settings.secret(site.token_env)
    with site.client(token) as client:
        info = client.call("core_webservice_get_site_info")
    return info, moodle.missing_functions(info, site)
