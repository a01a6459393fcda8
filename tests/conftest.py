"""Shared fixtures: real Ralph, real SQLite and PostgreSQL, deployments (tests/fixtures/deployment.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.brokers import broker, redis_server_url, redis_url  # noqa: F401
from tests.fixtures.deployment import Deployment, write_deployment
from tests.fixtures.lrs import FaultyLRS, fresh_ralph, lrs_statements, ralph  # noqa: F401
from tests.fixtures.moodle import fake_moodle  # noqa: F401
from tests.fixtures.postgres import pg_database_url, pg_server_url  # noqa: F401


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def make_deployment(tmp_path: Path) -> Callable[..., Deployment]:
    """Build a deployment in ``tmp_path``: ``make_deployment(state_url, lrs_url, password, extra_toml="")``."""

    def build(
        state_url: str,
        lrs_url: str,
        password: str,
        *,
        username: str = "lms-bridge",
        extra_toml: str = "",
        lrs_options: str = "",
    ) -> Deployment:
        return write_deployment(
            tmp_path,
            state_url=state_url,
            lrs_url=lrs_url,
            password=password,
            username=username,
            lrs_options=lrs_options,
            extra_toml=extra_toml,
        )

    return build
