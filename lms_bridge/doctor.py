"""``lms-bridge doctor``: one check per line, each with the fix when it fails."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lms_bridge import store
from lms_bridge.config import Settings
from lms_bridge.errors import LmsBridgeError
from xapi.lrs_client import LRSClient


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def _config(settings: Settings) -> Check:
    where = str(settings.config_path) if settings.config_path else "built-in defaults (no config file)"
    sources = ", ".join(f"{s.id} ({s.type})" for s in settings.sources) or "no sources"
    return Check("config", True, f"{where}; {sources}")


def _database(settings: Settings, base_dir: Path | None) -> Check:
    try:
        # Like every command, doctor migrates the store on start; a failure is the finding.
        engine = store.open_engine(settings.state.url, base_dir)
        current = store.current_revision(engine)
    except LmsBridgeError as exc:
        return Check("state database", False, str(exc), "check [state] url and that the database server runs")
    return Check("state database", True, f"{store.describe(engine)} at revision {current}")


def _lrs(settings: Settings) -> list[Check]:
    lrs = settings.lrs
    try:
        password = settings.secret(lrs.password_env)
    except LmsBridgeError as exc:
        fix = f"export {lrs.password_env}=... or add it to the secrets file"
        return [Check("LRS credentials", False, str(exc), fix)]
    checks = [Check("LRS credentials", True, f"user {lrs.username}, password from {lrs.password_env}")]
    with LRSClient(lrs.url, lrs.username, password, timeout=min(lrs.timeout, 10.0)) as client:
        try:
            next(iter(client.iter_statements({"limit": 1})), None)
        except LmsBridgeError as exc:
            return [*checks, Check("LRS", False, str(exc), "check [lrs] url, the LRS server and the credentials")]
    return [*checks, Check("LRS", True, f"{lrs.url} answers and accepts the credentials")]


def run_checks(settings: Settings, base_dir: Path | None = None) -> list[Check]:
    """Run every check and return the results in order.

    Args:
        settings: the configuration.
        base_dir: the folder relative SQLite paths are taken from.
    """
    return [_config(settings), _database(settings, base_dir), *_lrs(settings)]
