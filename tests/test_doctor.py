"""``lms-bridge doctor`` against real Ralph and the fake Moodle: one line per check, the right diagnosis each."""

from __future__ import annotations

from fakes.moodle import FakeMoodle
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
    assert "LRS round trip: skipped: nothing written" in plain.stdout  # opt-in (issue 17)
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
    assert len(held) == 1 and held[0]["object"]["id"].endswith("/sandbox/doctor")  # one sandbox statement, ever
    assert ADMIN_TOKEN not in first.stdout + first.stderr + again.stdout + again.stderr


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
    assert result.stderr.strip() == "error: 1 of 9 checks failed"
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
