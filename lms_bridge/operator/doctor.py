"""``lms-bridge doctor``: one check per line, each with the fix when it fails.

Checks, in order: the config file; the secrets file's mode; the state database (it is
migrated, as every command does) and its migration level; the LRS (credentials set,
reachable, accepting them, speaking xAPI: the ``X-Experience-API-Version`` header, else
``/about``); with ``--write-probe`` only, a write-read round trip of the sandbox statements;
one line per LRS capability (versions, ``since`` on ``stored``, voided statements hidden, a
re-post answered 204 or 409: ``operator/capabilities.py``) with the ledger and source-LRS
modes they pick; each source whose connector checks itself (a Moodle site: its token, and
the functions its external service lacks); the age of the last pull of each source that
keeps unread records a limited time; each inbox folder (a real folder, and no symbolic link as
its ``done/`` or ``failed/``); the pseudonym key.

Without ``--write-probe`` doctor writes nothing to the LRS (issue 17) and says what it did
not probe. The round-trip statement is about a sandbox activity (``{base}/sandbox/doctor``)
and has a fixed id and body (``uuid5(ns, "doctor|round-trip|1")``); with the void probe's
target and void, every later run re-posts the same bytes: three statements, ever, per LRS.
The LRS answers such a re-post with 204 (Ralph) or 409 (ADL's LRS, xAPI allows both); after
a 409 the statement is read back and compared by the xAPI rules, and only a different
statement fails. None has a NIP actor or JP, so reports never count them (``ledger sync``
mirrors them as evidence of nobody).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import Engine

from connectors import CONNECTORS
from lms_bridge import store
from lms_bridge.config.lrs import lrs_client
from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.ingest.runner import connector_context
from lms_bridge.operator import capabilities
from lms_bridge.redaction import sanitize_url
from xapi.lrs_client import LRSClient
from xapi.statements import BuiltStatement

#: Pseudonym keys shorter than this are refused (HMAC keys should be long and random).
MIN_PSEUDONYM_KEY = 16
_EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def _config(settings: Settings) -> Check:
    where = str(settings.config_path) if settings.config_path else "built-in defaults (no config file)"
    sources = ", ".join(f"{s.id} ({s.type})" for s in settings.sources) or "no sources"
    return Check("config", True, f"{where}; {sources}")


def _secrets_file(settings: Settings) -> Check:
    if settings.secrets.file is None:
        return Check("secrets file", True, "none configured: secrets come from the environment")
    path = settings.resolve_path(settings.secrets.file)
    try:
        info = path.stat()
    except OSError as exc:
        return Check(
            "secrets file",
            False,
            f"{path} cannot be read ({exc.strerror})",
            "create it with KEY=value lines and chmod 600, or drop [secrets] file",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Check("secrets file", False, f"{path} is mode {mode:04o}: others can read it", f"chmod 600 {path}")
    owner = "this user" if info.st_uid == os.geteuid() else f"uid {info.st_uid}"
    return Check("secrets file", True, f"{path} mode {mode:04o}, owned by {owner}")


def _database(engine: Engine | None, refused: LmsBridgeError | None) -> Check:
    fix = "check [state] url and that the database server runs"
    if engine is None:
        return Check("state database", False, str(refused), fix)
    try:
        # Like every command, doctor migrates the store on start; a failure is the finding.
        before, after = store.upgrade(engine)
    except LmsBridgeError as exc:
        return Check("state database", False, str(exc), fix)
    migrated = "" if before == after else f" (migrated from {before or 'empty'})"
    return Check("state database", True, f"{store.describe(engine)} at revision {after}, the newest{migrated}")


def sandbox_statement(settings: Settings) -> BuiltStatement:
    """The round-trip statement (see the module docstring); the same bytes on every run."""
    return capabilities.sandbox_statements(settings)[0]


def _lrs_probe(settings: Settings, client: LRSClient) -> Check:
    """One GET: reachable, credentials accepted, an xAPI version header."""
    lrs = settings.lrs
    where = sanitize_url(lrs.url)
    try:
        response = client.session.get(client.statements_url, params={"limit": 1}, timeout=client.timeout)
    except requests.Timeout:
        return Check(
            "LRS",
            False,
            f"{where} did not answer within {client.timeout:g} s",
            "check that the LRS runs and that [lrs] url points at it",
        )
    except requests.ConnectionError:
        return Check(
            "LRS",
            False,
            f"cannot connect to {where}: the LRS is down or [lrs] url is wrong",
            "start the LRS, or fix [lrs] url",
        )
    except requests.RequestException as exc:
        return Check("LRS", False, f"request to {where} failed ({exc.__class__.__name__})", "fix [lrs] url")
    status = response.status_code
    if status in (401, 403):
        return Check(
            "LRS",
            False,
            f"{where} refused user {lrs.username} (HTTP {status}): wrong password or user",
            f"put the right password in {lrs.password_env} (environment or secrets file), or fix [lrs] username",
        )
    if status == 404:
        return Check(
            "LRS",
            False,
            f"{where} has no xAPI statements resource (HTTP 404)",
            "[lrs] url must be the xAPI endpoint, e.g. http://127.0.0.1:8100/xAPI/",
        )
    if status != 200:
        return Check("LRS", False, f"{where} answered HTTP {status} to a statements query", "check the LRS's own logs")
    accepted = f"{where} accepts user {lrs.username}"
    version = response.headers.get("X-Experience-API-Version")
    if version is not None and version.startswith("1.0"):
        return Check("LRS", True, f"{accepted}; X-Experience-API-Version {version}")
    # The header names the LRS's latest version (ADL's LRS sends 2.0.0 to every 1.0.3 request, as
    # xAPI lets it), so only /about tells which versions it speaks.
    # xAPI requires the header on every response, but Ralph 5.1.0 sends none and has no
    # /about (docs/lrs.md §3): accept an LRS that has neither.
    try:
        about = client.about()
    except LmsBridgeError as exc:
        return Check("LRS", False, f"{accepted} but GET about failed: {exc}", "check the LRS's own logs")
    versions = [str(v) for v in (about or {}).get("version", [])]
    if about is not None and not any(v.startswith("1.0") for v in versions):
        return Check(
            "LRS",
            False,
            f"{accepted} but its /about lists xAPI {', '.join(versions) or 'no version'}; lms-bridge writes 1.0.3",
            "point [lrs] url at the LRS's xAPI 1.0.x endpoint",
        )
    if about is not None:
        header = f"X-Experience-API-Version {version}" if version else "no X-Experience-API-Version header"
        return Check("LRS", True, f"{accepted}; {header}, /about lists {', '.join(versions)}")
    if version is not None:
        return Check(
            "LRS",
            False,
            f"{accepted} but speaks xAPI {version} (X-Experience-API-Version) and has no /about listing 1.0.x; "
            "lms-bridge writes 1.0.3",
            "point [lrs] url at the LRS's xAPI 1.0.x endpoint",
        )
    return Check(
        "LRS",
        True,
        f"{accepted}; it sends no X-Experience-API-Version header and has no /about "
        "(as Ralph 5.1.0); lms-bridge sends X-Experience-API-Version 1.0.3 itself",
    )


def _round_trip(settings: Settings, client: LRSClient) -> Check:
    """Write the probe's statements (fixed ids and bytes) and read the sandbox statement back."""
    statement, *others = capabilities.sandbox_statements(settings)
    try:
        answer = capabilities.post_idempotent(client, statement)
        for other in others:  # the voided-statement probe's target and void
            capabilities.post_idempotent(client, other)
        found = client.get_statement(statement.id)
    except LmsBridgeError as exc:
        return Check(
            "LRS round trip",
            False,
            f"writing or reading sandbox statement {statement.id} failed: {exc}",
            "the user needs write and read scopes on the LRS; check that [lrs] url is the LRS you think it is, "
            "and [deployment] statement_namespace",
        )
    how = {"204": "already there (HTTP 204)", "409": "already there (HTTP 409, read back and equal)"}.get(
        answer, answer
    )
    if found is None:
        return Check(
            "LRS round trip",
            False,
            f"sandbox statement {statement.id} was accepted but cannot be read back",
            "the user needs the statements/read scope (Ralph: scopes all, or statements/read/mine)",
        )
    same = found.get("id") == statement.id and (found.get("verb") or {}).get("id") == _EXPERIENCED
    if not same:
        return Check(
            "LRS round trip",
            False,
            f"sandbox statement {statement.id} read back with other content",
            "check that [lrs] url is the LRS you think it is",
        )
    return Check("LRS round trip", True, f"sandbox statement {statement.id} written and read back ({how})")


