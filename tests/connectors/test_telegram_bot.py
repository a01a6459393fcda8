"""Live Telegram pulls: the real CLI against the fake Bot API (real HTTP on 127.0.0.1), SQLite, real Ralph.

The fake's updates mirror the sample export ``telegram_single_chat.json`` (chat ``1000000001``, a
``private_supergroup``: ``-1001000000001`` in the Bot API), so a pull followed by an import of that
export proves that an export of a period already pulled adds nothing.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.telegram_bot import TelegramBotSettings, export_chat_id
from fakes.telegram_bot import FakeTelegramBot, group, user
from tests.fixtures.data import COMMUNITY_EXPORTS
from tests.fixtures.deployment import Deployment
from tests.fixtures.lrs import lrs_statements
from tests.proof.support import CAPTURED
from xapi.ids import statement_id

# A test bot token: test_zz_secrets greps every captured output for it (see tests/proof).
TOKEN = "7001234567:AAH-tg-test-token-5f1e9c"  # noqa: S105
TOKEN_ENV = "TG_BOT_TOKEN"
PSEUDONYM_KEY = "tg-bot-test-pseudonym-key-0c4d7e"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://lms-bridge.id/xapi")
CHAT = group(-1001000000001, "CoP Widyaiswara Angkatan 7")  # the fixture's chat, as the Bot API gives it
OTHER_CHAT = group(-1009999999999, "Not a CoP")
COMMUNITY = "cop-wi-7"
TEXT_2 = "Topik hari ini: evaluasi level 3"


def _sid(kind: str, message_id: int) -> str:
    return statement_id(NAMESPACE, f"telegram|{COMMUNITY}|{kind}|1000000001:{message_id}")


@pytest.fixture
def bot() -> Iterator[FakeTelegramBot]:
    with FakeTelegramBot(TOKEN, max_poll_seconds=0.5) as fake:
        yield fake


def _deploy(
    make_deployment, tmp_path: Path, lrs_url: str, lrs_password: str, fake: FakeTelegramBot, extra: str = ""
) -> Deployment:
    toml = (
        f'\n[[sources]]\nid = "tg"\ntype = "telegram_bot"\ntoken_env = "{TOKEN_ENV}"\napi_url = "{fake.url}"\n'
        f'timeout = 1\nbackoff_base = 0.05\nchats = {{ "-1001000000001" = "{COMMUNITY}" }}\n{extra}\n'
    )
    deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", lrs_url, lrs_password, extra_toml=toml)
    deployment.env[TOKEN_ENV] = TOKEN
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = PSEUDONYM_KEY
    CAPTURED.databases.append(tmp_path / "state.db")
    return deployment


def _run(deployment: Deployment, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the CLI; its output joins the proof suite's secrets search, and never holds the token."""
    result = deployment.run(*args, timeout=timeout)
    output = result.stdout + result.stderr
    CAPTURED.output(f"lms-bridge {' '.join(args)} (telegram bot test)", output)
    assert TOKEN not in output and TOKEN.split(":")[1] not in output
    return result


