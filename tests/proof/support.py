"""What the proof tests share: a fake Moodle with hooks, a killing LRS proxy, deployments whose output is kept.

Everything a proof test produces (CLI output, state databases, Ralph data folders) is recorded in
:data:`CAPTURED`, so ``test_zz_secrets`` can search all of it for secrets and personal data at the end.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from fakes.moodle import FakeMoodle
from fakes.moodle import server as fake_server
from scripts.ralph_lrs import RalphLRS
from tests.fixtures.lrs import lrs_statements

ROOT = Path(__file__).resolve().parents[2]

# Secrets of the proof deployments: test_zz_secrets greps every output, database and LRS file for them.
ADMIN_TOKEN = "tok-proof-9d41c7e2b6"  # noqa: S105
LRS_PASSWORD = "lrs-proof-pw-5e7a13"  # noqa: S105
PSEUDONYM_KEY = "proof-pseudonym-key-b2f0c9d1e8a7"
LRS_USER = "lms-bridge"
SITE = "proofsite"


@dataclass
class Captured:
    """Everything the proof suite produced, for the final secrets search."""

    outputs: list[tuple[str, str]] = field(default_factory=list)  # (what, text)
    databases: list[Path] = field(default_factory=list)
    lrs_dirs: list[Path] = field(default_factory=list)

    def output(self, what: str, text: str) -> None:
        self.outputs.append((what, text))


CAPTURED = Captured()
_BASE: list[Path] = []


def base_dir() -> Path | None:
    """The suite's temporary folder, if one was made."""
    return _BASE[0] if _BASE else None


def workdir(name: str) -> Path:
    """A fresh folder kept until the session ends (the secrets search reads it)."""
    if not _BASE:
        _BASE.append(Path(tempfile.mkdtemp(prefix="lms-bridge-proof-")))
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_BASE[0]))


# ------------------------------------------------------------------------------------ fake Moodle


class _NoDelayHandler(fake_server._Handler):
    """TCP_NODELAY: without it every fake call waits ~40 ms for a delayed ACK (see BENCHMARKS.md)."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ProofMoodle(FakeMoodle):
    """The fake Moodle with a per-call hook and a token that can be revoked mid-run.

    ``on_call(number, function)`` runs in the handler thread before each answer; ``number`` counts
    calls since the start. After ``revoke_after`` calls the admin token is refused (``invalidtoken``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.call_number = 0
        self.on_call: Callable[[int, str], None] | None = None
        self.revoke_after: int | None = None
        self.hold: dict[str, float] = {}  # seconds a call of this function takes, counted as in flight
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self._count_lock = threading.Lock()

    def start(self) -> ProofMoodle:
        self._httpd = fake_server._Server(("127.0.0.1", self._port), _NoDelayHandler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="proof-moodle", daemon=True
        )
        self._thread.start()
        return self

    def reset_knobs(self) -> None:
        self.on_call = None
        self.revoke_after = None
        self.hold.clear()
        self.max_in_flight.clear()
        self.clear_faults()
        self.latency.clear()

    def _answer(
        self, token: str | None, function: str, fmt: str, pairs: list[tuple[str, str]]
    ) -> tuple[bytes, bool, dict[str, Any]]:
        with self._count_lock:
            self.call_number += 1
            number = self.call_number
            self.in_flight[function] = self.in_flight.get(function, 0) + 1
            self.max_in_flight[function] = max(self.max_in_flight.get(function, 0), self.in_flight[function])
        try:
            hook = self.on_call
            if hook is not None:
                hook(number, function)
            if self.revoke_after is not None and number > self.revoke_after:
                token = None
            if self.hold.get(function):
                time.sleep(self.hold[function])
            return super()._answer(token, function, fmt, pairs)
        finally:
            with self._count_lock:
                self.in_flight[function] -= 1


# ------------------------------------------------------------------------------------ deployments


@dataclass
class Deployment:
    """A config file and environment; every run's output is recorded in :data:`CAPTURED`."""

    dir: Path
    config: Path
    env: dict[str, str]

    @property
    def db(self) -> Path:
        return self.dir / "state.db"

    def argv(self, *args: str, module: str = "lms_bridge.cli") -> list[str]:
        return [sys.executable, "-m", module, "--config", str(self.config), *args]

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        module: str = "lms_bridge.cli",
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args, module=module),
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        CAPTURED.output(f"lms-bridge {' '.join(args)}", result.stdout + result.stderr)
        if check and result.returncode != 0:
            raise AssertionError(f"lms-bridge {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def popen(
        self, *args: str, module: str = "lms_bridge.cli", env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args, module=module),
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def outbox(self) -> dict[str, str]:
        """statement id -> body of every outbox row."""
        return dict(self.query("select statement_id, body from outbox"))

    def query(self, sql: str) -> list[tuple]:
        if not self.db.exists():
            return []
        try:
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as conn:
                return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # tables not created yet, or a writer holds a lock
            return []

    def outbox_count(self) -> int:
        rows = self.query("select count(*) from outbox")
        return rows[0][0] if rows else 0


