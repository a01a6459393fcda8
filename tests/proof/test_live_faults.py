"""Faults in live pulls: the fake Telegram Bot API and the fake Zoom reset connections, answer 502 and
429 mid-run, and refuse the credentials mid-run.

What the connectors' own tests (tests/connectors) leave out is proved here: the faults come in the
middle of a multi-page pull, and after they clear (and a rerun for a refusal) the outbox holds exactly
the statements of a clean run (ids and bodies), while each fault produced one log line naming the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from fakes.telegram_bot import FakeTelegramBot, group, user
from fakes.zoom import TEST_CLIENT_SECRET, FakeZoom
from tests.connectors.test_telegram_bot import TOKEN as TELEGRAM_TOKEN
from tests.fixtures.deployment import Deployment
from tests.proof.support import add_source, log_lines, make_deployment

pytestmark = pytest.mark.proof

NO_LRS = "http://127.0.0.1:9/xAPI/"  # sync only fills the outbox
CHAT = group(-1001000000001, "CoP Widyaiswara Angkatan 7")


def _assert_outbox(deployment: Deployment, clean: dict[str, str]) -> None:
    got = deployment.outbox()
    missing, extra = clean.keys() - got.keys(), got.keys() - clean.keys()
    changed = [key for key in clean.keys() & got.keys() if clean[key] != got[key]]
    assert not (missing or extra or changed), f"{len(missing)} missing, {len(extra)} extra, {len(changed)} changed"


# --- Telegram bot -----------------------------------------------------------------------------------

TELEGRAM_SOURCE = "tg-proof"


def telegram_fake(messages: int = 12, fake: FakeTelegramBot | None = None) -> FakeTelegramBot:
    """``fake`` (a new one by default) started, holding ``messages`` posts, replies and calls of the fixture's chat."""
    fake = (fake or FakeTelegramBot(TELEGRAM_TOKEN, max_poll_seconds=0.2)).start()
    for number in range(messages):
        extra = (
            {"reply_to_message": {"message_id": 100 + number - 1, "date": 1710209700, "chat": CHAT}}
            if number % 3 == 1
            else {"video_chat_ended": {"duration": 600 + number}}
            if number % 5 == 4
            else {}
        )
        fake.add_message(
            chat=CHAT,
            message_id=100 + number,
            date=1710209700 + 60 * number,
            sender=user(100000001 + number % 4),
            text=f"pesan {number}",
            **extra,
        )
    return fake


def telegram_deployment(name: str, fake: FakeTelegramBot, limit: int = 3) -> Deployment:
    return add_source(
        make_deployment(name, lrs_url=NO_LRS),
        f"""
        [[sources]]
        id = "{TELEGRAM_SOURCE}"
        type = "telegram_bot"
        token_env = "TG_BOT_TOKEN_PROOF"
        api_url = "{fake.url}"
        timeout = 0
        limit = {limit}
        backoff_base = 0.05
        chats = {{ "-1001000000001" = "cop-wi-7" }}
        """,
        TG_BOT_TOKEN_PROOF=TELEGRAM_TOKEN,
    )


@pytest.fixture(scope="module")
def telegram_clean() -> dict[str, str]:
    """The outbox of an uninterrupted pull of :func:`telegram_fake`."""
    fake = telegram_fake()
    try:
        deployment = telegram_deployment("live-telegram-clean", fake)
        deployment.run("sync")
        assert fake.pending == []
    finally:
        fake.stop()
    clean = deployment.outbox()
    assert len(clean) == 12
    return clean


def test_telegram_429_502_and_a_reset_mid_pull_are_retried_with_one_line_each(telegram_clean):
    fake = telegram_fake()
    try:
        # Each fault hits another page's request (a fault waits for the one before it to be spent).
        fake.inject_fault("429", after=1, retry_after=0)
        fake.inject_fault("502", after=1)
        fake.inject_fault("reset", after=1)
        deployment = telegram_deployment("live-telegram-faults", fake)
        sync = deployment.run("sync")
        calls = fake.calls["getUpdates"]
    finally:
        fake.stop()
    print("\n".join(log_lines(sync.stderr, "retry")))
    assert len(log_lines(sync.stderr, "retry")) == 3, sync.stderr
    for cause in ("rate-limits getUpdates (429", "answered getUpdates with HTTP 502", "getUpdates failed (Connection"):
        lines = log_lines(sync.stderr, cause)
        assert len(lines) == 1 and f"telegram bot source {TELEGRAM_SOURCE}" in lines[0], (cause, sync.stderr)
    assert calls == 4 + 3 + 1  # 4 pages, 3 retries, the empty poll that ends the pull
    assert "Traceback" not in sync.stderr and TELEGRAM_TOKEN not in sync.stdout + sync.stderr
    _assert_outbox(deployment, telegram_clean)


