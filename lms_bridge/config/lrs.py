"""The LRS client every command uses, built from ``[lrs]`` (credentials, time-out, xAPI version)."""

from __future__ import annotations

from lms_bridge.config.settings import Settings
from xapi.lrs_client import LRSClient


def lrs_client(settings: Settings, *, timeout: float | None = None) -> LRSClient:
    """An LRS client for ``[lrs]``; ``timeout`` overrides ``[lrs] timeout`` (doctor keeps it short)."""
    lrs = settings.lrs
    return LRSClient(
        lrs.url,
        lrs.username,
        settings.secret(lrs.password_env),
        timeout=lrs.timeout if timeout is None else timeout,
        version=lrs.version,
    )
