"""``lms-bridge init``: a commented starter config and a 0600 secrets file for a new deployment.

The demo runs on embedded defaults; a real deployment needs its own institution name, time
zone, LRS and state database, and two keys nobody may ever change or lose (the pseudonym key
that every chat pseudonym is derived with, and the key that signs web sessions). ``init``
writes both files at once, generates the keys, and never overwrites an existing file: a
second ``init`` in the same folder would otherwise replace the pseudonym key and split every
community member into two people.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lms_bridge.config.settings import DEFAULT_CONFIG_NAME, load_settings
from lms_bridge.errors import ConfigError

SECRETS_NAME = "secrets.env"

#: Indonesia's three time zones, offered first; any IANA zone is accepted.
INDONESIAN_ZONES = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")


@dataclass(frozen=True)
class StarterAnswers:
    """What ``init`` asks for.

    Attributes:
        institution: the institution's name, printed on every HR export.
        timezone: the IANA zone of the sources' day boundaries (WIB ``Asia/Jakarta`` by default).
        lrs_url: the xAPI endpoint statements are posted to.
        lrs_username: the LRS's Basic-auth user.
        lrs_password: the LRS password, or "" to leave a placeholder in the secrets file.
        state_url: the state database (SQLite file next to the config, or a PostgreSQL URL).
    """

    institution: str
    timezone: str = "Asia/Jakarta"
    lrs_url: str = "http://127.0.0.1:8100/xAPI/"
    lrs_username: str = "lms-bridge"
    lrs_password: str = ""
    state_url: str = "sqlite:///lms-bridge.db"


def check_answers(answers: StarterAnswers) -> None:
    """Refuse answers the config would refuse, before anything is written.

    Raises:
        ConfigError: one sentence naming the answer that is wrong.
    """
    if not answers.institution.strip():
        raise ConfigError("the institution name is empty: give it with --institution")
    try:
        ZoneInfo(answers.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {answers.timezone!r}: use one of {', '.join(INDONESIAN_ZONES)}") from None
    if not answers.lrs_url.startswith(("http://", "https://")):
        raise ConfigError(f"LRS URL {answers.lrs_url!r} must start with http:// or https://")
    if not answers.state_url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
        raise ConfigError(f"state database {answers.state_url!r} must be sqlite:///FILE or postgresql://USER@HOST/DB")


def render_config(answers: StarterAnswers) -> str:
    """The commented ``lms-bridge.toml`` for these answers (TOML strings written as JSON strings)."""

    def q(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)

    lrs_url = answers.lrs_url if answers.lrs_url.endswith("/") else answers.lrs_url + "/"
    return f"""\
# lms-bridge configuration, written by `lms-bridge init`.
# Secrets never live here: they are in {SECRETS_NAME} (mode 0600) or in the environment.
# Check everything with: lms-bridge doctor

[deployment]
# The day boundaries of JP credit ("one credit per day") are taken in this zone:
# Asia/Jakarta (WIB), Asia/Makassar (WITA) or Asia/Jayapura (WIT).
timezone = {q(answers.timezone)}
# base_iri and namespace fix every statement id: never change them once statements are posted.
# base_iri = "https://lms-bridge.id/xapi"

[state]
# Cursors, the outbox and the JP records. SQLite (a file next to this config) suits one
# institution; use PostgreSQL (postgresql://lms_bridge@127.0.0.1/lms_bridge) for several
# sites synced by workers.
url = {q(answers.state_url)}

[lrs]
# The Learning Record Store statements are posted to (Ralph: the URL ends in /xAPI/).
url = {q(lrs_url)}
username = {q(answers.lrs_username)}
password_env = "LMS_BRIDGE_LRS_PASSWORD"   # its value is in {SECRETS_NAME}
# version = "1.0.3"                        # or "2.0.0", or "auto" (follows the LRS's /about)

[secrets]
file = {q(SECRETS_NAME)}

[report]
institution = {q(answers.institution)}
language = "id"                            # "id" (Bahasa Indonesia) or "en"
# Yearly JP target per employee type; a ministry may set its own (e.g. 30 for PNS).
targets = {{ PNS = 20, PPPK = 20 }}

[web]
secret_key_env = "LMS_BRIDGE_WEB_SECRET_KEY"   # its value is in {SECRETS_NAME}
# session_hours = 8

# A Moodle site: add it with
#   lms-bridge sites add lms-utama --url https://lms.example.go.id --token-env MOODLE_TOKEN_LMS_UTAMA
# which prints the Moodle admin steps for the token and then tests the site.
#
# A community's exports dropped into a folder (WhatsApp, Telegram, Zoom, Teams, Meet):
# [[inboxes]]
# path = "inbox/cop-widyaiswara"
# community = "cop-widyaiswara"
"""


def render_secrets(answers: StarterAnswers) -> str:
    """The ``KEY=value`` secrets file: fresh keys, and the LRS password or a placeholder."""
    password_line = (
        f"LMS_BRIDGE_LRS_PASSWORD={answers.lrs_password}"
        if answers.lrs_password
        else "# LMS_BRIDGE_LRS_PASSWORD=   <- the LRS password: remove the '#' and write it after '='"
    )
    return f"""\
# lms-bridge secrets, written by `lms-bridge init`. Keep this file mode 0600 and back it up:
# LMS_BRIDGE_PSEUDONYM_KEY derives every chat member's pseudonym. Losing or changing it splits
# each member into a new person; it can never be changed once exports are imported.
LMS_BRIDGE_PSEUDONYM_KEY={secrets.token_hex(32)}
# Signs the HR page's session cookies (changing it only logs everyone out).
LMS_BRIDGE_WEB_SECRET_KEY={secrets.token_hex(32)}
{password_line}
# Moodle tokens and other source secrets go here too, one KEY=value per line, e.g.
# MOODLE_TOKEN_LMS_UTAMA=...
"""


def _write_new(path: Path, text: str, mode: int) -> None:
    # O_EXCL: never replace a file, even one created between the check and the write.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_starter(folder: Path, answers: StarterAnswers) -> tuple[Path, Path]:
    """Write ``lms-bridge.toml`` and ``secrets.env`` into ``folder`` and check that they load.

    Returns:
        The config path and the secrets path.

    Raises:
        ConfigError: a bad answer, a folder that does not exist, or a file already there
            (nothing is written then).
    """
    check_answers(answers)
    if not folder.is_dir():
        raise ConfigError(f"folder {folder} does not exist")
    config_path = folder / DEFAULT_CONFIG_NAME
    secrets_path = folder / SECRETS_NAME
    for path in (config_path, secrets_path):
        if path.exists() or path.is_symlink():
            raise ConfigError(
                f"{path} already exists: init never overwrites a configuration "
                "(its pseudonym key must not change); move it away first"
            )
    _write_new(secrets_path, render_secrets(answers), 0o600)
    try:
        _write_new(config_path, render_config(answers), 0o600)
        load_settings(config_path, environ={})
    except BaseException:
        # Leave nothing half-made: both files or neither.
        for path in (config_path, secrets_path):
            path.unlink(missing_ok=True)
        raise
    return config_path, secrets_path
