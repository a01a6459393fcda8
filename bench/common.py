"""What the benchmarks share: a measured fake Moodle, config files, CLI runs with peak RSS, figures and goals.

Each benchmark prints one ``FIGURE`` line per figure (name, value, goal, met or MISSED) and exits 1
when a goal is missed, so ``python -m bench.x && echo ok`` works as a check.

The fake Moodle here is :class:`lms_bridge.demo.moodle.FakeMoodle` with three additions, none of which
changes a response byte:

- ``TCP_NODELAY`` on accepted sockets. The stock fake writes headers and body in two ``send`` calls
  without it, so Nagle's algorithm waits for the client's delayed ACK: every call costs ~40 ms of
  idle wire time (measured 44 ms per call against 1 ms with it). nginx sets ``tcp_nodelay`` by
  default, so a real Moodle does not have that stall.
- A latency model from the captured site (``tests/data/README.md``, "Timings"):
  each call costs the server ``base + per_item * items`` seconds, the real work of the fake
  included (it sleeps only the remainder), inside one of ``max_concurrent`` workers (PHP-FPM).
- Accounting of that busy time per function, which gives the server-bound floor:
  ``sum(busy) / workers`` is the shortest wall time any client can reach.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lms_bridge.demo.moodle import FakeMoodle, Preset  # noqa: E402
from lms_bridge.demo.moodle import server as fake_server  # noqa: E402

PYTHON = sys.executable
TOKEN = "tok-bench-5c81e0"  # noqa: S105 - a benchmark token
LRS_PASSWORD = "lrs-bench-secret"  # noqa: S105
PSEUDONYM_KEY = "bench-pseudonym-key-0123456789abcdef"

#: The captured site's timings (README "Timings", medians), seconds: (base per call, per item returned).
#: - enrolled users: the lean 1,000-per-page loop took 5.70 s for 10 pages of the 10,000-user course,
#:   the lean single call 5.19 s for 9,999 users: about 0.05 s per call + 0.52 ms per user;
#: - completion status: 0.049 s (course) and 0.054 s (activities) per user per course;
#: - discussions: 0.198 s for a page of 100; discussion posts: 0.08 s (fake's CAPTURED_LATENCY);
#: - courses 0.136 s; the small one-call functions 0.03 s.
FIXTURE_TIMINGS: dict[str, tuple[float, float]] = {
    "core_webservice_get_site_info": (0.03, 0.0),
    "core_course_get_courses": (0.136, 0.0),
    "mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses": (0.03, 0.0),
    "core_enrol_get_enrolled_users": (0.05, 0.00052),
    "core_completion_get_course_completion_status": (0.049, 0.0),
    "core_completion_get_activities_completion_status": (0.054, 0.0),
    "mod_forum_get_forums_by_courses": (0.03, 0.0),
    "mod_forum_get_forum_discussions": (0.198, 0.0),
    "mod_forum_get_discussion_posts": (0.08, 0.0),
}

#: The fixture site with every per-user dimension divided by 10 (same catalogue: 75 courses, same
#: modules and forums): users, enrolments, CoP members, discussions and posts.
USERS_1K = Preset(
    users=1000,
    pt_courses=64,
    pkp_courses=8,
    pbj_sections=100,
    latsar_sections=500,
    pt_size=(2, 6),
    pkp_size=10,
    pbj_size=100,
    cop_size=80,
    cop_discussions=(14, 7, 4, 4, 2),
    cop_replies=7.0,
    other_discussions=1,
    other_replies=7.8,
    hidden_courses=3,
    shared_nips=2,
    unenrolled_posters=5,
)


class _NoDelayHandler(fake_server._Handler):
    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class BenchMoodle(FakeMoodle):
    """The fake Moodle with TCP_NODELAY, a latency model and busy-time accounting (see the module doc).

    Args:
        timings: per function ``(base, per_item)`` seconds; functions not listed cost only their real work.
        scale: multiplies every modelled cost (1.0 = the captured site).
        **kwargs: passed to :class:`FakeMoodle` (preset, seed, token, max_concurrent...).
    """

    def __init__(
        self, *args: Any, timings: dict[str, tuple[float, float]] | None = None, scale: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.timings = dict(timings or {})
        self.scale = scale
        self.busy: dict[str, float] = {}
        self.items: dict[str, int] = {}

    def start(self) -> BenchMoodle:
        self._httpd = fake_server._Server(("127.0.0.1", self._port), _NoDelayHandler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="bench-moodle", daemon=True
        )
        self._thread.start()
        return self

    def set_model(self, timings: dict[str, tuple[float, float]] | None, scale: float = 1.0) -> None:
        """Change the latency model (None: real work only)."""
        self.timings, self.scale = dict(timings or {}), scale

    def reset_stats(self) -> None:
        super().reset_stats()
        with self._lock:
            self.busy.clear()
            self.items.clear()

    def _answer(
        self, token: str | None, function: str, fmt: str, pairs: list[tuple[str, str]]
    ) -> tuple[bytes, bool, dict[str, Any]]:
        started = time.perf_counter()
        body, error, params = super()._answer(token, function, fmt, pairs)
        base, per_item = self.timings.get(function, (0.0, 0.0))
        items = 0
        if per_item and not error and fmt == "json":
            decoded = json.loads(body)
            items = len(decoded) if isinstance(decoded, list) else 0
        cost = (base + per_item * items) * self.scale
        spent = time.perf_counter() - started
        if cost > spent:
            time.sleep(cost - spent)
        with self._lock:
            self.busy[function] = self.busy.get(function, 0.0) + max(cost, time.perf_counter() - started)
            self.items[function] = self.items.get(function, 0) + items
        return body, error, params

    def snapshot(self) -> dict[str, Any]:
        """Calls, bytes and busy seconds per function, and their totals."""
        with self._lock:
            stats = {name: dict(entry) for name, entry in self.stats.items()}
            busy = dict(self.busy)
        for name, entry in stats.items():
            entry["busy"] = round(busy.get(name, 0.0), 3)
        return {
            "functions": stats,
            "calls": sum(e["calls"] for e in stats.values()),
            "bytes": sum(e["bytes"] for e in stats.values()),
            "busy": sum(busy.values()),
        }


# --------------------------------------------------------------------------------------- deployments


@dataclass
class Deployment:
    """A config file, its folder and the environment lms-bridge runs with."""

    dir: Path
    config: Path
    env: dict[str, str]

    @property
    def db(self) -> Path:
        return self.dir / "state.db"


def make_deployment(
    folder: Path,
    *,
    moodle_url: str | None = None,
    lrs_url: str = "http://127.0.0.1:9/xAPI/",
    source_options: str = "",
    lrs_options: str = "",
) -> Deployment:
    """Write ``lms-bridge.toml`` (SQLite state in ``folder``) and the environment to run it with."""
    folder.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(f"""\
        [state]
        url = "sqlite:///{folder / "state.db"}"

        [lrs]
        url = "{lrs_url}"
        username = "lms-bridge"
        password_env = "LMS_BRIDGE_LRS_PASSWORD"
        {lrs_options}

        [logging]
        level = "INFO"
        """)
    if moodle_url:
        text += (
            textwrap.dedent(f"""
            [[sources]]
            id = "bench"
            type = "moodle"
            url = "{moodle_url}"
            token_env = "MOODLE_TOKEN_BENCH"
            """)
            + source_options
            + "\n"
        )
    config = folder / "lms-bridge.toml"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_BRIDGE_")}
    env.update(
        MOODLE_TOKEN_BENCH=TOKEN,
        LMS_BRIDGE_LRS_PASSWORD=LRS_PASSWORD,
        LMS_BRIDGE_PSEUDONYM_KEY=PSEUDONYM_KEY,
        PYTHONPATH=str(ROOT),
    )
    return Deployment(folder, config, env)


@dataclass
class CliRun:
    """One ``lms-bridge`` subprocess: wall seconds, exit code, peak RSS (MB), CPU seconds, output."""

    args: tuple[str, ...]
    wall: float
    returncode: int
    max_rss_mb: float
    cpu: float
    stdout: str
    stderr: str

    def check(self) -> CliRun:
        if self.returncode != 0:
            raise SystemExit(f"lms-bridge {' '.join(self.args)} failed ({self.returncode}):\n{self.stderr[-3000:]}")
        return self


def run_cli(deployment: Deployment, *args: str, quiet: bool = True, cwd: Path = ROOT) -> CliRun:
    """Run ``lms-bridge --config C [-q] ARGS``; peak RSS and CPU come from ``wait4`` of that process.

    ``cwd`` is the tree whose code runs: ``python -m`` puts the working directory ahead of PYTHONPATH.
    """
    argv = [PYTHON, "-m", "lms_bridge.cli", "--config", str(deployment.config), *(["-q"] if quiet else []), *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=deployment.env, stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return CliRun(
            tuple(args),
            wall,
            process.returncode,
            usage.ru_maxrss / 1024,
            usage.ru_utime + usage.ru_stime,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


def outbox_count(db: Path, status: str | None = None) -> int:
    """Rows in the outbox (of one status)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        if status is None:
            return conn.execute("select count(*) from outbox").fetchone()[0]
        return conn.execute("select count(*) from outbox where status = ?", (status,)).fetchone()[0]


