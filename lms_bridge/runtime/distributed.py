"""Distributed syncs: Celery workers pull sites in parallel, sharing one PostgreSQL state store.

``lms-bridge sync --all --distributed`` enqueues one task per site and stream;
``lms-bridge worker`` processes (on any number of machines) run them. Sites are
independent, so the work fans out on Celery (broker: Redis or RabbitMQ) instead
of a home-made queue. What keeps it correct:

- **Locks.** A stream task holds the site's sync lock *shared* and a lock of its own
  site-stream *exclusive* (PostgreSQL advisory locks on one connection). So two tasks
  never pull the same site-stream at once, the streams of one site may run side by
  side on several workers, and a plain ``sync``, ``serve``, ``backfill`` or ``cursors
  reset`` (which take the site lock exclusive, :mod:`lms_bridge.store.locks`) still excludes
  them all. A task that finds its lock busy is retried a few seconds later. After each
  committed batch a task checks that its lock connection still holds both locks; if that
  connection dropped (and the task may have been handed to another worker), it stops
  there: its committed batches stand, and the run is recorded failed with one log line.
- **Order.** A Moodle site's ``enrolled_users`` task runs first (it links accounts to
  NIPs, which the other streams' actors need); the per-user streams then run as a group. On Redis the
  groups' tasks carry priorities (:func:`tail_priority`) so idle workers spread over the sites instead
  of all taking the streams of the site whose first task ended last.
  Every task reads the catalogue (courses, webinars) itself: the streams need it.
- **Crashes.** Tasks are acknowledged late (``acks_late``, ``task_reject_on_worker_lost``,
  prefetch 1): a task whose worker is SIGKILLed is delivered again to another worker.
  RabbitMQ does that when the dead worker's connection closes; Redis after the message's
  ``visibility_timeout`` (``LMS_BRIDGE_BROKER_VISIBILITY_TIMEOUT``, default 3600 s: it must
  exceed the longest task, or a running task is delivered a second time and waits for
  the lock; live workers look for such tasks every ``min(10, timeout / 4)`` seconds).
  The killed task's lock went with its connection; the cursor rule (cursor and
  outbox rows in one transaction, :mod:`lms_bridge.ingest.pipeline`) makes the rerun resume
  where the last commit left off, and deterministic statement ids make it add nothing twice.
- **At least once, run once.** A broker may deliver a task again although its run ended: its worker
  died before the acknowledgement, or (Redis) it outran the visibility timeout. The run is
  recorded under the task id (the lock owner ends with it), so the copy, once it holds the
  locks, finds that run ``ok`` and runs nothing (``sync_source(task_key=...)``). Each task
  first marks ``abandoned`` the ``running`` runs whose lock is gone (killed tasks).
- **Rate limits.** Each request of a source that declares request slots
  (:meth:`connectors.base.Connector.request_slots`: a Moodle site's ``max_in_flight``) holds one of them,
  transaction-level advisory locks ``(site, slot)`` in PostgreSQL, so the limit holds for
  all workers together, and a dead worker's slots are freed with its connections.
- **Flushes.** ``flush_outbox`` tasks may run on several workers at once: the outbox
  claims rows with ``FOR UPDATE SKIP LOCKED`` (:mod:`lms_bridge.outbox.flush`).

Configuration comes from the environment (or the secrets file, as the broker URL may hold
a password): ``LMS_BRIDGE_BROKER_URL`` (``redis://...`` or ``amqp://...``),
``LMS_BRIDGE_RESULT_BACKEND`` (optional; a Redis broker doubles as the result backend
when it is not set; ``--wait`` needs one that stores results, not ``rpc://``), ``LMS_BRIDGE_BROKER_VISIBILITY_TIMEOUT``
(Redis only, seconds). The state store must be PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from celery import Celery, chain, group
from celery.result import AsyncResult
from pydantic import SecretStr
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from connectors import CONNECTORS
from lms_bridge import store
from lms_bridge.config.lrs import lrs_client
from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.ingest import runner as sync_core
from lms_bridge.outbox import flush as outbox_core
from lms_bridge.redaction import register_secret
from lms_bridge.store import runs as runs_core
from lms_bridge.store.locks import LockBusy, LockLost, stream_lock, stream_lock_name

log = logging.getLogger(__name__)

#: The distributed locks live with the other locks (the run loop takes them, ``per_stream``); these
#: names stay here for the code and tests that reach them through this module.
__all__ = ["LockLost", "stream_lock", "stream_lock_name"]

BROKER_ENV = "LMS_BRIDGE_BROKER_URL"
RESULT_BACKEND_ENV = "LMS_BRIDGE_RESULT_BACKEND"
VISIBILITY_ENV = "LMS_BRIDGE_BROKER_VISIBILITY_TIMEOUT"
#: The queue lms-bridge tasks go to (so other Celery apps on the same broker are not disturbed).
QUEUE = "lms-bridge"
SYNC_TASK = "lms_bridge.sync_site_stream"
FLUSH_TASK = "lms_bridge.flush_outbox"
#: Seconds before a task whose lock is busy tries again, and how many times (about an hour).
LOCK_RETRY_SECONDS = 5
LOCK_RETRIES = 720
_BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


@dataclass(frozen=True)
class DistributedSettings:
    """Where the tasks go (read from the environment or the secrets file).

    Attributes:
        broker_url: the Celery broker (Redis or RabbitMQ).
        result_backend: where task results are kept (None: no results, ``--wait`` refused).
        visibility_timeout: Redis only: seconds before an unacknowledged task is delivered again.
    """

    broker_url: SecretStr
    result_backend: SecretStr | None
    visibility_timeout: float


def _register_password(url: str) -> None:
    """Mask the password of a broker or backend URL in every log line."""
    password = urlsplit(url).password
    if password:
        register_secret(password)


def distributed_settings(settings: Settings) -> DistributedSettings:
    """Read and check the distributed settings.

    Raises:
        ConfigError: no broker, an unknown broker scheme, a bad timeout, or a state store
            that is not PostgreSQL.
    """
    if make_url_backend(settings.state.url) != "postgresql":
        raise ConfigError(
            "distributed syncs need the state store on PostgreSQL ([state] url = "
            '"postgresql://..."): SQLite cannot be shared by workers on several machines'
        )
    broker = settings.optional_secret(BROKER_ENV)
    if broker is None:
        raise ConfigError(
            f"distributed syncs need a broker: set {BROKER_ENV} (redis://host:6379/0 or "
            "amqp://user@host//) in the environment or the secrets file"
        )
    scheme = urlsplit(broker.get_secret_value()).scheme
    if scheme not in _BROKER_SCHEMES:
        raise ConfigError(f"{BROKER_ENV} must be a Redis or RabbitMQ URL (redis://, amqp://), not {scheme or 'this'}")
    _register_password(broker.get_secret_value())
    backend = settings.optional_secret(RESULT_BACKEND_ENV)
    if backend is None and scheme in ("redis", "rediss"):
        backend = broker
    if backend is not None:
        _register_password(backend.get_secret_value())
    raw_timeout = os.environ.get(VISIBILITY_ENV, "3600")
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = 0.0
    if timeout <= 0:
        raise ConfigError(f"{VISIBILITY_ENV} must be a positive number of seconds, not {raw_timeout!r}")
    return DistributedSettings(broker_url=broker, result_backend=backend, visibility_timeout=timeout)


def make_url_backend(url: str) -> str:
    """The database kind of a state store URL (``postgresql``, ``sqlite``...)."""
    try:
        return make_url(url).get_backend_name()
    except Exception:  # noqa: BLE001 - a malformed URL is reported by open_engine
        return ""


# --- locks and slots -------------------------------------------------------------------------


def _slot_key(source_type: str, site_id: str) -> int:
    """The 32-bit key of a source's request slots (two-key advisory locks: a space apart from the 64-bit ones)."""
    return zlib.crc32(f"lms-bridge:{source_type}-calls:{site_id}".encode()) - 2**31


