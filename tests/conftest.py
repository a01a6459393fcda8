"""Shared fixtures: real Ralph, real SQLite and PostgreSQL, config files, the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.brokers import redis_server_url, redis_url  # noqa: F401
from tests.fixtures.lrs import FaultyLRS, fresh_ralph, lrs_statements, ralph  # noqa: F401
from tests.fixtures.moodle import fake_moodle  # noqa: F401
from tests.fixtures.postgres import pg_database_url, pg_server_url  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
PASSWORD_ENV = "LMS_BRIDGE_LRS_PASSWORD"


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_database_url")


@dataclass
class Deployment:
    """A config file and the environment a test runs lms-bridge with."""

    config: Path
    env: dict[str, str]
    state_url: str

    def run(self, *args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``lms-bridge --config CONFIG ARGS`` as a real subprocess."""
        result = subprocess.run(
            [sys.executable, "-m", "lms_bridge.cli", "--config", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"lms-bridge {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``lms-bridge ARGS`` without waiting."""
        return subprocess.Popen(
            [sys.executable, "-m", "lms_bridge.cli", "--config", str(self.config), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )


@pytest.fixture
def make_deployment(tmp_path: Path) -> Callable[..., Deployment]:
    """Build a deployment: ``make_deployment(state_url, lrs_url, password, extra_toml="")``."""

    def build(
        state_url: str,
        lrs_url: str,
        password: str,
        *,
        username: str = "lms-bridge",
        extra_toml: str = "",
        lrs_options: str = "",
    ) -> Deployment:
        config = tmp_path / "lms-bridge.toml"
        config.write_text(
            textwrap.dedent(f"""\
            [state]
            url = "{state_url}"

            [lrs]
            url = "{lrs_url}"
            username = "{username}"
            password_env = "{PASSWORD_ENV}"
            backoff_base = 0.05
            backoff_cap = 0.2
            {lrs_options}
            """)
            + textwrap.dedent(extra_toml)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_BRIDGE_")}
        env[PASSWORD_ENV] = password
        env["PYTHONPATH"] = str(ROOT)
        return Deployment(config=config, env=env, state_url=state_url)

    return build
