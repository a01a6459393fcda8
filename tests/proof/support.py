"""What the proof tests share: a fake Moodle with hooks, deployments whose output is kept, spare Ralphs.

The LRS that fails on purpose is :class:`tests.fixtures.lrs.FaultyLRS`; deployments are built by
:func:`tests.fixtures.deployment.write_deployment`.

Everything a proof test produces (CLI output, state databases, Ralph data folders) is recorded in
:data:`CAPTURED`, so ``test_zz_secrets`` can search all of it for secrets and personal data at the end.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lms_bridge.demo.moodle import FakeMoodle
from lms_bridge.demo.moodle import server as fake_server
from lms_bridge.demo.ralph import RalphLRS
from tests.fixtures.deployment import Deployment, write_deployment
from tests.fixtures.lrs import lrs_statements

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


def make_deployment(
    name: str, *, lrs_url: str, moodle_url: str | None = None, lrs_options: str = "", source_options: str = ""
) -> Deployment:
    """A deployment with SQLite state in a fresh kept folder; batches of 20 so flushes and imports take many steps.

    Its runs raise on a non-zero exit unless told ``check=False``, and their output is kept in :data:`CAPTURED`.
    """
    folder = workdir(name)
    moodle = ""
    if moodle_url is not None:
        moodle = textwrap.dedent(f"""
            [[sources]]
            id = "{SITE}"
            type = "moodle"
            url = "{moodle_url}"
            token_env = "MOODLE_TOKEN_PROOF"
            backoff_base = 0.05
            """) + textwrap.dedent(source_options)
    CAPTURED.databases.append(folder / "state.db")
    return write_deployment(
        folder,
        state_url=f"sqlite:///{folder / 'state.db'}",
        lrs_url=lrs_url,
        password=LRS_PASSWORD,
        username=LRS_USER,
        lrs_options="batch_size = 20\n" + textwrap.dedent(lrs_options),
        extra_toml=moodle,
        env={"MOODLE_TOKEN_PROOF": ADMIN_TOKEN, "LMS_BRIDGE_PSEUDONYM_KEY": PSEUDONYM_KEY},
        check_runs=True,
        record=CAPTURED.output,
    )


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
