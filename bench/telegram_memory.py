"""Peak memory of importing a large generated Telegram export (issue 16: bounded memory whatever the input).

    .venv/bin/python -m bench.telegram_memory [--mb 200] [--read-only]

The export is the seeded single-chat ``result.json`` of :mod:`bench.imports` (indented by one space, as
Telegram Desktop writes it), its 40,000 messages repeated with new ids and later dates until the file is
``--mb`` MB (about 430 bytes a message: 200 MB is about 470,000 messages). It is imported whole by the real
CLI (``lms-bridge import``: read, statements, outbox in SQLite) on a fresh state database. The figure is
the peak RSS of that process, its own ``VmHWM`` (read from ``/proc/self/status`` as it exits; not
``ru_maxrss``, which Linux carries over fork and exec from the process that started it); the goal is a
peak under 300 MB for a 200 MB export. ``--read-only`` measures the reader alone
(``TelegramFormat.read`` and iterating its activities, no statements) in a child process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import PYTHON, ROOT, Report, make_deployment, outbox_count, print_machine, scratch
from bench.imports import telegram_export

# The reader alone: the first pass (checks, counts) and the second (activities), no statements.
_READER = """
import hashlib, sys, time
from pathlib import Path
from zoneinfo import ZoneInfo
from connectors.file_format import ReadRequest
from connectors.telegram import FORMAT
pseudonymize = lambda value: hashlib.sha256(value.encode()).hexdigest()[:32]
request = ReadRequest(tz=ZoneInfo("Asia/Jakarta"), pseudonymizer=lambda: pseudonymize, community="cop-bench",
                      max_messages=5_000_000)
started = time.process_time()
contents = FORMAT.read(Path(sys.argv[1]), request)
activities = sum(1 for _ in contents.items)
cpu = time.process_time() - started
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(peak_kb // 1024, contents.stats.records, activities, round(cpu, 1))
"""

# The CLI as ``python -m lms_bridge.cli``, writing its own VmHWM to a file when it exits.
_CLI = """
import atexit, os, runpy, sys
def peak():
    with open("/proc/self/status") as status, open(os.environ["BENCH_PEAK_FILE"], "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(peak)
sys.argv[0] = "lms-bridge"
runpy.run_module("lms_bridge.cli", run_name="__main__")
"""

_ROUND = 40_000
_DAY = 86_400


def write_export(path: Path, megabytes: int) -> int:
    """Write a single-chat export of about ``megabytes`` MB, one message at a time; return its messages."""
    block = telegram_export(_ROUND)
    header = {key: value for key, value in block.items() if key != "messages"}
    head = json.dumps(header, ensure_ascii=False, indent=1)
    written = 0
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        handle.write(head[: head.rindex("}")].rstrip() + ',\n "messages": [\n')
        round_ = 0
        while written < megabytes * 1_000_000:
            shift = round_ * 300 * _DAY  # each round about 300 days after the previous one
            for message in block["messages"]:
                moved = dict(message, id=message["id"] + round_ * _ROUND)
                moved["date_unixtime"] = str(int(message["date_unixtime"]) + shift)
                if "reply_to_message_id" in moved:
                    moved["reply_to_message_id"] += round_ * _ROUND
                text = ("" if count == 0 else ",\n") + json.dumps(moved, ensure_ascii=False, indent=1)
                text = text.replace("\n", "\n  ")
                handle.write(text)
                written += len(text.encode("utf-8"))
                count += 1
            round_ += 1
        handle.write("\n ]\n}\n")
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated export in MB (default 200)")
    parser.add_argument("--read-only", action="store_true", help="the reader alone (no statements, no database)")
    args = parser.parse_args()
    print_machine()
    report = Report("telegram_memory")
    work = scratch("telegram-memory")
    export = work / "result.json"
    messages = write_export(export, args.mb)
    size = f"{export.stat().st_size / 1e6:.1f} MB file, {messages:,} messages"
    if args.read_only:
        child = subprocess.run(
            [PYTHON, "-c", _READER, str(export)], capture_output=True, text=True, check=True, cwd=ROOT
        )
        peak, records, activities, cpu = child.stdout.split()
        report.figure(
            f"telegram_memory.{args.mb}mb.read_peak_rss",
            int(peak),
            "MB",
            goal="< 300 MB at 200 MB",
            met=int(peak) < 300,
            detail=f"{size}, {int(records):,} read, {int(activities):,} activities, {cpu} s CPU",
        )
        report.figure(f"telegram_memory.{args.mb}mb.read_rate", int(records) / float(cpu), "messages/CPU s")
        return report.finish()
    folder = work / "db"
    folder.mkdir()
    deployment = make_deployment(folder)
    peak_file = Path(tempfile.mkstemp(dir=work)[1])
    argv = [PYTHON, "-c", _CLI, "--config", str(deployment.config), "-q", "import", str(export)]
    argv += ["--community", "cop-bench", "--max-messages", "5000000"]
    started = time.perf_counter()
    run = subprocess.run(
        argv, env={**deployment.env, "BENCH_PEAK_FILE": str(peak_file)}, capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"lms-bridge import failed ({run.returncode}):\n{run.stderr[-3000:]}")
    peak = int(peak_file.read_text()) / 1024
    found = re.search(r"([0-9,]+) messages read", run.stdout)
    read = int(found.group(1).replace(",", "")) if found else 0
    queued = outbox_count(folder / "state.db")
    report.figure(
        f"telegram_memory.{args.mb}mb.peak_rss",
        round(peak),
        "MB",
        goal="< 300 MB at 200 MB",
        met=peak < 300,
        detail=f"{size}, {read:,} messages read, {queued:,} statements queued, {wall:.0f} s wall",
    )
    report.figure(f"telegram_memory.{args.mb}mb.import_rate", queued / wall, "statements/s")
    os.unlink(peak_file)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
