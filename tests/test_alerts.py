"""Alerts: conditions read from a real state store, sent to a real SMTP server (aiosmtpd) and the fake
Telegram Bot API over HTTP; announced once when they start, once when they end, retried when undelivered."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from fakes.telegram_bot import FakeTelegramBot
from lms_bridge import store
from lms_bridge.config.settings import Settings, load_settings
from lms_bridge.runtime.alerts import Alerter, current_conditions, deliver
from lms_bridge.store.models import OutboxRow, Run, utcnow

BOT_TOKEN = "987654:alert-bot-token"
CHAT = "-1009990001"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox, port = _Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def bot() -> Iterator[FakeTelegramBot]:
    with FakeTelegramBot(token=BOT_TOKEN) as fake:
        fake.known_chats.add(CHAT)
        yield fake


def _settings(tmp_path: Path, smtp_port: int, bot_url: str, *, chat: str = CHAT) -> Settings:
    config = tmp_path / "lms-bridge.toml"
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"LMS_BRIDGE_ALERT_BOT_TOKEN={BOT_TOKEN}\n", encoding="utf-8")
    secrets.chmod(0o600)
    config.write_text(
        f"""
[state]
url = "sqlite:///{tmp_path / "state.db"}"
[secrets]
file = "secrets.env"
[report]
institution = "BKPSDM Kota Contoh"
[alerts]
failed_runs = 2
pending_hours = 1
silent_hours = 24
[alerts.email]
host = "127.0.0.1"
port = {smtp_port}
starttls = false
sender = "lms-bridge@contoh.go.id"
to = ["operator@contoh.go.id"]
[alerts.telegram]
chat_id = "{chat}"
api_url = "{bot_url}"
[[sources]]
id = "lms-utama"
type = "moodle"
url = "http://127.0.0.1:9"
token_env = "MOODLE_TOKEN_UTAMA"
""",
        encoding="utf-8",
    )
    return load_settings(config, environ={})


def _run(engine: Engine, status: str, *, error: str | None = None, age: timedelta = timedelta(0)) -> None:
    run_id = store.start_run(engine, "sync", "lms-utama")
    store.finish_run(engine, run_id, status=status, counts={}, error=error)
    with Session(engine) as session:
        started = utcnow() - age
        session.execute(update(Run).where(Run.id == run_id).values(started_at=started, finished_at=started))
        session.commit()


def test_a_failing_source_is_announced_once_on_both_targets_and_its_recovery_once(tmp_path, smtp, bot) -> None:
    inbox, port = smtp
    settings = _settings(tmp_path, port, bot.url)
    engine = store.open_engine(settings.state.url, None)
    alerter = Alerter(engine, settings)
    _run(engine, "ok")
    assert alerter.check() == [] and inbox.messages == [] and bot.sent == []

    _run(engine, "failed", error="site lms-utama: core_course_get_courses: invalidtoken (Invalid token)")
    assert alerter.check() == []  # one failure of two: not yet
    _run(engine, "failed", error="site lms-utama: core_course_get_courses: invalidtoken (Invalid token)")
    sent = alerter.check()
    assert sent == ["[lms-bridge] BKPSDM Kota Contoh: ALERT failing:lms-utama"]
    (mail,) = inbox.messages
    assert mail["Subject"] == sent[0] and mail["To"] == "operator@contoh.go.id"
    assert "its last 2 syncs failed" in mail.get_payload() and "invalidtoken" in mail.get_payload()
    (chat,) = bot.sent
    assert chat["chat_id"] == CHAT and chat["text"].startswith(sent[0]) and "lms-utama" in chat["text"]

    assert alerter.check() == []  # still failing: nothing new
    _run(engine, "ok")
    assert alerter.check() == ["[lms-bridge] BKPSDM Kota Contoh: RECOVERED failing:lms-utama"]
    assert len(inbox.messages) == 2 and len(bot.sent) == 2 and "recovered:" in bot.sent[1]["text"]


def test_dead_letters_old_pending_and_a_silent_source_are_conditions(tmp_path, smtp, bot) -> None:
    inbox, port = smtp
    settings = _settings(tmp_path, port, bot.url)
    engine = store.open_engine(settings.state.url, None)
    _run(engine, "ok", age=timedelta(hours=30))
    with Session(engine) as session:
        for index, (status, age) in enumerate((("dead", 0), ("pending", 2), ("pending", 0))):
            session.add(
                OutboxRow(
                    statement_id=f"00000000-0000-0000-0000-00000000000{index}",
                    body="{}",
                    body_sha256="0" * 64,
                    status=status,
                    created_at=utcnow() - timedelta(hours=age),
                )
            )
        session.commit()
    found = {c.key: c.text for c in current_conditions(engine, settings)}
    assert set(found) == {"silent:lms-utama", "dead_letters", "pending"}
    assert found["dead_letters"].startswith("1 statement(s) were refused")
    assert "oldest of 2 statement(s)" in found["pending"] and "2.0 h old" in found["pending"]
    assert "over 24 h" in found["silent:lms-utama"]
    # Nothing personal goes out: no NIP, statement body or id in any message.
    for text in found.values():
        assert "00000000-" not in text


def test_an_undelivered_alert_is_tried_again_and_a_bad_target_is_one_sentence(tmp_path, smtp, bot) -> None:
    inbox, port = smtp
    settings = _settings(tmp_path, port, bot.url, chat="-100404")  # a chat the bot is not in
    engine = store.open_engine(settings.state.url, None)
    for _ in range(2):
        _run(engine, "failed", error="boom")
    alerter = Alerter(engine, settings)
    assert alerter.check() == [] and alerter.active == {}  # Telegram refused: not marked as announced
    assert len(inbox.messages) == 1
    failures = deliver(settings, "s", "b")
    assert failures == ["alert Telegram: the Bot API answered 400: Bad Request: chat not found"]
    bot.known_chats.add("-100404")
    assert alerter.check() == ["[lms-bridge] BKPSDM Kota Contoh: ALERT failing:lms-utama"]
    assert BOT_TOKEN not in " ".join(failures)


def test_alerts_commands_check_and_test_targets(tmp_path, smtp, bot) -> None:
    import os
    import subprocess
    import sys

    from tests.fixtures.deployment import ROOT

    inbox, port = smtp
    settings = _settings(tmp_path, port, bot.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_BRIDGE_")} | {"PYTHONPATH": str(ROOT)}

    def cli(*args: str, config: Path = tmp_path / "lms-bridge.toml") -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "lms_bridge.cli", "--config", str(config), *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    quiet = cli("alerts", "check")
    assert quiet.returncode == 0 and quiet.stdout.startswith("ok: no source failing"), quiet.stderr
    engine = store.open_engine(settings.state.url, None)
    for _ in range(2):
        _run(engine, "failed", error="boom")
    loud = cli("alerts", "check")
    assert loud.returncode == 1 and "ALERT failing:lms-utama" in loud.stdout and inbox.messages == []
    tested = cli("alerts", "test")
    assert tested.returncode == 0 and "a test message went to 2 target(s)" in tested.stdout, tested.stderr
    assert len(inbox.messages) == 1 and len(bot.sent) == 1
    bare = tmp_path / "bare.toml"
    bare.write_text(f'[state]\nurl = "sqlite:///{tmp_path / "bare.db"}"\n', encoding="utf-8")
    none = cli("alerts", "test", config=bare)
    assert none.returncode == 2 and "no alert target is configured" in none.stderr