def test_telegram_token_refused_mid_pull_stops_with_one_sentence_then_a_rerun_completes(telegram_clean):
    fake = telegram_fake()
    try:
        fake.inject_fault("401", after=2)  # pages 1 and 2 are committed, the third request is refused
        deployment = telegram_deployment("live-telegram-auth", fake)
        failed = deployment.run("sync", check=False)
        assert failed.returncode == 1, failed.stderr
        refused = log_lines(failed.stderr, "refused the bot token")
        assert len(refused) == 1 and f"telegram bot source {TELEGRAM_SOURCE}" in refused[0], failed.stderr
        last = failed.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: telegram bot source {TELEGRAM_SOURCE}") and "401 Unauthorized" in last
        assert "Traceback" not in failed.stderr and TELEGRAM_TOKEN not in failed.stdout + failed.stderr
        assert deployment.outbox_count() == 6  # what was committed before the refusal stays committed
        # Only page 1 is confirmed to Telegram: the refused request carried page 2's offset, but a refused
        # request confirms nothing; the rerun sends that offset again (from the cursor).
        assert len(fake.pending) == 9
        deployment.run("sync")
    finally:
        fake.stop()
    _assert_outbox(deployment, telegram_clean)


# --- Zoom ----------------------------------------------------------------------------------------------

ZOOM_SOURCE = "zoom-proof"
HOST = "host@example.org"


def zoom_fake() -> FakeZoom:
    """A fake Zoom account (not started) with five past meetings of two or three people, in the last days."""
    fake = FakeZoom(account_id="acc-proof", client_id="cid-proof", client_secret=TEST_CLIENT_SECRET, retry_after=0)
    day = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(days=6)
    for number in range(5):
        start = day + timedelta(days=number)
        people = [
            {
                "user_email": f"peserta{(number + k) % 4}@example.org",
                "name": f"Peserta {k}",
                "join_time": (start + timedelta(minutes=5 * k)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "leave_time": (start + timedelta(minutes=50 + k)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "duration": (45 - 4 * k) * 60,
            }
            for k in range(2 + number % 2)
        ]
        fake.add_meeting(
            HOST,
            meeting_id=81200000100 + number,
            uuid=f"uu/{number}+x==",
            topic=f"Sesi {number}",
            start=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            end=(start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            participants=people,
            meeting_type=5 if number == 3 else 2,
        )
    return fake


@pytest.fixture(scope="module")
def zoom() -> Iterator[FakeZoom]:
    """:func:`zoom_fake`, started (a page per meeting)."""
    with zoom_fake() as fake:
        yield fake


def zoom_deployment(name: str, fake: FakeZoom) -> Deployment:
    return add_source(
        make_deployment(name, lrs_url=NO_LRS),
        f"""
        [[sources]]
        id = "{ZOOM_SOURCE}"
        type = "zoom_api"
        account_id = "acc-proof"
        client_id = "cid-proof"
        client_secret_env = "ZOOM_CLIENT_SECRET_PROOF"
        api_url = "{fake.url}/v2"
        oauth_url = "{fake.url}"
        backoff_base = 0.05
        users = [{{ user = "{HOST}", community = "cop-zoom" }}]
        """,
        ZOOM_CLIENT_SECRET_PROOF=TEST_CLIENT_SECRET,
    )


@pytest.fixture(scope="module")
def zoom_clean(zoom: FakeZoom) -> dict[str, str]:
    deployment = zoom_deployment("live-zoom-clean", zoom)
    deployment.run("sync")
    clean = deployment.outbox()
    assert len(clean) == 12  # 2 + 3 + 2 + 3 + 2 people
    return clean


def test_zoom_reset_502_and_429_mid_pull_are_retried_with_one_line_each(zoom, zoom_clean):
    zoom.inject_fault("reset", path="participants", after=1)
    zoom.inject_fault("502", path="participants", after=1)
    zoom.inject_fault("429", path="participants", after=1)
    deployment = zoom_deployment("live-zoom-faults", zoom)
    sync = deployment.run("sync")
    retries = log_lines(sync.stderr, "WARNING", "retry")
    print("\n".join(retries))
    assert len(retries) == 3, sync.stderr
    for cause in ("no answer (ConnectionError)", "HTTP 502", "rate limited (429"):
        lines = log_lines(sync.stderr, "/participants", cause)
        assert len(lines) == 1 and lines[0].split(" ", 4)[4].startswith(f"{ZOOM_SOURCE}: Zoom "), (cause, sync.stderr)
    assert "Traceback" not in sync.stderr and TEST_CLIENT_SECRET not in sync.stdout + sync.stderr
    _assert_outbox(deployment, zoom_clean)


def test_zoom_credentials_revoked_mid_pull_stop_with_one_sentence_then_a_rerun_completes(zoom, zoom_clean):
    zoom.inject_fault("revoked", path="participants", after=2)
    deployment = zoom_deployment("live-zoom-auth", zoom)
    try:
        failed = deployment.run("sync", check=False)
    finally:
        zoom.revoked = False
    assert failed.returncode == 1, failed.stderr
    refused = log_lines(failed.stderr, "refused the OAuth app's credentials")
    assert len(refused) == 1 and f"source {ZOOM_SOURCE}" in refused[0], failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: source {ZOOM_SOURCE}: Zoom refused the OAuth app's credentials"), failed.stderr
    assert "Traceback" not in failed.stderr and TEST_CLIENT_SECRET not in failed.stdout + failed.stderr
    assert 0 < deployment.outbox_count() < len(zoom_clean)  # the meetings read before the refusal are kept
    assert deployment.query("select count(*) from cursors") == [(0,)]  # the window was not finished
    deployment.run("sync")
    _assert_outbox(deployment, zoom_clean)
