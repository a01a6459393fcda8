"""Issue 23, item 8: what a real broker does with a SIGTERMed worker and with a task longer than 3 minutes.

    .venv/bin/python -m bench.brokers                  # both scenarios (~6 min: the long task alone is > 3 min)
    .venv/bin/python -m bench.brokers --only sigterm   # ~1 min
    .venv/bin/python -m bench.brokers --only long --long-seconds 200

Brokers: the machine's RabbitMQ (127.0.0.1:5672, guest) in a throw-away vhost, as the tests use it
(``tests.fixtures.brokers.rabbitmq_vhost``), and the machine's Redis (127.0.0.1:6379) in a database
number of its own (``--redis-db``, refused unless empty; emptied again at the end). Results go to that
Redis database for both brokers. State: a throw-away PostgreSQL database. The fake Moodle sites
run in this process (real HTTP servers); their per-user calls are slowed so tasks last seconds.

Scenarios (each records counts from the ``runs`` table and from the workers' JSON task lines):

- **sigterm** (Redis and RabbitMQ): 3 sites x 4 streams = 12 tasks. One ``lms-bridge worker`` with
  the defaults a new user gets (prefork, ``--concurrency 2``) takes them; once it runs two tasks at
  once it gets SIGTERM (Celery's warm shutdown). Goals: it starts no task after the signal, the tasks it
  ran end ``ok``; a second worker then runs the rest; every site-stream ends with exactly one ``ok`` run
  and no run is left ``running``.
- **long** (RabbitMQ): one task longer than 3 minutes (``--long-seconds``; one site,
  ``activity_completions`` only, ``max_in_flight = 1``, each call slowed), once on a default worker
  (prefork) and once on ``--pool solo`` (the event loop is busy in the task), side by side in two
  vhosts. Goal: it runs once (one ``started`` line, one run row), and nothing is delivered again in
  the 30 s after it ended.

Exit status 1 when a goal is missed. No timing goal: these are correctness figures on real brokers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.common import PYTHON, ROOT, TOKEN, Report, print_machine, scratch
from bench.distributed import PG_ENV, database
from lms_bridge.demo.moodle import FakeMoodle
from tests.fixtures.brokers import rabbitmq_vhost

REDIS_SERVER = "redis://127.0.0.1:6379"
STREAMS = ("enrolled_users", "course_completions", "activity_completions", "forum_posts")
PER_USER = (
    "core_completion_get_course_completion_status",
    "core_completion_get_activities_completion_status",
    "mod_forum_get_discussion_posts",
)


@contextmanager
def redis_database(number: int) -> Iterator[str]:
    """``redis://127.0.0.1:6379/<number>``, refused unless empty; emptied afterwards."""
    url = f"{REDIS_SERVER}/{number}"
    client = redis.Redis.from_url(url)
    if client.dbsize():
        raise SystemExit(f"Redis database {number} on {REDIS_SERVER} is not empty: pick another with --redis-db")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


