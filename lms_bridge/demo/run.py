"""``lms-bridge demo``: the main job on embedded defaults, from any folder, ending on the HR page.

It starts the fake Moodle shipped in this package (small preset) and a throw-away Ralph LRS on free
127.0.0.1 ports, writes a config in its folder (SQLite state), runs the real commands as an operator
would (``doctor``, ``sites test``, ``sync``, ``people import`` of a demo roster, ``import`` of the bundled
activities and of a WhatsApp export, ``rules check``, ``jp compute``, ``outbox flush``, ``outbox
status``, ``ledger sync``, ``report compliance`` of one unit, ``report units``), reads the statements
back from the LRS and prints them per kind, per person and JP per person. Then, unless ``--no-web``,
it starts the HR page with a demo login and waits for Ctrl-C. Everything it started is stopped at
the end; its folder is removed unless ``--keep``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lms_bridge.demo.moodle import FakeMoodle
from lms_bridge.demo.moodle.generator import NOW0
from lms_bridge.demo.ralph import RalphLRS, free_port
from lms_bridge.errors import LmsBridgeError
from xapi.lrs_client import LRSClient

DATA = Path(__file__).resolve().parent / "data"
DEMO_DATA = DATA / "activities.jsonl"
#: Everyone in the demo data (the fake Moodle's people and the community exports' three), in four
#: units of a BPSDM, so that no report row reads "not on roster".
DEMO_ROSTER = DATA / "roster.csv"
DEMO_CHAT = DATA / "whatsapp_cop_demo.txt"
#: The fake Moodle's clock and the bundled community data are in this year (not today's).
DEMO_YEAR = str(datetime.fromtimestamp(NOW0, UTC).year)
#: The HR page's demo login (a throw-away user in the demo's own state database).
WEB_USER = "demo"
console = Console(highlight=False)


def object_kind(obj: dict[str, Any]) -> str:
    """The last segment of an object's activity type (``course``, ``jp-credit``...), or its objectType."""
    return str(obj.get("definition", {}).get("type") or obj.get("objectType", "?")).rsplit("/", 1)[-1]


def summarise(lrs: RalphLRS) -> None:
    """Print what landed in the LRS: statements per kind, per person, and JP per person."""
    with LRSClient(lrs.url, lrs.username, lrs.password) as client:
        statements = list(client.iter_statements({"limit": 100}))
    by_kind = Counter(f"{s['verb']['display']['en-US']} {object_kind(s['object'])}" for s in statements)
    by_person = Counter((s["actor"]["account"]["homePage"], s["actor"]["account"]["name"]) for s in statements)
    console.rule("what landed in the LRS")
    kinds = Table("verb + object type", "statements", title=f"{len(statements)} statements by kind")
    for kind, count in sorted(by_kind.items()):
        kinds.add_row(kind, str(count))
    console.print(kinds)
    people = Table("identified by", "person", "statements", title=f"by person ({len(by_person)} people; top 12)")
    for (home, name), count in sorted(by_person.items(), key=lambda item: (-item[1], item[0]))[:12]:
        if "/pseudonym/" in home:
            label = f"pseudonym ({home.rsplit('/', 1)[-1]})"
        elif home.startswith("https://siasn"):
            label = "NIP"
        else:
            label = f"site account, no NIP ({home})"
        people.add_row(label, name, str(count))
    console.print(people)
    voided = {s["object"]["id"] for s in statements if s["verb"]["id"].endswith("/voided")}
    jp_by_person: Counter[str] = Counter()
    for s in statements:
        if s["verb"]["id"].endswith("/earned") and s["id"] not in voided:
            jp_by_person[s["actor"]["account"]["name"]] += next(
                value for key, value in s["result"]["extensions"].items() if key.endswith("/extensions/jp")
            )
    jp_table = Table(
        "NIP",
        "JP (earned, not voided)",
        "20 JP met",
        title=f"JP records in the LRS ({len(jp_by_person)} people; top 12)",
    )
    for nip, total in sorted(jp_by_person.items(), key=lambda item: (-item[1], item[0]))[:12]:
        jp_table.add_row(nip, f"{round(total, 2):g}", "yes" if total >= 20 else "no")
    console.print(jp_table)


