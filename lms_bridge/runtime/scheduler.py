"""``lms-bridge serve``: syncs, flushes, JP and ledger on cron schedules, with /healthz and /metrics.

Jobs (each on its own cron expression, in the deployment's time zone):

- ``sync:<source>``: one per Moodle site and source LRS (default hourly), under the
  site's sync lock, which the run loop takes for ``sync`` and ``backfill`` too, so a cron
  ``sync`` and ``serve`` never pull one site at once;
- ``flush``: the outbox to the LRS (every 5 minutes), under lock ``outbox:flush``;
- ``jp``: JP computation (daily), under lock ``jp``;
- ``ledger``: ledger sync from the LRS (hourly), under lock ``ledger``;
- ``inbox``: the ``[[inboxes]]`` folders (every 10 minutes, only when some are configured),
  under lock ``inbox`` (the one ``inbox run`` takes);
- ``recheck:<site>``: one per Moodle site (default daily at 02:00): a backfill of its
  completion streams over the last ``recheck_days`` (7), under the site's sync lock. It
  picks up what Moodle completes long after the person's last visit (a teacher's grade, a
  BigBlueButton attendance written when the meeting's end callback arrives), which the
  hourly syncs stop asking about once an access has settled. Cursors do not move;
- ``alerts``: only with an ``[alerts]`` target: announces failing or silent sources, dead
  letters and old pending statements, and their recovery (:mod:`lms_bridge.runtime.alerts`).

A job whose lock is busy is skipped until its next time; a job still running at its
next time is not started twice (APScheduler ``max_instances=1``, ``coalesce``).

SIGTERM (or SIGINT) stops taking new jobs. A running sync, flush or ledger sync stops
after the batch it is committing (each batch is one transaction, so what was
committed stays and the rest is pulled by the next run); a JP computation is one
transaction and finishes. A job still running after ``stop_timeout`` seconds is
abandoned: its open transaction rolls back and nothing committed is lost. Exit 0.

``/healthz`` and ``/metrics`` listen on 127.0.0.1 only (metrics: :mod:`lms_bridge.runtime.metrics`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import Engine

from lms_bridge import store
from lms_bridge.config.lrs import lrs_client
from lms_bridge.config.serve import OFF, ServeSettings, cron_trigger
from lms_bridge.config.settings import Settings
from lms_bridge.config.statements import statement_settings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.ingest import inbox as inbox_core
from lms_bridge.ingest import runner as sync_core
from lms_bridge.jp import engine as jp_core
from lms_bridge.ledger import mirror as ledger_core
from lms_bridge.outbox import flush as outbox_core
from lms_bridge.runtime import alerts as alerts_core
from lms_bridge.runtime import metrics
from lms_bridge.store.locks import LockBusy, LockHandle, site_lock
from xapi.lrs_client import LRSClient

log = logging.getLogger(__name__)

#: What the rolling re-check re-reads: the completions Moodle may write long after a visit.
RECHECK_STREAMS = ("course_completions", "activity_completions")


def serve_settings(settings: Settings, *, port: int | None = None, overrides: Sequence[str] = ()) -> ServeSettings:
    """The ``[serve]`` settings (defaults until the config has the table), with command-line overrides.

    Args:
        settings: the configuration.
        port: ``--port``, replacing ``[serve] port``.
        overrides: ``JOB=CRON`` items (``sync``, ``flush``, ``jp``, ``ledger``, ``inbox``, ``recheck`` or
            ``sync:<source>``).

    Raises:
        ConfigError: a bad override or cron expression.
    """
    base: ServeSettings = getattr(settings, "serve", None) or ServeSettings()
    data = base.model_dump()
    if port is not None:
        data["port"] = port
    for item in overrides:
        job, sep, expression = item.partition("=")
        job = job.strip()
        if not sep:
            raise ConfigError(f"--schedule {item!r}: expected JOB=CRON, e.g. flush='*/10 * * * *'")
        if job.startswith("sync:"):
            data["sites"] = {**data["sites"], job.removeprefix("sync:"): expression}
        elif job in ("sync", "flush", "jp", "ledger", "inbox", "recheck"):
            data[job] = expression
        else:
            raise ConfigError(
                f"--schedule {item!r}: unknown job {job!r} (sync, sync:<source>, flush, jp, ledger, inbox, recheck)"
            )
    try:
        return ServeSettings.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"[serve] {where}: {error['msg'].removeprefix('Value error, ')}") from None


class Stopping(LmsBridgeError):
    """Raised between batches when ``serve`` is stopping: the rest is left for the next run."""


@dataclass
class JobState:
    """What ``serve`` knows of one job (for /healthz and /metrics)."""

    runs: dict[str, int] = field(default_factory=dict)
    running_since: float | None = None
    last_success: float | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: its id, cron expression, lock, and what it does.

    A sync job has no lock here (None): the run loop takes the site's sync lock itself
    (:func:`lms_bridge.ingest.runner.sync_source`), and its :class:`LockBusy` skips the job the same way.
    """

    id: str
    cron: str
    lock: str | None
    run: Callable[[LockHandle | None], str]