# ------------------------------------------------------------------------------------------ figures


@dataclass
class Report:
    """Collects figures; :meth:`finish` prints the verdict and returns the exit code."""

    name: str
    missed: list[str] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)

    def figure(
        self,
        name: str,
        value: float | int | str,
        unit: str = "",
        *,
        goal: str | None = None,
        met: bool | None = None,
        detail: str = "",
    ) -> None:
        """Print one summary line: ``FIGURE name: value unit [goal ...: met|MISSED] | detail``."""
        shown = (
            f"{value:,.3f}".rstrip("0").rstrip(".")
            if isinstance(value, float)
            else (f"{value:,}" if isinstance(value, int) else value)
        )
        line = f"FIGURE {name}: {shown}{' ' + unit if unit else ''}"
        if goal is not None:
            line += f" [goal {goal}: {'met' if met else 'MISSED'}]"
            if not met:
                self.missed.append(name)
        if detail:
            line += f" | {detail}"
        print(line, flush=True)
        self.figures.append({"name": name, "value": value, "unit": unit, "goal": goal, "met": met, "detail": detail})

    def note(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def finish(self, json_path: Path | None = None) -> int:
        if json_path is not None:
            json_path.write_text(
                json.dumps(
                    {"benchmark": self.name, "machine": machine(), "figures": self.figures}, indent=1, default=str
                )
            )
        if self.missed:
            print(f"RESULT {self.name}: {len(self.missed)} goal(s) missed: {', '.join(self.missed)}", flush=True)
            return 1
        print(f"RESULT {self.name}: every goal met", flush=True)
        return 0


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
    }


def print_machine() -> None:
    info = machine()
    print(
        f"machine: nproc {info['nproc']}, {info['cpu'] or 'cpu unknown'}, Python {info['python']}, "
        f"{info['platform']}, load average {info['loadavg'][0]:.2f}",
        flush=True,
    )


def scratch(prefix: str) -> Path:
    """A temporary folder removed at exit unless BENCH_KEEP is set."""
    path = Path(tempfile.mkdtemp(prefix=f"lms-bridge-{prefix}-"))
    if not os.environ.get("BENCH_KEEP"):
        import atexit

        atexit.register(shutil.rmtree, path, True)
    return path