def make_deployment(
    name: str, *, lrs_url: str, moodle_url: str | None = None, lrs_options: str = "", source_options: str = ""
) -> Deployment:
    """A deployment with SQLite state in a fresh kept folder; batches of 20 so flushes and imports take many steps."""
    folder = workdir(name)
    text = textwrap.dedent(f"""\
        [state]
        url = "sqlite:///{folder / "state.db"}"

        [lrs]
        url = "{lrs_url}"
        username = "{LRS_USER}"
        password_env = "LMS_BRIDGE_LRS_PASSWORD"
        batch_size = 20
        backoff_base = 0.05
        backoff_cap = 0.2
        """) + textwrap.dedent(lrs_options)
    if moodle_url is not None:
        text += textwrap.dedent(f"""
            [[sources]]
            id = "{SITE}"
            type = "moodle"
            url = "{moodle_url}"
            token_env = "MOODLE_TOKEN_PROOF"
            backoff_base = 0.05
            """) + textwrap.dedent(source_options)
    config = folder / "lms-bridge.toml"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_BRIDGE_")}
    env.update(
        MOODLE_TOKEN_PROOF=ADMIN_TOKEN,
        LMS_BRIDGE_LRS_PASSWORD=LRS_PASSWORD,
        LMS_BRIDGE_PSEUDONYM_KEY=PSEUDONYM_KEY,
        PYTHONPATH=str(ROOT),
    )
    CAPTURED.databases.append(folder / "state.db")
    return Deployment(folder, config, env)


def add_source(deployment: Deployment, toml: str, **env: str) -> Deployment:
    """Append a ``[[sources]]`` entry (a live connector) to the config, and its secrets to the environment."""
    deployment.config.write_text(deployment.config.read_text() + textwrap.dedent(toml))
    deployment.env.update(env)
    return deployment


#: A line of the CLI's text log (not the summary table or the final ``error:`` sentence).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")


def log_lines(stderr: str, *needles: str) -> list[str]:
    """The log lines of ``stderr`` holding every one of ``needles``."""
    return [line for line in stderr.splitlines() if LOG_LINE.match(line) and all(n in line for n in needles)]


