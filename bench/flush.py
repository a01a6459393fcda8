"""Benchmark 3 of issue 9: flushing the outbox into Ralph against a raw client, in one run.

    .venv/bin/python -m bench.flush [--statements 20000] [--batch-size 500]   # ~1.5 min

Builds an outbox by syncing the fixture-size fake Moodle (10,000 users, no latency), then, each into a
fresh Ralph 5.1.0 (fs backend; its ingest slows as its file grows, so every client starts empty):

- raw: the same statement bodies, in outbox order, posted with one ``requests.Session`` in batches of
  the same size (``[`` + bodies + ``]``, Basic auth, the xAPI version header), nothing else;
- lms-bridge: ``lms_bridge.outbox.flush.flush`` in this process on a fresh copy of the state database
  (reads the rows, posts, marks them sent, one transaction per batch);
- once more as the CLI, ``lms-bridge outbox flush`` (process start included), for information.

Rounds alternate raw, lms-bridge, lms-bridge, raw; rates are statements / second over the posting
time, and the ratio compares the medians.
"""

from __future__ import annotations

import argparse
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


def raw_post(lrs: RalphLRS, bodies: list[str], batch_size: int) -> float:
    """Post ``bodies`` as plainly as possible; returns seconds."""
    session = requests.Session()
    session.auth = (lrs.username, lrs.password)
    session.headers.update({"X-Experience-API-Version": XAPI_VERSION, "Content-Type": "application/json"})
    url = lrs.url + "statements"
    started = time.perf_counter()
    for start in range(0, len(bodies), batch_size):
        payload = ("[" + ",".join(bodies[start : start + batch_size]) + "]").encode("utf-8")
        response = session.post(url, data=payload, timeout=120)
        if response.status_code not in (200, 204):
            raise SystemExit(f"raw client: HTTP {response.status_code}: {response.text[:300]}")
    elapsed = time.perf_counter() - started
    session.close()
    return elapsed


def lms_flush(lrs: RalphLRS, db: Path, copy: Path, count: int, batch_size: int) -> float:
    """``outbox.flush`` on a fresh copy of the state database; returns seconds."""
    shutil.copyfile(db, copy)
    engine = store.make_engine(f"sqlite:///{copy}")
    with LRSClient(lrs.url, lrs.username, lrs.password, timeout=120) as client:
        started = time.perf_counter()
        report = flush(engine, client, batch_size=batch_size, limit=count)
        elapsed = time.perf_counter() - started
    engine.dispose()
    if report.sent != count or report.dead or report.failures:
        raise SystemExit(
            f"lms-bridge flush: sent {report.sent} of {count}, {report.dead} dead, {report.failures} failures"
        )
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=20_000, help="statements posted per round")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print_machine()
    report = Report("bench_flush")
    work = scratch("flush")
    with BenchMoodle(preset="fixture", seed=1, token=TOKEN) as fake:
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
    for index, kind in enumerate(("raw", "lms", "lms", "raw")):
        with RalphLRS(password=LRS_PASSWORD) as lrs:
            if kind == "raw":
                seconds = raw_post(lrs, bodies, args.batch_size)
            else:
                seconds = lms_flush(lrs, source.db, work / f"copy{index}.db", count, args.batch_size)
        rates[kind].append(count / seconds)
        report.note(f"round {index + 1} {kind}: {seconds:.2f} s, {count / seconds:,.0f} statements/s")

    with RalphLRS(password=LRS_PASSWORD) as lrs:
        cli = make_deployment(work / "cli", lrs_url=lrs.url, lrs_options=f"batch_size = {args.batch_size}")
        shutil.copyfile(source.db, cli.db)
        run = run_cli(cli, "outbox", "flush", "--limit", str(count)).check()
    raw_rate, lms_rate = statistics.median(rates["raw"]), statistics.median(rates["lms"])
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
    ratio = lms_rate / raw_rate
    report.figure("flush.ratio_to_raw", ratio, "x", goal=">= 0.8x", met=ratio >= 0.8)
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