def _lrs(settings: Settings, engine: Engine | None, *, write_probe: bool) -> list[Check]:
    lrs = settings.lrs
    try:
        settings.secret(lrs.password_env)
    except ConfigError as exc:
        return [
            Check("LRS credentials", False, str(exc), f"export {lrs.password_env}=... or add it to the secrets file")
        ]
    checks = [Check("LRS credentials", True, f"user {lrs.username}, password from {lrs.password_env}")]
    with lrs_client(settings, timeout=min(lrs.timeout, 10.0)) as client:
        probe = _lrs_probe(settings, client)
        checks.append(probe)
        if not probe.ok:
            return checks
        if write_probe:
            checks.append(_round_trip(settings, client))
        else:
            checks.append(
                Check(
                    "LRS round trip",
                    True,
                    "not written: doctor only reads from the LRS unless asked (lms-bridge doctor --write-probe "
                    "writes three sandbox statements with fixed ids, once per LRS)",
                )
            )
        checks += _capabilities(settings, client, engine, write_probe=write_probe)
    return checks


def _capabilities(settings: Settings, client: LRSClient, engine: Engine | None, *, write_probe: bool) -> list[Check]:
    """One line per capability (versions, since, voided, re-post): ``operator/capabilities.py``."""
    sandbox, target, void = capabilities.sandbox_statements(settings)
    found: list[capabilities.Capability] = []
    try:
        found.append(capabilities.versions(settings, client.about()))
        found.append(capabilities.since(settings, client, sandbox))
        void_target = target.id if write_probe else capabilities.sent_void_target(engine)
        if void_target is None and client.get_statement(void.id) is not None:
            void_target = target.id  # an earlier --write-probe left the sandbox void: read it only
        found.append(capabilities.voided(client, void_target, written=void_target == target.id))
        found.append(capabilities.repost(client, sandbox, write=write_probe))
    except LmsBridgeError as exc:
        found.append(
            capabilities.Capability(
                "LRS capabilities", False, f"probing the LRS failed: {exc}", "check the LRS's own logs"
            )
        )
    return [Check(c.name, c.ok, c.detail, c.fix) for c in found]


