"""The demo on embedded defaults: a fake Moodle, a local Ralph LRS, the main job, what landed.

Run it with ``scripts/demo.sh`` (sets up first). It starts the fake Moodle (small
preset) and a throw-away Ralph LRS on free 127.0.0.1 ports, writes a config under
``var/demo/`` (SQLite state), runs the real commands (``doctor``, ``sites test``,
``sync``, ``people import`` of a demo roster, ``import`` of the bundled activities and of a
WhatsApp export, ``rules check``, ``jp compute``, ``outbox flush``, ``outbox status``,
``ledger sync``, ``report compliance`` of one unit, ``report units``), reads the statements back from the LRS and prints
them per kind, per person and JP per person, then stops both servers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fakes.moodle import FakeMoodle
from fakes.moodle.generator import NOW0
from scripts.ralph_lrs import RalphLRS
from xapi.lrs_client import LRSClient

ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "scripts" / "demo_data" / "activities.jsonl"
#: The fake Moodle's clock and the bundled community data are in this year (not today's).
DEMO_YEAR = str(datetime.fromtimestamp(NOW0, UTC).year)
#: Everyone in the demo data (the fake Moodle's people and the community exports' three), in four
#: units of a BPSDM, so that no report row reads "not on roster".
DEMO_ROSTER = ROOT / "scripts" / "demo_data" / "roster.csv"
DEMO_CHAT = ROOT / "scripts" / "demo_data" / "whatsapp_cop_demo.txt"
console = Console(highlight=False)


def run(config: Path, env: dict[str, str], *args: str) -> None:
    console.rule(f"lms-bridge {' '.join(args)}")
    subprocess.run([sys.executable, "-m", "lms_bridge.cli", "--config", str(config), *args], env=env, check=True)


def object_kind(obj: dict) -> str:
    """The last segment of an object's activity type (``course``, ``jp-credit``...), or its objectType."""
    return str(obj.get("definition", {}).get("type") or obj.get("objectType", "?")).rsplit("/", 1)[-1]


def summarise(lrs: RalphLRS) -> None:
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


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the lms-bridge demo against a local Ralph LRS.")
    parser.add_argument("--keep", action="store_true", help="keep var/demo (state database) afterwards")
    args = parser.parse_args()
    workdir = ROOT / "var" / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    token = "demo-moodle-token"  # noqa: S105 - the fake Moodle's token
    with RalphLRS(password="demo-lrs-password") as lrs, FakeMoodle(preset="small", seed=1, token=token) as moodle:
        config = workdir / "lms-bridge.toml"
        config.write_text(
            f'[state]\nurl = "sqlite:///state.db"\n\n'
            f'[lrs]\nurl = "{lrs.url}"\nusername = "{lrs.username}"\n\n'
            f'[[sources]]\nid = "demo-lms"\ntype = "moodle"\nurl = "{moodle.url}"\n'
            f'token_env = "MOODLE_TOKEN_DEMO"\n'
        )
        env = {
            **os.environ,
            "LMS_BRIDGE_LRS_PASSWORD": lrs.password,
            "MOODLE_TOKEN_DEMO": token,
            "LMS_BRIDGE_PSEUDONYM_KEY": "demo-pseudonym-key-not-for-production",
            "PYTHONPATH": str(ROOT),
        }
        console.print(f"fake Moodle at {moodle.url}; local Ralph LRS at {lrs.url}; state in {workdir / 'state.db'}")
        run(config, env, "doctor")
        run(config, env, "sites", "test")
        run(config, env, "sync")
        run(config, env, "people", "import", str(DEMO_ROSTER))
        run(config, env, "import", str(DEMO_DATA), "--site", "demo-community")
        run(config, env, "import", str(DEMO_CHAT), "--community", "cop-wi-demo")
        run(config, env, "rules", "check")
        run(config, env, "jp", "compute", "--year", DEMO_YEAR)
        run(config, env, "outbox", "flush")
        run(config, env, "outbox", "status")
        run(config, env, "ledger", "sync")
        run(config, env, "report", "compliance", "--year", DEMO_YEAR, "--unit", "BPSDM-01")
        run(config, env, "report", "units", "--year", DEMO_YEAR)
        summarise(lrs)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    console.print("demo done: the fake Moodle and the LRS were stopped and their data removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
