"""Managing LMS sites (``connectors.SITE_TYPE``, Moodle): add one to the config file, list them, test them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors import CONNECTORS, SITE_TYPE
from connectors.moodle.setup_steps import admin_steps
from lms_bridge.config.settings import DEFAULT_CONFIG_NAME, Settings, load_settings
from lms_bridge.errors import ConfigError
from lms_bridge.ingest.runner import connector_context
from lms_bridge.store.models import Run

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def site_sources(settings: Settings, site: str | None = None) -> list[Any]:
    """The configured sites (or the one named ``site``), validated by their connector.

    Raises:
        ConfigError: when ``site`` is not a configured site, or none is configured.
    """
    connector = CONNECTORS[SITE_TYPE]
    if site is not None:
        source = settings.source(site)
        if source.type != SITE_TYPE:
            raise ConfigError(f"source {site} is of type {source.type}, not {SITE_TYPE}")
        return [connector.settings(source.model_dump(exclude_none=True))]
    sites = [connector.settings(s.model_dump(exclude_none=True)) for s in settings.sources if s.type == SITE_TYPE]
    if not sites:
        raise ConfigError(f"no {connector.label} is configured: add one with lms-bridge sites add")
    return sites


def add_site(settings: Settings, *, site_id: str, url: str, token_env: str, fmt: str = "json") -> Path:
    """Append a ``[[sources]]`` entry for a Moodle site to the config file (created if missing).

    The file is appended to, never rewritten, so its comments survive; the result is
    validated by loading it again, and the file is restored when that fails.

    Raises:
        ConfigError: a bad id, URL or variable name, or an id already in use.
    """
    if not _ID.match(site_id):
        raise ConfigError(f"site id {site_id!r} must be lowercase letters, digits, '.', '_' or '-'")
    if "@" in url.partition("://")[2].partition("/")[0]:
        # Never echo it, nor write it to the file even for a moment: the password is what must not spread.
        raise ConfigError(
            "--url may not carry a user name or password (user:password@host); give the site's address and "
            "put its token in the environment or the secrets file under --token-env"
        )
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"site URL {url!r} must start with http:// or https://")
    if not _ENV.match(token_env):
        raise ConfigError(f"token variable {token_env!r} must be an environment variable name such as MOODLE_TOKEN")
    if any(source.id == site_id for source in settings.sources):
        raise ConfigError(f"a source with id {site_id!r} is already configured")
    path = settings.config_path or Path(DEFAULT_CONFIG_NAME).resolve()
    before = path.read_text(encoding="utf-8") if path.exists() else None
    block = (
        f"\n[[sources]]\nid = {json.dumps(site_id)}\ntype = {json.dumps(SITE_TYPE)}\n"
        f"url = {json.dumps(url.rstrip('/'))}\ntoken_env = {json.dumps(token_env)}\nformat = {json.dumps(fmt)}\n"
    )
    path.write_text((before or "# lms-bridge configuration\n") + block, encoding="utf-8")
    try:
        site_sources(load_settings(path), site_id)
    except ConfigError:
        if before is None:
            path.unlink()
        else:
            path.write_text(before, encoding="utf-8")
        raise
    return path


def setup_steps(site_url: str, token_env: str) -> str:
    """What the site's Moodle administrator does once for the token (printed by ``sites add``)."""
    return admin_steps(site_url, token_env)


@dataclass(frozen=True)
class SiteRow:
    """One line of ``sites list``."""

    id: str
    url: str
    token_state: str
    format: str
    last_sync: str


def list_sites(engine: Engine, settings: Settings) -> list[SiteRow]:
    """The configured sites with whether their token is set and their last sync run."""
    connector = CONNECTORS[SITE_TYPE]
    rows = []
    with Session(engine) as session:
        for source in (s for s in settings.sources if s.type == SITE_TYPE):
            site = connector.settings(source.model_dump(exclude_none=True))
            run = session.scalars(
                select(Run).where(Run.site_id == site.id, Run.command == "sync").order_by(Run.id.desc()).limit(1)
            ).first()
            last = "never" if run is None else f"{run.started_at:%Y-%m-%d %H:%M} UTC, {run.status}"
            token = f"{site.token_env} set" if settings.optional_secret(site.token_env) else f"{site.token_env} NOT SET"
            rows.append(SiteRow(site.id, site.url, token, site.format, last))
    return rows


def test_sources(settings: Settings, site: str | None = None) -> list[Any]:
    """What ``sites test`` checks: every configured site, or the one source named ``site`` of any synced type.

    Raises:
        ConfigError: an unknown source, one no connector reads, or no site configured.
    """
    if site is None:
        return site_sources(settings)
    source = settings.source(site)
    if source.type not in CONNECTORS:
        raise ConfigError(f"source {site} is of type {source.type}: sites test checks {', '.join(CONNECTORS)}")
    return [source]


def test_line(settings: Settings, site: Any) -> tuple[str, bool]:
    """One line saying whether a source answers lms-bridge as a sync needs (its connector's check), with the fix."""
    check = CONNECTORS[site.type].check(site.model_dump(exclude_none=True), connector_context(settings))
    if check is None:
        return f"ok   {site.id}: nothing to check", True
    fix = f" -> {check.fix}" if not check.ok and check.fix else ""
    return f"{'ok  ' if check.ok else 'FAIL'} {site.id}: {check.detail}{fix}", check.ok
