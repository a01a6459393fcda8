"""``lms-bridge users add|list|disable`` and ``serve-web``'s address guard, through the real CLI."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.cli import cli
from lms_bridge.store.models import WebUser
from lms_bridge.web import users as users_core

PASSWORD = "a long enough password"  # noqa: S105 - a test password
NO_LRS = "http://127.0.0.1:9/xAPI/"


def _stored(state_url: str) -> dict[str, WebUser]:
    engine = store.make_engine(state_url)
    try:
        with Session(engine) as session:
            return {user.username: user for user in session.scalars(select(WebUser))}
    finally:
        engine.dispose()


def test_users_add_list_disable(state_url, make_deployment):
    deployment = make_deployment(state_url, NO_LRS, "unused")
    deployment.env["HR_PASSWORD"] = PASSWORD
    added = deployment.run("users", "add", "siti", "--units", "U1, U2", "--password-env", "HR_PASSWORD", check=True)
    assert "added web user siti (U1, U2)" in added.stdout
    deployment.run("users", "add", "budi", "--password-env", "HR_PASSWORD", check=True)

    users = _stored(state_url)
    assert users["siti"].units == "U1,U2" and users["budi"].units == "" and users["siti"].active
    assert PASSWORD not in users["siti"].password_hash
    assert users_core.verify_password(PASSWORD, users["siti"].password_hash)

    listed = deployment.run("users", "list", check=True).stdout
    assert "siti" in listed and "U1, U2" in listed and "all" in listed and PASSWORD not in listed

    again = deployment.run("users", "add", "siti", "--password-env", "HR_PASSWORD")
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr

    disabled = deployment.run("users", "disable", "siti", check=True)
    assert "disabled web user siti" in disabled.stdout
    assert not _stored(state_url)["siti"].active
    assert "already disabled" in deployment.run("users", "disable", "siti", check=True).stdout
    missing = deployment.run("users", "disable", "nobody")
    assert missing.returncode == 1 and "no web user nobody" in missing.stderr


def test_users_add_refuses_bad_input_and_has_no_password_flag(tmp_path, make_deployment):
    deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", NO_LRS, "unused")
    flag = deployment.run("users", "add", "siti", "--password", PASSWORD)
    assert flag.returncode == 2 and "No such option" in flag.stderr

    unset = deployment.run("users", "add", "siti", "--password-env", "NOT_SET_ANYWHERE")
    assert unset.returncode == 2 and "NOT_SET_ANYWHERE is not set" in unset.stderr

    deployment.env["HR_PASSWORD"] = "short"
    short = deployment.run("users", "add", "siti", "--password-env", "HR_PASSWORD")
    assert short.returncode == 1 and "at least 10 characters" in short.stderr and "short" not in short.stdout

    deployment.env["HR_PASSWORD"] = PASSWORD
    bad_name = deployment.run("users", "add", "Siti Aminah", "--password-env", "HR_PASSWORD")
    assert bad_name.returncode == 1 and "username" in bad_name.stderr
    bad_units = deployment.run("users", "add", "siti", "--units", "U1,,U2", "--password-env", "HR_PASSWORD")
    assert bad_units.returncode == 1 and "--units" in bad_units.stderr
    assert _stored(deployment.state_url) == {}


def test_users_add_prompts_twice_for_the_password(tmp_path, make_deployment):
    deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", NO_LRS, "unused")
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["--config", str(deployment.config), "users", "add", "rina", "--units", "U1"],
        input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n",
        env=deployment.env,
    )
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output and PASSWORD not in result.output
    user = _stored(deployment.state_url)["rina"]
    assert user.units == "U1" and users_core.verify_password(PASSWORD, user.password_hash)


def test_serve_web_refuses_a_non_loopback_address(tmp_path, make_deployment):
    deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", NO_LRS, "unused")
    for host in ("0.0.0.0", "192.0.2.10", "example.go.id"):  # noqa: S104 - the address being refused
        result = deployment.run("serve-web", "--host", host, "--port", "8399", timeout=30)
        assert result.returncode == 1, result.stderr
        assert f"refusing to listen on {host}" in result.stderr and "--allow-remote" in result.stderr
        assert result.stderr.count("\n") == 1  # one sentence
