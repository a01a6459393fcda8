"""``doctor`` against ADL's LRS: its 2.0.0 version header is no failure, the round trip passes on every run,
and the capability probe reports what ADL's LRS does (Ralph's answers are in tests/test_doctor.py)."""

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
    lines = {line.split(":")[0]: line for line in second.splitlines()}
    assert lines["ok   LRS versions"] == (
        "ok   LRS versions: /about lists 1.0.0, 1.0.1, 1.0.2, 1.0.3, 2.0.0; lms-bridge writes 1.0.3 ([lrs] version); "
        '2.0.0 available: [lrs] version = "2.0.0" opts in'
    )
    assert lines["ok   LRS since"] == (
        "ok   LRS since: since/until filter on stored and ascending=true orders by stored; picked [ledger] "
        'since_filter "stored" and source-LRS mode "since" (configured "none": "stored" reads only new statements)'
    )
    assert "hidden from GET statements and served by voidedStatementId" in lines["ok   LRS voided"]
    assert "answered 409 (as ADL's LRS)" in lines["ok   LRS re-post"]
    # Read-only: the same answers where a read suffices, nothing written.
    read_only = deployment.run("doctor", check=True).stdout
    assert "ok   LRS round trip: not written" in read_only and "ok   LRS re-post: not probed" in read_only
    assert lines["ok   LRS since"] in read_only.splitlines()


def test_doctor_accepts_xapi_2_0_on_adl(
    adl: AdlLRS, tmp_path: Path, make_deployment: Callable[..., Deployment]
) -> None:
    deployment = make_deployment(
        f"sqlite:///{tmp_path / 'state.db'}", adl.url, adl.password, lrs_options='version = "2.0.0"'
    )
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = "conformance-pseudonym-key-0123456789"
    out = deployment.run("doctor", check=True).stdout
    assert "ok   LRS versions: /about lists 1.0.0, 1.0.1, 1.0.2, 1.0.3, 2.0.0; lms-bridge writes 2.0.0" in out
