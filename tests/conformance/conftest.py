"""ADL's reference LRS for the conformance suite (issue 24): started from ``../shared/adl-lrs``, stopped at the end.

Opt in: ``pytest -m conformance`` (``.ci/run`` does it when ``../shared/adl-lrs`` exists).
A plain ``pytest`` deselects these tests; asking for them without the folder stops the
run with one line that says how to provide it (never a silent skip).

``start.sh WORKDIR PORT`` builds a venv for ADL's LRS in WORKDIR (about a minute once);
the suite keeps it in ``var/adl-lrs/venv`` and links it into each instance's own
WORKDIR, so an instance starts in about 15 s (a new PostgreSQL database, migrated).
Every instance binds 127.0.0.1 and is stopped (``stop.sh``, which drops its database)
when its fixture ends.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lms_bridge.demo.ralph import free_port

ROOT = Path(__file__).resolve().parents[2]
#: The only place besides tests/real_moodle that reads ../shared (issue 24).
ADL_DIR = ROOT.parent / "shared" / "adl-lrs"
VENV_CACHE = ROOT / "var" / "adl-lrs"
PASSWORD = os.environ.get("ADL_LRS_PASSWORD", "lrs-test-pass-1")
HOW_TO_PROVIDE = (
    f"the conformance suite needs ADL's LRS kit in {ADL_DIR} (start.sh WORKDIR PORT, stop.sh WORKDIR, "
    "adl-lrs-src.tar.gz: see docs/conformance.md); provide it, or run pytest without -m conformance"
)


def _asked_for(config: pytest.Config) -> bool:
    """Whether this run selects the conformance suite: ``-m`` naming it, or a path into it."""
    expression = config.option.markexpr or ""
    if "conformance" in expression and "not conformance" not in expression:
        return True
    return any("conformance" in str(arg) for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if item.get_closest_marker("conformance")]
    if not ours:
        return
    if not _asked_for(config):
        items[:] = [item for item in items if not item.get_closest_marker("conformance")]
        config.hook.pytest_deselected(items=ours)
        return
    if not (ADL_DIR / "start.sh").is_file():
        raise pytest.UsageError(HOW_TO_PROVIDE)


@dataclass(frozen=True)
class AdlLRS:
    """One running ADL LRS: its xAPI endpoint and the write user."""

    url: str
    workdir: Path
    username: str = "lms-bridge"
    password: str = PASSWORD


def _cached_venv() -> Path:
    """The venv ADL's LRS runs in, built once by ``start.sh`` into ``var/adl-lrs/venv``."""
    venv = VENV_CACHE / "venv"
    if not (venv / "bin" / "gunicorn").exists():
        VENV_CACHE.mkdir(parents=True, exist_ok=True)
        port = free_port()
        subprocess.run([str(ADL_DIR / "start.sh"), str(VENV_CACHE), str(port)], check=True, capture_output=True)
        subprocess.run([str(ADL_DIR / "stop.sh"), str(VENV_CACHE)], check=True, capture_output=True)
    return venv


def start_adl(workdir: Path) -> AdlLRS:
    """Start an ADL LRS with a database of its own in ``workdir`` (stop it with :func:`stop_adl`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    link = workdir / "venv"
    if not link.exists():
        link.symlink_to(_cached_venv())
    started = subprocess.run(
        [str(ADL_DIR / "start.sh"), str(workdir), str(free_port())], capture_output=True, text=True, timeout=600
    )
    found = re.search(r"ADL_LRS_URL=(\S+)", started.stdout)
    if started.returncode != 0 or found is None:
        stop_adl(workdir)
        raise RuntimeError(f"ADL's LRS did not start: {started.stderr.strip()[-500:]}")
    return AdlLRS(url=found.group(1), workdir=workdir)


def stop_adl(workdir: Path) -> None:
    subprocess.run([str(ADL_DIR / "stop.sh"), str(workdir)], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def adl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdlLRS]:
    """One ADL LRS for the session (tests that count everything use :func:`fresh_adl`)."""
    workdir = tmp_path_factory.mktemp("adl-session")
    lrs = start_adl(workdir)
    try:
        yield lrs
    finally:
        stop_adl(workdir)


@pytest.fixture
def fresh_adl(tmp_path: Path) -> Iterator[AdlLRS]:
    """An empty ADL LRS for a test that counts everything the LRS holds."""
    lrs = start_adl(tmp_path / "adl")
    try:
        yield lrs
    finally:
        stop_adl(tmp_path / "adl")
