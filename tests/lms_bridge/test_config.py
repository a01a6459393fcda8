"""Configuration: one TOML file, clear errors, secrets only from the environment or a 0600 file."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from lms_bridge import redaction
from lms_bridge.config.settings import load_settings
from lms_bridge.errors import ConfigError
from lms_bridge.runtime.logs import setup_logging


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lms-bridge.toml"
    path.write_text(text)
    return path


def test_embedded_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.config_path is None
    assert settings.state.url == "sqlite:///lms-bridge.db"
    assert settings.lrs.batch_size == 500
    assert settings.deployment.statement_namespace == uuid.uuid5(uuid.NAMESPACE_URL, "https://lms-bridge.id/xapi")


def test_file_and_environment_overrides(tmp_path):
    path = _write(
        tmp_path,
        '[lrs]\nurl = "http://127.0.0.1:9/xAPI"\nbatch_size = 50\n'
        '[[sources]]\nid = "kemenpan"\ntype = "moodle"\nurl = "https://lms.example.go.id"\n'
        'token_env = "MOODLE_TOKEN_KEMENPAN"\n',
    )
    settings = load_settings(path, environ={"LMS_BRIDGE_LRS__BATCH_SIZE": "7"})
    assert settings.lrs.url == "http://127.0.0.1:9/xAPI/"
    assert settings.lrs.batch_size == 7
    assert settings.source("kemenpan").token_env == "MOODLE_TOKEN_KEMENPAN"
    with pytest.raises(ConfigError, match="unknown source 'nope' \\(known: kemenpan\\)"):
        settings.source("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[lrs]\nbatch_size = 'many'\n", r"lms-bridge.toml: \[lrs\] batch_size: Input should be a valid integer"),
        ("[lrs]\nbatchsize = 5\n", r"\[lrs\] batchsize: unknown key"),
        ("[lrs]\nurl = 'ftp://x'\n", r"\[lrs\] url: must be an http\(s\) URL"),
        ("[deployment]\ntimezone = 'Mars/Base'\n", r"\[deployment\] timezone: unknown time zone"),
        ("[[sources]]\nid = 'a'\ntype = 'jsonl'\n[[sources]]\nid = 'a'\ntype = 'jsonl'\n", "appears twice"),
        ("[[sources]]\nid = 'Bad Id'\ntype = 'moodle'\n", r"\[\[sources\]\] #1 id"),
        ("[lrs\nurl=1", "is not valid TOML"),
    ],
)
def test_bad_config_is_one_sentence_naming_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, text), environ={})


def test_secret_written_in_the_config_file_is_refused(tmp_path):
    path = _write(tmp_path, '[lrs]\npassword = "hunter2-in-file"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "lrs.password: secrets do not belong in the config file" in str(info.value)
    assert "hunter2-in-file" not in str(info.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does-not-exist.toml does not exist"):
        load_settings(tmp_path / "does-not-exist.toml", environ={})


def test_secret_comes_from_environment_first(tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("LMS_BRIDGE_LRS_PASSWORD=from-file-123\n")
    secrets.chmod(0o600)
    path = _write(tmp_path, f'[secrets]\nfile = "{secrets.name}"\n')
    monkeypatch.delenv("LMS_BRIDGE_LRS_PASSWORD", raising=False)
    settings = load_settings(path, environ={})
    assert settings.secret("LMS_BRIDGE_LRS_PASSWORD").get_secret_value() == "from-file-123"
    monkeypatch.setenv("LMS_BRIDGE_LRS_PASSWORD", "from-env-456")
    assert settings.secret("LMS_BRIDGE_LRS_PASSWORD").get_secret_value() == "from-env-456"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_secrets_file_readable_by_others_is_refused(tmp_path, mode):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("LMS_BRIDGE_LRS_PASSWORD=very-secret-789\n")
    secrets.chmod(mode)
    path = _write(tmp_path, f'[secrets]\nfile = "{secrets}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert f"is readable by others (mode {mode:04o}); run: chmod 600" in str(info.value)
    assert "very-secret-789" not in str(info.value)


def test_malformed_secrets_file_does_not_echo_the_line(tmp_path):
    secrets = tmp_path / "secrets.env"
    secrets.write_text("just-a-token-value-000\n")
    secrets.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, f'[secrets]\nfile = "{secrets}"\n'), environ={})
    assert "line 1: expected KEY=value" in str(info.value)
    assert "just-a-token-value-000" not in str(info.value)


def test_missing_secret_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MOODLE_TOKEN_X", raising=False)
    with pytest.raises(ConfigError, match="secret MOODLE_TOKEN_X is not set"):
        load_settings(environ={}).secret("MOODLE_TOKEN_X")


def test_registered_secrets_are_masked_in_logs(capfd, monkeypatch):
    monkeypatch.setenv("LMS_BRIDGE_TEST_TOKEN", "tok-abcdef-123456")
    load_settings(environ={}).secret("LMS_BRIDGE_TEST_TOKEN")
    setup_logging("INFO", "json")
    logging.getLogger("lms_bridge.test").warning("calling with %s", "tok-abcdef-123456")
    err = capfd.readouterr().err
    assert "tok-abcdef-123456" not in err and "calling with ***" in err


def test_sanitize_url_masks_token_parameters():
    url = "https://lms.example.go.id/webservice/rest/server.php?wstoken=abc123def&wsfunction=core_webservice_get_site_info"
    cleaned = redaction.sanitize_url(url)
    assert "abc123def" not in cleaned and "wstoken=***" in cleaned and "wsfunction=core_webservice" in cleaned
    assert "s3cr3t" not in redaction.sanitize_url("postgresql://u:s3cr3t@db/x")
