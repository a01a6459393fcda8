"""Before/after of ``jp compute`` in one interleaved run, on copies of one loaded store (issue 23 item 1).

    .venv/bin/python -m bench.jp --sizes 10000:500000 --keep-dir /tmp/jpkeep   # loads the store once
    .venv/bin/python -m bench.jp_interleaved /tmp/jpkeep/loaded-10000-500000-23.db /work/wt/main-snap

Each tree gets its own copy of the store; the runs alternate (before first run, after first run,
before second run, after second run), so both see the same machine load as nearly as a shared
machine allows. CPU from ``wait4``, the load average beside each wall time.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Deployment, scratch  # noqa: E402
from bench.jp import _compute, _deployment  # noqa: E402


def main() -> int:
    store, before = Path(sys.argv[1]), Path(sys.argv[2])
    activities = int(sys.argv[3]) if len(sys.argv) > 3 else int(store.name.split("-")[2])
    trees = {"before": before, "after": ROOT}
    deployments: dict[str, Deployment] = {}
    for label in trees:
        folder = scratch(f"jp-interleaved-{label}")
        shutil.copy(store, folder / "state.db")
        deployments[label] = _deployment(folder, f"sqlite:///{folder / 'state.db'}")
    cpu: dict[tuple[str, str], float] = {}
    for run in ("first", "second"):
        for label, tree in trees.items():
            result = _compute(deployments[label], tree)
            cpu[(label, run)] = result.cpu
            print(
                f"{label} ({tree}) {run} run: {activities / result.cpu:,.0f} activities per CPU second, "
                f"{activities / result.wall:,.0f}/s on the wall; {result.detail()}",
                flush=True,
            )
    for run in ("first", "second"):
        print(f"{run} run: before / after CPU = {cpu[('before', run)] / cpu[('after', run)]:.2f}x")
    for label in trees:
        for leftover in deployments[label].dir.glob("state.db*"):
            leftover.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
