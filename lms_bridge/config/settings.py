"""Configuration: one TOML file, environment overrides, and secrets kept apart.

The file (``lms-bridge.toml``; path from ``--config`` or ``LMS_BRIDGE_CONFIG``) names
the LRS, the state database and the sources. Secrets never live in it: the LRS
password, LMS tokens and the pseudonym key come from the environment or from a
secrets file (``KEY=value`` lines) that must be mode 0600. Every secret is a
``SecretStr`` and is registered with the log redactor as soon as it is read.

Usage::

    settings = load_settings(Path("lms-bridge.toml"))
    password = settings.secret(settings.lrs.password_env)
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from lms_bridge import redaction
from lms_bridge.config.alerts import AlertSettings
from lms_bridge.config.inbox import InboxSettings
from lms_bridge.config.serve import ServeSettings
from lms_bridge.errors import ConfigError

CONFIG_ENV = "LMS_BRIDGE_CONFIG"
SECRETS_FILE_ENV = "LMS_BRIDGE_SECRETS_FILE"
ENV_PREFIX = "LMS_BRIDGE_"
DEFAULT_CONFIG_NAME = "lms-bridge.toml"

#: The default vocabulary base IRI ({base} in docs/xapi.md). Guard: statement ids
#: derive from it, so a deployment must never change it once statements are posted.
DEFAULT_BASE_IRI = "https://lms-bridge.id/xapi"

# Keys that look like a secret written straight into the TOML file. ``*_env`` and
# ``*_file`` keys only name where a secret lives, so they are allowed. A key holding one of
# ``_SECRET_KEY_WORDS`` anywhere (``lrs_password``) or one of ``_SECRET_KEY_PARTS`` as a whole
# word between ``_``/``-``/``.`` (``key``, ``api_key``, ``private_key``, ``db_pass``) is a secret.
_SECRET_KEY_WORDS = ("password", "passwd", "passphrase", "token", "secret", "apikey", "credential")
_SECRET_KEY_PARTS = frozenset({"key", "pass", "pwd", "pw", "auth", "bearer"})
_KEY_PARTS = re.compile(r"[_.\-]+")
#: Where URLs naming a source live: a password in one ends up in statement ids, logs and the LRS.
_URL_SECTIONS = ("sources", "lrs", "ledger")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeploymentSettings(_Section):
    """Who this deployment is; fixes statement ids and actor identities.

    Attributes:
        base_iri: the vocabulary base for lms-bridge's own activity ids and extensions.
        namespace: UUID namespace for statement ids; default ``uuid5(NAMESPACE_URL, base_iri)``.
        identity_authority: ``account.homePage`` of actors identified by NIP.
        timezone: local time zone of the sources' day boundaries.
        pseudonym_key_env: environment variable (or secrets-file key) holding the HMAC key.
    """

    base_iri: str = DEFAULT_BASE_IRI
    namespace: uuid.UUID | None = None
    identity_authority: str = "https://siasn.bkn.go.id"
    timezone: str = "Asia/Jakarta"
    pseudonym_key_env: str = "LMS_BRIDGE_PSEUDONYM_KEY"

    @field_validator("base_iri", "identity_authority")
    @classmethod
    def _absolute_iri(cls, value: str) -> str:
        if "://" not in value or " " in value:
            raise ValueError("must be an absolute IRI such as https://example.go.id/xapi")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone (an IANA name such as Asia/Jakarta)") from exc
        return value

    @property
    def statement_namespace(self) -> uuid.UUID:
        """The UUID namespace statement ids are derived in."""
        return self.namespace or uuid.uuid5(uuid.NAMESPACE_URL, self.base_iri)


class StateSettings(_Section):
    """Where the state store lives.

    Attributes:
        url: SQLAlchemy URL; ``sqlite:///lms-bridge.db`` (relative paths are taken from the
            config file's folder) or ``postgresql://user@host/db``.
    """

    url: str = "sqlite:///lms-bridge.db"


class LRSSettings(_Section):
    """The Learning Record Store statements are posted to.

    Attributes:
        url: the xAPI endpoint (ending in ``/xAPI/`` for Ralph).
        username: Basic-auth user.
        password_env: environment variable (or secrets-file key) holding the password.
        batch_size: statements per POST.
        timeout: seconds to wait for the LRS to answer one POST.
        max_attempts: consecutive failed POSTs (timeouts, 5xx) before a flush gives up; on the last one a
            batch that gets a 5xx is split to find statements the LRS cannot store (``outbox/flush.py``).
        backoff_base: first wait in seconds between attempts; doubles each time.
        backoff_cap: longest wait in seconds between attempts.
        version: the xAPI version written: ``1.0.3`` (default), ``2.0.0`` (IEEE 9274.1.1-2023: the
            webinar host and the community also as ``contextAgents``/``contextGroups``), or ``auto``
            (the ``X-Experience-API-Version`` header follows the LRS's ``about``; statements keep the
            1.0.3 form, valid under both). docs/lrs.md, "Choosing the xAPI version".
    """

    url: str = "http://127.0.0.1:8100/xAPI/"
    username: str = "lms-bridge"
    password_env: str = "LMS_BRIDGE_LRS_PASSWORD"  # noqa: S105 - the variable's name, not a password
    batch_size: int = Field(default=500, ge=1, le=10_000)
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    backoff_base: float = Field(default=1.0, ge=0)
    backoff_cap: float = Field(default=60.0, ge=0)
    version: Literal["1.0.3", "2.0.0", "auto"] = "1.0.3"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://lrs.example.go.id/xAPI/")
        return value if value.endswith("/") else value + "/"


class SourceSettings(BaseModel):
    """One configured source (a Moodle site, a CoP group, a file drop...).

    Type-specific keys are kept as extras and validated by the connector's own
    settings class when the source is used.

    Attributes:
        id: short stable id, used in statement ids and cursors: never rename it.
        type: connector name (``moodle``, ``jsonl``, ``whatsapp``...).
        url: the source's home URL, when it has one.
        token_env: environment variable (or secrets-file key) holding its token.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    type: str
    url: str | None = None
    token_env: str | None = None


