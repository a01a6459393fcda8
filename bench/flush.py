"""Benchmark 3 of issue 9: flushing the outbox into Ralph against a raw client, in one run.

    .venv/bin/python -m bench.flush [--statements 20000] [--batch-size 500] [--rounds 2]   # ~1.5 min
    .venv/bin/python -m bench.flush --profile 25   # also: cProfile of one more lms-bridge round, top 25

Builds an outbox by syncing the fixture-size fake Moodle (10,000 users, no latency), then, each into a
fresh Ralph 5.1.0 (fs backend; its ingest slows as its file grows, so every client starts empty):

- raw: the same statement bodies, in outbox order, posted with one ``requests.Session`` in batches of
  the same size (``[`` + bodies + ``]``, Basic auth, the xAPI version header), nothing else;
- lms-bridge: ``lms_bridge.outbox.flush.flush`` in this process on a fresh copy of the state database
  (reads the rows, posts, marks them sent, one transaction per batch);
- once more as the CLI, ``lms-bridge outbox flush`` (process start included), for information.

Rounds alternate raw, lms-bridge, lms-bridge, raw (``--rounds`` times); rates are statements / second
over the posting time, and the ratio compares the medians (goal >= 0.9x). Ralph runs in its own process,
so the CPU time of this process during a round (``time.process_time``) is the client's: it is given per
statement beside each rate, and its ratio is the fairer one on a loaded machine.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import requests

from bench.common import (
    LRS_PASSWORD,
    TOKEN,
    USERS_1K,
    BenchMoodle,
    Report,
    make_deployment,
    outbox_count,
    print_machine,
    run_cli,
    scratch,
)
from lms_bridge import store
from lms_bridge.demo.ralph import RalphLRS
from lms_bridge.outbox.flush import flush
from xapi.lrs_client import XAPI_VERSION, LRSClient


def _bodies(db: Path, limit: int) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [
            row[0]
            for row in conn.execute("select body from outbox where status = 'pending' order by id limit ?", (limit,))
        ]


def raw_post(lrs: RalphLRS, bodies: list[str], batch_size: int) -> tuple[float, float]:
    """Post ``bodies`` as plainly as possible; returns seconds and this process's CPU seconds."""
    session = requests.Session()
    session.auth = (lrs.username, lrs.password)
    session.headers.update({"X-Experience-API-Version": XAPI_VERSION, "Content-Type": "application/json"})
    url = lrs.url + "statements"
    cpu = time.process_time()
    started = time.perf_counter()
    for start in range(0, len(bodies), batch_size):
        payload = ("[" + ",".join(bodies[start : start + batch_size]) + "]").encode("utf-8")
        response = session.post(url, data=payload, timeout=120)
        if response.status_code not in (200, 204):
            raise SystemExit(f"raw client: HTTP {response.status_code}: {response.text[:300]}")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    session.close()
    return elapsed, cpu


