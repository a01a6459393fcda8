"""WhatsApp parse speed of two trees, by CPU time, interleaved in one run (issue 16: "do not lower the parser's speed").

    .venv/bin/python -m bench.whatsapp_speed --old /work/wt/old-parser [--rounds 3] [--repeats 5]

Both trees read the same 40,000-message export of :mod:`bench.imports`, each in a child process of its
own (``PYTHONPATH`` is the tree), rounds alternating old/new then new/old so a noisy machine weighs on
both alike. Two figures per tree, each the best of ``--repeats`` by ``time.process_time``:

- parse: ``read_whatsapp`` listed whole (the parse figure of ``bench.imports``);
- import read: ``WhatsAppFormat.read`` and iterating its items (what ``lms-bridge import`` reads).

Goal: the new tree at least as fast as the old one on both (ratio old/new CPU >= 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import PSEUDONYM_KEY, ROOT, Report, print_machine, scratch
from bench.imports import whatsapp_export

# Run in each tree: only API both the pre-streaming and the current reader have.
_CHILD = """
import json, sys, time
from pathlib import Path
from zoneinfo import ZoneInfo
from pydantic import SecretStr
from connectors.base import ReadStats
from connectors.file_format import ReadRequest
from connectors.whatsapp import FORMAT, read_whatsapp
from lms_bridge.identity.pseudonym import make_pseudonymizer

path, key, repeats = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
tz = ZoneInfo("Asia/Jakarta")
pseudonymize = make_pseudonymizer(SecretStr(key))
parse, read, records, activities = [], [], 0, 0
for _ in range(repeats):
    stats = ReadStats()
    started = time.process_time()
    listed = list(read_whatsapp(path, site="cop-bench", pseudonymize=pseudonymize, tz=tz, stats=stats))
    parse.append(time.process_time() - started)
    records, activities = stats.records, len(listed)
    del listed
    request = ReadRequest(tz=tz, pseudonymizer=lambda: pseudonymize, community="cop-bench")
    started = time.process_time()
    contents = FORMAT.read(path, request)
    items = sum(1 for _ in contents.items)
    read.append(time.process_time() - started)
    assert items == activities, (items, activities)
print(json.dumps({"parse": min(parse), "read": min(read), "records": records, "activities": activities}))
"""


def _child(tree: Path, path: Path, repeats: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), PSEUDONYM_KEY, str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
        env=env,
    )
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the tree to compare with (a git worktree)")
    parser.add_argument("--new", type=Path, default=ROOT, help="the tree measured (default: this one)")
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print_machine()
    report = Report("whatsapp_speed")
    path = scratch("whatsapp-speed") / "chat.txt"
    path.write_text(whatsapp_export(args.messages), encoding="utf-8")
    best: dict[str, dict[str, float]] = {"old": {}, "new": {}}
    counts: dict[str, tuple[float, float]] = {}
    for round_ in range(args.rounds):
        order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
        for side in order:
            figures = _child(args.old if side == "old" else args.new, path, args.repeats)
            counts[side] = (figures["records"], figures["activities"])
            for name in ("parse", "read"):
                best[side][name] = min(best[side].get(name, figures[name]), figures[name])
            print(f"round {round_ + 1} {side}: parse {figures['parse']:.3f} s, import read {figures['read']:.3f} s")
    if counts["old"] != counts["new"]:
        print(f"different counts: old {counts['old']}, new {counts['new']}")
        return 1
    records = counts["new"][0]
    for name, what in (("parse", "read_whatsapp listed"), ("read", "WhatsAppFormat.read + items")):
        old, new = best["old"][name], best["new"][name]
        report.figure(
            f"whatsapp_speed.{name}.ratio",
            old / new,
            "x (old CPU / new CPU)",
            goal=">= 1",
            met=new <= old,
            detail=f"{what}: new {new:.3f} s ({records / new:,.0f} messages per CPU s), old {old:.3f} s "
            f"({records / old:,.0f}); best of {args.rounds} x {args.repeats}",
        )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