class Worker:
    """An ``lms-bridge worker`` subprocess (own process group) logging JSON lines to a file."""

    def __init__(self, config: Path, env: dict[str, str], log_path: Path, *extra: str) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "lms_bridge.cli", "--config", str(config), "--log-format", "json", "worker", *extra],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while " ready." not in log_path.read_text():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"worker did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.1)

    def events(self) -> list[dict[str, Any]]:
        """Task lines: ``started``/``finished`` around a run, ``already done`` for a task delivered again."""
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("status") in ("started", "finished", "already done"):
                data["task"] = data["message"].split()[1].rstrip(":")
                data["epoch"] = datetime.strptime(data["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
                found.append(data)
        return found

    def running(self) -> set[str]:
        events = self.events()
        return {e["task"] for e in events if e["status"] == "started"} - {
            e["task"] for e in events if e["status"] == "finished"
        }

    def stop(self, timeout: float = 60) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


@dataclass
class Setup:
    """A config, its environment and state database for one scenario."""

    folder: Path
    config: Path
    env: dict[str, str]
    state_url: str
    sites: list[FakeMoodle] = field(default_factory=list)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "lms_bridge.cli", "--config", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )

    def runs(self) -> list[tuple[str, str, str]]:
        """``(site, stream, status)`` of every sync run recorded."""
        with psycopg.connect(self.state_url) as conn:
            rows = conn.execute("SELECT site_id, counts, status FROM runs WHERE command = 'sync'").fetchall()
        found = []
        for site, counts, status in rows:
            streams = set(json.loads(counts or "{}")) & set(STREAMS)
            found += [(site, stream, status) for stream in sorted(streams)] or [(site, "?", status)]
        return found


def make_setup(
    folder: Path, state_url: str, broker: str, backend: str, sites: list[FakeMoodle], max_in_flight: int
) -> Setup:
    text = (
        f'[state]\nurl = "{state_url}"\n\n[lrs]\nurl = "http://127.0.0.1:9/xAPI/"\n'
        'username = "lms-bridge"\npassword_env = "LMS_BRIDGE_LRS_PASSWORD"\n\n[logging]\nlevel = "INFO"\n'
    )
    for index, fake in enumerate(sites):
        text += (
            f'\n[[sources]]\nid = "site{index}"\ntype = "moodle"\nurl = "{fake.url}"\n'
            f'token_env = "MOODLE_TOKEN_BENCH"\nmax_in_flight = {max_in_flight}\n'
        )
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "lms-bridge.toml"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_BRIDGE_")}
    env.update(
        MOODLE_TOKEN_BENCH=TOKEN,
        LMS_BRIDGE_LRS_PASSWORD="unused-bench-brokers",  # noqa: S106 - nothing is flushed
        PYTHONPATH=str(ROOT),
        LMS_BRIDGE_BROKER_URL=broker,
        LMS_BRIDGE_RESULT_BACKEND=backend,
    )
    setup = Setup(folder, config, env, state_url, sites)
    setup.cli("db", "upgrade")
    return setup


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def sigterm_scenario(setup: Setup) -> dict[str, Any]:
    """One default worker gets SIGTERM while it runs two tasks; a second worker runs the rest."""
    first = Worker(setup.config, setup.env, setup.folder / "worker-a.log")
    second: Worker | None = None
    try:
        setup.cli("sync", "--all", "--distributed")
        wait_until(lambda: len(first.running()) >= 2, 120, "the worker to run two tasks at once")
        running = first.running()
        signalled = time.time()
        first.process.send_signal(signal.SIGTERM)
        first.process.wait(timeout=300)
        exited = time.time()
        first_events = first.events()
        started_after = [e for e in first_events if e["status"] == "started" and e["epoch"] > signalled]
        second = Worker(setup.config, setup.env, setup.folder / "worker-b.log", "--pool", "solo")
        expected = {(f"site{i}", stream) for i in range(len(setup.sites)) for stream in STREAMS}
        wait_until(
            lambda: {(site, stream) for site, stream, status in setup.runs() if status == "ok"} >= expected,
            300,
            "every site-stream to be synced",
        )
        time.sleep(3)  # a task delivered twice would show up now
        second_events = second.events()
    finally:
        first.stop()
        if second is not None:
            second.stop()
    runs = setup.runs()
    ok = Counter((site, stream) for site, stream, status in runs if status == "ok")
    events = first_events + second_events
    return {
        "running_at_sigterm": len(running),
        "started_after_sigterm": len(started_after),
        "exit_seconds": exited - signalled,
        "finished_by_first": sum(1 for e in first_events if e["status"] == "finished"),
        "finished_by_second": sum(1 for e in second_events if e["status"] == "finished"),
        "already_done": sum(1 for e in events if e["status"] == "already done"),
        "started_lines": sum(1 for e in events if e["status"] == "started"),
        "tasks": len(expected),
        "runs": len(runs),
        "runs_by_status": dict(Counter(status for _, _, status in runs)),
        "site_streams_ok_once": sum(1 for key in expected if ok[key] == 1),
    }


def long_scenario(setup: Setup, pool_args: tuple[str, ...], settle: float) -> dict[str, Any]:
    """One task longer than 3 minutes on one worker; count how often it ran."""
    worker = Worker(setup.config, setup.env, setup.folder / "worker.log", *pool_args)
    try:
        setup.cli("sync", "--site", "site0", "--stream", "activity_completions", "--distributed")
        wait_until(lambda: any(status == "ok" for _, _, status in setup.runs()), 1800, "the long task to end")
        time.sleep(settle)  # a second delivery would start now (RabbitMQ requeues at once on a lost channel)
        events = worker.events()
        log_text = worker.log_path.read_text()
    finally:
        worker.stop()
    starts = [e for e in events if e["status"] == "started"]
    ends = [e for e in events if e["status"] == "finished"]
    runs = setup.runs()
    return {
        "pool": " ".join(pool_args) or "prefork --concurrency 2",
        "task_seconds": (ends[0]["epoch"] - starts[0]["epoch"]) if starts and ends else None,
        "calls": sum(entry["calls"] for entry in setup.sites[0].stats.values()),
        "started_lines": len(starts),
        "already_done": sum(1 for e in events if e["status"] == "already done"),
        "runs": len(runs),
        "runs_by_status": dict(Counter(status for _, _, status in runs)),
        "connection_lost_lines": log_text.count("Connection to broker lost") + log_text.count("ConnectionReset"),
    }


def slowed_site(seed: int, seconds: float, functions: tuple[str, ...]) -> FakeMoodle:
    fake = FakeMoodle(preset="small", seed=seed, token=TOKEN)
    for function in functions:
        fake.set_latency(function, seconds)
    return fake


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["sigterm", "long"], help="run one scenario")
    parser.add_argument("--redis-db", type=int, default=11, help="the Redis database number used (must be empty)")
    parser.add_argument("--long-seconds", type=float, default=200, help="how long the long task should last")
    parser.add_argument("--settle", type=float, default=30, help="seconds watched after the long task for a rerun")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pg_server = os.environ.get(PG_ENV, "postgresql://postgres@127.0.0.1:5432/postgres")
    print_machine()
    report = Report("bench_brokers")
    folder = scratch("bench-brokers")
    with ExitStack() as stack:
        backend = stack.enter_context(redis_database(args.redis_db))
        if args.only in (None, "sigterm"):
            for name in ("redis", "rabbitmq"):
                broker = backend if name == "redis" else stack.enter_context(rabbitmq_vhost())
                with ExitStack() as round_stack:
                    sites = [round_stack.enter_context(slowed_site(seed, 0.05, PER_USER)) for seed in range(1, 4)]
                    state = round_stack.enter_context(database(pg_server))
                    setup = make_setup(folder / f"sigterm-{name}", state, broker, backend, sites, 2)
                    load = os.getloadavg()[0]
                    result = sigterm_scenario(setup)
                report.note(f"sigterm on {name}: {json.dumps(result)} (load {load:.1f})")
                report.figure(
                    f"brokers.{name}.sigterm.started_after_signal",
                    result["started_after_sigterm"],
                    "tasks",
                    goal="0",
                    met=result["started_after_sigterm"] == 0,
                    detail=f"{result['running_at_sigterm']} running at SIGTERM, "
                    f"exited in {result['exit_seconds']:.1f} s",
                )
                once = result["site_streams_ok_once"] == result["tasks"] and "running" not in result["runs_by_status"]
                report.figure(
                    f"brokers.{name}.sigterm.site_streams_ok_once",
                    result["site_streams_ok_once"],
                    f"of {result['tasks']}",
                    goal=f"{result['tasks']}, none left running",
                    met=once,
                    detail=f"runs {result['runs']} {result['runs_by_status']}, already done {result['already_done']}",
                )
        if args.only in (None, "long"):
            # Calls of the one task: ~150 activity-completion calls for the small preset, one at a time.
            per_call = args.long_seconds / 150

            def one(pool_args: tuple[str, ...]) -> dict[str, Any]:
                with ExitStack() as round_stack:
                    vhost = round_stack.enter_context(rabbitmq_vhost())
                    fake = round_stack.enter_context(
                        slowed_site(1, per_call, ("core_completion_get_activities_completion_status",))
                    )
                    state = round_stack.enter_context(database(pg_server))
                    label = "solo" if pool_args else "prefork"
                    setup = make_setup(folder / f"long-{label}", state, vhost, backend, [fake], 1)
                    return long_scenario(setup, pool_args, args.settle)

            load = os.getloadavg()[0]
            with ThreadPoolExecutor(2) as pool:
                results = list(pool.map(one, [(), ("--pool", "solo")]))
            for result in results:
                report.note(f"long task on rabbitmq: {json.dumps(result)} (load at start {load:.1f})")
                label = "solo" if "solo" in result["pool"] else "prefork"
                report.figure(
                    f"brokers.rabbitmq.long_{label}.runs",
                    result["started_lines"],
                    "runs",
                    goal="1 (and > 180 s long)",
                    met=result["started_lines"] == 1 and result["runs"] == 1 and (result["task_seconds"] or 0) > 180,
                    detail=f"task {result['task_seconds'] or 0:.0f} s, {result['calls']} calls, run rows "
                    f"{result['runs_by_status']}, already done {result['already_done']}",
                )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    threading.current_thread().name = "bench-brokers"
    sys.exit(main())