@contextmanager
def request_slot(engine: Engine, source_type: str, site_id: str, slots: int, poll: float = 0.02) -> Iterator[int]:
    """Hold one of ``slots`` request slots of a source, shared by every worker, for one HTTP request.

    A slot is a transaction-level advisory lock ``(source key, slot)``: it is released when the
    transaction ends (after the request, or when a dead worker's connection closes).

    Yields:
        The slot number held.
    """
    key = _slot_key(source_type, site_id)
    first = random.randrange(slots)  # noqa: S311 - spreading tries, not security
    with engine.connect() as connection:
        while True:
            for offset in range(slots):
                slot = (first + offset) % slots
                if connection.scalar(text("SELECT pg_try_advisory_xact_lock(:key, :slot)"), {"key": key, "slot": slot}):
                    try:
                        yield slot
                    finally:
                        _end(connection)
                    return
            _end(connection)
            time.sleep(poll * (1 + random.random()))  # noqa: S311


def _end(connection: Connection) -> None:
    """End the slot transaction (which releases its lock)."""
    try:
        connection.rollback()
    except SQLAlchemyError:
        connection.invalidate()


# --- the Celery app and its tasks ------------------------------------------------------------


class _Runtime:
    """What tasks use in a worker process: the settings and an engine made in that process.

    Prefork children must not share their parent's connections, so the engine is keyed by pid.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engines: dict[int, Engine] = {}

    def engine(self) -> Engine:
        pid = os.getpid()
        if pid not in self._engines:
            base = self.settings.config_path.parent if self.settings.config_path else None
            # Each request holding (or waiting for) a shared request slot holds a connection, so a task
            # needs as many connections as its source's slots besides its cursor/outbox/lock ones
            # (docs/scaling.md).
            flights = [
                slots
                for source in self.settings.sources
                if source.type in CONNECTORS
                and (slots := CONNECTORS[source.type].request_slots(source.model_dump(exclude_none=True))) is not None
            ]
            self._engines[pid] = store.open_engine(self.settings.state.url, base, pool_size=max(flights, default=4) + 5)
        return self._engines[pid]


def make_celery(settings: Settings) -> Celery:
    """The Celery app of this configuration, with ``sync_site_stream`` and ``flush_outbox`` registered.

    Raises:
        ConfigError: see :func:`distributed_settings`.
    """
    config = distributed_settings(settings)
    broker = config.broker_url.get_secret_value()
    app = Celery(
        "lms_bridge", broker=broker, backend=config.result_backend.get_secret_value() if config.result_backend else None
    )
    redis = urlsplit(broker).scheme in ("redis", "rediss")
    app.conf.update(
        task_default_queue=QUEUE,
        task_acks_late=True,  # ack after the task ran: a killed worker's task is delivered again
        task_reject_on_worker_lost=True,  # a prefork child that died: requeue, do not ack
        worker_prefetch_multiplier=1,  # one task reserved per process: nothing stranded on a busy worker
        # Redis: take a message only when a process is free to run it (Celery >= 5.6; RabbitMQ has no such
        # switch and keeps the prefetch of one per process above), so a SIGTERMed worker holds no task it
        # has not started: they stay in the queue for the other workers.
        worker_disable_prefetch=redis,
        # RabbitMQ: no AMQP heartbeats. A worker's event loop cannot answer them while a task runs in it
        # (--pool solo, or a busy prefork parent), so RabbitMQ closed the connection of a task longer than
        # two heartbeats and delivered it again. A dead worker is still seen at once: its TCP connection
        # closes. (RabbitMQ's own consumer_timeout, 30 min by default, still applies: docs/scaling.md.)
        broker_heartbeat=0,
        broker_transport_options={
            "visibility_timeout": config.visibility_timeout,
            # Redis: look for tasks of dead workers every few seconds (kombu's default sweep is 100 s).
            "unacked_restore_interval": max(1, min(10, int(config.visibility_timeout // 4))),
            "unacked_restore_throttle": 1,
        },
        result_backend_transport_options={"visibility_timeout": config.visibility_timeout},
        result_expires=86400,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,  # keep lms-bridge's logging (masked secrets, JSON lines)
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        task_track_started=True,
    )
    runtime = _Runtime(settings)

    @app.task(bind=True, name=SYNC_TASK)
    def sync_site_stream(self: Any, site: str, stream: str) -> dict[str, Any]:
        """Sync one stream of one source under its locks (see the module docstring)."""
        return _sync_site_stream(self, runtime, site, stream)

    @app.task(bind=True, name=FLUSH_TASK)
    def flush_outbox(self: Any, limit: int | None = None) -> dict[str, Any]:
        """Post pending outbox rows; safe beside other flushers (rows are claimed SKIP LOCKED)."""
        return _flush_outbox(runtime, limit)

    del sync_site_stream, flush_outbox  # registered on the app by name; callers use the names
    return app


def _sync_site_stream(task: Any, runtime: _Runtime, site: str, stream: str) -> dict[str, Any]:
    settings = runtime.settings
    result: dict[str, Any] = {"site": site, "stream": stream, "worker": socket.gethostname(), "pid": os.getpid()}
    where = {"site": site, "stream": stream}
    try:
        engine = runtime.engine()
        # Runs of killed tasks (their lock connection is gone) read "abandoned" from now on, not "running".
        runs_core.mark_abandoned(engine)
        [(source, _)] = sync_core.sync_sources(settings, site, [stream])

        @contextmanager
        def logged() -> Iterator[None]:
            # Inside the locks: a task's "started" and "finished" lines bracket the time it held its stream.
            log.info("task %s: %s/%s started", task.request.id, site, stream, extra=where | {"status": "started"})
            try:
                yield
            finally:
                log.info("task %s: %s/%s finished", task.request.id, site, stream, extra=where | {"status": "finished"})

        # The run loop holds the site lock shared and this stream's exclusive; a lost lock stops it
        # after its current batch (it logs the one line and records the run failed with the LockLost sentence).
        report = sync_core.sync_source(
            engine,
            settings,
            source,
            streams=[stream],
            request_slot=lambda slots: request_slot(engine, source.type, site, slots),
            per_stream=True,
            while_locked=logged,
            task_key=task.request.id,
        )
    except LockBusy as exc:
        if task.request.retries < LOCK_RETRIES:
            log.info("task %s: %s; trying again in %d s", task.request.id, exc, LOCK_RETRY_SECONDS, extra=where)
            raise task.retry(countdown=LOCK_RETRY_SECONDS, max_retries=LOCK_RETRIES) from None
        result["error"] = f"{exc}; gave up after {LOCK_RETRIES} tries"
        return result
    except LmsBridgeError as exc:  # a configuration or store problem: report it, keep the chain going
        log.error("task %s: %s/%s: %s", task.request.id, site, stream, exc, extra=where)
        result["error"] = str(exc)
        return result
    if report.done_before is not None:
        log.info(
            "task %s: %s/%s already done by run %d (the broker delivered it again): nothing to do",
            task.request.id,
            site,
            stream,
            report.done_before,
            extra=where | {"status": "already done", "run": report.done_before},
        )
        result["done_before"] = report.done_before
    counts = report.streams.get(stream)
    result["counts"] = counts.as_dict() if counts is not None else {}
    result["calls"] = sum(report.calls.values())
    result["error"] = report.error
    return result


def _flush_outbox(runtime: _Runtime, limit: int | None) -> dict[str, Any]:
    lrs = runtime.settings.lrs
    with lrs_client(runtime.settings) as client:
        report = outbox_core.flush(
            runtime.engine(),
            client,
            batch_size=lrs.batch_size,
            max_attempts=lrs.max_attempts,
            backoff_base=lrs.backoff_base,
            backoff_cap=lrs.backoff_cap,
            limit=limit,
        )
    return {
        "worker": socket.gethostname(),
        "pid": os.getpid(),
        "sent": report.sent,
        "dead": report.dead,
        "posts": report.posts,
        "gave_up": report.gave_up,
        "error": report.last_error if report.gave_up else None,
    }


# --- enqueueing and waiting ------------------------------------------------------------------


@dataclass
class Enqueued:
    """One task sent to the broker.

    Attributes:
        site: the source id (None for a flush).
        stream: the stream (None for a flush).
        task_id: Celery's task id.
        after: the task id this one runs after (e.g. a Moodle site's ``enrolled_users``), if any.
        result: what the task returned, once waited for.
    """

    site: str | None
    stream: str | None
    task_id: str
    after: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


def plan_streams(source: sync_core.SyncSource, streams: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """The tasks of one source: streams that run one after the other, then those that run side by side.

    Its connector says (:meth:`connectors.base.Connector.distributed_plan`): a Moodle site's
    ``enrolled_users`` goes first (its links give the others' actors their NIP), its per-user
    streams then run side by side; the streams of other sources run in order, one at a time,
    as a plain sync runs them.
    """
    return sync_core.connector_of(source).distributed_plan(streams)


def tail_priority(index: int) -> int:
    """The broker priority of a source's ``index``-th side-by-side task (Redis: lower is taken first).

    A chain sends a site's side-by-side tasks together when its first task ends, so in plain
    arrival order the workers freed next all take streams of that one site, which then share its
    request slots while the other sites wait (BENCHMARKS, "6. Distributed": 3 of 8 sites busy on 8
    workers). With the first side-by-side task of every site ahead of every second one, and so
    on, the workers spread over the sites. Redis keeps one list per priority step (0, 3, 6, 9; step
    0 is the plain queue, where first tasks stay); RabbitMQ ignores priorities on a queue declared
    without ``x-max-priority`` and keeps arrival order.
    """
    return min(9, 3 * (index + 1))


def enqueue_syncs(
    app: Celery, engine: Engine, settings: Settings, site: str | None = None, streams: Sequence[str] = ()
) -> list[Enqueued]:
    """Send one task per source and stream (see :func:`plan_streams` for their order).

    Raises:
        ConfigError: an unknown source or stream, or nothing to sync.
    """
    enqueued: list[Enqueued] = []
    for source, source_streams in sync_core.sync_sources(settings, site, streams):
        connector = sync_core.connector_of(source)
        source_id = source.id
        in_order, side_by_side = plan_streams(source, source_streams)
        if side_by_side:
            # Record the site now, so its parallel tasks never race to insert its row.
            store.ensure_site(engine, source_id, source.type, connector.site_url(source))
        items: list[Enqueued] = []
        for name in in_order:
            items.append(Enqueued(source_id, name, str(uuid.uuid4()), after=items[-1].task_id if items else None))
        last = items[-1].task_id
        items += [Enqueued(source_id, name, str(uuid.uuid4()), after=last) for name in side_by_side]
        signatures = [
            app.signature(
                SYNC_TASK,
                args=(item.site, item.stream),
                immutable=True,
                task_id=item.task_id,
                queue=QUEUE,
                priority=tail_priority(index - len(in_order)) if index >= len(in_order) else None,
            )
            for index, item in enumerate(items)
        ]
        steps = signatures[: len(in_order)]
        if len(signatures) > len(in_order):
            steps.append(group(signatures[len(in_order) :]))
        (chain(*steps) if len(steps) > 1 else steps[0]).apply_async()
        enqueued += items
    return enqueued


def enqueue_flushes(app: Celery, count: int = 1, limit: int | None = None) -> list[Enqueued]:
    """Send ``count`` flush tasks (several workers flush side by side without posting a row twice)."""
    enqueued = []
    for _ in range(count):
        item = Enqueued(None, None, str(uuid.uuid4()))
        app.signature(FLUSH_TASK, kwargs={"limit": limit}, task_id=item.task_id, queue=QUEUE).apply_async()
        enqueued.append(item)
    return enqueued


def check_wait(app: Celery) -> None:
    """Refuse ``--wait`` before anything is enqueued when the results could never be read.

    Raises:
        ConfigError: no result backend, or ``rpc://`` (it hands a result only to the process that
            sent the task, and workers send the tasks after a chain's first, so the wait would never end).
    """
    backend = app.conf.result_backend
    if backend is None:
        raise ConfigError(
            f"--wait needs a result backend: set {RESULT_BACKEND_ENV} (redis://... or db+postgresql://...; "
            "a Redis broker is used for it by default)"
        )
    if str(backend).partition(":")[0] == "rpc":
        raise ConfigError(
            f"--wait cannot read results from {RESULT_BACKEND_ENV}=rpc://, which returns them only to the "
            "process that sent each task (workers send the later tasks of a site): use redis://... or db+postgresql://..."
        )


def wait_for(app: Celery, enqueued: Sequence[Enqueued], poll: float = 0.5) -> None:
    """Wait until every task ran; fill in each :attr:`Enqueued.result`.

    A task that raised gets ``{"error": ...}``; a task whose first task failed that way never
    runs and gets ``{"error": "not run: ..."}``.

    Raises:
        ConfigError: see :func:`check_wait`.
    """
    check_wait(app)
    failed: dict[str, str] = {}
    for item in enqueued:  # heads come before the tasks that wait for them
        if item.after in failed:
            item.result = {"error": f"not run: its first task failed ({failed[item.after]})"}
            failed[item.task_id] = failed[item.after]
            continue
        outcome = AsyncResult(item.task_id, app=app)
        while not outcome.ready():
            time.sleep(poll)
        if outcome.successful():
            item.result = dict(outcome.result or {})
        else:
            failed[item.task_id] = f"{type(outcome.result).__name__}: {outcome.result}"
            item.result = {"error": failed[item.task_id]}


def run_worker(
    settings: Settings, *, concurrency: int, queues: Sequence[str], pool: str, loglevel: str = "INFO"
) -> None:
    """Run a Celery worker for this configuration until it is stopped (SIGTERM: warm shutdown).

    Raises:
        ConfigError: see :func:`distributed_settings`.
    """
    app = make_celery(settings)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--queues={','.join(queues)}",
            f"--loglevel={loglevel}",
            f"--hostname=lms-bridge-{os.getpid()}@{socket.gethostname()}",
            # No worker-to-worker chatter: nothing here uses it, and it slows start-up.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