class SecretsSettings(_Section):
    """Where secrets are read from besides the environment.

    Attributes:
        file: a ``KEY=value`` file that must be mode 0600 (owner only).
    """

    file: Path | None = None


class LoggingSettings(_Section):
    """Log output.

    Attributes:
        level: minimum level (DEBUG, INFO, WARNING, ERROR).
        format: ``text`` for people, ``json`` for log collectors.
    """

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class JPSettings(_Section):
    """Where the JP rules live (docs/domain.md §1; defaults: the files shipped in ``mappings/``).

    Attributes:
        rules_file: a JP rules file (``mappings/jp_rules.toml`` format); relative to the config file.
        program_jp_file: a program JP file (``mappings/program_jp.toml`` format).
    """

    rules_file: Path | None = None
    program_jp_file: Path | None = None


class LedgerSettings(_Section):
    """How ``ledger sync`` reads JP records back from the LRS.

    Attributes:
        since_filter: ``stored`` when the LRS's ``since`` filters on ``stored`` as xAPI says
            (then only new statements are read); ``none`` to page through everything each
            time (Ralph 5.1.0 compares ``since`` with ``timestamp``: docs/lrs.md §3).
        overlap_seconds: re-read this far behind the cursor (statements stored out of order).
        page_size: statements per GET (Ralph caps it at 100).
    """

    since_filter: Literal["stored", "none"] = "none"
    overlap_seconds: int = Field(default=300, ge=0)
    page_size: int = Field(default=100, ge=1, le=10_000)


class ReportSettings(_Section):
    """HR reports.

    Attributes:
        targets: yearly JP target per employee type (PP 11/2017 as amended: 20 JP for a PNS).
        language: language of reports, exports and their messages: ``id`` (Bahasa Indonesia) or ``en``.
            The web page starts in it unless the browser asks for the other one or the user switches.
        institution: the institution's name, printed on the title rows of exports and on the PDF recap.
    """

    targets: dict[str, int] = Field(default_factory=lambda: {"PNS": 20, "PPPK": 20})
    language: Literal["id", "en"] = "id"
    institution: str = ""


class CopSettings(_Section):
    """The CoP health report (``report cop`` and the *Komunitas Belajar* page).

    Attributes:
        facilitators: per community id, the NIPs of its facilitators (peer-to-peer replies are
            those between two other members). A community not listed takes its top 3 posters of the year.
    """

    facilitators: dict[str, list[str]] = Field(default_factory=dict)


class WebSettings(_Section):
    """The read-only HR web page (``lms-bridge serve-web``).

    Attributes:
        secret_key_env: environment variable (or secrets-file key) holding the key that signs
            session cookies; when unset, each process makes a random one (sessions end on restart).
        session_hours: how long a login lasts without a request (idle time).
        session_max_hours: how long a login lasts at most, however busy (absolute lifetime).
        trusted_proxies: addresses or networks of the HTTPS reverse proxy in front of the page; only a
            request from one of them has its ``X-Forwarded-For``/``-Proto``/``-Host``/``-Port`` believed
            (``serve-web --allow-remote`` needs at least one).
        proxy_hops: how many trusted proxies in a row append to ``X-Forwarded-*`` (usually 1).
        report_cache_entries: compliance reports (one per year and as-of date) the page keeps between
            requests until the data behind them changes (about 50 MB each for 100,000 people: 47 MB measured).
    """

    secret_key_env: str = "LMS_BRIDGE_WEB_SECRET_KEY"  # noqa: S105 - the variable's name, not a key
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    session_max_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    trusted_proxies: tuple[str, ...] = ()
    proxy_hops: int = Field(default=1, ge=1, le=5)
    report_cache_entries: int = Field(default=4, ge=1, le=64)

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/24)") from None
        return tuple(item.strip() for item in value)


