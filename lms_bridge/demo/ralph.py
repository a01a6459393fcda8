"""Start and stop a throw-away Ralph LRS 5.1.0 on a free 127.0.0.1 port.

Used by the tests and ``lms-bridge demo``. Ralph runs from its own virtual environment
because its exact pins clash with ours (docs/lrs.md §1): ``$LMS_BRIDGE_LRS_VENV``, else the
checkout's ``.venv-lrs`` (made by ``scripts/setup.sh``), else the one ``lms-bridge demo
--install-lrs`` makes under ``~/.local/share/lms-bridge``. Its fs backend needs an append shim: as shipped, only
the first write succeeds (docs/lrs.md §2). Data lives in a temporary folder
that is removed on stop.

Usage::

    with RalphLRS() as lrs:
        print(lrs.url, lrs.username, lrs.password)

    python -m lms_bridge.demo.ralph --port 8100   # serve until Ctrl-C (prints the URL)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from lms_bridge.errors import LmsBridgeError

#: The checkout this module runs from, when it runs from one (an editable install).
CHECKOUT = Path(__file__).resolve().parents[2]
#: What the LRS venv needs (requests is an undeclared dependency of Ralph's API: docs/lrs.md §1).
RALPH_REQUIREMENTS = ("ralph-malph[lrs]==5.1.0", "requests")

_SHIM = """\
from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend

# Ralph 5.1.0's fs backend defaults to CREATE, so every write after the first fails
# with HTTP 500 (docs/lrs.md §2). APPEND is what an LRS needs.
FSLRSBackend.default_operation_type = BaseOperationType.APPEND
from ralph.api import app  # noqa: E402,F401
"""

_MAKE_AUTH = """\
import bcrypt, json, sys
users = json.loads(sys.argv[2])
json.dump([{"username": u, "hash": bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode(), "scopes": ["all"],
            "agent": {"objectType": "Agent", "account": {"homePage": "https://lrs.example.org", "name": u}}}
           for u, p in users], open(sys.argv[1], "w"))
"""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def user_lrs_venv() -> Path:
    """Where ``lms-bridge demo --install-lrs`` puts Ralph's venv (``$XDG_DATA_HOME/lms-bridge``)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "lms-bridge" / "ralph-5.1.0"


def lrs_venv() -> Path:
    """The venv Ralph runs from: ``$LMS_BRIDGE_LRS_VENV``, the checkout's ``.venv-lrs``, or the user's."""
    if os.environ.get("LMS_BRIDGE_LRS_VENV"):
        return Path(os.environ["LMS_BRIDGE_LRS_VENV"])
    checkout = CHECKOUT / ".venv-lrs"
    return checkout if (checkout / "bin" / "python").exists() else user_lrs_venv()


def lrs_python() -> Path:
    """The Python of the LRS venv; one sentence saying how to get one when there is none.

    Raises:
        LmsBridgeError: no venv with Ralph was found.
    """
    venv = lrs_venv()
    python = venv / "bin" / "python"
    if not python.exists():
        raise LmsBridgeError(
            f"no Ralph LRS venv at {venv}: run lms-bridge demo --install-lrs (a venv with "
            f"{RALPH_REQUIREMENTS[0]}, about a minute from PyPI), or set LMS_BRIDGE_LRS_VENV to one "
            "(in a checkout: scripts/setup.sh makes .venv-lrs)"
        )
    return python


def install_lrs(venv: Path | None = None) -> Path:
    """Make a venv with Ralph 5.1.0 (its own: its pins clash with ours) and return it.

    Raises:
        LmsBridgeError: the venv or the install failed (pip's last lines are in the message).
    """
    venv = venv or user_lrs_venv()
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = (
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *RALPH_REQUIREMENTS],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise LmsBridgeError(f"installing Ralph into {venv} failed: {tail}")
    return venv


class RalphLRS:
    """A Ralph LRS subprocess with its own data folder and one user.

    Args:
        port: the port to bind on 127.0.0.1 (default: a free one).
        username: the Basic-auth user to create.
        password: its password.
        data_dir: keep data here instead of a temporary folder (not removed on stop).
    """

    def __init__(
        self,
        port: int | None = None,
        username: str = "lms-bridge",
        password: str = "lrs-test-secret",
        data_dir: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.username = username
        self.password = password
        self._own_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="ralph-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The xAPI endpoint."""
        return f"http://127.0.0.1:{self.port}/xAPI/"

    @property
    def log_path(self) -> Path:
        """Where the server's output goes."""
        return self.dir / "server.log"

    def start(self, timeout: float = 60.0) -> RalphLRS:
        """Start the server and wait for its heartbeat."""
        python = lrs_python()
        app_dir = self.dir / "app"
        app_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        (app_dir / "ralph_fs_append.py").write_text(_SHIM)
        subprocess.run(
            [str(python), "-c", _MAKE_AUTH, str(self.dir / "auth.json"), json.dumps([[self.username, self.password]])],
            check=True,
        )
        env = {
            **os.environ,
            "RALPH_APP_DIR": str(self.dir),
            "RALPH_RUNSERVER_BACKEND": "fs",
            "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(self.dir / "data"),
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(python),
                    "-m",
                    "uvicorn",
                    "ralph_fs_append:app",
                    "--app-dir",
                    str(app_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-access-log",
                ],
                cwd=self.dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Ralph exited at start: {self.log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/__heartbeat__", timeout=1).close()
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Ralph did not answer within {timeout:g} s")

    def stop(self) -> None:
        """Stop the server by PID (SIGTERM, then SIGKILL) and remove its temporary data."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RalphLRS:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main() -> None:
    """``python -m lms_bridge.demo.ralph``: serve a throw-away Ralph until Ctrl-C, printing its URL."""
    parser = argparse.ArgumentParser(description="Run a throw-away Ralph LRS on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--username", default="lms-bridge")
    parser.add_argument("--password", default=os.environ.get("LMS_BRIDGE_LRS_PASSWORD", "lrs-demo-secret"))
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    lrs = RalphLRS(args.port, args.username, args.password, args.data_dir).start()
    # Block only after Ralph started: a child inherits the signal mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # sigwait needs them blocked
    print(lrs.url, flush=True)
    try:
        signal.sigwait(stop_signals)
    finally:
        lrs.stop()


if __name__ == "__main__":
    main()
