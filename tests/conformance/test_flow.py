"""The demo's flow on ADL's reference LRS and on Ralph: same statements, same JP, same reports (issue 24).

One run per LRS through the real CLI (subprocesses, SQLite state): a sync from the fake
Moodle, the demo roster, activity and chat imports, ``jp compute``, an ``outbox flush``
that is SIGKILLed between the LRS's answer and the mark, a flush whose answer comes after
the client's time-out (the LRS has committed), a clean flush, ``ledger sync``, ``report
compliance``; then an operator ``void``, a ``forget``, ``jp compute`` (JP voids and
revisions), flush, ledger, report again. Then, from a copy of the state taken before the
first ``ledger sync``, a ledger sync interrupted at every page and rerun.

Asserted: nothing is dead-lettered on either LRS (voids included), the outbox counts,
ledger totals and both compliance reports are equal on the two LRSs, and every
interrupted ledger sync ends, after a plain rerun, with the ledger of the uninterrupted one.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import pytest
import requests

from lms_bridge.demo.moodle import FakeMoodle
from lms_bridge.demo.ralph import RalphLRS
from lms_bridge.demo.run import DEMO_CHAT, DEMO_DATA, DEMO_ROSTER, DEMO_YEAR
from tests.conformance.conftest import AdlLRS
from tests.fixtures.lrs import FaultyLRS

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "conformance-moodle-token"  # noqa: S105 - the fake Moodle's token
FORGET_NIP = "197704252025042386"  # Agus Demo in the demo roster
PAGE_SIZE = 100


class FailingPageLRS:
    """A loopback proxy that answers 500 to the ``fail_at``-th GET of statements (1-based), else forwards."""

    def __init__(self, upstream: str, fail_at: int) -> None:
        parts = urlsplit(upstream)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path.rstrip("/")  # /xapi on ADL's LRS, /xAPI on Ralph
        self.fail_at = fail_at
        self.gets = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.gets += 1
                if proxy.gets == proxy.fail_at:
                    body = b'{"detail":"injected failure"}'
                    self.send_response(500)
                else:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    # A "more" link is an absolute path on the LRS (ADL's: /xapi/statements/more/...).
                    path = self.path
                    if path.startswith("/xAPI/"):
                        path = proxy.prefix + path[len("/xAPI") :]
                    answer = requests.get(proxy.origin + path, headers=headers, timeout=60)
                    body = answer.content
                    self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/xAPI/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Flow:
    """One deployment of the flow: its folder, config and what it printed."""

    workdir: Path
    lrs_url: str
    username: str
    password: str
    moodle_url: str
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.workdir / "state.db"

    def config(self, lrs_url: str | None = None, *, timeout: float = 30) -> Path:
        path = self.workdir / f"lms-bridge-{abs(hash((lrs_url, timeout)))}.toml"
        path.write_text(
            f'[state]\nurl = "sqlite:///{self.state}"\n\n'
            f'[lrs]\nurl = "{lrs_url or self.lrs_url}"\nusername = "{self.username}"\n'
            f"batch_size = {PAGE_SIZE}\ntimeout = {timeout}\nbackoff_base = 0.05\nbackoff_cap = 0.2\n\n"
            f"[ledger]\npage_size = {PAGE_SIZE}\n\n"
            f'[[sources]]\nid = "demo-lms"\ntype = "moodle"\nurl = "{self.moodle_url}"\n'
            f'token_env = "MOODLE_TOKEN_DEMO"\n'
        )
        return path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_BRIDGE_")}
        env.update(
            LMS_BRIDGE_LRS_PASSWORD=self.password,
            MOODLE_TOKEN_DEMO=TOKEN,
            LMS_BRIDGE_PSEUDONYM_KEY="conformance-pseudonym-key-0123456789",
            PYTHONPATH=str(ROOT),
        )
        return env

    def popen(self, *args: str, lrs_url: str | None = None) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "lms_bridge.cli", "--config", str(self.config(lrs_url)), *args]
        return subprocess.Popen(command, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, *args: str, lrs_url: str | None = None, timeout: float = 30, ok: bool = True) -> str:
        command = [sys.executable, "-m", "lms_bridge.cli", "--config", str(self.config(lrs_url, timeout=timeout))]
        done = subprocess.run([*command, *args], env=self.env(), capture_output=True, text=True, timeout=900, cwd=ROOT)
        if ok:
            assert done.returncode == 0, f"lms-bridge {' '.join(args)} failed:\n{done.stderr[-2000:]}"
        self.outputs[" ".join(args)] = done.stdout
        return done.stdout + done.stderr

    def report(self, name: str) -> str:
        out = self.workdir / f"{name}.csv"
        self.run("report", "compliance", "--year", DEMO_YEAR, "--format", "csv", "--output", str(out))
        return out.read_text()

    def query(self, sql: str) -> list[tuple]:
        db = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    def outbox(self) -> dict[str, int]:
        return dict(self.query("SELECT status, count(*) FROM outbox GROUP BY status"))

    def ledger_total(self) -> tuple[int, Decimal]:
        rows = self.query("SELECT jp FROM ledger_records WHERE NOT voided")
        return len(rows), sum((Decimal(str(jp)) for (jp,) in rows), Decimal(0))


@pytest.fixture
def moodle() -> Iterator[FakeMoodle]:
    with FakeMoodle(preset="small", seed=1, token=TOKEN) as fake:
        yield fake


def _run_flow(flow: Flow) -> dict[str, object]:
    """The whole flow on one LRS; returns what is compared between LRSs."""
    assert "ok   LRS round trip" in flow.run("doctor", ok=False)
    flow.run("sync")
    flow.run("people", "import", str(DEMO_ROSTER))
    flow.run("import", str(DEMO_DATA), "--site", "demo-community")
    flow.run("import", str(DEMO_CHAT), "--community", "cop-wi-demo")
    flow.run("jp", "compute", "--year", DEMO_YEAR)
    queued = sum(flow.outbox().values())
    with FaultyLRS(flow.lrs_url, plan=["ok", "kill"]) as proxy:  # killed between the 2nd answer and its mark
        process = flow.popen("outbox", "flush", lrs_url=proxy.url)
        proxy.kill_pid = process.pid
        process.communicate(timeout=300)
    assert process.returncode == -9
    assert flow.outbox().get("sent") == PAGE_SIZE
    with FaultyLRS(flow.lrs_url, plan=["slow"], slow_seconds=6) as proxy:  # the LRS commits, the client gave up
        late = flow.run("outbox", "flush", "--limit", str(2 * PAGE_SIZE), lrs_url=proxy.url, timeout=4)
    assert "did not answer within 4 s" in late
    flow.run("outbox", "flush")
    assert flow.outbox() == {"sent": queued}, flow.outbox()
    shutil.copy(flow.state, flow.workdir / "before-ledger.db")
    flow.run("ledger", "sync")
    first = (flow.ledger_total(), flow.report("first"))
    target = flow.query(
        "SELECT statement_id FROM outbox WHERE body LIKE '%verbs/completed%' AND body LIKE '%199001012015031001%' "
        "ORDER BY statement_id LIMIT 1"
    )[0][0]
    flow.run("void", "--statement", target, "--reason", "conformance test")
    flow.run("forget", FORGET_NIP, "--yes")
    flow.run("jp", "compute", "--year", DEMO_YEAR)
    flow.run("outbox", "flush")
    assert "dead" not in flow.outbox(), flow.query("SELECT last_error FROM outbox WHERE status = 'dead' LIMIT 3")
    flow.run("ledger", "sync")
    return {
        "queued": queued,
        "first": first,
        "after": (flow.ledger_total(), flow.report("after")),
        "outbox": flow.outbox(),
    }


def _interrupt_ledger_at_every_page(flow: Flow) -> int:
    """From the state before the first ledger sync: fail a sync at page k, rerun it plainly, compare; every k.

    The reference is an uninterrupted sync from the same state against the LRS as it is now.
    Returns how many pages were interrupted.
    """
    saved = flow.state.with_name("after-flow.db")
    shutil.copy(flow.state, saved)
    shutil.copy(flow.workdir / "before-ledger.db", flow.state)
    flow.run("ledger", "sync")
    expected = flow.ledger_total()
    k = 2  # page 1 is the first GET of statements; failing it writes nothing at all
    while True:
        shutil.copy(flow.workdir / "before-ledger.db", flow.state)
        proxy = FailingPageLRS(flow.lrs_url, fail_at=k)
        try:
            out = flow.run("ledger", "sync", lrs_url=proxy.url, ok=False)
        finally:
            proxy.close()
        if "HTTP 500" not in out:  # k is past the last page: the sync went through
            assert "error" not in out, out
            break
        flow.run("ledger", "sync")
        assert flow.ledger_total() == expected, f"interrupted at page {k}: {flow.ledger_total()} != {expected}"
        k += 1
    shutil.copy(saved, flow.state)
    return k - 2


def test_the_same_flow_gives_the_same_outcome_on_adl_and_ralph(
    fresh_adl: AdlLRS, fresh_ralph: RalphLRS, moodle: FakeMoodle, tmp_path: Path
) -> None:
    started = time.monotonic()
    outcomes = {}
    flows = {}
    for name, (url, user, password) in {
        "ralph": (fresh_ralph.url, fresh_ralph.username, fresh_ralph.password),
        "adl": (fresh_adl.url, fresh_adl.username, fresh_adl.password),
    }.items():
        (tmp_path / f"flow-{name}").mkdir()
        flows[name] = Flow(tmp_path / f"flow-{name}", url, user, password, moodle.url)
        outcomes[name] = _run_flow(flows[name])
        print(f"{name}: flow in {time.monotonic() - started:.0f} s")
    ralph, adl = outcomes["ralph"], outcomes["adl"]
    assert adl["queued"] == ralph["queued"]
    assert adl["outbox"] == ralph["outbox"]
    assert adl["first"] == ralph["first"]
    assert adl["after"] == ralph["after"]
    (_, jp_before), _ = cast(tuple[tuple[int, Decimal], str], ralph["first"])
    (_, jp_after), _ = cast(tuple[tuple[int, Decimal], str], ralph["after"])
    assert jp_after < jp_before, "the void and the forget changed no JP"
    for name, flow in flows.items():
        pages = _interrupt_ledger_at_every_page(flow)
        assert pages >= 5, f"{name}: only {pages} pages were interrupted"
        print(f"{name}: ledger sync interrupted at each of {pages} pages, {time.monotonic() - started:.0f} s")
