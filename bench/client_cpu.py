"""Issue 23 item 6: the client's CPU per call in a full sync of the fixture site, against the fake server's own CPU.

    .venv/bin/python -m bench.client_cpu                 # ~2-4 min: one full sync of the 10,000-user site
    .venv/bin/python -m bench.client_cpu --compare /work/main --rounds 2   # this tree and main, interleaved
    .venv/bin/python -m bench.client_cpu --profile F     # the same under cProfile (main thread only), stats in F

The fake Moodle runs in this process without a latency model (4 workers), so this process's CPU time during the
sync is the server's work (request parsing, data, encoding: a lower bound for a real PHP site); the CLI's CPU comes
from ``wait4`` of its process. The ratio of the two is stable across machines of different speed, unlike the
absolute figures. Figures print as ``FIGURE`` lines.

``--compare DIR`` runs the CLI of the tree in DIR too (its code: the working directory of ``python -m``), each
sync into a fresh state database against the same fake site, alternating this tree and DIR ``--rounds`` times;
the goal is checked on the median of this tree's ratios, and the figures give the other tree's beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    PYTHON,
    ROOT,
    TOKEN,
    BenchMoodle,
    Report,
    make_deployment,
    outbox_count,
    print_machine,
    run_cli,
    scratch,
)

#: Half of main's client/server ratio before issue 23's cuts (3.37-3.49x, BENCHMARKS.md).
GOAL_RATIO = 1.7


def _sync(fake: BenchMoodle, folder: Path, tree: Path) -> tuple[int, float, float, int, float]:
    """One full sync by ``tree``'s CLI: calls, client CPU s, server CPU s, statements, wall s."""
    deployment = make_deployment(folder, moodle_url=fake.url)
    deployment.env["PYTHONPATH"] = str(tree)
    fake.reset_stats()
    before = time.process_time()
    run = run_cli(deployment, "sync", cwd=tree).check()
    server = time.process_time() - before
    return fake.snapshot()["calls"], run.cpu, server, outbox_count(deployment.db), run.wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fixture")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="run the CLI under cProfile and write its stats here")
    parser.add_argument("--compare", type=Path, help="another tree whose CLI syncs too, alternating with this one")
    parser.add_argument("--rounds", type=int, default=1, help="syncs by each tree")
    args = parser.parse_args()
    print_machine()
    report = Report("bench_client_cpu")
    work = scratch("client-cpu")
    trees = [("this", ROOT)] + ([("compared", args.compare.resolve())] if args.compare else [])
    ratios: dict[str, list[float]] = {name: [] for name, _ in trees}
    with BenchMoodle(preset=args.preset, seed=args.seed, token=TOKEN, max_concurrent=4) as fake:
        if args.profile:
            deployment = make_deployment(work / "sync", moodle_url=fake.url)
            argv = [PYTHON, "-m", "cProfile", "-o", str(args.profile), "-m", "lms_bridge.cli"]
            argv += ["--config", str(deployment.config), "-q", "sync"]
            done = subprocess.run(argv, env=deployment.env, cwd=ROOT, capture_output=True, text=True, check=False)
            if done.returncode:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            report.note(f"cProfile stats in {args.profile}")
            return report.finish(None)
        for round_no in range(args.rounds):
            for name, tree in trees:
                calls, client, server, statements, wall = _sync(fake, work / f"sync-{name}-{round_no}", tree)
                ratios[name].append(client / server)
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                tag = f"client_cpu.{name}.{round_no}"
                report.figure(f"{tag}.calls", calls, "calls", detail=f"{statements} statements, wall {wall:.1f} s")
                report.figure(f"{tag}.client", client, "s", detail=f"{1000 * client / calls:.3f} ms a call")
                report.figure(f"{tag}.server", server, "s", detail=f"{1000 * server / calls:.3f} ms a call")
                report.figure(f"{tag}.ratio_client_over_server", client / server, "x", detail=f"load {load}")
    for name, _ in trees[1:]:
        report.figure(f"client_cpu.{name}.ratio_median", statistics.median(ratios[name]), "x")
    ratio = statistics.median(ratios["this"])
    report.figure(
        "client_cpu.ratio_client_over_server",
        ratio,
        "x",
        goal=f"<= {GOAL_RATIO}x (half of main's 3.37-3.49x)",
        met=ratio <= GOAL_RATIO,
    )
    return report.finish(None)


if __name__ == "__main__":
    sys.exit(main())
