"""Issue 23 item 4: start-up and imports as ratios to a floor and a peer, all measured in one run.

    .venv/bin/python -m bench.ratios [--messages 40000] [--rounds 5] [--flush] [--before /work/main]

Absolute times on these shared 2-core machines differ by more than 2x from one to the next, so each
figure is a ratio of two things timed in this run, rounds interleaved (median of ``--rounds``):

- parsing: ``connectors.whatsapp.read_whatsapp`` (with the keyed pseudonymiser, as an import runs it)
  against ``whatstk`` (PyPI, ``pip install -e .[bench]``; ``WhatsAppChat.from_source`` with the export's
  header format) on the same 40,000-message export (``bench.imports.whatsapp_export``), and against the
  floor: reading the file and splitting it into lines (and, second floor, into messages by the header
  regular expression);
- the whole import: ``lms-bridge import FILE --community cop-bench`` as a subprocess on a store holding the
  roster, against the floor plus the bare inserts: the same outbox and evidence rows, copied out of that
  import's store, inserted with ``sqlite3.executemany`` into an empty copy of the schema (same pragmas, one
  transaction), plus a bare ``python -c pass`` start;
- ``lms-bridge --help`` (goal < 0.3 s) against ``python -c "import click"`` (and ``--before DIR``'s);
- ``--flush``: ``bench.flush`` (lms-bridge's flush against a raw ``requests`` client into Ralph) in a
  subprocess, its ratio reported here (goal >= 0.9x).

Wall and CPU are both given: on a loaded machine the CPU time is the fairer one.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import PSEUDONYM_KEY, Report, make_deployment, print_machine, run_cli, scratch  # noqa: E402
from bench.imports import roster_csv, whatsapp_export  # noqa: E402

JAKARTA = ZoneInfo("Asia/Jakarta")
HEADER = re.compile(r"^\d\d/\d\d/\d\d \d\d\.\d\d - ", re.MULTILINE)
HELP_GOAL_S = 0.3


def _timed(function, rounds: int):  # type: ignore[no-untyped-def]
    """(median wall, median CPU, last result) of ``rounds`` calls."""
    walls, cpus, result = [], [], None
    for _ in range(rounds):
        started, cpu = time.perf_counter(), time.process_time()
        result = function()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def parse_figures(path: Path, rounds: int, report: Report) -> tuple[float, float]:
    from pydantic import SecretStr
    from whatstk import WhatsAppChat

    from connectors.base import ReadStats
    from connectors.whatsapp import read_whatsapp
    from lms_bridge.identity.pseudonym import make_pseudonymizer

    pseudonymize = make_pseudonymizer(SecretStr(PSEUDONYM_KEY))

    def ours() -> int:
        stats = ReadStats()
        activities = list(read_whatsapp(path, site="cop-bench", pseudonymize=pseudonymize, tz=JAKARTA, stats=stats))
        return len(activities)

    def peer() -> int:
        chat = WhatsAppChat.from_source(filepath=str(path), hformat="%d/%m/%y %H.%M - %name:", encoding="utf-8-sig")
        return len(chat.df)

    def lines() -> int:
        return len(path.read_text(encoding="utf-8-sig").splitlines())

    def messages() -> int:
        return len(HEADER.split(path.read_text(encoding="utf-8-sig")))

    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ("ours", "peer", "lines", "messages")}
    counts: dict[str, int] = {}
    for _ in range(rounds):  # interleaved, so a burst of load hits every contender alike
        for name, function in (("ours", ours), ("peer", peer), ("lines", lines), ("messages", messages)):
            started, cpu = time.perf_counter(), time.process_time()
            counts[name] = function()
            results[name].append((time.perf_counter() - started, time.process_time() - cpu))
    wall = {name: statistics.median(w for w, _ in values) for name, values in results.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in results.items()}
    report.figure(
        "parse.ours",
        round(counts["ours"] / cpu["ours"]),
        "messages/s of CPU",
        detail=f"read_whatsapp: {counts['ours']:,} activities, median CPU {cpu['ours']:.2f} s, "
        f"wall {wall['ours']:.2f} s",
    )
    report.figure(
        "parse.ratio_to_whatstk",
        round(cpu["peer"] / cpu["ours"], 2),
        "x",
        detail=f"CPU, >1 means lms-bridge is faster: whatstk {cpu['peer']:.2f} s CPU ({wall['peer']:.2f} s wall) for "
        f"{counts['peer']:,} messages into a pandas DataFrame; wall ratio {wall['peer'] / wall['ours']:.2f}x",
    )
    report.figure(
        "parse.ratio_to_read_split_lines",
        round(cpu["ours"] / cpu["lines"], 1),
        "x",
        detail=f"CPU; floor: read + splitlines {cpu['lines'] * 1000:.0f} ms CPU ({counts['lines']:,} lines); "
        f"wall ratio {wall['ours'] / wall['lines']:.1f}x",
    )
    report.figure(
        "parse.ratio_to_read_split_messages",
        round(cpu["ours"] / cpu["messages"], 1),
        "x",
        detail=f"CPU; floor: read + split at each message header {cpu['messages'] * 1000:.0f} ms CPU "
        f"({counts['messages']:,} parts); wall ratio {wall['ours'] / wall['messages']:.1f}x",
    )
    return wall["lines"], cpu["lines"]


def _bare_inserts(source: Path, empty: Path, rounds: int) -> tuple[float, float, int]:
    """Median (wall, CPU) to insert the import's outbox and evidence rows into an empty store (raw sqlite3)."""
    with sqlite3.connect(source) as conn:
        tables = {
            table: (
                [row[1] for row in conn.execute(f"PRAGMA table_info({table})")],  # noqa: S608
                conn.execute(f"SELECT * FROM {table}").fetchall(),  # noqa: S608
            )
            for table in ("outbox", "evidence")
        }
    walls, cpus = [], []
    for index in range(rounds):
        target = empty.with_name(f"bare-{index}.db")
        shutil.copy(empty, target)
        conn = sqlite3.connect(target, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        started, cpu = time.perf_counter(), time.process_time()
        conn.execute("BEGIN")
        for table, (columns, rows) in tables.items():
            marks = ",".join("?" * len(columns))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608
        conn.execute("COMMIT")
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
        conn.close()
    return statistics.median(walls), statistics.median(cpus), sum(len(rows) for _, rows in tables.values())


def _child_seconds(argv: list[str], code: Path = ROOT) -> tuple[float, float]:
    """(wall, CPU) of one subprocess."""
    import os
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    environment = {**os.environ, "PYTHONPATH": str(code)}
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=code, env=environment)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - started, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_figures(work: Path, path: Path, split_floor: tuple[float, float], rounds: int, report: Report) -> None:
    roster = work / "roster.csv"
    roster.write_text(roster_csv(), encoding="utf-8")
    empty = work / "empty" / "state.db"
    base = make_deployment(empty.parent)
    run_cli(base, "people", "import", str(roster)).check()
    runs = []
    for index in range(rounds):
        deployment = make_deployment(work / f"import-{index}")
        shutil.copy(empty, deployment.db)
        runs.append(run_cli(deployment, "import", str(path), "--community", "cop-bench").check())
    wall = statistics.median(run.wall for run in runs)
    cpu = statistics.median(run.cpu for run in runs)
    insert_wall, insert_cpu, rows = _bare_inserts(deployment.db, empty, rounds)
    starts = [_child_seconds([sys.executable, "-c", "pass"]) for _ in range(rounds)]
    start_wall, start_cpu = statistics.median(w for w, _ in starts), statistics.median(c for _, c in starts)
    floor_wall = split_floor[0] + insert_wall + start_wall
    floor_cpu = split_floor[1] + insert_cpu + start_cpu
    report.figure(
        "import.whole",
        round(cpu, 2),
        "s CPU",
        detail=f"lms-bridge import of the export as a subprocess, median of {rounds}: wall {wall:.2f} s, "
        f"peak RSS {max(run.max_rss_mb for run in runs):.0f} MB",
    )
    report.figure(
        "import.ratio_to_floor",
        round(cpu / floor_cpu, 1),
        "x",
        detail=f"CPU; floor {floor_cpu:.2f} s CPU = read+split {split_floor[1]:.2f} + bare inserts of {rows:,} rows "
        f"{insert_cpu:.2f} + python start {start_cpu:.2f}; wall ratio {wall / floor_wall:.1f}x "
        f"(floor {floor_wall:.2f} s)",
    )


