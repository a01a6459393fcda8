"""Alerts: ``serve`` tells an operator by e-mail or Telegram when something needs a person, and when it recovers.

Four conditions are read from the state store (so they say the same whichever process did the
work): a source whose last ``failed_runs`` syncs all failed, dead letters in the outbox, a pending
statement older than ``pending_hours``, and a synced source with no successful pull for
``silent_hours``. Each condition is announced once when it starts and once when it ends; a
message that could not be delivered is tried again at the next check. Messages name sources,
counts and ages only: no person, NIP, name or message text (the store's errors are redacted).

The announced conditions live in the ``serve`` process: after a restart, a condition still present
is announced again (a repeated message is better than a missed one).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import requests
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.alerts import AlertSettings, EmailTarget, TelegramTarget
from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.ingest import runner as sync_core
from lms_bridge.redaction import redact
from lms_bridge.store.models import Run, utcnow

log = logging.getLogger(__name__)

#: Run statuses that count as a failed sync (a killed run is one too).
FAILED = ("failed", "abandoned")


@dataclass(frozen=True)
class Condition:
    """Something an operator should know, as one sentence.

    Attributes:
        key: a stable id (``failing:SITE``, ``dead_letters``, ``pending``, ``silent:SITE``).
        text: the sentence, naming what to run; no personal data.
    """

    key: str
    text: str


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def current_conditions(engine: Engine, settings: Settings, now: datetime | None = None) -> list[Condition]:
    """The conditions true now, read from the state store."""
    now = now or utcnow()
    config = settings.alerts
    found: list[Condition] = []
    try:
        sources = [source for source, _streams in sync_core.sync_sources(settings)]
    except ConfigError:
        sources = []
    with Session(engine) as session:
        for source in sources:
            recent = session.execute(
                select(Run.status, Run.error)
                .where(Run.command == "sync", Run.site_id == source.id, Run.status != "running")
                .order_by(Run.id.desc())
                .limit(config.failed_runs)
            ).all()
            if len(recent) == config.failed_runs and all(status in FAILED for status, _error in recent):
                last = redact((recent[0][1] or "no reason recorded").splitlines()[0])[:300]
                found.append(
                    Condition(
                        f"failing:{source.id}",
                        f"source {source.id}: its last {config.failed_runs} syncs failed; the last said: {last} "
                        f"(lms-bridge runs list --site {source.id})",
                    )
                )
            last_ok = session.scalar(
                select(func.max(Run.finished_at)).where(
                    Run.command == "sync", Run.site_id == source.id, Run.status == "ok"
                )
            )
            since = last_ok or session.scalar(select(func.min(Run.started_at)).where(Run.site_id == source.id))
            if isinstance(since, str):  # SQLite aggregates bypass the column type
                since = datetime.fromisoformat(since)
            if since is not None and since.tzinfo is None:
                since = since.replace(tzinfo=now.tzinfo)
            if since is not None and now - since > timedelta(hours=config.silent_hours):
                what = f"since {since:%Y-%m-%d %H:%M} UTC" if last_ok else "ever (it has runs, none ok)"
                found.append(
                    Condition(
                        f"silent:{source.id}",
                        f"source {source.id} has not pulled successfully {what}, over {config.silent_hours:g} h "
                        f"(lms-bridge sites test {source.id})",
                    )
                )
    counts = store.outbox_counts(engine)
    if counts.dead:
        found.append(
            Condition(
                "dead_letters",
                f"{counts.dead} statement(s) were refused by the LRS and wait as dead letters "
                "(lms-bridge outbox list --status dead)",
            )
        )
    if counts.oldest_pending_at is not None and now - counts.oldest_pending_at > timedelta(hours=config.pending_hours):
        found.append(
            Condition(
                "pending",
                f"the oldest of {counts.pending} statement(s) waiting for the LRS is "
                f"{_hours(now - counts.oldest_pending_at)} old (over {config.pending_hours:g} h): "
                "is the LRS reachable? (lms-bridge outbox flush)",
            )
        )
    return found


def send_email(target: EmailTarget, settings: Settings, subject: str, body: str) -> None:
    """Send one plain-text message through the target's SMTP server.

    Raises:
        LmsBridgeError: the server refused or could not be reached (one sentence).
    """
    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = ", ".join(target.to)
    message["Subject"] = subject
    message.set_content(body)
    password = settings.optional_secret(target.password_env) if target.username else None
    try:
        smtp_class = smtplib.SMTP_SSL if target.ssl else smtplib.SMTP
        with smtp_class(target.host, target.port, timeout=target.timeout) as smtp:
            if target.starttls and not target.ssl:
                smtp.starttls(context=ssl.create_default_context())
            if target.username:
                if password is None:
                    raise LmsBridgeError(f"alert e-mail: {target.password_env} is not set for {target.username}")
                smtp.login(target.username, password.get_secret_value())
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise LmsBridgeError(f"alert e-mail through {target.host}:{target.port} failed: {redact(str(exc))}") from None


def send_telegram(target: TelegramTarget, settings: Settings, text: str) -> None:
    """Post one message in the target chat through the Bot API.

    Raises:
        LmsBridgeError: the token is not set, or the Bot API refused or could not be reached.
    """
    token = settings.optional_secret(target.token_env)
    if token is None:
        raise LmsBridgeError(f"alert Telegram: {target.token_env} is not set")
    url = f"{target.api_url.rstrip('/')}/bot{token.get_secret_value()}/sendMessage"
    try:
        answer = requests.post(url, json={"chat_id": target.chat_id, "text": text}, timeout=target.timeout)
        body = answer.json() if answer.content else {}
    except (requests.RequestException, ValueError) as exc:
        raise LmsBridgeError(f"alert Telegram: the Bot API could not be reached: {redact(str(exc))}") from None
    if not answer.ok or not body.get("ok"):
        described = redact(str(body.get("description") or answer.reason))
        raise LmsBridgeError(f"alert Telegram: the Bot API answered {answer.status_code}: {described}")


def deliver(settings: Settings, subject: str, body: str) -> list[str]:
    """Send ``subject`` and ``body`` to every target; return one sentence per target that failed."""
    failures: list[str] = []
    for target in settings.alerts.targets:
        try:
            if isinstance(target, EmailTarget):
                send_email(target, settings, subject, body)
            else:
                send_telegram(target, settings, f"{subject}\n{body}")
        except LmsBridgeError as exc:
            failures.append(str(exc))
    return failures


def _subject(settings: Settings, what: str) -> str:
    who = settings.report.institution or "lms-bridge"
    return f"[lms-bridge] {who}: {what}"


class Alerter:
    """Announces conditions as they start and end (``serve``'s ``alerts`` job).

    Args:
        engine: the state store.
        settings: the configuration (its ``[alerts]``).
        send: the delivery function (default :func:`deliver`), returning failures.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        send: Callable[[Settings, str, str], list[str]] = deliver,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.send = send
        #: Conditions announced and not yet recovered: key -> sentence.
        self.active: dict[str, str] = {}

    def check(self, now: datetime | None = None) -> list[str]:
        """Evaluate the conditions once; send what started and what ended; return the subjects sent."""
        current = {c.key: c.text for c in current_conditions(self.engine, self.settings, now)}
        sent: list[str] = []
        changes = [(key, text, True) for key, text in current.items() if key not in self.active]
        changes += [(key, text, False) for key, text in self.active.items() if key not in current]
        for key, text, started in changes:
            subject = _subject(self.settings, ("ALERT " if started else "RECOVERED ") + key)
            body = text if started else f"recovered: {text}"
            failures = self.send(self.settings, subject, body)
            if failures:
                # Not marked: the next check tries this announcement again.
                for failure in failures:
                    log.warning("alerts: %s", failure)
                continue
            if started:
                self.active[key] = text
            else:
                del self.active[key]
            sent.append(subject)
        return sent


def require_targets(config: AlertSettings) -> None:
    """Refuse to test alerts with no target configured.

    Raises:
        ConfigError: no ``[alerts.email]`` or ``[alerts.telegram]``.
    """
    if not config.targets:
        raise ConfigError("no alert target is configured: add [alerts.email] or [alerts.telegram] to the config")
