"""``lms-bridge doctor`` against real Ralph and the fake Moodle: one line per check, the right diagnosis each."""

from __future__ import annotations

from lms_bridge.demo.moodle import FakeMoodle
from tests.fixtures.lrs import lrs_statements
from tests.fixtures.moodle import ADMIN_TOKEN, moodle_source

KEY = "doctor-pseudonym-key-0123456789abcdef"


def _deploy(tmp_path, make_deployment, ralph, fake, *, lrs_url=None, password=None):
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"MOODLE_TOKEN_DEMO={ADMIN_TOKEN}\n")
    secrets.chmod(0o600)
    deployment = make_deployment(
        f"sqlite:///{tmp_path / 'state.db'}",
        lrs_url or ralph.url,
        password or ralph.password,
        extra_toml=f'[secrets]\nfile = "{secrets}"\n' + moodle_source(fake),
    )
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = KEY
    return deployment


def _lines(stdout: str) -> list[str]:
    return stdout.strip().splitlines()


def _failures(stdout: str) -> list[str]:
    return [line for line in _lines(stdout) if line.startswith("FAIL")]


def test_a_healthy_deployment_passes_every_check_and_reruns_post_nothing_new(
    tmp_path, fresh_ralph, fake_moodle, make_deployment
):
    deployment = _deploy(tmp_path, make_deployment, fresh_ralph, fake_moodle)
    plain = deployment.run("doctor", check=True)
    assert "LRS round trip: not written" in plain.stdout  # opt-in (issue 17)
    assert lrs_statements(fresh_ralph) == []
    first = deployment.run("doctor", "--write-probe", check=True)
    names = [line.split(":")[0] for line in _lines(first.stdout)]
    assert names == [
        "ok   config",
        "ok   secrets file",
        "ok   state database",
        "ok   LRS credentials",
        "ok   LRS",
        "ok   LRS round trip",
        "ok   LRS versions",  # one line per capability (issue 24)
        "ok   LRS since",
        "ok   LRS voided",
        "ok   LRS re-post",
        "ok   moodle demo",
        "ok   held JP",  # no completion held as pending (issue 18)
        "ok   pseudonym key",
    ], first.stdout
    assert "mode 0600" in first.stdout and "sends X-Experience-API-Version 1.0.3 itself" in first.stdout
    assert "at revision" in first.stdout and "the newest" in first.stdout
    assert "all 10 functions available" in first.stdout and "stored now" in first.stdout
    again = deployment.run("doctor", "--write-probe", check=True)
    assert "already there (HTTP 204)" in again.stdout
    held = lrs_statements(fresh_ralph)
    # The sandbox statement, the void probe's target and its void: three statements, ever.
    assert len(held) == 3 and {s["actor"]["account"]["name"] for s in held} == {"lms-bridge-doctor"}
    assert ADMIN_TOKEN not in first.stdout + first.stderr + again.stdout + again.stderr


def test_capabilities_of_ralph_are_probed_and_pick_the_safe_modes(tmp_path, fresh_ralph, fake_moodle, make_deployment):
    deployment = _deploy(tmp_path, make_deployment, fresh_ralph, fake_moodle)
    read_only = deployment.run("doctor", check=True).stdout
    assert lrs_statements(fresh_ralph) == []  # without --write-probe doctor writes nothing (issue 17)
    assert "ok   LRS round trip: not written: doctor only reads from the LRS unless asked" in read_only
    assert "ok   LRS re-post: not probed: it needs a write (lms-bridge doctor --write-probe)" in read_only
    assert "ok   LRS since: not probed: the LRS holds no statement whose timestamp and stored differ" in read_only
    probed = deployment.run("doctor", "--write-probe", check=True).stdout
    lines = {line.split(":")[0]: line for line in _lines(probed)}
    assert lines["ok   LRS versions"] == (
        "ok   LRS versions: no /about (as Ralph 5.1.0): 1.0.3 assumed; lms-bridge writes 1.0.3 ([lrs] version)"
    )
    assert "do not filter on stored" in lines["ok   LRS since"]
    assert 'picked [ledger] since_filter "none" and source-LRS mode "scan"' in lines["ok   LRS since"]
    assert "voided statements are not hidden" in lines["ok   LRS voided"]
    assert "answered 204 (as Ralph 5.1.0)" in lines["ok   LRS re-post"]
    # Read-only again: the statements the write probe left are read, not written.
    before = len(lrs_statements(fresh_ralph))
    again = deployment.run("doctor", check=True).stdout
    assert len(lrs_statements(fresh_ralph)) == before
    assert "do not filter on stored" in again and "voided statements are not hidden" in again


