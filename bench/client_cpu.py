"""Issue 23 item 6: the client's CPU per call in a full sync of the fixture site, against the fake server's own CPU.

    .venv/bin/python -m bench.client_cpu                 # ~2-4 min: one full sync of the 10,000-user site
    .venv/bin/python -m bench.client_cpu --profile F     # the same under cProfile (main thread only), stats in F

The fake Moodle runs in this process without a latency model (4 workers), so this process's CPU time during the
sync is the server's work (request parsing, data, encoding: a lower bound for a real PHP site); the CLI's CPU comes
from ``wait4`` of its process. The ratio of the two is stable across machines of different speed, unlike the
absolute figures. Figures print as ``FIGURE`` lines.
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="fixture")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="run the CLI under cProfile and write its stats here")
    args = parser.parse_args()
    print_machine()
    report = Report("bench_client_cpu")
    work = scratch("client-cpu")
    with BenchMoodle(preset=args.preset, seed=args.seed, token=TOKEN, max_concurrent=4) as fake:
        deployment = make_deployment(work / "sync", moodle_url=fake.url)
        fake.reset_stats()
        before = time.process_time()
        if args.profile:
            argv = [PYTHON, "-m", "cProfile", "-o", str(args.profile), "-m", "lms_bridge.cli"]
            argv += ["--config", str(deployment.config), "-q", "sync"]
            done = subprocess.run(argv, env=deployment.env, cwd=ROOT, capture_output=True, text=True, check=False)
            if done.returncode:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            report.note(f"cProfile stats in {args.profile}")
            return report.finish(None)
        run = run_cli(deployment, "sync").check()
        server = time.process_time() - before
        calls = fake.snapshot()["calls"]
        statements = outbox_count(deployment.db)
    report.figure("client_cpu.calls", calls, "calls", detail=f"{statements} statements, wall {run.wall:.1f} s")
    report.figure("client_cpu.client", run.cpu, "s", detail=f"{1000 * run.cpu / calls:.3f} ms a call")
    report.figure("client_cpu.server", server, "s", detail=f"{1000 * server / calls:.3f} ms a call (fake Moodle)")
    report.figure("client_cpu.ratio_client_over_server", run.cpu / server, "x")
    return report.finish(None)


if __name__ == "__main__":
    sys.exit(main())
