"""Reading and resetting stream cursors (``lms-bridge cursors list|reset``).

A reset writes the cursor through :func:`lms_bridge.store.commit_batch` (the only
writer of cursors, with no statements) while holding the site's sync lock, so it
never races a running sync that would overwrite it. Moving a cursor back is safe:
the next sync re-reads the window and the outbox, unique on statement id, keeps
what it already has (the LRS answers 204 to anything re-posted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors import live, lrs_source, moodle
from lms_bridge import store
from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.ingest.runner import since_position
from lms_bridge.store.locks import site_lock, sync_lock_name
from lms_bridge.store.models import Cursor

#: Moodle streams whose position holds per-key watermarks (Unix seconds), and the key.
WATERMARK_STREAMS = {"course_completions": "courses", "activity_completions": "courses", "forum_posts": "forums"}


@dataclass(frozen=True)
class CursorInfo:
    """One stored cursor.

    Attributes:
        site_id: the source id.
        stream: the stream name.
        position: the decoded position.
        updated_at: when it last moved.
    """

    site_id: str
    stream: str
    position: Any
    updated_at: datetime

    def summary(self) -> str:
        """The position in a few words (watermark range, a stored time, or the raw JSON)."""
        return describe_position(self.position)


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC") if epoch else "the start"


def describe_position(position: Any) -> str:
    """A short human form of a stream position."""
    if isinstance(position, dict):
        for key in ("courses", "forums"):
            marks = position.get(key)
            if isinstance(marks, dict) and "default" in position:
                values = [int(v) for v in marks.values() if isinstance(v, int | float)]
                if not values:
                    return f"0 {key}, from {_when(int(position.get('default') or 0))}"
                low, high = min(values), max(values)
                return f"{len(values)} {key}, oldest {_when(low)}, newest {_when(high)}"
        if isinstance(position.get("stored"), str):
            return f"stored after {position['stored']}"
    text = json.dumps(position, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."


def list_cursors(engine: Engine, site: str | None = None) -> list[CursorInfo]:
    """Every stored cursor (or one site's), by site and stream."""
    query = select(Cursor).order_by(Cursor.site_id, Cursor.stream)
    if site is not None:
        query = query.where(Cursor.site_id == site)
    with Session(engine) as session:
        return [CursorInfo(c.site_id, c.stream, json.loads(c.position), c.updated_at) for c in session.scalars(query)]


@dataclass(frozen=True)
class ResetPlan:
    """What a cursor reset would write.

    Attributes:
        site_id: the source id.
        stream: the stream name.
        to: the date the stream is set back (or forward) to.
        before: the stored position (None: never synced).
        after: the position to store.
        forward: True when the reset skips activity (a later date than some watermark).
    """

    site_id: str
    stream: str
    to: datetime
    before: Any
    after: Any
    forward: bool


def _epochs(position: Any) -> list[int]:
    if not isinstance(position, dict):
        return []
    values = [position.get("default", 0)]
    for key in ("courses", "forums"):
        marks = position.get(key)
        if isinstance(marks, dict):
            values.extend(marks.values())
    return [int(v) for v in values if isinstance(v, int | float)]


def plan_reset(engine: Engine, settings: Settings, site: str, stream: str, to: datetime) -> ResetPlan:
    """Work out the position ``stream`` of ``site`` would hold had it synced up to ``to``.

    Raises:
        ConfigError: an unknown site or stream, or a stream with no date cursor (a full
            pass each sync, an imported file).
    """
    if to.tzinfo is None:
        raise ValueError("to must be tz-aware")
    source = settings.source(site)
    before = store.get_cursor(engine, site, stream)
    if source.type == "moodle":
        if stream not in moodle.STREAM_NAMES:
            raise ConfigError(
                f"unknown stream {stream!r} of Moodle site {site} (streams: {', '.join(moodle.STREAM_NAMES)})"
            )
        if stream not in WATERMARK_STREAMS:
            raise ConfigError(
                f"stream {stream} is read whole on every sync: it has no date to reset "
                f"(date cursors: {', '.join(WATERMARK_STREAMS)})"
            )
        after = since_position(stream, before, to)
        if isinstance(before, dict) and "default" in before:
            # Keys (courses, forums) not seen yet keep their floor: a reset never skips a new forum.
            after["default"] = before["default"]
        epoch = int(to.timestamp())
        forward = any(value < epoch for value in _epochs(before))
    elif source.type == "lrs":
        if stream != lrs_source.STREAM:
            raise ConfigError(f"a source LRS has one stream, {lrs_source.STREAM}, not {stream!r}")
        after = {"stored": lrs_source.format_time(to.astimezone(UTC))}
        current = lrs_source.parse_time(before.get("stored")) if isinstance(before, dict) else None
        forward = current is not None and current < to
    elif source.type in live.connectors():
        connector = live.connectors()[source.type]
        if stream not in connector.streams:
            raise ConfigError(
                f"unknown stream {stream!r} of {source.type} source {site} (streams: {', '.join(connector.streams)})"
            )
        if connector.reset_position is None:
            raise ConfigError(
                f"source {site} is of type {source.type}: its cursor is not a date and the "
                "platform keeps no history to re-read, so it cannot be reset"
            )
        after = connector.reset_position(stream, before, to)
        forward = any(moment < to for moment in _iso_moments(before))
    else:
        raise ConfigError(
            f"source {site} is of type {source.type}: its cursors follow imported files; "
            "import the file again instead of resetting"
        )
    return ResetPlan(site_id=site, stream=stream, to=to, before=before, after=after, forward=forward)


def _iso_moments(position: Any) -> list[datetime]:
    """The ISO dates and times held anywhere in a live source's cursor (as UTC datetimes)."""
    if isinstance(position, dict):
        return [moment for value in position.values() for moment in _iso_moments(value)]
    if isinstance(position, str):
        try:
            moment = datetime.fromisoformat(position)
        except ValueError:
            return []
        return [moment if moment.tzinfo else moment.replace(tzinfo=UTC)]
    return []


def apply_reset(engine: Engine, plan: ResetPlan, *, wait: bool = False) -> None:
    """Store the planned position, under the site's sync lock.

    Raises:
        LockBusy: a sync of the site is running (and ``wait`` is False).
        LmsBridgeError: the cursor moved since the plan was made.
    """
    with site_lock(engine, sync_lock_name(plan.site_id), wait=wait):
        if store.get_cursor(engine, plan.site_id, plan.stream) != plan.before:
            raise LmsBridgeError(
                f"cursor {plan.site_id}/{plan.stream} moved while you were confirming: run the reset again"
            )
        # Guard (the cursor rule): cursors are written only through commit_batch.
        store.commit_batch(engine, site_id=plan.site_id, stream=plan.stream, statements=(), position=plan.after)
