"""Peak memory of reading a large generated WhatsApp export (issue 16: bounded memory whatever the input).

    .venv/bin/python -m bench.whatsapp_memory [--mb 200]   # the goal is for 200 MB; smaller sizes are quicker

The export is the seeded Android Indonesian export of :mod:`bench.imports`, repeated (with the year
changed, so messages stay distinct) until it is ``--mb`` MB. It is read by
``connectors.whatsapp.read_whatsapp`` in a child process, whose peak RSS (``ru_maxrss``) is the figure;
the goal is a peak under 300 MB for a 200 MB chat. A chat of more messages than the cap
(``--max-messages``, 1,000,000 by default) is refused, and the peak is then that of the refusal.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import Report, print_machine
from bench.imports import whatsapp_export

_CHILD = """
import hashlib, resource, sys
from pathlib import Path
from zoneinfo import ZoneInfo
from connectors.whatsapp import read_whatsapp
from lms_bridge.errors import InputError
pseudonymize = lambda value: hashlib.sha256(value.encode()).hexdigest()[:32]
try:
    count = sum(1 for _ in read_whatsapp(Path(sys.argv[1]), site="cop-bench", pseudonymize=pseudonymize,
                                         tz=ZoneInfo("Asia/Jakarta")))
    outcome = f"{count} messages"
except InputError as exc:
    outcome = f"refused: {exc}"
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, outcome)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the generated chat in MB (default 200)")
    args = parser.parse_args()
    print_machine()
    report = Report("whatsapp_memory")
    block = whatsapp_export(40_000)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chat.txt"
        with path.open("w", encoding="utf-8") as handle:
            written, round_ = 0, 0
            while written < args.mb * 1_000_000:
                part = block if round_ == 0 else block.replace("\ufeff", "").replace("/24 ", f"/{25 + round_ % 70} ")
                handle.write(part)
                written += len(part.encode("utf-8"))
                round_ += 1
        child = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True)
        peak, _, outcome = child.stdout.strip().partition(" ")
        report.figure(
            f"peak RSS reading a {args.mb} MB chat",
            int(peak),
            "MB",
            goal="< 300 MB at 200 MB",
            met=int(peak) < 300,
            detail=outcome[:160],
        )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
