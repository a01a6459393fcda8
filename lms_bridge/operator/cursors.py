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
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors import CONNECTORS
from lms_bridge import store
from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.store.locks import site_lock, sync_lock_name
from lms_bridge.store.models import Cursor


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


def describe_position(position: Any) -> str:
    """A short human form of a stream position: its connector's (watermark range, a stored time), or the JSON."""
    for connector in CONNECTORS.values():
        described = connector.describe_position(position)
        if described is not None:
            return described
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
    connector = CONNECTORS.get(source.type)
    if connector is None:
        raise ConfigError(
            f"source {site} is of type {source.type}: its cursors follow imported files; "
            "import the file again instead of resetting"
        )
    after, forward = connector.reset_position(site, stream, before, to)
    return ResetPlan(site_id=site, stream=stream, to=to, before=before, after=after, forward=forward)


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
