"""Every live connector checks itself (what ``doctor`` shows): good credentials pass, and each way the
source refuses lms-bridge (wrong credentials, a missing scope, a webhook) is one failed check with the fix.

Each check runs against its fake over real HTTP (fakes/), the source LRS against real Ralph.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import CONNECTORS
from connectors.base import Check
from fakes.classroom import FakeClassroom, make_service_account, shared_service_account
from fakes.meet_reports import FakeMeetReports
from fakes.telegram_bot import FakeTelegramBot
from fakes.zoom import TEST_CLIENT_SECRET, FakeZoom
from lms_bridge.config.settings import load_settings
from lms_bridge.ingest.runner import connector_context
from tests.connectors import test_google_classroom as classroom_tests
from tests.connectors import test_google_meet as meet_tests
from tests.connectors import test_zoom_api as zoom_tests

ADMIN = "admin@bkpsdm.example.org"
BOT_TOKEN = "7001234567:AAH-tg-check-token-5f1e9c"  # noqa: S105 - a test token the fake accepts


#: The secrets the checks read (from the environment, as a deployment does).
SECRETS = ("ZOOM_CLIENT_SECRET", "BOT_TOKEN", "SOURCE_LRS_PASSWORD")


def _check(tmp_path: Path, toml: str, environ: dict[str, str]) -> Check:
    """The check ``doctor`` runs for the one source of ``toml``, with exactly these secrets set."""
    with pytest.MonkeyPatch.context() as patch:
        for name in SECRETS:
            if name in environ:
                patch.setenv(name, environ[name])
            else:
                patch.delenv(name, raising=False)
        return _run_check(tmp_path, toml)


def _run_check(tmp_path: Path, toml: str) -> Check:
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n' + toml)
    settings = load_settings(config, environ={})
    [source] = settings.sources
    found = CONNECTORS[source.type].check(source.model_dump(exclude_none=True), connector_context(settings))
    assert found is not None, f"{source.type} has no self-check"
    return found


# --- Zoom ----------------------------------------------------------------------------------------------


@pytest.fixture
def zoom() -> Iterator[FakeZoom]:
    with FakeZoom(account_id="acc-1", client_id="cid-1", client_secret=TEST_CLIENT_SECRET) as fake:
        fake.add_user(zoom_tests.HOST)
        yield fake


def test_zoom_checks_the_token_and_the_report_listing(tmp_path: Path, zoom: FakeZoom) -> None:
    toml = zoom_tests.source_toml(zoom)
    good = _check(tmp_path, toml, {"ZOOM_CLIENT_SECRET": TEST_CLIENT_SECRET})
    assert good == Check("zoom_api zoom-bkd", True, "Zoom issued a token; the meetings report of 1 user(s) can be read")
    assert zoom.calls["oauth/token"] == 1 and zoom.calls["report/users/meetings"] == 1

    wrong = _check(tmp_path, toml, {"ZOOM_CLIENT_SECRET": "not-the-secret-1f"})
    assert not wrong.ok
    assert "Zoom refused the OAuth app's credentials (HTTP 401, invalid_client)" in wrong.detail
    assert wrong.fix is not None and wrong.fix.startswith("check account_id, client_id and the client secret")
    assert "not-the-secret-1f" not in wrong.detail + wrong.fix

    zoom.scopes = "user:read:admin"  # the app lacks the report scope the sync needs
    scopeless = _check(tmp_path, toml, {"ZOOM_CLIENT_SECRET": TEST_CLIENT_SECRET})
    assert not scopeless.ok and "code 4711" in scopeless.detail
    assert scopeless.fix == (
        "add the scope report:read:admin to the Server-to-Server OAuth app (App Marketplace > Scopes)"
    )

    zoom.scopes = "report:read:admin"
    stranger = zoom_tests.source_toml(zoom).replace(zoom_tests.HOST, "nobody@example.org")
    unknown = _check(tmp_path, stranger, {"ZOOM_CLIENT_SECRET": TEST_CLIENT_SECRET})
    assert not unknown.ok and "code 1001" in unknown.detail
    assert unknown.fix == "list in users only users of the Zoom account the OAuth app belongs to"

    unset = _check(tmp_path, toml, {})
    assert not unset.ok and "secret ZOOM_CLIENT_SECRET is not set" in unset.detail


# --- Telegram bot --------------------------------------------------------------------------------------


def _bot_toml(fake: FakeTelegramBot) -> str:
    return textwrap.dedent(f"""
        [[sources]]
        id = "bot"
        type = "telegram_bot"
        token_env = "BOT_TOKEN"
        api_url = "{fake.url}"
        backoff_base = 0.05
        chats = {{ "-1001000000001" = "cop-a" }}
        """)


def test_telegram_checks_get_me_and_that_no_webhook_is_set(tmp_path: Path) -> None:
    with FakeTelegramBot(BOT_TOKEN, max_poll_seconds=0.5) as fake:
        good = _check(tmp_path, _bot_toml(fake), {"BOT_TOKEN": BOT_TOKEN})
        assert good == Check(
            "telegram_bot bot", True, "bot @cop_bridge_bot answers getMe and has no webhook: getUpdates can poll it"
        )
        assert fake.calls == {"getMe": 1, "getWebhookInfo": 1}  # no getUpdates: that would confirm updates

        wrong = _check(tmp_path, _bot_toml(fake), {"BOT_TOKEN": "7001234567:AAH-not-the-token"})
        assert not wrong.ok and "refused the bot token (401 Unauthorized)" in wrong.detail
        assert wrong.fix == "put the token @BotFather gave the bot in BOT_TOKEN, and check api_url"
        assert "AAH-not-the-token" not in wrong.detail

        fake.webhook_url = "https://cms.example.org/hook/secret-path-9"
        hooked = _check(tmp_path, _bot_toml(fake), {"BOT_TOKEN": BOT_TOKEN})
        assert hooked == Check(
            "telegram_bot bot",
            False,
            "bot @cop_bridge_bot has a webhook set, so the Bot API refuses getUpdates",
            "delete the bot's webhook (deleteWebhook) or give lms-bridge a bot of its own",
        )


# --- Google Classroom and Meet -------------------------------------------------------------------------


@pytest.fixture
def classroom() -> Iterator[FakeClassroom]:
    key, public_pem = shared_service_account()
    with FakeClassroom(public_pem=public_pem, client_email=key["client_email"], subject=ADMIN) as fake:
        fake.add_course("c1", "Pelatihan Dasar CPNS")
        yield fake


def test_classroom_checks_the_delegated_token_and_the_course_listing(tmp_path: Path, classroom: FakeClassroom) -> None:
    classroom_tests.key_file(tmp_path, classroom)
    toml = classroom_tests.source_toml(classroom)
    good = _check(tmp_path, toml, {})
    assert good == Check(
        "google_classroom kelas-bkpsdm", True, f"Classroom issued a token; {ADMIN} sees ACTIVE courses"
    )

    classroom.delegated_scopes = frozenset({"https://www.googleapis.com/auth/classroom.courses.readonly"})
    undelegated = _check(tmp_path, toml, {})
    assert not undelegated.ok and "unauthorized_client" in undelegated.detail
    assert undelegated.fix is not None
    assert undelegated.fix.startswith(f"check the key file and subject {ADMIN}, and that the Admin console's")
    assert "classroom.rosters.readonly" in undelegated.fix  # it names the scopes the sync asks for

    classroom.delegated_scopes = None
    # A key the domain never trusted: its signature does not verify.
    other_key, _ = make_service_account(classroom.token_uri)
    (tmp_path / "service-account.json").write_text(json.dumps({**other_key, "token_uri": classroom.token_uri}))
    untrusted = _check(tmp_path, toml, {})
    assert not untrusted.ok and "invalid_grant" in untrusted.detail


def test_meet_checks_the_audit_scope_token_and_one_listing(tmp_path: Path, monkeypatch) -> None:
    key, public_pem = shared_service_account()
    with FakeMeetReports(public_pem=public_pem, client_email=key["client_email"], subject=ADMIN) as fake:
        meet_tests.key_file(tmp_path, fake)
        toml = meet_tests.source_toml(fake)
        good = _check(tmp_path, toml, {})
        assert good.ok, good
        assert good.detail == f"the Reports API issued a token; {ADMIN} may read the Meet audit log"
        assert fake.calls["activities.list"] == 1

        fake.forbidden = True  # the subject is no admin allowed to read audit reports
        forbidden = _check(tmp_path, toml, {})
        assert not forbidden.ok and "PERMISSION_DENIED" in forbidden.detail
        assert forbidden.fix is not None and forbidden.fix.startswith(f"make subject {ADMIN} a Workspace admin")

        fake.forbidden = False
        fake.delegated_scopes = frozenset({"https://www.googleapis.com/auth/classroom.courses.readonly"})
        undelegated = _check(tmp_path, toml, {})
        assert not undelegated.ok and "unauthorized_client" in undelegated.detail
        assert undelegated.fix is not None and "admin.reports.audit.readonly" in undelegated.fix


# --- source LRS ----------------------------------------------------------------------------------------


def test_a_source_lrs_checks_about_and_an_authenticated_statements_read(tmp_path: Path, ralph) -> None:
    toml = (
        f'\n[[sources]]\nid = "src"\ntype = "lrs"\nurl = "{ralph.url}"\nusername = "{ralph.username}"\n'
        'password_env = "SOURCE_LRS_PASSWORD"\nbackoff_base = 0.05\n'
    )
    good = _check(tmp_path, toml, {"SOURCE_LRS_PASSWORD": ralph.password})
    assert good.ok, good
    assert good.name == "lrs src" and good.detail.startswith(f"{ralph.username} may read statements; the LRS holds")
    assert good.detail.endswith("reading mode scan")  # Ralph has no about resource

    wrong = _check(tmp_path, toml, {"SOURCE_LRS_PASSWORD": "not-the-password-3c"})
    assert not wrong.ok and "refused the credentials (HTTP 401)" in wrong.detail
    assert wrong.fix == (
        "check username and the password in SOURCE_LRS_PASSWORD: the user must be allowed to read statements"
    )

    down = toml.replace(ralph.url, "http://127.0.0.1:9/xAPI/")
    unreachable = _check(tmp_path, down, {"SOURCE_LRS_PASSWORD": ralph.password})
    assert not unreachable.ok and unreachable.fix == "check that http://127.0.0.1:9/xAPI/ is up and reachable"
