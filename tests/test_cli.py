"""The command line end to end: real subprocesses, real state store, real Ralph."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fixtures.activities import forum_posts, write_activity_file
from tests.fixtures.deployment import ROOT
from tests.fixtures.lrs import lrs_statements

COMMANDS = (
    "alerts",
    "backfill",
    "cursors",
    "db",
    "demo",
    "doctor",
    "forget",
    "import",
    "inbox",
    "init",
    "jp",
    "ledger",
    "outbox",
    "people",
    "report",
    "rules",
    "runs",
    "serve",
    "serve-web",
    "sites",
    "sync",
    "users",
    "void",
    "worker",
)


def test_help_explains_each_command_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "lms_bridge.cli", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0
    listed = result.stdout.split("Commands:")[1].strip().splitlines()
    assert [line.split()[0] for line in listed] == list(COMMANDS)
    assert all(len(line.split(maxsplit=1)) == 2 for line in listed)
    for group in (
        "outbox",
        "db",
        "sites",
        "people",
        "rules",
        "jp",
        "ledger",
        "report",
        "cursors",
        "runs",
        "users",
        "alerts",
    ):
        sub = subprocess.run(
            [sys.executable, "-m", "lms_bridge.cli", group, "--help"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert sub.returncode == 0 and "Commands:" in sub.stdout


def test_import_then_flush_lands_in_the_lrs_once(tmp_path, fresh_ralph, make_deployment):
    deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", fresh_ralph.url, fresh_ralph.password)
    file = write_activity_file(tmp_path / "posts.jsonl", forum_posts(30, site="cli-e2e"))
    first = deployment.run("import", str(file), check=True)
    assert "30 activities read, added 30 statements" in first.stdout
    again = deployment.run("import", str(file), check=True)
    assert "nothing new" in again.stdout
    deployment.run("outbox", "flush", check=True)
    held = lrs_statements(fresh_ralph)
    assert len(held) == 30
    source_key = "https://lms-bridge.id/xapi/extensions/source"
    assert {s["context"]["extensions"][source_key]["site"] for s in held} == {"cli-e2e"}
    # A user with a NIP becomes the authority account; the others stay site-scoped.
    homes = {s["actor"]["account"]["homePage"] for s in held}
    assert homes == {"https://siasn.bkn.go.id", "https://lms-bridge.id/xapi/site/cli-e2e"}


def test_malformed_file_names_the_line_and_imports_nothing(tmp_path, ralph, make_deployment):
    deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", ralph.url, ralph.password)
    file = write_activity_file(tmp_path / "bad.jsonl", forum_posts(5))
    lines = file.read_text().splitlines()
    lines[3] = lines[3].replace('"kind": "reply_created"', '"kind": "liked"')
    file.write_text("\n".join(lines) + "\n")
    result = deployment.run("import", str(file))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: activity file {file} line 4: 'liked' is not a valid Kind"
    status = deployment.run("outbox", "status", check=True).stdout
    assert "pending │ 0" in status
    debug = deployment.run("--debug", "import", str(file))
    assert "Traceback" in debug.stderr and debug.returncode == 1


def test_bad_config_exits_2_with_one_sentence(tmp_path):
    config = tmp_path / "lms-bridge.toml"
    config.write_text("[state]\nurl = 'mysql://root@localhost/x'\n")
    result = subprocess.run(
        [sys.executable, "-m", "lms_bridge.cli", "--config", str(config), "outbox", "status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: state database 'mysql' is not supported: use sqlite or postgresql"


def test_doctor_reports_each_check_and_a_down_lrs(tmp_path, ralph, make_deployment):
    good = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", ralph.url, ralph.password)
    good.env["LMS_BRIDGE_PSEUDONYM_KEY"] = "doctor-test-key-0123456789"
    result = good.run("doctor", check=True)
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [
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
        "ok   held JP",  # no completion held as pending (issue 18)
        "ok   pseudonym key",
    ]
    down = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", "http://127.0.0.1:9/xAPI/", ralph.password)
    down.env["LMS_BRIDGE_PSEUDONYM_KEY"] = "doctor-test-key-0123456789"
    result = down.run("doctor")
    assert result.returncode == 1
    assert "FAIL LRS: cannot connect to http://127.0.0.1:9/xAPI/" in result.stdout
    assert result.stderr.strip() == "error: 1 of 7 checks failed"


def test_secrets_never_reach_output(tmp_path, ralph, make_deployment):
    secret = "lrs-pass-Zq93-never-print"
    deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", ralph.url, secret)
    deployment.env["MOODLE_TOKEN_X"] = "moodle-token-Zq93-never-print"
    outputs = []
    for args in (
        ("--help",),
        ("doctor",),
        ("--debug", "doctor"),
        ("--debug", "outbox", "flush"),
        ("--log-format", "json", "--debug", "outbox", "flush"),
    ):
        result = deployment.run(*args)
        outputs.append(result.stdout + result.stderr)
    joined = "\n".join(outputs)
    assert "refused user lms-bridge (HTTP 401)" in joined  # the wrong password was used and reported...
    assert secret not in joined and "moodle-token-Zq93" not in joined  # ...but never shown


def test_json_logs_are_one_object_per_line_with_counts(tmp_path, ralph, make_deployment):
    deployment = make_deployment(f"sqlite:///{tmp_path / 'state.db'}", ralph.url, ralph.password)
    file = write_activity_file(tmp_path / "posts.jsonl", forum_posts(3, site="json-logs"))
    deployment.run("import", str(file), check=True)
    result = deployment.run("--log-format", "json", "outbox", "flush", check=True)
    records = [json.loads(line) for line in result.stderr.splitlines()]
    summary = [r for r in records if r["logger"] == "lms_bridge.outbox.flush"]
    assert summary and summary[-1]["counts"]["sent"] == 3 and summary[-1]["level"] == "INFO"