def _db(tmp_path: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(tmp_path / "state.db") as connection:
        return connection.execute(sql, params).fetchall()


def _cursor(tmp_path: Path) -> dict | None:
    rows = _db(tmp_path, "select position from cursors where site_id = 'tg' and stream = 'updates'")
    return json.loads(rows[0][0]) if rows else None


def _outbox_ids(tmp_path: Path) -> list[str]:
    return [row[0] for row in _db(tmp_path, "select statement_id from outbox")]


def _first_batch(fake: FakeTelegramBot) -> None:
    fake.add_message(chat=CHAT, message_id=2, date=1710209700, sender=user(100000001), text=TEXT_2)
    fake.add_message(
        chat=CHAT,
        message_id=3,
        date=1710210000,
        sender=user(100000002),
        text="Setuju, lihat https://lms.example.org/mod/forum",
        reply_to_message={"message_id": 2, "date": 1710209700, "chat": CHAT, "text": TEXT_2},
    )
    fake.add_message(chat=CHAT, message_id=30, date=1710208800, sender=user(100000001), video_chat_started={})
    fake.add_message(
        chat=CHAT, message_id=4, date=1710212400, sender=user(100000001), video_chat_ended={"duration": 3600}
    )
    fake.add_message(
        chat=CHAT, message_id=7, date=1710291600, sender=user(100000004), new_chat_members=[user(100000004)]
    )
    fake.add_message(
        chat=CHAT, message_id=31, date=1710291700, sender=user(1087968824), sender_chat=CHAT, text="an anonymous admin"
    )
    fake.add_message(chat=OTHER_CHAT, message_id=1, date=1710291800, sender=user(100000005), text="elsewhere")


def test_pulls_first_then_only_new_updates_and_an_export_adds_nothing(make_deployment, ralph, tmp_path, bot):
    deployment = _deploy(make_deployment, tmp_path, ralph.url, ralph.password, bot)
    _first_batch(bot)

    first = _run(deployment, "sync")
    assert first.returncode == 0, first.stderr
    assert "│ tg   │ updates │ 7    │ 3   │ 0" in first.stdout
    for skipped in (
        "1 joins and leaves",
        "1 calls started (counted when they end)",
        "1 messages sent as a channel or group",
        "1 messages of chats not in chats",
    ):
        assert skipped in first.stdout
    offset = _cursor(tmp_path)["offset"]
    assert bot.pending == [] and bot.offsets[-1] == offset  # the final empty poll confirmed the committed page
    assert set(_outbox_ids(tmp_path)) == {
        _sid("message_posted", 2),
        _sid("message_replied", 3),
        _sid("meeting_attended", 4),
    }

    # New updates: message 5 (edited later, from the account the export shows as deleted) and a photo.
    bot.add_message(
        chat=CHAT, message_id=5, date=1710214200, sender=user(100000009), text="pesan dari akun yang sudah dihapus"
    )
    bot.add_message(
        chat=CHAT,
        message_id=6,
        date=1710290700,
        sender=user(100000003),
        photo=[{"file_id": "AgAD", "file_unique_id": "AQAD", "width": 1280, "height": 720}],
    )
    bot.add_message(
        chat=CHAT,
        message_id=5,
        date=1710214200,
        sender=user(100000009),
        edited=True,
        text="pesan dari akun yang sudah dihapus",
    )
    calls = len(bot.offsets)
    second = _run(deployment, "sync")
    assert second.returncode == 0, second.stderr
    assert "│ tg   │ updates │ 3    │ 2   │ 0" in second.stdout
    assert bot.offsets[calls] == offset  # it asked from the stored cursor: nothing read twice
    assert _cursor(tmp_path)["offset"] == offset + 3
    assert len(_outbox_ids(tmp_path)) == 5

    # The Telegram Desktop export of the same group and period: same ids and bodies, nothing new.
    imported = _run(
        deployment, "import", str(COMMUNITY_EXPORTS / "telegram_single_chat.json"), "--community", COMMUNITY
    )
    assert imported.returncode == 0, imported.stderr
    assert "5 activities" in imported.stdout and "added 0 statements to the outbox, 5 already there" in imported.stdout
    assert len(_outbox_ids(tmp_path)) == 5

    flushed = _run(deployment, "outbox", "flush")
    assert flushed.returncode == 0, flushed.stderr
    expected = {
        _sid("message_posted", 2),
        _sid("message_replied", 3),
        _sid("meeting_attended", 4),
        _sid("message_posted", 5),
        _sid("message_posted", 6),
    }
    in_lrs = [s for s in lrs_statements(ralph) if s["id"] in expected]
    assert sorted(s["id"] for s in in_lrs) == sorted(expected)  # each exactly once
    by_id = {s["id"]: s for s in in_lrs}
    reply = by_id[_sid("message_replied", 3)]
    assert reply["context"]["contextActivities"]["parent"][0]["id"].endswith("/chat/telegram/cop-wi-7/1000000001%3A2")
    assert reply["context"]["contextActivities"]["grouping"][0]["id"].endswith("/community/cop-wi-7")
    assert by_id[_sid("meeting_attended", 4)]["timestamp"] == "2024-03-12T03:00:00Z"
    # No message text or name anywhere in the store or the LRS: only pseudonyms and lengths.
    stored = (tmp_path / "state.db").read_bytes()
    assert TEXT_2.encode() not in stored and b"Member" not in stored
    assert TEXT_2 not in json.dumps(in_lrs) and "100000001" not in json.dumps(reply["actor"])


def test_rate_limits_server_errors_conflicts_and_a_bad_token(make_deployment, tmp_path, bot):
    deployment = _deploy(make_deployment, tmp_path, "http://127.0.0.1:9/xAPI/", "unused", bot)
    bot.add_message(chat=CHAT, message_id=2, date=1710209700, sender=user(100000001), text=TEXT_2)
    bot.inject_fault("429", retry_after=1)
    bot.inject_fault("502")
    bot.inject_fault("reset")
    started = time.monotonic()
    retried = _run(deployment, "sync")
    assert retried.returncode == 0, retried.stderr
    assert time.monotonic() - started >= 1.0  # it waited retry_after before asking again
    assert "the Bot API rate-limits getUpdates (429 Too Many Requests: retry after 1)" in retried.stderr
    assert "the Bot API answered getUpdates with HTTP 502" in retried.stderr
    assert "getUpdates failed (ConnectionError)" in retried.stderr
    assert "│ tg   │ updates │ 1    │ 1   │ 0" in retried.stdout
    cursor = _cursor(tmp_path)

    bot.add_message(chat=CHAT, message_id=3, date=1710210000, sender=user(100000002), text="later")
    bot.inject_fault("409-webhook")
    conflict = _run(deployment, "sync")
    assert conflict.returncode == 1
    error = [line for line in conflict.stderr.splitlines() if line.startswith("error:")]
    assert error == [
        "error: telegram bot source tg (" + bot.url + "): the Bot API refused getUpdates (409 Conflict: "
        "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook "
        "first): delete the bot's webhook (deleteWebhook) or give lms-bridge a bot of its own"
    ]
    assert _cursor(tmp_path) == cursor

    deployment.env[TOKEN_ENV] = "7001234567:AAH-wrong-token-000"
    refused = _run(deployment, "sync")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines()[-1] == (
        f"error: telegram bot source tg ({bot.url}): the Bot API refused the bot token (401 Unauthorized): put the "
        f"token @BotFather gave in {TOKEN_ENV} (environment or secrets file)"
    )
    assert "AAH-wrong-token" not in refused.stdout + refused.stderr
    assert _cursor(tmp_path) == cursor and bot.pending != []  # nothing confirmed, nothing moved
    assert _db(tmp_path, "select status from runs order by id desc limit 1") == [("failed",)]


def test_a_crash_between_pages_neither_loses_nor_doubles_and_a_dry_run_confirms_nothing(make_deployment, tmp_path, bot):
    deployment = _deploy(make_deployment, tmp_path, "http://127.0.0.1:9/xAPI/", "unused", bot, extra="limit = 2")
    ids = [
        bot.add_message(
            chat=CHAT, message_id=10 + n, date=1710209700 + n, sender=user(100000001 + n), text=f"message {n}"
        )
        for n in range(5)
    ]

    dry = _run(deployment, "sync", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert bot.offsets == [None] and bot.pending == ids  # one page read, none confirmed
    assert _cursor(tmp_path) is None

    bot.inject_fault("slow", after=1, seconds=3)  # the second page's request hangs: kill the sync there
    process = deployment.popen("sync")
    deadline = time.monotonic() + 20
    while bot.calls.get("getUpdates", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=10)
    CAPTURED.output("lms-bridge sync (killed, telegram bot test)", out + err)
    assert process.returncode == -signal.SIGKILL
    assert _cursor(tmp_path) == {"offset": ids[1] + 1} and len(_outbox_ids(tmp_path)) == 2
    assert set(ids[2:]) <= set(bot.pending)  # the killed run confirmed at most what it had committed

    again = _run(deployment, "sync")
    assert again.returncode == 0, again.stderr
    assert "│ tg   │ updates │ 3    │ 3   │ 0" in again.stdout
    assert sorted(_outbox_ids(tmp_path)) == sorted(_sid("message_posted", 10 + n) for n in range(5))
    assert _cursor(tmp_path) == {"offset": ids[-1] + 1} and bot.pending == []


def test_doctor_warns_when_the_last_pull_is_older_than_24_hours(make_deployment, tmp_path, bot):
    deployment = _deploy(make_deployment, tmp_path, "http://127.0.0.1:9/xAPI/", "unused", bot)
    assert _run(deployment, "sync").returncode == 0
    stale = (datetime.now(UTC) - timedelta(hours=25)).replace(tzinfo=None).isoformat(sep=" ")
    _db(tmp_path, "update runs set started_at = ?, finished_at = ? where site_id = 'tg'", stale, stale)
    doctor = _run(deployment, "doctor")
    assert doctor.returncode == 1
    line = next(line for line in doctor.stdout.splitlines() if "telegram bot tg" in line)
    assert line.startswith("FAIL telegram bot tg: last successful pull ") and "(25 h ago)" in line
    assert (
        "Telegram keeps a bot's updates for 24 h only, so messages may be lost -> run lms-bridge sync --site tg" in line
    )


def test_chat_ids_in_either_form_name_one_chat():
    assert export_chat_id(-1001000000001) == 1000000001  # supergroup
    assert export_chat_id(-123456789) == 123456789  # basic group
    assert export_chat_id(1000000001) == 1000000001  # already as an export gives it
    settings = TelegramBotSettings.model_validate(
        {"id": "tg", "token_env": "T", "chats": {"-1001000000001": "cop-a", "-42": "cop-b"}}
    )
    assert settings.chats == {1000000001: "cop-a", 42: "cop-b"}
    with pytest.raises(ValueError, match="listed twice"):
        TelegramBotSettings.model_validate(
            {"id": "tg", "token_env": "T", "chats": {"-1001000000001": "cop-a", "1000000001": "cop-b"}}
        )
    with pytest.raises(ValueError, match="not a community id"):
        TelegramBotSettings.model_validate({"id": "tg", "token_env": "T", "chats": {"-42": "CoP A"}})
