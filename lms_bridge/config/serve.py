"""``[serve]``: the schedules of ``lms-bridge serve`` (a leaf: :mod:`lms_bridge.config.settings` imports it).

Cron expressions are evaluated in the deployment's time zone. Five fields (minute hour
day month weekday) as in crontab, or six with seconds first; ``off`` switches a job off.

Usage (``lms-bridge.toml``)::

    [serve]
    port = 9480
    sync = "0 * * * *"          # each Moodle site and source LRS, hourly
    flush = "*/5 * * * *"
    jp = "0 3 * * *"
    ledger = "30 * * * *"
    inbox = "*/10 * * * *"     # the [[inboxes]] folders
    recheck = "0 2 * * *"      # each Moodle site's completions of the last recheck_days, again
    recheck_days = 7
    [serve.sites]
    kemenpan = "15 */2 * * *"   # this site every two hours instead
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Words that switch a job off instead of a cron expression.
OFF = frozenset({"", "off", "never", "none"})
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(expression: str, timezone: str | ZoneInfo) -> Any:
    """Parse a cron expression into an APScheduler trigger (None for ``off``).

    Five fields (minute hour day month weekday) as in crontab, or six with seconds
    first. Weekday numbers mean what they mean in crontab (0 and 7 are Sunday);
    APScheduler 3 counts from Monday, so numbers are turned into names here.

    Raises:
        ValueError: an expression that is not valid cron.
    """
    from apscheduler.triggers.cron import CronTrigger

    text = expression.strip()
    if text.lower() in OFF:
        return None
    fields = text.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            # Not echoed: a value in the wrong key may be a pasted secret.
            f"not a cron expression ({len(fields)} fields): give 5 fields (minute hour day month weekday) "
            "or 6 with seconds first, or 'off'"
        )
    second = fields[0] if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields[-5:]
    if "/" in weekday and re.search(r"\d", weekday.split("/")[0] or "*"):
        raise ValueError(f"{expression!r}: write weekday steps with names (mon-fri) or lists (1,3,5)")
    if "/" in weekday and weekday.split("/")[0] in ("*", ""):
        raise ValueError(f"{expression!r}: weekday steps (*/2) are ambiguous; list the days (sun,tue,thu,sat)")
    weekday = re.sub(r"\d+", lambda m: _DAYS[int(m.group())] if int(m.group()) <= 7 else m.group(), weekday)
    zone = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    return CronTrigger(
        second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=weekday, timezone=zone
    )


class ServeSettings(BaseModel):
    """``[serve]``: schedules of ``lms-bridge serve`` (cron expressions, deployment time zone).

    Attributes:
        port: port of /healthz and /metrics on 127.0.0.1 (0: any free port).
        sync: when each Moodle site and source LRS is synced (default hourly).
        flush: when the outbox is posted to the LRS (default every 5 minutes).
        jp: when JP records are computed (default daily at 03:00).
        ledger: when the ledger is mirrored from the LRS (default hourly, at :30).
        inbox: when the ``[[inboxes]]`` folders are imported (default every 10 minutes).
        recheck: when each Moodle site's completion streams are re-read over the last
            ``recheck_days`` (default daily at 02:00): a rolling backfill that picks up what
            Moodle completes long after the person's last visit (a grade, a meeting's end).
        recheck_days: the re-check window, in days (default 7).
        sites: per-source schedules that replace ``sync`` for that source (``off`` skips it).
        lock_ttl: seconds a SQLite lock of a killed job lives on.
        stop_timeout: seconds SIGTERM waits for running jobs before abandoning them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    port: int = Field(default=9480, ge=0, le=65535)
    sync: str = "0 * * * *"
    flush: str = "*/5 * * * *"
    jp: str = "0 3 * * *"
    ledger: str = "30 * * * *"
    inbox: str = "*/10 * * * *"
    recheck: str = "0 2 * * *"
    recheck_days: int = Field(default=7, ge=1, le=366)
    sites: dict[str, str] = Field(default_factory=dict)
    lock_ttl: float = Field(default=120.0, gt=0)
    stop_timeout: float = Field(default=60.0, ge=0)

    @field_validator("sync", "flush", "jp", "ledger", "inbox", "recheck")
    @classmethod
    def _cron(cls, value: str) -> str:
        cron_trigger(value, "UTC")
        return value

    @field_validator("sites")
    @classmethod
    def _site_crons(cls, value: dict[str, str]) -> dict[str, str]:
        for expression in value.values():
            cron_trigger(expression, "UTC")
        return value