def _sources(settings: Settings) -> list[Check]:
    """Each source whose connector checks itself (a Moodle site: its token and the functions its service lacks)."""
    checks = []
    for source in settings.sources:
        connector = CONNECTORS.get(source.type)
        if connector is None:
            continue
        found = connector.check(source.model_dump(exclude_none=True), connector_context(settings))
        if found is not None:
            checks.append(Check(found.name, found.ok, found.detail, found.fix))
    return checks


def _held_courses(engine: Engine | None) -> list[Check]:
    """Completions held as pending because their course's program JP is unknown: what to configure."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from lms_bridge.store import jp as jp_store

    if engine is None:
        return []  # the state database check already says why
    try:
        with Session(engine) as session:
            held = jp_store.held_courses(session)
    except SQLAlchemyError:
        return []  # not migrated: the state database check says why
    if not held:
        return [Check("held JP", True, "no completion is held: every course's program JP is known")]
    shown = ", ".join(f"{course.site_id}/{course.course} ({course.people} people)" for course in held[:5])
    more = f" and {len(held) - 5} more" if len(held) > 5 else ""
    return [
        Check(
            "held JP",
            False,
            f"{len(held)} course(s) have completions held as pending, their program JP unknown: {shown}{more}",
            "add each course's JP to mappings/program_jp.toml (lms-bridge rules check lists them all), then run "
            "lms-bridge jp compute",
        )
    ]


def _pull_gaps(settings: Settings, engine: Engine | None) -> list[Check]:
    """Each source that keeps unread records a limited time (a Telegram bot): its last successful pull's age."""
    from datetime import UTC, datetime, timedelta

    from lms_bridge.store.runs import list_runs

    kept = []
    for source in settings.sources:
        connector = CONNECTORS.get(source.type)
        if connector is not None and connector.retention is not None:
            kept.append((source, connector.retention))
    if not kept or engine is None:
        return []  # nothing to check, or the state database check already says why
    checks = []
    for source, retention in kept:
        name = f"{retention.label} {source.id}"
        runs = list_runs(engine, limit=1, site=source.id, command="sync", status="ok")
        if not runs or runs[0].finished_at is None:
            checks.append(Check(name, True, "not pulled yet: run lms-bridge sync --site " + source.id))
            continue
        finished = runs[0].finished_at.replace(tzinfo=runs[0].finished_at.tzinfo or UTC)
        age = datetime.now(UTC) - finished
        when = f"last successful pull {finished:%Y-%m-%d %H:%M} UTC ({age.total_seconds() / 3600:.0f} h ago)"
        if age > timedelta(hours=retention.hours):
            checks.append(
                Check(
                    name,
                    False,
                    f"{when}: {retention.lost}",
                    f"run lms-bridge sync --site {source.id} now and keep it scheduled at least daily "
                    f"(lms-bridge serve, or the cron/systemd timer in deploy/); {retention.recover}",
                )
            )
        else:
            checks.append(Check(name, True, when))
    return checks


