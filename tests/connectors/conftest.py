"""Fixtures of the connector tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def scratch(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder per test module for the files a property test writes (hypothesis reuses it across examples)."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1] + "_fuzz")