def test_a_mode_the_lrs_cannot_serve_fails_with_the_fix(tmp_path, fresh_ralph, fake_moodle, make_deployment):
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"MOODLE_TOKEN_DEMO={ADMIN_TOKEN}\n")
    secrets.chmod(0o600)
    deployment = make_deployment(
        f"sqlite:///{tmp_path / 'state.db'}",
        fresh_ralph.url,
        fresh_ralph.password,
        extra_toml=f'[secrets]\nfile = "{secrets}"\n[ledger]\nsince_filter = "stored"\n' + moodle_source(fake_moodle),
        lrs_options='version = "2.0.0"',
    )
    deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"] = KEY
    result = deployment.run("doctor", "--write-probe")
    assert result.returncode == 1
    assert _failures(result.stdout) == [
        'FAIL LRS versions: no /about (as Ralph 5.1.0): 1.0.3 assumed, but [lrs] version = "2.0.0" -> set [lrs] '
        'version = "1.0.3" (or "auto"): this LRS does not list xAPI 2.0.0',
        "FAIL LRS since: since/until do not filter on stored (a window around one statement's stored time missed "
        'it; Ralph 5.1.0 compares timestamp); [ledger] since_filter = "stored" would skip statements -> set '
        '[ledger] since_filter = "none" (the ledger then pages through everything)',
    ]
    assert result.stderr.strip() == "error: 2 of 13 checks failed"


def test_wrong_moodle_token_is_one_line_naming_the_site_and_the_fix(tmp_path, ralph, fake_moodle, make_deployment):
    deployment = _deploy(tmp_path, make_deployment, ralph, fake_moodle)
    deployment.env["MOODLE_TOKEN_DEMO"] = "wrong-token-4d1e"  # the environment wins over the secrets file
    result = deployment.run("doctor")
    assert result.returncode == 1
    failures = _failures(result.stdout)
    assert len(failures) == 1, result.stdout
    assert failures[0].startswith(
        f"FAIL moodle demo: Moodle site demo ({fake_moodle.url}) core_webservice_get_site_info: invalidtoken"
    )
    assert failures[0].endswith("-> the token is wrong or was revoked: create a new one and update the token variable")
    assert result.stderr.strip() == "error: 1 of 13 checks failed"
    assert "wrong-token-4d1e" not in result.stdout + result.stderr


def test_wrong_lrs_password_is_one_line_and_skips_the_round_trip(tmp_path, ralph, fake_moodle, make_deployment):
    deployment = _deploy(tmp_path, make_deployment, ralph, fake_moodle, password="not-the-password-77x")
    result = deployment.run("doctor")
    assert result.returncode == 1
    assert _failures(result.stdout) == [
        f"FAIL LRS: {ralph.url} refused user lms-bridge (HTTP 401): wrong password or user -> put the right password "
        "in LMS_BRIDGE_LRS_PASSWORD (environment or secrets file), or fix [lrs] username"
    ]
    assert "round trip" not in result.stdout and "ok   moodle demo" in result.stdout
    assert "not-the-password-77x" not in result.stdout + result.stderr