def help_figures(rounds: int, report: Report, before: str = "") -> None:
    run = _child_seconds

    ours, floor, old = [], [], []
    for _ in range(rounds):
        ours.append(run([sys.executable, "-m", "lms_bridge.cli", "--help"]))
        floor.append(run([sys.executable, "-c", "import click"]))
        if before:
            old.append(run([sys.executable, "-m", "lms_bridge.cli", "--help"], Path(before)))
    wall, cpu = statistics.median(w for w, _ in ours), statistics.median(c for _, c in ours)
    floor_wall, floor_cpu = statistics.median(w for w, _ in floor), statistics.median(c for _, c in floor)
    report.figure(
        "help.wall",
        round(wall, 3),
        "s",
        goal=f"< {HELP_GOAL_S} s",
        met=wall < HELP_GOAL_S,
        detail=f"lms-bridge --help, median of {rounds} (wall on a loaded machine: see the ratios)",
    )
    report.figure(
        "help.cpu",
        round(cpu, 3),
        "s",
        goal=f"< {HELP_GOAL_S} s",
        met=cpu < HELP_GOAL_S,
        detail="user + system CPU of the process: what the wall time is on an idle machine, less disk waits",
    )
    report.figure(
        "help.ratio_to_import_click",
        round(wall / floor_wall, 2),
        "x",
        detail=f"python -c 'import click': {floor_wall:.3f} s wall, {floor_cpu:.3f} s CPU; CPU ratio "
        f"{cpu / floor_cpu:.2f}x",
    )
    if old:
        old_wall, old_cpu = statistics.median(w for w, _ in old), statistics.median(c for _, c in old)
        report.figure(
            "help.ratio_to_before",
            round(wall / old_wall, 2),
            "x",
            detail=f"lms-bridge --help of {before}: {old_wall:.3f} s wall, {old_cpu:.3f} s CPU; CPU ratio "
            f"{cpu / old_cpu:.2f}x",
        )


