"""``lms-bridge backfill``: re-pull a window of one source without duplicates or moving cursors.

A backfill is a sync from ``since`` with the cursors left alone
(:func:`lms_bridge.ingest.runner.sync_source` with ``since``): statement ids are
deterministic and the outbox is unique on them, so what was pulled before is
counted "unchanged" and never re-sent, and the live cursors neither move back nor
forward. Its run loop takes the site's sync lock, so it never runs beside a sync of the site.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Engine

from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError
from lms_bridge.ingest import runner as sync_core
from lms_bridge.store.locks import DEFAULT_TTL
from lms_bridge.store.models import utcnow


def backfill(
    engine: Engine,
    settings: Settings,
    site: str,
    *,
    since: datetime,
    until: datetime | None = None,
    streams: Sequence[str] = (),
    dry_run: bool = False,
    wait: bool = False,
    ttl: float = DEFAULT_TTL,
    on_progress: Callable[[str, int], None] | None = None,
) -> sync_core.SiteReport:
    """Re-pull ``site`` from ``since`` (to ``until``) into the outbox, leaving its cursors where they are.

    Args:
        engine: the state store.
        settings: the configuration.
        site: the source id (a Moodle site or a source LRS).
        since: the window's start (tz-aware).
        until: the window's end (tz-aware), or None for up to now.
        streams: stream names to run (none: all).
        dry_run: read and build, store nothing.
        wait: wait for a running sync of the site instead of failing.
        ttl: the site lock's expiry (SQLite).
        on_progress: called with (stream, records) after each batch.

    Returns:
        The sync's counts: statements already pulled count as ``unchanged``.

    Raises:
        ConfigError: an unknown site or stream, a window that ends before it starts or
            starts in the future, or ``until`` on a version of sync that cannot stop at it.
        LockBusy: a sync of the site is running and ``wait`` is False.
    """
    if since > utcnow():
        raise ConfigError(f"--since {since.isoformat()} is in the future")
    if until is not None and until <= since:
        raise ConfigError(f"--until {until.isoformat()} is not after --since {since.isoformat()}")
    plan = sync_core.sync_sources(settings, site, streams)
    if not plan:
        raise ConfigError(f"source {site} has none of the streams {', '.join(streams)}")
    source, source_streams = plan[0]
    return sync_core.sync_source(
        engine,
        settings,
        source,
        streams=source_streams,
        since=since,
        until=until,
        dry_run=dry_run,
        on_progress=on_progress,
        wait=wait,
        lock_ttl=ttl,
    )
