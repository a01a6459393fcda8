"""``lms-bridge init``: a starter config and a 0600 secrets file that load, fresh keys, never an overwrite.

The CLI runs as a real subprocess in an empty folder with no inherited ``LMS_BRIDGE_*`` variable.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from lms_bridge.config.settings import load_settings
from tests.fixtures.deployment import ROOT


def _init(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LMS_BRIDGE_")}
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "lms_bridge.cli", "init", "--dir", str(folder), *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
        stdin=subprocess.DEVNULL,
    )


def _keys(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_init_writes_a_config_that_loads_and_owner_only_secrets_with_fresh_keys(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    result = _init(
        first,
        "--no-input",
        "--institution",
        "BKPSDM Kota Contoh",
        "--timezone",
        "Asia/Makassar",
        "--lrs-url",
        "https://lrs.contoh.go.id/xAPI",
        env={"LMS_BRIDGE_LRS_PASSWORD": "rahasia-lrs-123"},
    )
    assert result.returncode == 0, result.stderr
    assert "rahasia-lrs-123" not in result.stdout + result.stderr
    config, secrets = first / "lms-bridge.toml", first / "secrets.env"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    settings = load_settings(config, environ={})
    assert settings.report.institution == "BKPSDM Kota Contoh"
    assert settings.deployment.timezone == "Asia/Makassar"
    assert settings.lrs.url == "https://lrs.contoh.go.id/xAPI/"
    assert settings.secret(settings.lrs.password_env).get_secret_value() == "rahasia-lrs-123"
    assert "rahasia-lrs-123" not in config.read_text(encoding="utf-8")
    key = settings.secret(settings.deployment.pseudonym_key_env).get_secret_value()
    assert len(key) == 64 and settings.secret(settings.web.secret_key_env).get_secret_value() != key

    assert _init(second, "--no-input", "--institution", "Biro SDM").returncode == 0
    assert _keys(second / "secrets.env")["LMS_BRIDGE_PSEUDONYM_KEY"] != key  # generated, not a constant
    assert "LMS_BRIDGE_LRS_PASSWORD" not in _keys(second / "secrets.env")  # a placeholder comment instead


def test_init_never_overwrites_and_writes_nothing_for_a_bad_answer(tmp_path: Path) -> None:
    assert _init(tmp_path, "--no-input", "--institution", "Biro SDM").returncode == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = _init(tmp_path, "--no-input", "--institution", "Lain")
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    empty = tmp_path / "empty"
    empty.mkdir()
    for args, words in (
        (("--timezone", "Asia/Jakartaa", "--institution", "X"), "unknown time zone"),
        (("--institution", "X", "--lrs-url", "https://u:p@lrs.example/xAPI/"), "user name or password"),
        (("--institution", "X", "--state-url", "mysql://db"), "state database"),
        ((), "institution name is empty"),
    ):
        result = _init(empty, "--no-input", *args)
        assert result.returncode == 2 and words in result.stderr, (args, result.stderr)
        assert list(empty.iterdir()) == []


def test_demo_without_ralph_says_how_to_get_one_and_starts_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lms_bridge.cli", "demo", "--no-web", "--dir", str(tmp_path / "demo")],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("LMS_BRIDGE_")}, "PYTHONPATH": str(ROOT)}
        | {"LMS_BRIDGE_LRS_VENV": str(tmp_path / "no-such-venv")},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no Ralph LRS venv" in result.stderr and "lms-bridge demo --install-lrs" in result.stderr
    assert not (tmp_path / "demo").exists()