class LimitsSettings(_Section):
    """What one input file may hold (``import``, the inbox, ``people import``); past a cap it is refused.

    The defaults are far above any real export (a WhatsApp group export holds at most about
    40,000 messages, a Telegram export's JSON nests about 8 levels); they bound the memory and
    time one file can cost (a zip bomb, a hostile upload).

    Attributes:
        max_messages: messages of one chat export (WhatsApp, Telegram); ``import --max-messages`` overrides it.
        max_rows: rows of one report or roster, activities of one activity file.
        max_json_depth: how deeply a JSON file (Telegram export, activity line) may nest.
        roster_max_mb: the largest roster or name-link CSV, in MB.
    """

    max_messages: int = Field(default=1_000_000, ge=1)
    max_rows: int = Field(default=1_000_000, ge=1)
    max_json_depth: int = Field(default=64, ge=2, le=500)
    roster_max_mb: int = Field(default=64, ge=1, le=4096)


class Settings(_Section):
    """The whole configuration tree. Built once by the CLI and passed down."""

    deployment: DeploymentSettings = DeploymentSettings()
    state: StateSettings = StateSettings()
    lrs: LRSSettings = LRSSettings()
    secrets: SecretsSettings = SecretsSettings()
    logging: LoggingSettings = LoggingSettings()
    jp: JPSettings = JPSettings()
    ledger: LedgerSettings = LedgerSettings()
    report: ReportSettings = ReportSettings()
    serve: ServeSettings = ServeSettings()
    web: WebSettings = WebSettings()
    alerts: AlertSettings = AlertSettings()
    cop: CopSettings = CopSettings()
    limits: LimitsSettings = LimitsSettings()
    sources: tuple[SourceSettings, ...] = ()
    #: Folders of community exports imported by ``inbox run`` and ``serve`` (:mod:`lms_bridge.ingest.inbox`).
    inboxes: tuple[InboxSettings, ...] = ()
    #: The file the settings came from (None: embedded defaults).
    config_path: Path | None = None
    #: Secrets read from the secrets file, by key (environment wins over the file).
    file_secrets: dict[str, SecretStr] = Field(default_factory=dict, repr=False)

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, value: tuple[SourceSettings, ...]) -> tuple[SourceSettings, ...]:
        seen: set[str] = set()
        for source in value:
            if source.id in seen:
                raise ValueError(f"source id {source.id!r} appears twice")
            seen.add(source.id)
        return value

    def source(self, source_id: str) -> SourceSettings:
        """Return the configured source with this id.

        Raises:
            ConfigError: when no source has this id.
        """
        for source in self.sources:
            if source.id == source_id:
                return source
        known = ", ".join(s.id for s in self.sources) or "none configured"
        raise ConfigError(f"unknown source {source_id!r} (known: {known})")

    def optional_secret(self, name: str) -> SecretStr | None:
        """Return the secret named ``name`` from the environment or the secrets file, or None.

        The value is registered with the log redactor before it is returned.
        """
        raw = os.environ.get(name)
        value = SecretStr(raw) if raw else self.file_secrets.get(name)
        if value is None or not value.get_secret_value():
            return None
        redaction.register_secret(value.get_secret_value())
        return value

    def secret(self, name: str) -> SecretStr:
        """Return the secret named ``name``; it must be set.

        Raises:
            ConfigError: when the secret is set neither in the environment nor in the secrets file.
        """
        value = self.optional_secret(name)
        if value is None:
            where = (
                f"the environment or the secrets file {self.secrets.file}"
                if self.secrets.file
                else ("the environment (or a 0600 secrets file named in [secrets] file)")
            )
            raise ConfigError(f"secret {name} is not set: put it in {where}")
        return value

    def resolve_path(self, path: Path) -> Path:
        """Resolve a path from the config relative to the config file's folder."""
        if path.is_absolute() or self.config_path is None:
            return path
        return self.config_path.parent / path


def _find_inline_secret(data: dict[str, Any], where: str = "") -> str | None:
    for key, value in data.items():
        here = f"{where}.{key}" if where else key
        if isinstance(value, dict):
            found = _find_inline_secret(value, here)
            if found:
                return found
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    found = _find_inline_secret(item, f"{here}[{index}]")
                    if found:
                        return found
        elif _is_secret_key(key):
            return here
    return None


