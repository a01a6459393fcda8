"""Voids an older version queued with ``context.platform``: ADL's LRS refuses that form, the flush repairs it.

The same flow as tests/test_old_voids.py (Ralph), on ADL's LRS: the old form is answered
400 (every such void was a dead letter before), the flush posts the repaired form and
nothing is dead-lettered; the voided targets are then hidden, as the specification says.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.conftest import AdlLRS
from tests.test_old_voids import flush_old_voids

pytestmark = pytest.mark.conformance


def test_old_style_voids_flush_into_adl(tmp_path: Path, adl: AdlLRS) -> None:
    held = flush_old_voids(f"sqlite:///{tmp_path / 'state.db'}", adl.url, adl.username, adl.password, strict=True)
    assert all("platform" not in statement.get("context", {}) for statement in held.values())
