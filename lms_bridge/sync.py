"""Syncing Moodle sites: each stream from its cursor, batch by batch, into the outbox.

A failure stops the site (never half a batch: each batch is one transaction),
is recorded in ``runs`` and leaves every cursor where its last committed batch put it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from connectors import moodle
from lms_bridge import store
from lms_bridge.config import Settings, SourceSettings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.pipeline import IngestReport, Pipeline

log = logging.getLogger(__name__)


@dataclass
class SiteReport:
    """What one site's sync did, per stream.

    Attributes:
        site: the site id.
        streams: counts per stream name.
        calls: web-service calls per function.
        error: the sentence that stopped the site, if one did.
    """

    site: str
    streams: dict[str, IngestReport] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def moodle_settings(source: SourceSettings) -> moodle.MoodleSettings:
    """Validate a ``[[sources]]`` entry as a Moodle site.

    Raises:
        ConfigError: naming the source and the key that is wrong.
    """
    from pydantic import ValidationError

    try:
        return moodle.MoodleSettings.model_validate(source.model_dump(exclude_none=True))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "entry"
        message = "unknown key (check the spelling)" if error["type"] == "extra_forbidden" else error["msg"]
        raise ConfigError(f"source {source.id}: {key}: {message}") from None


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


#: Streams whose position holds per-key watermarks (Unix seconds), and the key.
_WATERMARKS = {"course_completions": "courses", "activity_completions": "courses", "forum_posts": "forums"}


def _since_position(stream: str, start: Any, since: datetime) -> Any:
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
        dry_run: read and build, store nothing.
        on_progress: called with (stream, activities) after each batch.

    Returns:
        Counts per stream, calls per function, and the error that stopped the site.
    """
    token = settings.secret(site.token_env)
    wanted = list(streams or moodle.STREAM_NAMES)
    unknown = [name for name in wanted if name not in moodle.STREAM_NAMES]
    if unknown:
        raise ConfigError(f"unknown stream {unknown[0]!r} (streams: {', '.join(moodle.STREAM_NAMES)})")
    report = SiteReport(site=site.id)
    store.ensure_site(engine, site.id, "moodle", site.url)
    run_id = None if dry_run else store.start_run(engine, "sync", site.id)
    pipeline = Pipeline(engine, settings, site_url=site.url, move_cursor=since is None, dry_run=dry_run)
    all_streams = moodle.make_streams(site)
    with site.client(token) as client:
        ctx = moodle.SiteContext(site=site.id, client=client, wwwroot=site.url.rstrip("/"))
        try:
            for name in moodle.STREAM_NAMES:
                # The catalogue and webinar names feed the other streams: always read them.
                if name not in wanted and name not in ("courses", "webinars"):
                    continue
                stream_report = report.streams.setdefault(name, IngestReport())
                start = store.get_cursor(engine, site.id, name)
                if since is not None:
                    start = _since_position(name, start, since)
                for batch in all_streams[name].read(ctx, start):
                    links = [store.LinkIn("moodle", site.id, link.user_id, link.idnumber) for link in batch.links]
                    stream_report.add(pipeline.commit(site.id, name, batch.activities, batch.position, links))
                    if on_progress is not None:
                        on_progress(name, len(batch.activities) + len(batch.links))
                log.info("%s/%s: %s", site.id, name, stream_report.as_dict(),
                         extra={"site": site.id, "stream": name, "counts": stream_report.as_dict()})
        except LmsBridgeError as exc:
            report.error = str(exc)
            log.error("%s: sync stopped: %s", site.id, exc, extra={"site": site.id})
        finally:
            report.calls = dict(client.calls)
    if run_id is not None:
        store.finish_run(engine, run_id, status="failed" if report.error else "ok",
                         counts={name: r.as_dict() for name, r in report.streams.items()} | {"calls": report.calls},
                         error=report.error)
    return report


def test_site(settings: Settings, site: moodle.MoodleSettings) -> tuple[dict[str, Any], list[str]]:
    """Call ``core_webservice_get_site_info``; return it and the functions the service lacks.

    Raises:
        MoodleAPIError, RetryableError: the site refused or did not answer.
    """
    token = settings.secret(site.token_env)
    with site.client(token) as client:
        info = client.call("core_webservice_get_site_info")
    return info, moodle.missing_functions(info)