class _SpareRalph:
    """One fresh Ralph always starting in the background: tests that need an empty LRS each do not wait ~1.3 s."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.result: list[RalphLRS | BaseException] = []

    def prepare(self) -> None:
        self.result = []

        def start() -> None:
            try:
                self.result.append(
                    RalphLRS(username=LRS_USER, password=LRS_PASSWORD, data_dir=workdir("ralph")).start()
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the taker
                self.result.append(exc)

        self.thread = threading.Thread(target=start, name="spare-ralph", daemon=True)
        self.thread.start()

    def take(self) -> RalphLRS:
        if self.thread is None:
            self.prepare()
        assert self.thread is not None
        self.thread.join(timeout=120)
        lrs = self.result[0] if self.result else RuntimeError("the spare Ralph did not start within 120 s")
        self.prepare()
        if isinstance(lrs, BaseException):
            raise lrs
        return lrs

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=120)
            for lrs in self.result:
                if isinstance(lrs, RalphLRS):
                    lrs.stop()
            self.thread = None


SPARE_RALPH = _SpareRalph()


def start_ralph(port: int | None = None, data_dir: Path | None = None) -> RalphLRS:
    """An empty Ralph whose data folder is kept (and searched by test_zz_secrets).

    With a port or a folder (a restart), a new process starts now; else the spare started in the
    background is taken and another spare starts.
    """
    if port is None and data_dir is None:
        lrs = SPARE_RALPH.take()
    else:
        lrs = RalphLRS(port=port, username=LRS_USER, password=LRS_PASSWORD, data_dir=data_dir or workdir("ralph"))
        lrs.start()
    if lrs.dir not in CAPTURED.lrs_dirs:
        CAPTURED.lrs_dirs.append(lrs.dir)
    return lrs


def content(lrs: RalphLRS) -> dict[str, dict]:
    """statement id -> statement as posted (without what the LRS adds: stored, authority)."""
    held: dict[str, dict] = {}
    for statement in lrs_statements(lrs):
        assert statement["id"] not in held, f"statement {statement['id']} is held twice"
        held[statement["id"]] = {k: v for k, v in statement.items() if k not in ("stored", "authority")}
    return held


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL by pid (the CLI has no children)."""
    try:
        os.kill(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def diff_summary(expected: dict[str, dict], got: dict[str, dict]) -> str:
    missing = expected.keys() - got.keys()
    extra = got.keys() - expected.keys()
    changed = [key for key in expected.keys() & got.keys() if expected[key] != got[key]]
    return f"{len(missing)} missing, {len(extra)} extra, {len(changed)} with other content"


# ------------------------------------------------------------------------------------ LRS proxy


class LRSProxy:
    """A loopback proxy to an LRS with a hook per POST (for kills, 500s and slow answers).

    ``on_post(number)`` returns the action for that POST: ``"ok"`` (forward), ``"500"`` (answer 500
    without forwarding), ``"slow"`` (forward, then wait ``slow_seconds`` before answering), or a
    callable run at a chosen moment: ``("before", fn)`` before forwarding, ``("stored", fn)`` after
    the LRS stored the batch and before answering, ``("answered", fn)`` right after answering.
    """

    def __init__(self, upstream: str, slow_seconds: float = 2.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.slow_seconds = slow_seconds
        self.posts = 0
        self.on_post: Callable[[int], Any] | None = None
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/xAPI/"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _forward(self, body: bytes | None) -> requests.Response:
                path = self.path.replace("/xAPI", "", 1)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                return requests.request(self.command, proxy.upstream + path, data=body, headers=headers, timeout=60)

            def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802
                response = self._forward(None)
                self._send(
                    response.status_code, response.content, response.headers.get("Content-Type", "application/json")
                )

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy._lock:
                    proxy.posts += 1
                    number = proxy.posts
                action = proxy.on_post(number) if proxy.on_post else "ok"
                if action == "500":
                    self._send(500, b'{"detail":"injected failure"}')
                    return
                moment, hook = action if isinstance(action, tuple) else (None, None)
                if moment == "before":
                    hook()
                    time.sleep(0.2)
                try:
                    response = self._forward(body)
                except requests.RequestException:
                    self.close_connection = True  # upstream gone: drop the client like a dead backend
                    return
                if action == "slow":
                    time.sleep(proxy.slow_seconds)
                if moment == "stored":
                    hook()
                    time.sleep(0.2)
                try:
                    self._send(response.status_code, response.content)
                except OSError:
                    return  # the client is gone (killed or timed out)
                if moment == "answered":
                    hook()

        return Handler

    def __enter__(self) -> LRSProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