def flush_figures(report: Report) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.flush"], capture_output=True, text=True, cwd=ROOT, check=False, timeout=3600
    )
    for line in done.stdout.splitlines():
        if line.startswith("FIGURE flush."):
            print(line.replace("FIGURE ", "FIGURE (bench.flush) "), flush=True)
    ratio = re.search(r"FIGURE flush\.ratio_to_raw: ([\d.]+)", done.stdout)
    if ratio is None:
        report.figure("flush.ratio_to_raw", "not measured", goal=">= 0.9x", met=False, detail=done.stderr[-300:])
        return
    value = float(ratio.group(1))
    report.figure("flush.ratio_to_raw", value, "x", goal=">= 0.9x", met=value >= 0.9, detail="from bench.flush")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--flush", action="store_true", help="also run bench.flush (Ralph; minutes)")
    parser.add_argument("--before", default="", help="a checkout whose lms-bridge --help to time as well")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print_machine()
    report = Report("bench_ratios")
    work = scratch("ratios")
    path = work / "chat.txt"
    path.write_text(whatsapp_export(args.messages), encoding="utf-8")
    help_figures(args.rounds, report, args.before)
    split_floor = parse_figures(path, args.rounds, report)
    import_figures(work, path, split_floor, args.rounds, report)
    if args.flush:
        flush_figures(report)
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
