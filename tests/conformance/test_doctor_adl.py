"""``doctor`` against ADL's LRS: its 2.0.0 version header is no failure, and the round trip passes on every run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conformance.conftest import AdlLRS
from tests.conftest import Deployment

pytestmark = pytest.mark.conformance


def test_doctor_passes_twice_against_adl(
    adl: AdlLRS, tmp_path: Path, make_deployment: Callable[..., Deployment]
) -> None:
    deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", adl.url, adl.password)
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = "conformance-pseudonym-key-0123456789"
    first = deployment.run("doctor", "--write-probe", check=True).stdout
    second = deployment.run("doctor", "--write-probe", check=True).stdout
    assert "X-Experience-API-Version 2.0.0, /about lists 1.0.0, 1.0.1, 1.0.2, 1.0.3, 2.0.0" in first
    assert "round trip: sandbox statement" in first and "(stored now)" in first
    assert "already there (HTTP 409, read back and equal)" in second