def _pseudonym_key(settings: Settings) -> Check:
    name = settings.deployment.pseudonym_key_env
    key = settings.optional_secret(name)
    if key is None:
        return Check(
            "pseudonym key",
            False,
            f"{name} is not set: chat and roster identities cannot be matched",
            f"put a long random value in {name} (environment or secrets file), e.g. from "
            "`openssl rand -hex 32`; never change it once used",
        )
    if len(key.get_secret_value()) < MIN_PSEUDONYM_KEY:
        return Check(
            "pseudonym key",
            False,
            f"{name} is shorter than {MIN_PSEUDONYM_KEY} characters",
            "use a long random value (`openssl rand -hex 32`) before any roster or chat import",
        )
    return Check("pseudonym key", True, f"{name} is set")


def _inboxes(settings: Settings) -> list[Check]:
    """Each inbox folder, its done/ and failed/ are real folders (no symbolic link: ``ingest.inbox``)."""
    from lms_bridge.ingest.inbox import check_folder, inbox_folder

    checks = []
    for inbox in settings.inboxes:
        folder = inbox_folder(settings, inbox)
        found = check_folder(folder)
        if found is None:
            checks.append(Check(f"inbox {inbox.path}", True, f"{folder}: a real folder, no link in done/ or failed/"))
        else:
            checks.append(Check(f"inbox {inbox.path}", False, found[0], found[1]))
    return checks


def run_checks(settings: Settings, base_dir: Path | None = None, *, write_probe: bool = False) -> list[Check]:
    """Run every check and return the results in order.

    Args:
        settings: the configuration.
        base_dir: the folder relative SQLite paths are taken from.
        write_probe: write the sandbox statements (round trip, re-post and voided probes); without
            it doctor only reads from the LRS and says what it did not probe.
    """
    # One engine for every check that reads the state store (None when it cannot be opened: the
    # state database check says why and the checks that read it are left out).
    engine: Engine | None = None
    refused: LmsBridgeError | None = None
    try:
        engine = store.make_engine(settings.state.url, base_dir)
    except LmsBridgeError as exc:
        refused = exc
    try:
        return [
            _config(settings),
            _secrets_file(settings),
            _database(engine, refused),
            *_lrs(settings, engine, write_probe=write_probe),
            *_sources(settings),
            *_pull_gaps(settings, engine),
            *_held_courses(engine),
            *_inboxes(settings),
            _pseudonym_key(settings),
        ]
    finally:
        if engine is not None:
            engine.dispose()