class Service:
    """The scheduler, its jobs and the HTTP endpoints (see the module docstring).

    Args:
        engine: the state store.
        settings: the configuration.
        config: the ``[serve]`` settings.
    """

    def __init__(self, engine: Engine, settings: Settings, config: ServeSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.config = config
        self.zone = ZoneInfo(settings.deployment.timezone)
        self.stop = threading.Event()
        self.jobs: dict[str, JobState] = {}
        self._mutex = threading.Lock()
        self._scheduler: Any = None
        self._server: ThreadingHTTPServer | None = None
        self.alerter = alerts_core.Alerter(engine, settings)

    # -- jobs --

    def specs(self) -> list[JobSpec]:
        """The jobs to schedule (those switched ``off`` left out)."""
        specs: list[JobSpec] = []
        try:
            sources = sync_core.sync_sources(self.settings)
        except ConfigError as exc:
            log.warning("serve: no sync jobs (%s)", exc)
            sources = []
        for source, _streams in sources:
            specs.append(
                JobSpec(
                    f"sync:{source.id}",
                    self.config.sites.get(source.id, self.config.sync),
                    None,
                    self._sync_job(source),
                )
            )
        for source, _streams in sources:
            # Moodle sites only (their completion streams), and not a site whose sync is switched off.
            site_off = self.config.sites.get(source.id, "hourly").strip().lower() in OFF
            if source.type == "moodle" and not site_off:
                job = self._recheck_job(source)
                # No lock here (None), as for a sync job: the run loop takes the site's sync lock itself.
                specs.append(JobSpec(f"recheck:{source.id}", self.config.recheck, None, job))
        specs.append(JobSpec("flush", self.config.flush, "outbox:flush", self._flush))
        specs.append(JobSpec("jp", self.config.jp, "jp", self._jp))
        specs.append(JobSpec("ledger", self.config.ledger, "ledger", self._ledger))
        if self.settings.inboxes:
            specs.append(JobSpec("inbox", self.config.inbox, inbox_core.INBOX_LOCK, self._inbox))
        if self.settings.alerts.targets:
            # No lock: each serve process announces to its own operators what the shared store says.
            specs.append(JobSpec("alerts", self.settings.alerts.check, None, self._alerts))
        unknown = set(self.config.sites) - {s.id for s, _ in sources}
        if unknown:
            raise ConfigError(f"[serve] sites names sources that are not synced: {', '.join(sorted(unknown))}")
        return [spec for spec in specs if spec.cron.strip().lower() not in OFF]

    def _checkpoint(self, held: LockHandle | None) -> Callable[..., None]:
        """A progress callback that stops a job between batches (shutdown or a lost lock)."""

        def check(*_args: Any) -> None:
            if self.stop.is_set():
                raise Stopping("lms-bridge serve is stopping: the rest is left for the next run")
            if held is not None and held.lost:
                raise LmsBridgeError(f"lock {held.name} was lost: stopping so two runs do not do the same work")

        return check

    def _sync_job(self, source: sync_core.SyncSource) -> Callable[[LockHandle | None], str]:
        """The hourly sync: every stream from its cursor."""
        return self._pull_job(source, recheck=False)

    def _recheck_job(self, source: sync_core.SyncSource) -> Callable[[LockHandle | None], str]:
        """The rolling re-check: the site's completion streams from ``recheck_days`` ago, cursors left alone."""
        return self._pull_job(source, recheck=True)

    def _pull_job(self, source: sync_core.SyncSource, *, recheck: bool) -> Callable[[LockHandle | None], str]:
        def run(held: LockHandle | None) -> str:
            # The run loop holds the site lock (and stops when it is lost); the checkpoint stops it on shutdown.
            since = datetime.now(UTC) - timedelta(days=self.config.recheck_days) if recheck else None
            report = sync_core.sync_source(
                self.engine,
                self.settings,
                source,
                streams=RECHECK_STREAMS if recheck else None,
                since=since,
                on_progress=self._checkpoint(held),
                lock_ttl=self.config.lock_ttl,
            )
            if report.error:
                if self.stop.is_set():
                    raise Stopping(report.error)
                raise LmsBridgeError(report.error)
            new = sum(r.new for r in report.streams.values())
            if recheck:
                return f"{new} new statements from the last {self.config.recheck_days} days"
            return f"{new} new statements"

        return run

    def _sleep(self, seconds: float) -> None:
        """Wait between flush retries, cut short by a stop request."""
        self.stop.wait(seconds)

    def _client(self) -> LRSClient:
        return lrs_client(self.settings)

    def _recorded(self, command: str, work: Callable[[], tuple[dict[str, Any], str | None]]) -> dict[str, Any]:
        """Run ``work`` as a run of ``command`` in the runs table (ok, failed or stopped)."""
        run_id = store.start_run(self.engine, command)
        try:
            counts, error = work()
        except Stopping as exc:
            store.finish_run(self.engine, run_id, status="stopped", counts={}, error=str(exc))
            raise
        except LmsBridgeError as exc:
            store.finish_run(self.engine, run_id, status="failed", counts={}, error=str(exc))
            raise
        store.finish_run(self.engine, run_id, status="failed" if error else "ok", counts=counts, error=error)
        if error:
            raise LmsBridgeError(error)
        return counts

    def _flush(self, held: LockHandle | None) -> str:
        lrs = self.settings.lrs

        def work() -> tuple[dict[str, Any], str | None]:
            with self._client() as client:
                report = outbox_core.flush(
                    self.engine,
                    client,
                    batch_size=lrs.batch_size,
                    max_attempts=lrs.max_attempts,
                    backoff_base=lrs.backoff_base,
                    backoff_cap=lrs.backoff_cap,
                    on_progress=self._checkpoint(held),
                    sleep=self._sleep,
                )
            counts = {"sent": report.sent, "dead": report.dead, "posts": report.posts, "failures": report.failures}
            return counts, (f"the LRS kept failing ({report.last_error})" if report.gave_up else None)

        counts = self._recorded("flush", work)
        return f"{counts['sent']} sent, {counts['dead']} dead letters"

    def _jp(self, held: LockHandle | None) -> str:
        def work() -> tuple[dict[str, Any], str | None]:
            # One transaction: not interruptible, and quick next to a sync.
            report = jp_core.run_jp(self.engine, self.settings, statement_settings(self.settings))
            return {
                "posted": report.posted,
                "revised": report.revised,
                "voided": report.voided,
                "unchanged": report.unchanged,
            }, None

        counts = self._recorded("jp", work)
        return f"{counts['posted']} new JP records, {counts['voided']} voided"

    def _ledger(self, held: LockHandle | None) -> str:
        def work() -> tuple[dict[str, Any], str | None]:
            with self._client() as client:
                report = ledger_core.sync_ledger(self.engine, self.settings, client, on_progress=self._checkpoint(held))
            return {"read": report.read, "records": report.records, "voids": report.voids}, None

        counts = self._recorded("ledger", work)
        return f"{counts['read']} statements read, {counts['records']} JP records"

    def _inbox(self, held: LockHandle | None) -> str:
        check = self._checkpoint(held)

        def work() -> tuple[dict[str, Any], str | None]:
            report = inbox_core.run_inboxes(self.engine, self.settings, checkpoint=check)
            counts = {
                "imported": sum(1 for f in report.files if f.result == "imported"),
                "failed": sum(1 for f in report.files if f.result == "failed"),
                "errors": len(report.errors),
                "new": report.new,
                "purged": report.purged,
                "waiting": report.waiting,
            }
            errors = "; ".join(f"{f.inbox}/{f.file}: {f.detail}" for f in report.errors)
            return counts, errors or None

        counts = self._recorded("inbox", work)
        return (
            f"{counts['imported']} files imported ({counts['new']} new statements), {counts['failed']} moved to failed/"
        )

    def _alerts(self, held: LockHandle | None) -> str:
        sent = self.alerter.check()
        return f"{len(sent)} alert(s) sent, {len(self.alerter.active)} condition(s) active"

    def _count(self, job: str, outcome: str) -> None:
        with self._mutex:
            state = self.jobs.setdefault(job, JobState())
            state.runs[outcome] = state.runs.get(outcome, 0) + 1

    def run_job(self, spec: JobSpec) -> None:
        """Run one job under its lock; log and count the outcome (this is the top of the runner)."""
        if self.stop.is_set():
            return
        with self._mutex:
            state = self.jobs.setdefault(spec.id, JobState())
            state.running_since = time.monotonic()
        started = time.monotonic()
        try:
            with (
                site_lock(self.engine, spec.lock, wait=False, ttl=self.config.lock_ttl)
                if spec.lock is not None
                else nullcontext()
            ) as held:
                summary = spec.run(held)
        except LockBusy as exc:
            log.info("%s: skipped, %s", spec.id, exc, extra={"status": "skipped"})
            self._count(spec.id, "skipped")
        except Stopping:
            log.info("%s: stopped for shutdown after its last committed batch", spec.id, extra={"status": "stopped"})
            self._count(spec.id, "stopped")
        except LmsBridgeError as exc:
            log.error("%s: failed: %s", spec.id, exc, extra={"status": "failed"})
            with self._mutex:
                self.jobs[spec.id].last_error = str(exc)
            self._count(spec.id, "failed")
        except Exception as exc:  # noqa: BLE001 - one job's bug must not stop the scheduler
            log.exception("%s: failed unexpectedly: %s", spec.id, exc.__class__.__name__, extra={"status": "failed"})
            with self._mutex:
                self.jobs[spec.id].last_error = f"unexpected {exc.__class__.__name__}"
            self._count(spec.id, "failed")
        else:
            log.info("%s: ok in %.1f s: %s", spec.id, time.monotonic() - started, summary, extra={"status": "ok"})
            with self._mutex:
                self.jobs[spec.id].last_success = time.time()
                self.jobs[spec.id].last_error = None
            self._count(spec.id, "ok")
        finally:
            with self._mutex:
                self.jobs[spec.id].running_since = None

    def running(self) -> list[str]:
        """The jobs running now."""
        with self._mutex:
            return sorted(job for job, state in self.jobs.items() if state.running_since is not None)

    # -- HTTP --

    def _next_runs(self) -> dict[str, datetime | None]:
        scheduler = self._scheduler
        if scheduler is None or self.stop.is_set():
            return {}
        return {job.id: job.next_run_time for job in scheduler.get_jobs()}

    def health(self) -> tuple[int, dict[str, Any]]:
        """The /healthz status code and body."""
        with self._mutex:
            jobs = {
                job: {
                    "running": state.running_since is not None,
                    "runs": dict(state.runs),
                    "last_error": state.last_error,
                }
                for job, state in self.jobs.items()
            }
        for job, when in self._next_runs().items():
            jobs.setdefault(job, {})["next_run"] = when.isoformat() if when else None
        status = "stopping" if self.stop.is_set() else "ok"
        return (503 if self.stop.is_set() else 200), {"status": status, "jobs": jobs}

    def job_metrics(self) -> list[metrics.Metric]:
        """The scheduler's own metrics (jobs running, outcomes, last success, next run)."""
        running = metrics.Metric("lms_bridge_job_running", "gauge", "1 while the job runs.")
        runs = metrics.Metric(
            "lms_bridge_job_runs_total",
            "counter",
            "Job runs since serve started, by outcome (ok, failed, skipped, stopped).",
        )
        success = metrics.Metric(
            "lms_bridge_job_last_success_timestamp_seconds",
            "gauge",
            "Unix time the job last finished ok in this serve process.",
        )
        upcoming = metrics.Metric("lms_bridge_job_next_run_timestamp_seconds", "gauge", "Unix time the job runs next.")
        with self._mutex:
            for job, state in sorted(self.jobs.items()):
                running.add(1 if state.running_since is not None else 0, job=job)
                for outcome, count in sorted(state.runs.items()):
                    runs.add(count, job=job, outcome=outcome)
                if state.last_success is not None:
                    success.add(state.last_success, job=job)
        for job, when in sorted(self._next_runs().items()):
            if when is not None:
                upcoming.add(when.timestamp(), job=job)
        return [running, runs, success, upcoming]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                log.debug("http: " + format, *args)

            def _send(self, status: int, body: str, content_type: str) -> None:
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - the base class's name
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    status, body = service.health()
                    self._send(status, json.dumps(body, sort_keys=True) + "\n", "application/json")
                elif path == "/metrics":
                    try:
                        text = metrics.render_store(service.engine, service.job_metrics())
                    except Exception as exc:  # noqa: BLE001 - a scrape must answer, not kill the thread
                        log.error("metrics: the state store cannot be read (%s)", exc.__class__.__name__)
                        text = metrics.render(
                            [
                                metrics.Metric(
                                    "lms_bridge_up", "gauge", "1 while lms-bridge can read its state store."
                                ).add(0)
                            ]
                        )
                    self._send(200, text, metrics.CONTENT_TYPE)
                else:
                    self._send(404, "not found: try /healthz or /metrics\n", "text/plain; charset=utf-8")

        return Handler

    def start_http(self) -> str:
        """Serve /healthz and /metrics on 127.0.0.1 in a thread; return the base URL."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self.config.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="serve-http", daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- life cycle --

    def run(self, *, install_signals: bool = True, on_listen: Callable[[str], None] | None = None) -> int:
        """Schedule the jobs and block until SIGTERM/SIGINT (or :attr:`stop`); return the exit code (0).

        Args:
            install_signals: handle SIGTERM and SIGINT (main thread only).
            on_listen: called with the HTTP base URL once it listens.
        """
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        specs = self.specs()
        # APScheduler logs every job start at INFO; our own lines say more.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        scheduler = BackgroundScheduler(
            timezone=self.zone,
            executors={"default": ThreadPoolExecutor(max_workers=max(4, len(specs)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        for spec in specs:
            scheduler.add_job(
                self.run_job, trigger=cron_trigger(spec.cron, self.zone), args=[spec], id=spec.id, name=spec.id
            )
            self.jobs.setdefault(spec.id, JobState())
        if install_signals:
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, lambda signum, _frame: self.request_stop(signum))
        url = self.start_http()
        self._scheduler = scheduler
        scheduler.start()
        log.info(
            "serve: %d jobs (%s); /healthz and /metrics on %s",
            len(specs),
            ", ".join(f"{s.id} '{s.cron}'" for s in specs),
            url,
        )
        if on_listen is not None:
            on_listen(url)
        while not self.stop.wait(1.0):
            pass
        return self.shutdown()

    def request_stop(self, signum: int | None = None) -> None:
        """Stop taking jobs (what SIGTERM does); running ones stop after their current batch."""
        if not self.stop.is_set():
            name = signal.Signals(signum).name if signum else "stop"
            log.info("serve: %s received: no new jobs; running jobs stop after their current batch", name)
        self.stop.set()

    def shutdown(self) -> int:
        """Wait up to ``stop_timeout`` for running jobs, then stop; 0 (abandoning lost no data)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        deadline = time.monotonic() + self.config.stop_timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        left = self.running()
        if left:
            log.warning(
                "serve: abandoning %s after %.0f s; their open batch rolls back, committed batches stay",
                ", ".join(left),
                self.config.stop_timeout,
            )
            logging.shutdown()
            sys.stdout.flush()
            # Worker threads are not daemons and a stuck HTTP call would keep the process up.
            os._exit(0)
        log.info("serve: stopped")
        return 0


def serve(
    engine: Engine, settings: Settings, config: ServeSettings, on_listen: Callable[[str], None] | None = None
) -> int:
    """Run ``lms-bridge serve`` until SIGTERM; return the exit code."""
    return Service(engine, settings, config).run(on_listen=on_listen)
