"""``[alerts]``: where ``serve`` sends a message when something needs an operator (a leaf of config).

Usage (``lms-bridge.toml``)::

    [alerts]
    check = "*/15 * * * *"        # when serve looks (cron, deployment time zone)
    failed_runs = 3               # a source whose last 3 syncs failed
    pending_hours = 6             # the oldest statement waiting for the LRS is older than this
    silent_hours = 24             # a synced source with no successful pull for this long
    [alerts.email]
    host = "smtp.example.go.id"
    port = 587
    starttls = true
    username = "lms-bridge@example.go.id"
    password_env = "LMS_BRIDGE_SMTP_PASSWORD"
    sender = "lms-bridge@example.go.id"
    to = ["operator@example.go.id"]
    [alerts.telegram]
    token_env = "LMS_BRIDGE_ALERT_BOT_TOKEN"
    chat_id = "-1001234567890"
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EmailTarget(_Section):
    """An SMTP server and the addresses alerts go to.

    Attributes:
        host: the SMTP server.
        port: its port (587 with STARTTLS, 465 with ``ssl``, 25 on a trusted relay).
        starttls: upgrade the connection with STARTTLS before logging in.
        ssl: connect with TLS from the start (port 465).
        username: the SMTP login, when the server asks for one.
        password_env: environment variable (or secrets-file key) holding its password.
        sender: the From address.
        to: the addresses alerts go to.
        timeout: seconds to wait for the server.
    """

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password_env: str = "LMS_BRIDGE_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a password
    sender: str
    to: tuple[str, ...] = Field(min_length=1)
    timeout: float = Field(default=20.0, gt=0)

    @field_validator("sender", "to")
    @classmethod
    def _addresses(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for address in (value,) if isinstance(value, str) else value:
            if "@" not in address or any(c.isspace() for c in address):
                raise ValueError(f"{address!r} is not an e-mail address")
        return value


class TelegramTarget(_Section):
    """A Telegram chat alerts are posted to by a bot (not the bot that reads communities).

    Attributes:
        token_env: environment variable (or secrets-file key) holding the bot's token.
        chat_id: the chat (a person or a group of operators) the bot posts in.
        api_url: the Bot API's address.
        timeout: seconds to wait for it.
    """

    token_env: str = "LMS_BRIDGE_ALERT_BOT_TOKEN"  # noqa: S105 - the variable's name, not a token
    chat_id: str
    api_url: str = "https://api.telegram.org"
    timeout: float = Field(default=20.0, gt=0)


class AlertSettings(_Section):
    """``[alerts]``: thresholds and targets (no target: serve sends nothing; ``alerts check`` still works).

    Attributes:
        check: when ``serve`` evaluates the conditions (cron; ``off`` switches alerts off).
        failed_runs: alert when a source's last this many syncs all failed.
        pending_hours: alert when the oldest pending statement is older than this.
        silent_hours: alert when a synced source has had no successful pull for this long.
        email: an SMTP target.
        telegram: a Telegram bot target.
    """

    check: str = "*/15 * * * *"
    failed_runs: int = Field(default=3, ge=1, le=100)
    pending_hours: float = Field(default=6.0, gt=0)
    silent_hours: float = Field(default=24.0, gt=0)
    email: EmailTarget | None = None
    telegram: TelegramTarget | None = None

    @field_validator("check")
    @classmethod
    def _cron(cls, value: str) -> str:
        from lms_bridge.config.serve import cron_trigger

        cron_trigger(value, "UTC")
        return value

    @property
    def targets(self) -> list[EmailTarget | TelegramTarget]:
        """The configured targets."""
        return [target for target in (self.email, self.telegram) if target is not None]