def lms_flush(
    lrs: RalphLRS, db: Path, copy: Path, count: int, batch_size: int, profile: cProfile.Profile | None = None
) -> tuple[float, float]:
    """``outbox.flush`` on a fresh copy of the state database; returns seconds and this process's CPU seconds."""
    shutil.copyfile(db, copy)
    engine = store.make_engine(f"sqlite:///{copy}")
    with LRSClient(lrs.url, lrs.username, lrs.password, timeout=120) as client:
        cpu = time.process_time()
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        report = flush(engine, client, batch_size=batch_size, limit=count)
        if profile is not None:
            profile.disable()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    engine.dispose()
    if report.sent != count or report.dead or report.failures:
        raise SystemExit(
            f"lms-bridge flush: sent {report.sent} of {count}, {report.dead} dead, {report.failures} failures"
        )
    return elapsed, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=20_000, help="statements posted per round")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=1, help="times the raw, lms, lms, raw cycle runs")
    parser.add_argument(
        "--preset",
        default="fixture",
        help="the fake site synced to fill the outbox (fixture, small, 1k: the fixture / 10)",
    )
    parser.add_argument("--profile", type=int, default=0, help="profile one more lms-bridge round: top N functions")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print_machine()
    report = Report("bench_flush")
    work = scratch("flush")
    preset = USERS_1K if args.preset == "1k" else args.preset
    with BenchMoodle(preset=preset, seed=1, token=TOKEN) as fake:
        source = make_deployment(work / "source", moodle_url=fake.url)
        run_cli(source, "sync").check()
    pending = outbox_count(source.db, "pending")
    count = min(args.statements, pending)
    bodies = _bodies(source.db, count)
    size = sum(len(b) for b in bodies) / len(bodies)
    report.note(
        f"outbox: {pending} pending statements from a fixture-size sync; posting {count} "
        f"(mean {size:.0f} bytes), batches of {args.batch_size}"
    )

    rates: dict[str, list[float]] = {"raw": [], "lms": []}
    cpus: dict[str, list[float]] = {"raw": [], "lms": []}
    for index, kind in enumerate(("raw", "lms", "lms", "raw") * args.rounds):
        with RalphLRS(password=LRS_PASSWORD) as lrs:
            if kind == "raw":
                seconds, cpu = raw_post(lrs, bodies, args.batch_size)
            else:
                seconds, cpu = lms_flush(lrs, source.db, work / f"copy{index}.db", count, args.batch_size)
        rates[kind].append(count / seconds)
        cpus[kind].append(cpu)
        report.note(
            f"round {index + 1} {kind}: {seconds:.2f} s, {count / seconds:,.0f} statements/s, "
            f"client CPU {cpu:.2f} s ({cpu / count * 1e6:.0f} us a statement), load {os.getloadavg()[0]:.1f}"
        )
    if args.profile:
        profile = cProfile.Profile()
        with RalphLRS(password=LRS_PASSWORD) as lrs:
            lms_flush(lrs, source.db, work / "profiled.db", count, args.batch_size, profile)
        for order in ("tottime", "cumulative"):
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats(order).print_stats(args.profile)
            report.note(f"profile of one lms-bridge round by {order}:\n{text.getvalue()}")

    with RalphLRS(password=LRS_PASSWORD) as lrs:
        cli = make_deployment(work / "cli", lrs_url=lrs.url, lrs_options=f"batch_size = {args.batch_size}")
        shutil.copyfile(source.db, cli.db)
        run = run_cli(cli, "outbox", "flush", "--limit", str(count)).check()
    raw_rate, lms_rate = statistics.median(rates["raw"]), statistics.median(rates["lms"])
    raw_cpu, lms_cpu = statistics.median(cpus["raw"]), statistics.median(cpus["lms"])
    report.figure(
        "flush.raw_rate", raw_rate, "statements/s", detail="rounds " + ", ".join(f"{r:,.0f}" for r in rates["raw"])
    )
    report.figure(
        "flush.lms_bridge_rate",
        lms_rate,
        "statements/s",
        detail="rounds " + ", ".join(f"{r:,.0f}" for r in rates["lms"]),
    )
    report.figure(
        "flush.cli_rate",
        count / run.wall,
        "statements/s",
        detail=f"lms-bridge outbox flush: {run.wall:.2f} s wall incl. process start, peak RSS {run.max_rss_mb:.0f} MB",
    )
    report.figure(
        "flush.client_cpu_per_statement",
        lms_cpu / count * 1e6,
        "us",
        detail=f"raw client {raw_cpu / count * 1e6:.0f} us; CPU ratio raw / lms-bridge {raw_cpu / lms_cpu:.2f}x "
        f"(rounds raw {', '.join(f'{c:.2f}' for c in cpus['raw'])} s, "
        f"lms {', '.join(f'{c:.2f}' for c in cpus['lms'])} s)",
    )
    ratio = lms_rate / raw_rate
    report.figure(
        "flush.ratio_to_raw", ratio, "x", goal=">= 0.9x", met=ratio >= 0.9, detail=f"load {os.getloadavg()[0]:.1f}"
    )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