def _is_secret_key(key: str) -> bool:
    """A key whose value would be a secret (``password``, ``api_key``...), not a ``*_env``/``*_file`` name."""
    lowered = key.lower()
    if lowered.endswith(("_env", "_file", "-env", "-file")):
        return False
    return any(word in lowered for word in _SECRET_KEY_WORDS) or bool(
        _SECRET_KEY_PARTS.intersection(_KEY_PARTS.split(lowered))
    )


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string of a TOML value with where it sits (``sources[0].url``)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def _find_url_credentials(data: dict[str, Any]) -> str | None:
    """Where a URL of a source, the LRS or the ledger carries a user name or password (``https://u:p@host``)."""
    for section in _URL_SECTIONS:
        for where, text in _strings(data.get(section), section):
            if "@" not in text or "://" not in text:
                continue
            try:
                parts = urlsplit(text.strip())
            except ValueError:
                continue
            if parts.scheme and "@" in parts.netloc:
                return where
    return None


def _apply_env_overrides(data: dict[str, Any], environ: dict[str, str]) -> None:
    """Apply ``LMS_BRIDGE_SECTION__KEY=value`` overrides (one level of nesting)."""
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if not section or not key or "__" in key:
            continue
        target = data.setdefault(section, {})
        if isinstance(target, dict):
            target[key] = value


def read_secrets_file(path: Path) -> dict[str, SecretStr]:
    """Read a ``KEY=value`` secrets file, refusing one others can read.

    Raises:
        ConfigError: when the file is missing, not owner-only (0600) or malformed.
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"secrets file {path} cannot be read ({exc.strerror})") from exc
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"secrets file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    secrets: dict[str, SecretStr] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not key:
            # Never echo the line: it may hold a secret.
            raise ConfigError(f"secrets file {path} line {number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        secrets[key] = SecretStr(value)
        if value:
            redaction.register_secret(value)
    return secrets


def _describe_validation_error(exc: ValidationError, origin: str) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    if len(loc) >= 2 and loc[0] in ("sources", "inboxes") and loc[1].isdigit():
        where = f"[[{loc[0]}]] #{int(loc[1]) + 1}" + (f" {'.'.join(loc[2:])}" if loc[2:] else "")
    elif len(loc) >= 2:
        where = f"[{loc[0]}] {'.'.join(loc[1:])}"
    else:
        where = ".".join(loc) or "top level"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling)"
    elif error["type"] == "path_type":
        message = "must be a path (text in quotes)"
    elif error["type"] in ("model_type", "model_attributes_type", "dict_type") and len(loc) == 1:
        message = f"must be a table ([{loc[0]}] with keys under it)"
    return f"{origin}: {where}: {message}"


def load_settings(path: Path | None = None, *, environ: dict[str, str] | None = None) -> Settings:
    """Load and validate the configuration.

    Args:
        path: the TOML file; default ``LMS_BRIDGE_CONFIG`` or ``./lms-bridge.toml`` when it
            exists, else the embedded defaults.
        environ: the environment to read overrides from (default ``os.environ``).

    Returns:
        The validated settings.

    Raises:
        ConfigError: one sentence naming the file and key that is wrong.
    """
    env = dict(os.environ if environ is None else environ)
    if path is None and env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    if path is None and Path(DEFAULT_CONFIG_NAME).is_file():
        path = Path(DEFAULT_CONFIG_NAME)

    data: dict[str, Any] = {}
    origin = "embedded defaults"
    if path is not None:
        origin = f"config file {path}"
        try:
            # A BOM (Windows Notepad writes one) is no TOML: drop it rather than refuse line 1.
            data = tomllib.loads(path.read_bytes().decode("utf-8").removeprefix("\ufeff"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read ({exc.strerror})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {path} is not UTF-8 text (byte {exc.start}); TOML files are UTF-8: save it as UTF-8"
            ) from exc
        except RecursionError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: nested too deeply") from exc
        inline = _find_inline_secret(data)
        if inline:
            raise ConfigError(
                f"config file {path}: {inline}: secrets do not belong in the config file; "
                "name an environment variable with a *_env key and set it there or in the secrets file"
            )

    _apply_env_overrides(data, env)
    in_url = _find_url_credentials(data)
    if in_url:
        # Never echo the URL: its user name and password are what must not spread.
        raise ConfigError(
            f"{origin}: {in_url}: a URL may not carry a user name or password (user:password@host); "
            "remove them from the URL and put the password in the secrets file, named by the entry's *_env key"
        )
    if env.get(SECRETS_FILE_ENV):
        data.setdefault("secrets", {})["file"] = env[SECRETS_FILE_ENV]
    try:
        settings = Settings.model_validate({**data, "config_path": path.resolve() if path else None})
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, origin)) from None

    if settings.secrets.file is not None:
        file_secrets = read_secrets_file(settings.resolve_path(settings.secrets.file))
        settings = settings.model_copy(update={"file_secrets": file_secrets})
    return settings
