"""Managing Moodle sites: add one to the config file, list them, test their tokens."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from connectors import moodle
from lms_bridge.config.settings import DEFAULT_CONFIG_NAME, Settings, load_settings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.ingest.runner import moodle_sources, test_site
from lms_bridge.store.models import Run

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def add_site(settings: Settings, *, site_id: str, url: str, token_env: str, fmt: str = "json") -> Path:
    """Append a ``[[sources]]`` entry for a Moodle site to the config file (created if missing).

    The file is appended to, never rewritten, so its comments survive; the result is
    validated by loading it again, and the file is restored when that fails.

    Raises:
        ConfigError: a bad id, URL or variable name, or an id already in use.
    """
    if not _ID.match(site_id):
        raise ConfigError(f"site id {site_id!r} must be lowercase letters, digits, '.', '_' or '-'")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"site URL {url!r} must start with http:// or https://")
    if not _ENV.match(token_env):
        raise ConfigError(f"token variable {token_env!r} must be an environment variable name such as MOODLE_TOKEN")
    if any(source.id == site_id for source in settings.sources):
        raise ConfigError(f"a source with id {site_id!r} is already configured")
    path = settings.config_path or Path(DEFAULT_CONFIG_NAME).resolve()
    before = path.read_text(encoding="utf-8") if path.exists() else None
    block = (
        f'\n[[sources]]\nid = {json.dumps(site_id)}\ntype = "moodle"\nurl = {json.dumps(url.rstrip("/"))}\n'
        f"token_env = {json.dumps(token_env)}\nformat = {json.dumps(fmt)}\n"
    )
    path.write_text((before or "# lms-bridge configuration\n") + block, encoding="utf-8")
    try:
        moodle_sources(load_settings(path), site_id)
    except ConfigError:
        if before is None:
            path.unlink()
        else:
            path.write_text(before, encoding="utf-8")
        raise
    return path


@dataclass(frozen=True)
class SiteRow:
    """One line of ``sites list``."""

    id: str
    url: str
    token_state: str
    format: str
    last_sync: str


def list_sites(engine: Engine, settings: Settings) -> list[SiteRow]:
    """The configured Moodle sites with whether their token is set and their last sync run."""
    rows = []
    with Session(engine) as session:
        for source in (s for s in settings.sources if s.type == "moodle"):
            site = moodle.MoodleSettings.model_validate(source.model_dump(exclude_none=True))
            run = session.scalars(
                select(Run).where(Run.site_id == site.id, Run.command == "sync").order_by(Run.id.desc()).limit(1)
            ).first()
            last = "never" if run is None else f"{run.started_at:%Y-%m-%d %H:%M} UTC, {run.status}"
            token = f"{site.token_env} set" if settings.optional_secret(site.token_env) else f"{site.token_env} NOT SET"
            rows.append(SiteRow(site.id, site.url, token, site.format, last))
    return rows


def test_line(settings: Settings, site: moodle.MoodleSettings) -> tuple[str, bool]:
    """One line saying whether a site answers and what its token's service lacks."""
    try:
        info, _ = test_site(settings, site)
    except LmsBridgeError as exc:
        return f"FAIL {site.id}: {exc}", False
    # The site's settings may need more functions (course_customfields: core_course_get_courses_by_field).
    missing = moodle.missing_functions(info, site)
    about = f"{info.get('sitename')} (Moodle {info.get('release')}), token user {info.get('username')}"
    if missing:
        return f"FAIL {site.id}: {about}; the service lacks: {', '.join(missing)}", False
    return f"ok   {site.id}: {about}; all {len(moodle.required_functions(site))} functions available", True
