"""A real Moodle 4.5 for the real-Moodle suite (issue 17): started from ``../shared/moodle-real``, stopped at the end.

Opt in: ``pytest -m real_moodle`` (``.ci/run`` does it when ``../shared/moodle-real`` exists, or when
``LMS_BRIDGE_MOODLE_KIT`` names another copy of that kit). A plain ``pytest`` deselects these tests;
asking for them without the kit stops the run with one line that says how to provide it (never a
silent skip).

The session's Moodle is seeded through Moodle's own code (``seed.php``: the data generator, the
override web-service function run as the teacher, Moodle's access log), then cron's completion task
aggregates course completion. The truth the tests compare with is Moodle's own database
(``moodle_PORT`` on the tests' PostgreSQL), read with psycopg.

Debian 12's ``faketime`` hangs Moodle's bootstrap (measured: a bare ``require config.php`` takes
30-60 s and exits 255), so the seed dates forum posts explicitly instead of moving the clock.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lms_bridge.demo.ralph import free_port

ROOT = Path(__file__).resolve().parents[2]
KIT_ENV = "LMS_BRIDGE_MOODLE_KIT"
KIT = Path(os.environ.get(KIT_ENV) or ROOT.parent / "shared" / "moodle-real")
HERE = Path(__file__).resolve().parent
HOW_TO_PROVIDE = (
    f"the real-Moodle suite needs the Moodle 4.5 kit in {KIT} (start.sh, stop.sh, ws_token.php, "
    f"moodle-4.5-src.tar.xz, install.dump): set {KIT_ENV}=/path/to/moodle-real, "
    "or run pytest without -m real_moodle"
)
#: What the connector calls (connectors/moodle/settings.py) plus what sites without it would lack.
SYNC_FUNCTIONS = "all"


def _asked_for(config: pytest.Config) -> bool:
    expression = config.option.markexpr or ""
    if "real_moodle" in expression and "not real_moodle" not in expression:
        return True
    return any("real_moodle" in str(arg) for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if item.get_closest_marker("real_moodle")]
    if not ours:
        return
    if not _asked_for(config):
        items[:] = [item for item in items if not item.get_closest_marker("real_moodle")]
        config.hook.pytest_deselected(items=ours)
        return
    if not (KIT / "start.sh").is_file():
        raise pytest.UsageError(HOW_TO_PROVIDE)


@dataclass
class RealMoodle:
    """One running real Moodle: its URL, its source folder, its database, what the seed made."""

    url: str
    dir: Path
    db: str
    workdir: Path
    seeded: dict[str, Any]

    def php(self, *args: str, user_ini: bool = True) -> str:
        """Run a PHP CLI script with the site's php.ini; its stdout."""
        ini = ["-c", str(self.workdir / "php.ini")] if user_ini else []
        done = subprocess.run(["php", *ini, *args], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"php {' '.join(args)} failed: {(done.stdout + done.stderr).strip()[-800:]}")
        return done.stdout

    def token(self, user: str = "admin", functions: str = SYNC_FUNCTIONS, service: str = "lms_bridge") -> str:
        """A permanent web-service token made by the kit's ws_token.php."""
        out = self.php(
            str(KIT / "ws_token.php"),
            str(self.dir),
            f"--user={user}",
            f"--functions={functions}",
            f"--service={service}",
        )
        return out.strip().splitlines()[-1]

    def set_config(self, name: str, value: str) -> None:
        """Moodle's own ``set_config`` through its CLI (admin/cli/cfg.php)."""
        self.php(str(self.dir / "admin" / "cli" / "cfg.php"), f"--name={name}", f"--set={value}")

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        """The truth: rows of a query on Moodle's own database."""
        host = os.environ.get("PGHOST", "127.0.0.1")
        port = os.environ.get("PGPORT", "5432")
        user = os.environ.get("PGUSER", "postgres")
        with psycopg.connect(host=host, port=port, user=user, dbname=self.db) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="session")
def real_moodle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealMoodle]:
    """A real Moodle 4.5, seeded once for the session, stopped (and its database dropped) at the end."""
    workdir = tmp_path_factory.mktemp("moodle-real")
    port = free_port()
    try:
        started = subprocess.run(
            [str(KIT / "start.sh"), str(workdir), str(port)], capture_output=True, text=True, timeout=600
        )
        found = dict(re.findall(r"(MOODLE_\w+)=(\S+)", started.stdout))
        if started.returncode != 0 or "MOODLE_URL" not in found:
            raise RuntimeError(f"the real Moodle did not start: {started.stderr.strip()[-800:]}")
        site = RealMoodle(found["MOODLE_URL"], Path(found["MOODLE_DIR"]), found["MOODLE_DB"], workdir, {})
        site.seeded = json.loads(site.php(str(HERE / "seed.php"), str(site.dir)).strip().splitlines()[-1])
        # Course completion is aggregated by cron, as on a live site.
        site.php(
            str(site.dir / "admin" / "cli" / "scheduled_task.php"), r"--execute=\core\task\completion_regular_task"
        )
        yield site
    finally:
        subprocess.run([str(KIT / "stop.sh"), str(workdir)], capture_output=True, timeout=120)