def test_lrs_down_is_one_line(tmp_path, ralph, fake_moodle, make_deployment):
    deployment = _deploy(tmp_path, make_deployment, ralph, fake_moodle, lrs_url="http://127.0.0.1:9/xAPI/")
    result = deployment.run("doctor")
    assert result.returncode == 1
    assert _failures(result.stdout) == [
        "FAIL LRS: cannot connect to http://127.0.0.1:9/xAPI/: the LRS is down or [lrs] url is wrong "
        "-> start the LRS, or fix [lrs] url"
    ]
    assert result.stderr.strip() == "error: 1 of 8 checks failed"


def test_missing_functions_and_missing_pseudonym_key_are_named(tmp_path, ralph, make_deployment):
    functions = [f for f in FakeMoodle(preset="small").functions if f != "mod_forum_get_discussion_posts"]
    with FakeMoodle(preset="small", seed=1, token=ADMIN_TOKEN, functions=functions) as fake:
        deployment = _deploy(tmp_path, make_deployment, ralph, fake)
        del deployment.env["LMS_BRIDGE_PSEUDONYM_KEY"]
        result = deployment.run("doctor")
    assert result.returncode == 1
    failures = _failures(result.stdout)
    assert len(failures) == 2, result.stdout
    assert (
        "the service lacks: mod_forum_get_discussion_posts -> add them to the token's external service" in failures[0]
    )
    assert failures[1].startswith("FAIL pseudonym key: LMS_BRIDGE_PSEUDONYM_KEY is not set")


def test_a_live_source_is_checked_too_and_a_set_webhook_is_one_line_with_the_fix(
    tmp_path, ralph, fake_moodle, make_deployment
):
    from fakes.telegram_bot import FakeTelegramBot

    token = "7001234567:AAH-doctor-bot-token-77c1"  # noqa: S105 - the fake's test token
    with FakeTelegramBot(token, max_poll_seconds=0.5) as bot:
        deployment = _deploy(tmp_path, make_deployment, ralph, fake_moodle)
        deployment.config.write_text(
            deployment.config.read_text()
            + f'\n[[sources]]\nid = "bot"\ntype = "telegram_bot"\ntoken_env = "BOT_TOKEN"\napi_url = "{bot.url}"\n'
            'chats = { "-1001000000001" = "cop-a" }\n'
        )
        deployment.env["BOT_TOKEN"] = token
        healthy = deployment.run("doctor", check=True)
        bot.webhook_url = "https://cms.example.org/telegram/hook"
        hooked = deployment.run("doctor")
        tested = deployment.run("sites", "test", "bot")  # the same check, for one source
    names = [line.split(":")[0] for line in _lines(healthy.stdout)]
    assert names == [
        "ok   config",
        "ok   secrets file",
        "ok   state database",
        "ok   LRS credentials",
        "ok   LRS",
        "ok   LRS round trip",
        "ok   LRS versions",
        "ok   LRS since",
        "ok   LRS voided",
        "ok   LRS re-post",
        "ok   moodle demo",
        "ok   telegram_bot bot",  # its connector's check (getMe, getWebhookInfo)
        "ok   telegram bot bot",  # the gap since its last pull (Telegram keeps updates 24 h)
        "ok   held JP",
        "ok   pseudonym key",
    ], healthy.stdout
    assert "bot @cop_bridge_bot answers getMe and has no webhook" in healthy.stdout
    assert hooked.returncode == 1
    assert _failures(hooked.stdout) == [
        "FAIL telegram_bot bot: bot @cop_bridge_bot has a webhook set, so the Bot API refuses getUpdates "
        "-> delete the bot's webhook (deleteWebhook) or give lms-bridge a bot of its own"
    ]
    assert hooked.stderr.strip() == "error: 1 of 15 checks failed"
    assert tested.returncode == 1 and tested.stdout.strip() == (
        "FAIL bot: bot @cop_bridge_bot has a webhook set, so the Bot API refuses getUpdates "
        "-> delete the bot's webhook (deleteWebhook) or give lms-bridge a bot of its own"
    )
    assert token not in healthy.stdout + healthy.stderr + hooked.stdout + hooked.stderr
