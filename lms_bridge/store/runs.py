"""What each run did: the ``runs`` table behind ``lms-bridge runs list|show`` and ``/metrics``.

Runs are written by the commands themselves (:func:`lms_bridge.store.start_run` and
:func:`~lms_bridge.store.finish_run`). A run killed (SIGKILL, a lost machine, a Celery
worker killed mid-task) never writes its end, so its row would say ``running`` for ever.
A run started under a lock records the lock's owner; while that lock is held the run may
be alive, and once it is gone the run cannot be: before listing or showing runs,
:func:`mark_abandoned` marks such rows ``abandoned`` (a run without a lock owner, e.g.
from before migration 0005, keeps ``running``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from lms_bridge.errors import LmsBridgeError
from lms_bridge.store.locks import owner_alive
from lms_bridge.store.models import Run

#: Keys of a sync run's counts that are not streams.
NOT_STREAMS = frozenset({"calls", "skipped"})
#: Status of a run whose process ended without recording how (its lock is gone).
ABANDONED = "abandoned"
ABANDONED_ERROR = (
    "its process ended without recording the end (killed?): the lock it held is gone; "
    "batches it committed stand, the next run goes on from there"
)


@dataclass(frozen=True)
class RunInfo:
    """One run as read from the store.

    Attributes:
        id: the run id.
        command: ``sync``, ``flush``, ``jp``, ``ledger``...
        site_id: the site it ran against, or None.
        started_at: when it started (UTC).
        finished_at: when it ended, or None while running (or when it was killed).
        status: ``running``, ``ok``, ``failed``, ``stopped`` or ``abandoned`` (killed: see the module docstring).
        counts: the counts it recorded (per stream for a sync).
        error: the sentence that stopped it, if one did.
    """

    id: int
    command: str
    site_id: str | None
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: dict[str, Any]
    error: str | None

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to finish, or None when it has not finished."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def streams(self) -> dict[str, dict[str, Any]]:
        """The per-stream counts of a sync run (``calls`` and ``skipped`` left out)."""
        return {
            name: value for name, value in self.counts.items() if name not in NOT_STREAMS and isinstance(value, dict)
        }


def _info(run: Run) -> RunInfo:
    try:
        counts = json.loads(run.counts or "{}")
    except ValueError:
        counts = {}
    return RunInfo(
        id=run.id,
        command=run.command,
        site_id=run.site_id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        status=run.status,
        counts=counts if isinstance(counts, dict) else {},
        error=run.error,
    )


def mark_abandoned(engine: Engine) -> int:
    """Mark ``abandoned`` the ``running`` runs whose lock is no longer held; return how many.

    Only a row still ``running`` is changed, so a run that finishes meanwhile keeps its own status.
    """
    with Session(engine) as session:
        running = session.execute(
            select(Run.id, Run.owner).where(Run.status == "running", Run.owner.is_not(None))
        ).all()
    alive: dict[str, bool] = {}
    dead = []
    for run_id, owner in running:
        if owner is None:  # filtered out above; for the type checker
            continue
        if owner not in alive:
            alive[owner] = owner_alive(engine, owner)
        if not alive[owner]:
            dead.append(run_id)
    if not dead:
        return 0
    with Session(engine) as session, session.begin():
        session.execute(
            update(Run).where(Run.id.in_(dead), Run.status == "running").values(status=ABANDONED, error=ABANDONED_ERROR)
        )
    return len(dead)


def completed_run(engine: Engine, command: str, site_id: str, key: str) -> RunInfo | None:
    """The latest ``ok`` run of ``command`` on ``site_id`` done under a lock owner of ``key``, if any.

    A distributed task's lock owner ends with its Celery task id (:func:`lms_bridge.store.locks.make_owner`),
    so this tells whether that task already did its work: a broker delivers a task again when its
    worker died before the acknowledgement, or (Redis) when it ran past the visibility timeout.
    """
    query = (
        select(Run)
        .where(
            Run.command == command,
            Run.site_id == site_id,
            Run.status == "ok",
            Run.owner.endswith(f":{key}", autoescape=True),
        )
        .order_by(Run.id.desc())
        .limit(1)
    )
    with Session(engine) as session:
        run = session.scalars(query).first()
        return None if run is None else _info(run)


def list_runs(
    engine: Engine, *, limit: int = 20, site: str | None = None, command: str | None = None, status: str | None = None
) -> list[RunInfo]:
    """The latest runs, newest first.

    Args:
        engine: the state store.
        limit: at most this many.
        site: only runs against this site.
        command: only runs of this command.
        status: only runs with this status.
    """
    mark_abandoned(engine)
    query = select(Run).order_by(Run.id.desc()).limit(limit)
    if site is not None:
        query = query.where(Run.site_id == site)
    if command is not None:
        query = query.where(Run.command == command)
    if status is not None:
        query = query.where(Run.status == status)
    with Session(engine) as session:
        return [_info(run) for run in session.scalars(query)]


def get_run(engine: Engine, run_id: int) -> RunInfo:
    """One run by id.

    Raises:
        LmsBridgeError: when there is no such run.
    """
    mark_abandoned(engine)
    with Session(engine) as session:
        run = session.get(Run, run_id)
        if run is None:
            raise LmsBridgeError(f"there is no run {run_id}: see lms-bridge runs list")
        return _info(run)


def last_successes(engine: Engine, *, scan: int = 5000) -> dict[tuple[str, str, str], datetime]:
    """When each (command, site, stream) last finished ``ok``, from the latest ``scan`` good runs.

    A run without streams (a flush, a JP computation) counts under stream ``""``; a run
    without a site under site ``""``. A sync of some streams only updates those.
    """
    found: dict[tuple[str, str, str], datetime] = {}
    query = select(Run).where(Run.status == "ok", Run.finished_at.is_not(None)).order_by(Run.id.desc()).limit(scan)
    with Session(engine) as session:
        for run in session.scalars(query):
            info = _info(run)
            assert info.finished_at is not None  # noqa: S101 - filtered above
            for stream in info.streams() or {"": {}}:
                key = (info.command, info.site_id or "", stream)
                if key not in found or found[key] < info.finished_at:
                    found[key] = info.finished_at
    return found
