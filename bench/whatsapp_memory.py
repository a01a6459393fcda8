"""Peak memory of importing a large generated WhatsApp export (issue 16: bounded memory whatever the input).

    .venv/bin/python -m bench.whatsapp_memory [--mb 200] [--zip-only | --txt-only] [--read-only]

The export is the seeded Android Indonesian export of :mod:`bench.imports`, repeated (with the year
changed, so messages stay distinct) until it is ``--mb`` MB (about 115 bytes a message: 200 MB is
about 1.7 million messages, so the message cap is raised with ``--max-messages``). It is imported
whole by the real CLI (``lms-bridge import``: read, statements, outbox in SQLite), once as the
``.txt`` and once inside a ``.zip`` (deflated: a 200 MB chat is a zip of a few MB), each in a fresh
state database. The figures are the peak RSS of that process (``wait4``) and the messages read per
second of its wall time (and of its CPU time); the goal is a peak under 300 MB for a 200 MB chat.
``--read-only`` measures the reader alone (``WhatsAppFormat.read`` and iterating its activities, both
passes, no statements) in a child process: its peak RSS and messages per CPU second.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from bench.common import PYTHON, ROOT, Report, make_deployment, outbox_count, print_machine, run_cli, scratch
from bench.imports import whatsapp_export

# --read-only: the reader alone (both passes, activities built and dropped), in a child process.
_READER = """
import hashlib, sys, time
from pathlib import Path
from zoneinfo import ZoneInfo
from connectors.file_format import ReadRequest
from connectors.whatsapp import FORMAT
pseudonymize = lambda value: hashlib.sha256(value.encode()).hexdigest()[:32]
request = ReadRequest(tz=ZoneInfo("Asia/Jakarta"), pseudonymizer=lambda: pseudonymize, community="cop-bench",
                      max_messages=5_000_000)
started = time.process_time()
contents = FORMAT.read(Path(sys.argv[1]), request)
activities = sum(1 for _ in contents.items)
cpu = time.process_time() - started
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec from the process that started this one.
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(peak_kb // 1024, contents.stats.records, activities, round(cpu, 1))
"""


def write_chat(path: Path, megabytes: int) -> int:
    """Write a chat of about ``megabytes`` MB; return its member messages (system lines excluded)."""
    block = whatsapp_export(40_000)
    with path.open("w", encoding="utf-8") as handle:
        written, round_ = 0, 0
        while written < megabytes * 1_000_000:
            # The export's dates are in 2026 ("05/01/26 08.07 - "): each round moves them a year on.
            part = block if round_ == 0 else block.replace("\ufeff", "").replace("/26 ", f"/{26 + round_ % 70} ")
            handle.write(part)
            written += len(part.encode("utf-8"))
            round_ += 1
    return round_


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated chat in MB (default 200)")
    parser.add_argument("--txt-only", action="store_true", help="import the .txt only")
    parser.add_argument("--zip-only", action="store_true", help="import the .zip only")
    parser.add_argument(
        "--read-only", action="store_true", help="measure the reader alone (no statements, no database)"
    )
    args = parser.parse_args()
    print_machine()
    report = Report("whatsapp_memory")
    work = scratch("whatsapp-memory")
    chat = work / "chat.txt"
    write_chat(chat, args.mb)
    files = []
    if not args.zip_only:
        files.append(chat)
    if not args.txt_only:
        archive = work / "export.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            zipped.write(chat, "WhatsApp Chat with CoP Benchmark.txt")
        files.append(archive)
    for path in files:
        kind = "zip" if path.suffix == ".zip" else "txt"
        size = f"{path.stat().st_size / 1e6:.1f} MB file"
        if args.read_only:
            child = subprocess.run(
                [PYTHON, "-c", _READER, str(path)], capture_output=True, text=True, check=True, cwd=ROOT
            )
            peak, records, activities, cpu = child.stdout.split()
            report.figure(
                f"whatsapp_memory.{kind}.{args.mb}mb.read_peak_rss",
                int(peak),
                "MB",
                goal="< 300 MB at 200 MB",
                met=int(peak) < 300,
                detail=f"{size}, {int(records):,} messages read, {int(activities):,} activities, {cpu} s CPU",
            )
            report.figure(f"whatsapp_memory.{kind}.{args.mb}mb.read_rate", int(records) / float(cpu), "messages/CPU s")
            continue
        folder = work / path.suffix.lstrip(".")
        folder.mkdir()
        deployment = make_deployment(folder)
        run = run_cli(deployment, "import", str(path), "--community", "cop-bench", "--max-messages", "5000000").check()
        found = re.search(r"([0-9]+) messages read", run.stdout)
        read = int(found.group(1)) if found else 0
        queued = outbox_count(folder / "state.db")
        report.figure(
            f"whatsapp_memory.{kind}.{args.mb}mb.peak_rss",
            round(run.max_rss_mb),
            "MB",
            goal="< 300 MB at 200 MB",
            met=run.max_rss_mb < 300,
            detail=f"{size}, {read:,} messages read, {queued:,} statements queued, {run.wall:.0f} s",
        )
        report.figure(f"whatsapp_memory.{kind}.{args.mb}mb.import_rate", read / run.wall, "messages/s")
        report.figure(f"whatsapp_memory.{kind}.{args.mb}mb.import_cpu_rate", read / run.cpu, "messages/CPU s")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
