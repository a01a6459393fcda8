"""Benchmark 6 (issue 10): distributed syncs with 1, 2 and 4 `lms-bridge worker` processes over 8 fake sites.

    .venv/bin/python -m bench.distributed            # ~3 min on 2 cores
    .venv/bin/python -m bench.distributed --workers 1,2,4 --sites 8 --latency-scale 1.0

Each round starts from an empty PostgreSQL database and an empty Redis, starts N real
``lms-bridge worker --pool solo`` processes (one task at a time each), waits until they are ready,
then times ``lms-bridge sync --all --distributed --wait`` (enqueue, every site-stream task, the
results) as a real subprocess. The 8 fake Moodle sites run in this process with the captured
site's latency model (``bench/common.py``: per-call cost, TCP_NODELAY, busy-time
accounting), each with 4 PHP-FPM-like workers, and ``max_in_flight = 4`` per site, shared by all
workers through PostgreSQL slots.

Figures: wall seconds and throughput (Moodle calls/s and statements/s) per worker count, the
speed-up over one worker, and the CPU the workers and the fake servers used (the machine has 2
cores: that is where scaling stops). PostgreSQL: ``$LMS_BRIDGE_BENCH_PG_URL`` (a server URL whose
user may create databases), else ``postgresql://postgres@127.0.0.1:5432/postgres``. Redis: a
throw-away ``redis-server`` on a free port. Informative figures only: no goal is set.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg

from bench.common import (
    FIXTURE_TIMINGS,
    PYTHON,
    ROOT,
    TOKEN,
    BenchMoodle,
    Report,
    print_machine,
    scratch,
)
from tests.fixtures.brokers import redis_server

PG_ENV = "LMS_BRIDGE_BENCH_PG_URL"
LRS_PASSWORD = "lrs-bench-distributed"  # noqa: S105 - never used: the benchmark does not flush


@contextmanager
def database(server_url: str) -> Iterator[str]:
    """A fresh database on ``server_url``; dropped afterwards."""
    name = f"lmsb_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class SiteProcess:
    """A :class:`BenchMoodle` in a process of its own (its GIL is not the benchmark's nor the other sites').

    The parent drives it over a pipe: ``reset``, ``snapshot`` and ``stop``; :attr:`pid` is read for its CPU.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._pipe: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self.url = ""
        self.pid = 0

    def __enter__(self) -> SiteProcess:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(target=_serve_site, args=(child, self._kwargs), daemon=True)
        self._process.start()
        self._pipe = parent
        self.url = parent.recv()
        self.pid = self._process.pid or 0
        return self

    def _ask(self, command: str) -> Any:
        assert self._pipe is not None
        self._pipe.send(command)
        return self._pipe.recv()

    def reset_stats(self) -> None:
        self._ask("reset")

    def snapshot(self) -> dict[str, Any]:
        return self._ask("snapshot")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.is_alive():
            self._ask("stop")
            self._process.join(10)


def _serve_site(pipe: Connection, kwargs: dict[str, Any]) -> None:
    """The child process of a :class:`SiteProcess`."""
    with BenchMoodle(**kwargs) as fake:
        pipe.send(fake.url)
        while True:
            command = pipe.recv()
            if command == "reset":
                fake.reset_stats()
                pipe.send(None)
            elif command == "snapshot":
                pipe.send(fake.snapshot())
            else:
                pipe.send(None)
                return