class _Demo:
    """The demo's folder, config and environment, and the CLI run as a subprocess against them."""

    def __init__(self, folder: Path, lrs: RalphLRS, moodle: FakeMoodle, token: str) -> None:
        self.folder = folder
        self.config = folder / "lms-bridge.toml"
        self.config.write_text(
            "# The demo's config, written by lms-bridge demo (embedded defaults but for these).\n"
            '[state]\nurl = "sqlite:///state.db"\n\n'
            f'[lrs]\nurl = "{lrs.url}"\nusername = "{lrs.username}"\n\n'
            '[report]\ninstitution = "BPSDM Demo"\n\n'
            f'[[sources]]\nid = "demo-lms"\ntype = "moodle"\nurl = "{moodle.url}"\ntoken_env = "MOODLE_TOKEN_DEMO"\n',
            encoding="utf-8",
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LMS_BRIDGE_") or k == "LMS_BRIDGE_LRS_VENV"},
            "LMS_BRIDGE_LRS_PASSWORD": lrs.password,
            "MOODLE_TOKEN_DEMO": token,
            "LMS_BRIDGE_PSEUDONYM_KEY": "demo-pseudonym-key-not-for-production",
            "LMS_BRIDGE_WEB_SECRET_KEY": secrets.token_hex(32),
        }

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lms_bridge.cli", "--config", str(self.config), *args]

    def run(self, *args: str, env: dict[str, str] | None = None) -> None:
        console.rule(f"lms-bridge {' '.join(args)}")
        done = subprocess.run(self.argv(*args), env={**self.env, **(env or {})}, cwd=self.folder, check=False)
        if done.returncode != 0:
            raise LmsBridgeError(f"the demo stopped: lms-bridge {' '.join(args)} exited {done.returncode} (see above)")


def _serve_web(demo: _Demo, port: int) -> None:
    """Start the HR page on ``port`` with the demo login; wait for Ctrl-C; stop it."""
    password = secrets.token_urlsafe(9)
    demo.run("users", "add", WEB_USER, "--password-env", "DEMO_WEB_PASSWORD", env={"DEMO_WEB_PASSWORD": password})
    process = subprocess.Popen(
        demo.argv("serve-web", "--port", str(port)), env=demo.env, cwd=demo.folder, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/"
    # Ctrl-C (even when started with SIGINT ignored, as from a script's background job) and SIGTERM both end the wait.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "login", timeout=1).close()  # noqa: S310 - our own loopback page
                break
            except (urllib.error.URLError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise LmsBridgeError(f"the HR page did not start on {url}") from None
                time.sleep(0.2)
        console.rule("the HR page")
        console.print(f"Open {url} and log in as [bold]{WEB_USER}[/] with password [bold]{password}[/]")
        console.print(f"(the Rekap JP of {DEMO_YEAR}; Ctrl-C stops the page, the LRS and the fake Moodle)")
        try:
            process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_demo(folder: Path, *, keep: bool = False, web: bool = True, port: int | None = None) -> None:
    """Run the demo in ``folder`` (made; refused when it holds something other than an earlier demo).

    Raises:
        LmsBridgeError: no Ralph venv (with how to get one), a folder in use, or a step that failed.
    """
    folder = folder.resolve()
    if folder.exists() and any(folder.iterdir()) and not (folder / "lms-bridge.toml").exists():
        raise LmsBridgeError(f"{folder} is not empty and holds no earlier demo: give the demo its own --dir")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    token = "demo-moodle-token"  # noqa: S105 - the fake Moodle's token
    try:
        with (
            RalphLRS(password=secrets.token_urlsafe(12), data_dir=folder / "lrs") as lrs,
            FakeMoodle(preset="small", seed=1, token=token) as moodle,
        ):
            demo = _Demo(folder, lrs, moodle, token)
            console.print(f"fake Moodle at {moodle.url}; local Ralph LRS at {lrs.url}; state in {folder / 'state.db'}")
            demo.run("doctor")
            demo.run("sites", "test")
            demo.run("sync")
            demo.run("people", "import", str(DEMO_ROSTER))
            demo.run("import", str(DEMO_DATA), "--site", "demo-community")
            demo.run("import", str(DEMO_CHAT), "--community", "cop-wi-demo")
            demo.run("rules", "check")
            demo.run("jp", "compute", "--year", DEMO_YEAR)
            demo.run("outbox", "flush")
            demo.run("outbox", "status")
            demo.run("ledger", "sync")
            demo.run("report", "compliance", "--year", DEMO_YEAR, "--unit", "BPSDM-01")
            demo.run("report", "units", "--year", DEMO_YEAR)
            summarise(lrs)
            if web:
                _serve_web(demo, port or free_port())
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    if keep:
        console.print(
            f"demo done: the servers were stopped; its config, state database and LRS data are kept in {folder} "
            f"(lms-bridge --config {folder / 'lms-bridge.toml'} report compliance --year {DEMO_YEAR})"
        )
    else:
        console.print("demo done: the servers were stopped and the demo's folder removed (--keep keeps it)")