def timeline(logs: list[Path], started: float, wall: float) -> dict[str, Any]:
    """Where the workers' time went, from their JSON ``started``/``finished`` task lines.

    Returns the worker-seconds spent in tasks and idle, and per site the critical path: its first task
    (``enrolled_users``) then the longest of its side-by-side tasks, each from its measured span.
    """
    spans: list[dict[str, Any]] = []
    for index, path in enumerate(logs):
        opened: dict[str, dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if not isinstance(data, dict) or data.get("status") not in ("started", "finished") or "stream" not in data:
                continue
            stamp = datetime.strptime(data["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
            task = data["message"].split()[1].rstrip(":")
            if data["status"] == "started":
                opened[task] = {
                    "worker": index,
                    "site": data["site"],
                    "stream": data["stream"],
                    "start": stamp - started,
                }
            elif task in opened:
                span = opened.pop(task)
                span["end"] = stamp - started
                spans.append(span)
    busy = sum(span["end"] - span["start"] for span in spans)
    sites: dict[str, dict[str, Any]] = {}
    for span in spans:
        site = sites.setdefault(span["site"], {"first": 0.0, "rest": 0.0, "end": 0.0, "first_end": 0.0})
        length = span["end"] - span["start"]
        if span["stream"] == "enrolled_users":
            site["first"], site["first_end"] = length, span["end"]
        else:
            site["rest"] = max(site["rest"], length)
        site["end"] = max(site["end"], span["end"])
    critical = max((site["first"] + site["rest"] for site in sites.values()), default=0.0)
    per_stream: dict[str, list[float]] = {}
    for span in spans:
        per_stream.setdefault(span["stream"], []).append(span["end"] - span["start"])
    return {
        "tasks": len(spans),
        "task_seconds": busy,
        "idle_worker_seconds": wall * len(logs) - busy,
        "critical_path": critical,
        "span": max((span["end"] for span in spans), default=0.0) - min((span["start"] for span in spans), default=0.0),
        "first_start": min((span["start"] for span in spans), default=0.0),
        "last_first_task_end": max((site["first_end"] for site in sites.values()), default=0.0),
        "mean_task_by_stream": {name: sum(v) / len(v) for name, v in sorted(per_stream.items())},
        "spans": sorted(spans, key=lambda span: span["start"]),
    }


def write_config(folder: Path, state_url: str, sites: list[SiteProcess]) -> Path:
    """A config with one ``[[sources]]`` entry per fake site."""
    text = (
        f'[state]\nurl = "{state_url}"\n\n[lrs]\nurl = "http://127.0.0.1:9/xAPI/"\n'
        'username = "lms-bridge"\npassword_env = "LMS_BRIDGE_LRS_PASSWORD"\n\n[logging]\nlevel = "INFO"\n'
    )
    for index, fake in enumerate(sites):
        text += (
            f'\n[[sources]]\nid = "site{index}"\ntype = "moodle"\nurl = "{fake.url}"\n'
            'token_env = "MOODLE_TOKEN_BENCH"\nmax_in_flight = 4\n'
        )
    config = folder / "lms-bridge.toml"
    config.write_text(text)
    return config


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_workers(config: Path, env: dict[str, str], count: int, folder: Path) -> list[subprocess.Popen]:
    """Start ``count`` solo workers and wait until each logged that it is ready."""
    workers = []
    for index in range(count):
        log = (folder / f"worker-{index}.log").open("w")
        workers.append(
            subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "lms_bridge.cli",
                    "--config",
                    str(config),
                    "--log-format",
                    "json",
                    "worker",
                    "--pool",
                    "solo",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + 60
    for index in range(count):
        path = folder / f"worker-{index}.log"
        while " ready." not in path.read_text():
            if time.monotonic() > deadline or workers[index].poll() is not None:
                raise SystemExit(f"worker {index} did not start:\n{path.read_text()[-2000:]}")
            time.sleep(0.1)
    return workers


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def round_trip(count: int, sites: list[SiteProcess], pg_server: str, redis_url: str, folder: Path) -> dict:
    """One round: ``count`` workers sync every site from scratch; returns its measurements."""
    for fake in sites:
        fake.reset_stats()
    with database(pg_server) as state_url:
        config = write_config(folder, state_url, sites)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_BRIDGE_")}
        env.update(
            MOODLE_TOKEN_BENCH=TOKEN,
            LMS_BRIDGE_LRS_PASSWORD=LRS_PASSWORD,
            PYTHONPATH=str(ROOT),
            LMS_BRIDGE_BROKER_URL=f"{redis_url}/{count}",
            LMS_BRIDGE_BROKER_VISIBILITY_TIMEOUT="600",
        )
        subprocess.run(
            [PYTHON, "-m", "lms_bridge.cli", "--config", str(config), "db", "upgrade"],
            env=env,
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        workers = start_workers(config, env, count, folder)
        try:
            cpu_before = sum(cpu_seconds(w.pid) for w in workers)
            servers_before = sum(cpu_seconds(fake.pid) for fake in sites)
            own_before = resource.getrusage(resource.RUSAGE_SELF)
            load_before = os.getloadavg()[0]
            epoch = time.time()
            started = time.perf_counter()
            run = subprocess.run(
                [
                    PYTHON,
                    "-m",
                    "lms_bridge.cli",
                    "--config",
                    str(config),
                    "-q",
                    "sync",
                    "--all",
                    "--distributed",
                    "--wait",
                ],
                env=env,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            wall = time.perf_counter() - started
            own_after = resource.getrusage(resource.RUSAGE_SELF)
            cpu_workers = sum(cpu_seconds(w.pid) for w in workers) - cpu_before
            cpu_servers = sum(cpu_seconds(fake.pid) for fake in sites) - servers_before
            load_after = os.getloadavg()[0]
        finally:
            stop_workers(workers)
        if run.returncode != 0:
            raise SystemExit(f"sync --distributed failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
        with psycopg.connect(state_url) as conn:
            statements = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            runs = conn.execute("SELECT count(*) FROM runs WHERE status = 'ok'").fetchone()[0]
    calls = sum(fake.snapshot()["calls"] for fake in sites)
    busy = sum(fake.snapshot()["busy"] for fake in sites)
    cpu_bench = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    spans = timeline([folder / f"worker-{index}.log" for index in range(count)], epoch, wall)
    print(f"  timeline of {count} worker(s), seconds from the start of `sync --distributed --wait` (wall {wall:.1f}):")
    for span in spans["spans"]:
        print(
            f"    w{span['worker']} {span['site']}/{span['stream']:<20} {span['start']:6.2f} -> {span['end']:6.2f}"
            f" ({span['end'] - span['start']:5.2f})"
        )
    return {
        "workers": count,
        "wall": wall,
        "calls": calls,
        "statements": statements,
        "runs": runs,
        "busy": busy,
        "cpu_workers": cpu_workers,
        "cpu_servers": cpu_servers,
        "cpu_bench": cpu_bench,
        "load": (load_before + load_after) / 2,
        "task_seconds": spans["task_seconds"],
        "idle_worker_seconds": spans["idle_worker_seconds"],
        "critical_path": spans["critical_path"],
        "span": spans["span"],
        "first_start": spans["first_start"],
        "last_first_task_end": spans["last_first_task_end"],
        "mean_task_by_stream": spans["mean_task_by_stream"],
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts to measure (comma-separated)")
    parser.add_argument("--sites", type=int, default=8)
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiplies the captured timings")
    parser.add_argument("--preset", default="small", help="fake site size (small: 60 users, ~350 calls a site)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    counts = [int(part) for part in args.workers.split(",")]
    pg_server = os.environ.get(PG_ENV, "postgresql://postgres@127.0.0.1:5432/postgres")
    print_machine()
    report = Report("bench_distributed")
    folder = scratch("bench-distributed")
    results = []
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server())
        sites = [
            stack.enter_context(
                SiteProcess(
                    preset=args.preset,
                    seed=index + 1,
                    token=TOKEN,
                    timings=FIXTURE_TIMINGS,
                    scale=args.latency_scale,
                    max_concurrent=4,
                )
            )
            for index in range(args.sites)
        ]
        for count in counts:
            result = round_trip(count, sites, pg_server, redis_url, folder)
            results.append(result)
            report.note(json.dumps(_rounded(result)))
    base = results[0]
    for result in results:
        count = result["workers"]
        report.figure(
            f"distributed.wall_{count}_workers",
            result["wall"],
            "s",
            detail=f"{args.sites} sites, {result['runs']} site-stream tasks, {result['calls']} calls, "
            f"{result['statements']} statements",
        )
        report.figure(
            f"distributed.calls_per_s_{count}_workers",
            result["calls"] / result["wall"],
            "calls/s",
            detail=f"{result['statements'] / result['wall']:.0f} statements/s",
        )
        speedup = base["wall"] / result["wall"]
        linear = count / base["workers"]
        report.figure(
            f"distributed.speedup_{count}_workers",
            speedup,
            "x",
            goal=f">= {0.8 * linear:.2f}x (80% of linear)",
            met=speedup >= 0.8 * linear,
            detail=f"over {base['workers']} worker(s); CPU: workers {result['cpu_workers']:.1f} s, "
            f"fake servers {result['cpu_servers']:.1f} s, of {2 * result['wall']:.0f} core-s; "
            f"load {result['load']:.1f}; tasks {result['task_seconds']:.1f} worker-s, "
            f"idle {result['idle_worker_seconds']:.1f} worker-s, critical path {result['critical_path']:.1f} s",
        )
        report.figure(
            f"distributed.span_speedup_{count}_workers",
            base["span"] / result["span"],
            "x",
            detail=f"first task start to last task end: {result['span']:.1f} s (first task started "
            f"{result['first_start']:.1f} s after the CLI: its start-up and enqueueing)",
        )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
