"""The ``lms-bridge`` command line. Commands parse options, call one core function, print.

Data goes to stdout, logs and errors to stderr. An ``LmsBridgeError`` becomes one
sentence and exit code 1 (2 for configuration errors); a traceback appears only
with ``--debug``. Nothing here touches SQL, HTTP or TOML directly.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from sqlalchemy import Engine

from lms_bridge import backfill as backfill_core
from lms_bridge import cursors as cursors_core
from lms_bridge import doctor as doctor_checks
from lms_bridge import export, outbox_admin, store
from lms_bridge import imports as imports_core
from lms_bridge import jp as jp_core
from lms_bridge import ledger as ledger_core
from lms_bridge import outbox as outbox_core
from lms_bridge import reports as reports_core
from lms_bridge import roster as roster_core
from lms_bridge import runs as runs_core
from lms_bridge import scheduler as scheduler_core
from lms_bridge import sites as sites_core
from lms_bridge import sync as sync_core
from lms_bridge import voids as voids_core
from lms_bridge.config import Settings, load_settings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.locks import LockBusy, site_lock, sync_lock_name
from lms_bridge.logs import setup_logging
from lms_bridge.nip import parse_nip
from lms_bridge.pipeline import statement_settings
from lms_bridge.redaction import redact
from lms_bridge.web import users as users_core
from xapi.lrs_client import LRSClient

log = logging.getLogger("lms_bridge")
# markup=False: data such as "[lrs] url" must print as written, not as rich markup.
stdout = Console(highlight=False, soft_wrap=True, markup=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


@dataclass
class App:
    """What every command gets: the settings and, opened on first use, the state store."""

    settings: Settings
    quiet: bool = False
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        """The state store, migrated to the newest revision on first use."""
        if self._engine is None:
            self._engine = store.open_engine(self.settings.state.url, self._base_dir())
        return self._engine

    def _base_dir(self) -> Path | None:
        return self.settings.config_path.parent if self.settings.config_path else None

    def lrs_client(self) -> LRSClient:
        """An LRS client with the configured credentials."""
        lrs = self.settings.lrs
        password = self.settings.secret(lrs.password_env)
        return LRSClient(lrs.url, lrs.username, password, timeout=lrs.timeout)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Any]:
        """A progress bar on stderr when it is a terminal; silent under cron or ``--quiet``."""
        if self.quiet or not stderr.is_terminal:
            yield lambda _n, _label=None: None
            return
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=stderr, transient=True) as bar:
            tasks: dict[str, Any] = {}

            def advance(n: int, label: str | None = None) -> None:
                # One bar per label (a sync shows one per stream).
                name = f"{description} {label}" if label else description
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=total)
                bar.advance(tasks[name], n)

            yield advance


_state = {"debug": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Configuration file (default: $LMS_BRIDGE_CONFIG, else ./lms-bridge.toml, else built-in defaults).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None, help="Log line format on stderr.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars and only warnings in logs (for cron).")
@click.version_option(package_name="lms-bridge")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool, log_format: str | None, quiet: bool) -> None:
    """lms-bridge: learning activity from LMSs and communities into xAPI and JP records."""
    _state["debug"] = debug
    settings = load_settings(config_path)
    level = "DEBUG" if debug else ("WARNING" if quiet else settings.logging.level)
    setup_logging(level, log_format or settings.logging.format)
    ctx.obj = App(settings=settings, quiet=quiet)


# --- db ---------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Create and migrate the state store."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(app: App) -> None:
    """Migrate the state store to the newest schema (also done by every command on start)."""
    engine = store.make_engine(app.settings.state.url, app._base_dir())
    before, after = store.upgrade(engine)
    stdout.print(
        f"state database {store.describe(engine)}: revision {after}"
        + ("" if before == after else f" (was {before or 'empty'})")
    )


@db.command("status")
@click.pass_obj
def db_status(app: App) -> None:
    """Show the state store's URL and migration level."""
    engine = store.make_engine(app.settings.state.url, app._base_dir())
    current, head = store.current_revision(engine), store.head_revision()
    state = "up to date" if current == head else f"behind (newest is {head}): run lms-bridge db upgrade"
    stdout.print(f"state database {store.describe(engine)}: revision {current or 'none'}, {state}")


# --- import -----------------------------------------------------------------------------------


@cli.command("import")
@click.argument("file", metavar="PATH", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--source",
    type=click.Choice(imports_core.FORMATS),
    help="The file's format (default: told from its extension and content).",
)
@click.option(
    "--community",
    metavar="NAME",
    help="Id of the Community of Practice the chat or meeting belongs to, e.g. cop-wi-7 "
    "(required for WhatsApp and Telegram exports).",
)
@click.option(
    "--site",
    metavar="ID",
    help="Source id the import is recorded under (default: the community; the format for a meeting "
    "without one; the mapping's site for csv; 'import' for .jsonl).",
)
@click.option(
    "--mapping",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Column mapping (TOML) of an LMS completion report: see mappings/lms_csv_example.toml.",
)
@click.option("--chat", metavar="ID|NAME", help="The chat to import from a Telegram export that holds several.")
@click.option(
    "--meeting-date",
    type=click.DateTime(["%Y-%m-%d"]),
    help="The date of a Google Meet sheet that gives times of day only (YYYY-MM-DD).",
)
@click.option(
    "--month-first",
    is_flag=True,
    help="WhatsApp: read dates whose order the file cannot show as month/day (default: day/month).",
)
@click.option("--dry-run", is_flag=True, help="Check the file and build the statements; store nothing.")
@click.pass_obj
def import_cmd(
    app: App,
    file: Path,
    source: str | None,
    community: str | None,
    site: str | None,
    mapping: Path | None,
    chat: str | None,
    meeting_date: Any,
    month_first: bool,
    dry_run: bool,
) -> None:
    """Import a chat export, attendance report, LMS completion report or activity file."""
    # Read and check the whole file first: a bad file, option or missing key stores nothing.
    parsed = imports_core.read_import_file(
        app.settings,
        file,
        source=source,
        community=community,
        site=site,
        mapping=mapping,
        chat=chat,
        meeting_date=meeting_date.date() if meeting_date else None,
        month_first=month_first,
    )
    with app.progress(f"import {file.name}", len(parsed.items)) as advance:
        summary = imports_core.store_import(app.engine, app.settings, parsed, dry_run=dry_run, on_progress=advance)
    for line, reason in parsed.notes:
        stdout.print(f"line {line}: {reason}")
    stdout.print(_import_summary(file, summary, dry_run))


def _import_summary(file: Path, summary: imports_core.ImportSummary, dry_run: bool) -> str:
    """One line: what the file held, what was queued, and who was matched to a NIP."""
    parsed, report = summary.parsed, summary.report
    what = parsed.description + (f", community {parsed.community}" if parsed.community else "")
    if summary.pending == 0:
        return f"{file} ({what}): nothing new (already imported)"
    singular = {"activities": "activity", "messages": "message", "rows": "row"}.get(parsed.unit, parsed.unit)
    counts = [f"{_count(parsed.records, singular, parsed.unit)} read"]
    if parsed.unit != "activities":
        counts.append(_count(len(parsed.items), "activity", "activities"))
    if parsed.skipped:
        counts.append(f"{parsed.skipped} skipped ({parsed.skip_reason})")
    counts.append(
        f"{'would add' if dry_run else 'added'} {_count(report.new, 'statement', 'statements')} to the outbox"
    )
    counts.append(f"{report.unchanged} already there")
    if report.changed:
        counts.append(f"{report.changed} changed since (kept as first queued)")
    if report.invalid or parsed.format == "jsonl":
        counts.append(f"{report.invalid} invalid" + (" (see the log)" if report.invalid else ""))
    if parsed.format in imports_core.CHAT_FORMATS | imports_core.ATTENDANCE_FORMATS:
        people = f"{summary.matched} matched to the roster, {summary.pseudonymous} pseudonymous"
    else:
        people = f"{summary.matched} with a NIP, {summary.pseudonymous} without"
    line = f"{file} ({what}): {', '.join(counts)}; {_count(summary.people, 'person', 'people')}: {people}"
    return line + (" (dry run: nothing stored)" if dry_run else "")


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


@cli.group()
def inbox() -> None:
    """Import the community exports dropped in the [[inboxes]] folders."""


@inbox.command("run")
@click.pass_obj
def inbox_run(app: App) -> None:
    """Import every settled file of every inbox once; move or delete it; apply retention."""
    from lms_bridge import inbox as inbox_core

    if not app.settings.inboxes:
        raise ConfigError("no [[inboxes]] in the configuration: add one with path and community (see README)")
    try:
        with site_lock(app.engine, inbox_core.INBOX_LOCK, wait=False):
            report = inbox_core.run_inboxes(app.engine, app.settings)
    except LockBusy as exc:
        stdout.print(f"inboxes: skipped: another run is importing them ({exc.holder or 'unknown'})")
        return
    table = Table("inbox", "file", "result", "activities new", title="inbox run")
    for item in report.files:
        result = item.result if not item.detail or item.result == "imported" else f"{item.result}: {item.detail}"
        table.add_row(item.inbox, item.file, result, str(item.new))
    stdout.print(table)
    stdout.print(
        f"{_count(len(report.files), 'file', 'files')} handled, {report.new} new statements, "
        f"{report.waiting} still being written, {report.purged} purged by retention"
    )
    if report.errors:
        raise LmsBridgeError(
            f"{_count(len(report.errors), 'file', 'files')} could not be handled and stay "
            f"in place: {report.errors[0].inbox}/{report.errors[0].file}: {report.errors[0].detail}"
        )


# --- sync and sites ----------------------------------------------------------------------------


class DateParam(click.ParamType):
    """A date or date-time: 2026-03-01 or 2026-03-01T08:00 (local time zone of the deployment)."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:  # noqa: D102
        from datetime import datetime
        from zoneinfo import ZoneInfo

        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date; use 2026-03-01 or 2026-03-01T08:00", param, ctx)
        if moment.tzinfo is None:
            zone = ctx.find_object(App).settings.deployment.timezone if ctx and ctx.find_object(App) else "UTC"
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        return moment


@cli.command()
@click.option(
    "--site", help="Sync only this source (default: every Moodle site, source LRS and live source in the config)."
)
@click.option(
    "--stream",
    "streams",
    multiple=True,
    help="Sync only this stream (repeatable; a source LRS has one: statements; a Telegram bot: updates).",
)
@click.option("--since", type=DateParam(), help="Re-pull from this date without moving the cursors (a backfill).")
@click.option("--dry-run", is_flag=True, help="Read and build statements; store nothing.")
@click.option(
    "--all",
    "all_sources",
    is_flag=True,
    help="Sync every configured source (the default without --site); safe under cron: a site another "
    "run is syncing is skipped.",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Wait for a site another run is syncing instead of skipping it "
    "(with --distributed: wait for the tasks and show their results).",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Enqueue one task per source and stream for `lms-bridge worker` processes (needs a broker "
    "and PostgreSQL; see docs/scaling.md).",
)
@click.pass_obj
def sync(
    app: App,
    site: str | None,
    streams: tuple[str, ...],
    since: Any,
    dry_run: bool,
    all_sources: bool,
    wait: bool,
    distributed: bool,
) -> None:
    """Pull new activity from Moodle sites, source LRSs and live APIs (Telegram, Zoom, Classroom) into the outbox."""
    if all_sources and site:
        raise click.UsageError("give --site or --all, not both")
    if distributed:
        if since is not None or dry_run:
            raise click.UsageError("--distributed runs live syncs: --since and --dry-run run in this process only")
        _sync_distributed(app, site, streams, wait)
        return
    reports = []
    for source, source_streams in sync_core.sync_sources(app.settings, site, streams):
        try:
            with (
                site_lock(app.engine, sync_lock_name(source.id), wait=wait),
                app.progress(f"{source.id}", None) as advance,
            ):
                reports.append(
                    sync_core.sync_source(
                        app.engine,
                        app.settings,
                        source,
                        streams=source_streams,
                        since=since,
                        dry_run=dry_run,
                        on_progress=lambda stream, n: advance(n, stream),
                    )
                )
        except LockBusy as exc:
            stdout.print(
                f"{source.id}: skipped: another run is syncing it ({exc.holder or 'unknown'}); "
                "add --wait to wait for it"
            )
        except Exception as exc:  # noqa: BLE001 - one source's failure must not stop the sources after it
            if _state["debug"]:
                raise
            reason = str(exc) if isinstance(exc, LmsBridgeError) else sync_core.unexpected(exc)
            stderr.print(f"{source.id}: sync stopped: {redact(reason)}", markup=False)
            reports.append(sync_core.SiteReport(site=source.id, error=f"{source.id}: {reason}"))
    table = Table(
        "site",
        "stream",
        "read",
        "new",
        "unchanged",
        "accounts",
        "invalid",
        title="sync" + (" (dry run: nothing stored)" if dry_run else ""),
    )
    for report in reports:
        for name, counts in report.streams.items():
            table.add_row(
                report.site,
                name,
                str(counts.pulled),
                str(counts.new),
                str(counts.unchanged),
                str(counts.links),
                str(counts.invalid),
            )
    stdout.print(table)
    for report in reports:
        if report.skipped:
            reasons = ", ".join(f"{count} {sync_core.skip_label(reason)}" for reason, count in report.skipped.items())
            stdout.print(f"{report.site}: {sum(report.skipped.values())} statements skipped ({reasons})")
    failed = [r for r in reports if r.error]
    if failed:
        raise LmsBridgeError("; ".join(r.error or "" for r in failed))


def _sync_distributed(app: App, site: str | None, streams: tuple[str, ...], wait: bool) -> None:
    """``sync --distributed``: enqueue the tasks, print their ids, or wait and print their results."""
    from lms_bridge import distributed

    celery = distributed.make_celery(app.settings)
    if wait and celery.conf.result_backend is None:
        raise ConfigError(f"--wait needs a result backend: set {distributed.RESULT_BACKEND_ENV}")
    enqueued = distributed.enqueue_syncs(celery, app.engine, app.settings, site, streams)
    if not wait:
        table = Table("site", "stream", "task", "after", title=f"sync: {len(enqueued)} tasks enqueued")
        for item in enqueued:
            table.add_row(item.site or "", item.stream or "", item.task_id, item.after or "")
        stdout.print(table)
        return
    distributed.wait_for(celery, enqueued)
    table = Table("site", "stream", "read", "new", "unchanged", "accounts", "calls", "worker", "error", title="sync")
    for item in enqueued:
        counts = item.result.get("counts") or {}
        table.add_row(
            item.site or "",
            item.stream or "",
            *(str(counts.get(k, "")) for k in ("pulled", "new", "unchanged", "links")),
            str(item.result.get("calls", "")),
            f"{item.result.get('worker', '')}:{item.result.get('pid', '')}",
            item.result.get("error") or "",
        )
    stdout.print(table)
    failed = [item for item in enqueued if item.result.get("error")]
    if failed:
        raise LmsBridgeError(
            f"{len(failed)} of {len(enqueued)} sync tasks failed: "
            + "; ".join(f"{i.site}/{i.stream}: {i.result['error']}" for i in failed)
        )


@cli.command()
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Tasks this worker runs at once (processes with the prefork pool).",
)
@click.option("--queues", default="lms-bridge", show_default=True, help="Comma-separated queues to take tasks from.")
@click.option(
    "--pool",
    type=click.Choice(["prefork", "threads", "solo"]),
    default="prefork",
    show_default=True,
    help="Celery's execution pool (solo: one task at a time in this process).",
)
@click.pass_obj
def worker(app: App, concurrency: int, queues: str, pool: str) -> None:
    """Run a Celery worker for distributed syncs and flushes until SIGTERM (see docs/scaling.md)."""
    from lms_bridge import distributed

    distributed.distributed_settings(app.settings)  # refuse SQLite or a missing broker before starting
    app.engine.dispose()  # migrated now; each worker process opens connections of its own
    distributed.run_worker(
        app.settings,
        concurrency=concurrency,
        pool=pool,
        queues=[q.strip() for q in queues.split(",") if q.strip()],
        loglevel="WARNING" if app.quiet else "INFO",
    )


@cli.group()
def sites() -> None:
    """Register, list and test Moodle sites."""


@sites.command("add")
@click.argument("site_id")
@click.option("--url", required=True, help="The site's address, e.g. https://lms.kemenpan.go.id")
@click.option("--token-env", required=True, help="Environment variable that will hold the web-service token.")
@click.option("--format", "fmt", type=click.Choice(["json", "xml"]), default="json", show_default=True)
@click.pass_obj
def sites_add(app: App, site_id: str, url: str, token_env: str, fmt: str) -> None:
    """Add a Moodle site to the config file (the token stays in the environment)."""
    path = sites_core.add_site(app.settings, site_id=site_id, url=url, token_env=token_env, fmt=fmt)
    stdout.print(f"added site {site_id} to {path}; set {token_env} and run: lms-bridge sites test {site_id}")


@sites.command("list")
@click.pass_obj
def sites_list(app: App) -> None:
    """List the configured Moodle sites and their last sync."""
    table = Table("site", "url", "token", "format", "last sync", title="Moodle sites")
    for row in sites_core.list_sites(app.engine, app.settings):
        table.add_row(row.id, row.url, row.token_state, row.format, row.last_sync)
    stdout.print(table)


@sites.command("test")
@click.argument("site_id", required=False)
@click.pass_obj
def sites_test(app: App, site_id: str | None) -> None:
    """Call each site (site info) and list the functions its token's service lacks."""
    failures = 0
    for source in sync_core.moodle_sources(app.settings, site_id):
        line, ok = sites_core.test_line(app.settings, source)
        failures += not ok
        stdout.print(line)
    if failures:
        raise LmsBridgeError(f"{failures} site(s) failed the test")


# --- people -----------------------------------------------------------------------------------


@cli.group()
def people() -> None:
    """Import the HR roster; show a person; list accounts without a NIP."""


@people.command("import")
@click.argument("roster", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check the file and count what would change; store nothing.")
@click.option(
    "--effective",
    type=DateParam(),
    help="Day the roster's units take effect (default: today); reports use the unit of the as-of day.",
)
@click.pass_obj
def people_import(app: App, roster: Path, dry_run: bool, effective: Any) -> None:
    """Import the HR roster CSV (NIP, name, unit, position, consented phones, Telegram ids, e-mails)."""
    from lms_bridge.pseudonym import pseudonymizer_from_settings

    pseudonymize = pseudonymizer_from_settings(app.settings)  # before the store: no key, nothing stored
    report = roster_core.import_roster(
        app.engine, roster, pseudonymize, dry_run=dry_run, effective=effective.date() if effective else None
    )
    for line, reason in report.skipped:
        stdout.print(f"line {line}: {reason}")
    for line, message in report.warnings:
        stdout.print(f"line {line}: warning: {message}")
    if report.stored == 0:
        raise LmsBridgeError(f"roster {roster}: none of its {report.rows} rows could be imported")
    verb = "would be imported" if dry_run else "imported"
    stdout.print(
        f"{roster}: {report.rows} rows read, {report.stored} persons {verb} ({report.imported} new, "
        f"{report.updated} updated, {report.unchanged} unchanged), {len(report.skipped)} skipped; "
        f"{report.identities} identities linked ({report.links_added} new, {report.links_moved} moved "
        f"from another NIP), {report.links_removed} no longer listed unlinked"
        + (f"; {report.forgotten} rows of forgotten people skipped" if report.forgotten else "")
        + (" (dry run: nothing stored)" if dry_run else "")
    )


@people.command("show")
@click.argument("nip", nargs=-1, required=True)
@click.pass_obj
def people_show(app: App, nip: tuple[str, ...]) -> None:
    """Show a person by NIP: roster fields, linked identities, activity per source, JP per year."""
    person = roster_core.show_person(app.engine, " ".join(nip))
    if person is None:
        digits = "".join(ch for ch in "".join(nip) if ch.isdigit())
        raise LmsBridgeError(
            f"no person with NIP {digits} in the state database: import the roster "
            "(lms-bridge people import) or sync a site that knows them"
        )
    table = Table("field", "value", title=f"person {person.nip}", show_header=False)
    for label, value in (
        ("NIP", person.nip),
        ("employee type", person.employee_type),
        ("name", person.name),
        ("unit", " ".join(v for v in (person.unit_code, person.unit_name) if v) or None),
        ("position", person.position),
    ):
        table.add_row(label, value or "-")
    table.add_row("on roster", f"{person.roster_updated_at:%Y-%m-%d %H:%M} UTC" if person.roster_updated_at else "no")
    for account in person.accounts:
        table.add_row("account", f"{account.source} {account.site_id} user {account.local_id}")
    table.add_row("chat identities", str(person.chat_identities))
    for source, count in person.evidence.items():
        table.add_row(f"activities {source}", str(count))
    if not person.evidence:
        table.add_row("activities", "0")
    for year, jp in person.jp_by_year.items():
        table.add_row(f"JP {year}", f"{jp:f}")
    stdout.print(table)


@people.command("unresolved")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show at most this many.")
@click.pass_obj
def people_unresolved(app: App, limit: int) -> None:
    """List accounts and chat identities with no NIP, the most active first."""
    actors = roster_core.unresolved(app.engine, limit=limit + 1)
    table = Table("source", "site", title="identities without a NIP")
    table.add_column("account / pseudonym", no_wrap=True)  # pseudonyms are copied whole, never cut
    for name in ("activities", "first", "last"):
        table.add_column(name, no_wrap=True)
    for actor in actors[:limit]:
        table.add_row(
            actor.source,
            actor.site_id,
            actor.local_id,
            str(actor.activities),
            f"{actor.first_at:%Y-%m-%d}" if actor.first_at else "-",
            f"{actor.last_at:%Y-%m-%d}" if actor.last_at else "-",
        )
    # Piped or under cron, a 32-character pseudonym must not be cut to fit rich's default 80 columns.
    out = stdout if stdout.is_terminal else Console(highlight=False, soft_wrap=True, markup=False, width=160)
    out.print(table)
    if len(actors) > limit:
        stdout.print(f"more than {limit}: use --limit to see more")


# --- outbox -----------------------------------------------------------------------------------


@cli.group()
def outbox() -> None:
    """Send queued statements to the LRS; inspect and retry."""


@outbox.command("flush")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many statements.")
@click.option("--batch-size", type=click.IntRange(min=1, max=10_000), help="Statements per POST (default from config).")
@click.option(
    "--distributed",
    is_flag=True,
    help="Enqueue flush tasks for `lms-bridge worker` processes instead of flushing here.",
)
@click.option(
    "--tasks",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --distributed: flush tasks to enqueue (workers flush side by side, no row twice).",
)
@click.option("--wait", is_flag=True, help="With --distributed: wait for the tasks and show what they sent.")
@click.pass_obj
def outbox_flush(
    app: App, limit: int | None, batch_size: int | None, distributed: bool, tasks: int, wait: bool
) -> None:
    """Post pending statements to the LRS in batches; retries transient failures."""
    if distributed:
        _flush_distributed(app, tasks, limit, wait)
        return
    lrs = app.settings.lrs
    pending = store.outbox_counts(app.engine).pending
    with app.lrs_client() as client, app.progress("flush", min(pending, limit or pending)) as advance:
        report = outbox_core.flush(
            app.engine,
            client,
            batch_size=batch_size or lrs.batch_size,
            max_attempts=lrs.max_attempts,
            backoff_base=lrs.backoff_base,
            backoff_cap=lrs.backoff_cap,
            limit=limit,
            on_progress=advance,
        )
    stdout.print(f"sent {report.sent} statements in {report.posts} requests, {report.dead} dead letters")
    if report.gave_up:
        raise LmsBridgeError(
            f"the LRS failed {lrs.max_attempts} times in a row ({report.last_error}); "
            "the remaining statements stay queued for the next flush"
        )


def _flush_distributed(app: App, tasks: int, limit: int | None, wait: bool) -> None:
    """``outbox flush --distributed``: enqueue flush tasks; with ``--wait`` show what each sent."""
    from lms_bridge import distributed

    celery = distributed.make_celery(app.settings)
    enqueued = distributed.enqueue_flushes(celery, tasks, limit)
    if not wait:
        for item in enqueued:
            stdout.print(f"flush task {item.task_id} enqueued")
        return
    distributed.wait_for(celery, enqueued)
    for item in enqueued:
        result = item.result
        stdout.print(
            f"flush task {item.task_id} on {result.get('worker', '?')}:{result.get('pid', '?')}: "
            f"sent {result.get('sent', 0)} statements in {result.get('posts', 0)} requests, "
            f"{result.get('dead', 0)} dead letters" + (f"; {result['error']}" if result.get("error") else "")
        )
    failed = [item for item in enqueued if item.result.get("error")]
    if failed:
        raise LmsBridgeError(
            f"{len(failed)} of {len(enqueued)} flush tasks failed: {failed[0].result['error']}; "
            "the remaining statements stay queued for the next flush"
        )


@outbox.command("status")
@click.pass_obj
def outbox_status(app: App) -> None:
    """Count statements by status: queued, sent, dead-lettered, forgotten (scrubbed by forget)."""
    counts = store.outbox_counts(app.engine)
    table = Table("status", "statements", title="outbox")
    table.add_row("pending", str(counts.pending))
    table.add_row("sent", str(counts.sent))
    table.add_row("dead", str(counts.dead))
    for status, number in sorted(counts.by_status.items()):
        if status not in ("pending", "sent", "dead"):
            table.add_row(status, str(number))
    stdout.print(table)
    if counts.oldest_pending_at is not None:
        stdout.print(f"oldest pending statement queued at {counts.oldest_pending_at:%Y-%m-%d %H:%M:%S} UTC")
    if counts.dead:
        stdout.print("dead letters were refused by the LRS: see `lms-bridge outbox retry --help`")


@outbox.command("retry")
@click.option("--id", "row_ids", type=int, multiple=True, help="Outbox row id to requeue (repeatable).")
@click.option("--all", "all_rows", is_flag=True, help="Requeue every dead letter.")
@click.pass_obj
def outbox_retry(app: App, row_ids: tuple[int, ...], all_rows: bool) -> None:
    """Put dead letters back in the queue for the next flush."""
    if bool(row_ids) == all_rows:
        raise click.UsageError("give either --all or one or more --id")
    count = store.requeue_dead(app.engine, None if all_rows else row_ids)
    stdout.print(f"requeued {count} dead letters")


@outbox.command("list")
@click.option("--status", type=click.Choice(outbox_admin.LIST_STATUSES), default="dead", show_default=True)
@click.option("--site", help="Only statements of this source.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show at most this many.")
@click.pass_obj
def outbox_list(app: App, status: str, site: str | None, limit: int) -> None:
    """List dead letters or pending statements, oldest first, with the LRS's message."""
    rows, total = outbox_admin.list_rows(app.engine, status, limit=limit, site=site)
    table = Table(
        "id",
        Column("statement", no_wrap=True, min_width=36),
        Column("source", overflow="fold"),
        "tries",
        Column("queued (UTC)", overflow="fold"),
        Column("last error", overflow="fold"),
        title=f"outbox: {total} {status}" + (f" (first {len(rows)})" if total > len(rows) else ""),
    )
    for row in rows:
        table.add_row(
            str(row.id),
            row.statement_id,
            f"{row.site_id or '-'}/{row.stream or '-'}",
            str(row.attempts),
            f"{row.created_at:%Y-%m-%d %H:%M}",
            (row.last_error or "-")[:200],
        )
    stdout.print(table)


@outbox.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def outbox_export(app: App, file: Path) -> None:
    """Write every dead letter to FILE as JSON Lines (replayable with outbox import)."""
    count = outbox_admin.export_dead(app.engine, file)
    stdout.print(f"wrote {count} dead letters to {file} (mode 0600: it holds statements)")


@outbox.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def outbox_import(app: App, file: Path) -> None:
    """Queue the statements of an exported dead-letter file (repaired bodies replace dead letters)."""
    report = outbox_admin.import_dead(app.engine, file)
    stdout.print(
        f"{file}: {report.read} statements read: {report.added} added, {report.requeued} dead letters "
        f"requeued, {report.replaced} replaced by a repaired body, {report.already} already queued or sent, "
        f"{report.conflicts} differ from a statement queued or sent here (kept as it is)"
    )


# --- rules and JP -----------------------------------------------------------------------------


@cli.group()
def rules() -> None:
    """Check the JP rules in mappings/ and explain a person's JP."""


@rules.command("check")
@click.pass_obj
def rules_check(app: App) -> None:
    """Validate the rule files and print the effective rules."""
    ruleset, program = jp_core.load_rule_files(app.settings)
    table = Table("rule", "version", "code", "kinds", "credit", "caps", title=f"JP rules ({ruleset.path})")
    for rule in ruleset.rules:
        if rule.credit == "per_item":
            credit = f"{rule.jp_per_item} JP per {'activity' if rule.record == 'activity' else 'activity, per day'}"
        elif rule.credit == "daily_tiers":
            credit = (
                "; ".join(
                    f">= {t.min_items} {'/'.join(sorted(t.kinds)) or 'activities'}: {t.jp} JP" for t in rule.tiers
                )
                + " (per day)"
            )
        elif rule.credit == "minutes":
            credit = (
                f"minutes / {ruleset.minutes_per_jp}, if >= {rule.min_share} of the session "
                f"(else >= {rule.min_minutes} min)"
            )
        else:
            credit = f"program JP ({program.path.name})"
        caps = ", ".join(f"{cap} JP/{period}" for period, cap in rule.caps().items()) or "-"
        if rule.cap_group != rule.id:
            caps += f" (shared by {rule.cap_group})"
        table.add_row(rule.id, str(rule.version), rule.code, ", ".join(sorted(rule.kinds)), credit, caps)
    stdout.print(table)
    stdout.print(
        f"precision {ruleset.precision} JP, 1 JP = {ruleset.minutes_per_jp} minutes, a day is closed "
        f"{ruleset.grace_hours} h after it ended ({app.settings.deployment.timezone}); program JP for "
        f"{len(program.sites)} site(s) in {program.path}"
    )


@rules.command("explain")
@click.argument("nip", nargs=-1, required=True)
@click.option("--year", type=click.IntRange(2000, 2100), required=True, help="Local calendar year.")
@click.pass_obj
def rules_explain(app: App, nip: tuple[str, ...], year: int) -> None:
    """Show, per record, which rule gave how many JP from which evidence."""
    number = parse_nip(" ".join(nip))
    if number is None:
        raise LmsBridgeError(
            f"{' '.join(nip)!r} is not a valid NIP (18 digits: birth date, appointment, gender, sequence)"
        )
    credits, records, known = jp_core.explain(app.engine, app.settings, number.value, year)
    if not known:
        raise LmsBridgeError(f"no person with NIP {number.value} and no activity of theirs in the state database")
    table = Table("period", "rule", "code", "raw JP", "JP", "status", "evidence", title=f"JP {year} of {number.value}")
    total = Decimal(0)
    for credit in credits:
        record = records.get(credit.key)
        if credit.jp == 0:
            status = f"capped ({credit.capped_by})" if credit.capped_by else "no JP"
        elif record is None:
            status = "not posted yet (run jp compute; open periods wait)"
        elif record.evidence_hash == credit.evidence_hash():
            status = f"posted r{record.revision}"
            total += credit.jp
        else:
            status = f"r{record.revision} posted, changed since (next jp compute revises it)"
        if credit.jp and credit.capped_by:
            status += f", capped ({credit.capped_by})"
        evidence = "\n".join(
            f"{item.occurred_at:%Y-%m-%d %H:%M}Z {item.source}/{item.site_id} {item.kind} "
            f"{item.object_key} ({item.statement_id[:8]})"
            for item in credit.evidence
        )
        table.add_row(
            credit.period,
            f"{credit.rule.id} v{credit.rule.version}",
            credit.rule.code,
            f"{credit.raw.normalize():f}",
            f"{credit.jp.normalize():f}",
            status,
            evidence,
        )
    stdout.print(table)
    stdout.print(f"{number.value}: {total.normalize():f} JP posted for {year}")


@cli.group()
def jp() -> None:
    """Compute JP records from stored activity and queue them for the LRS."""


@jp.command("compute")
@click.option(
    "--year",
    "years",
    type=click.IntRange(2000, 2100),
    multiple=True,
    help="Local calendar year to compute (repeatable; default: this year, and last year in January).",
)
@click.option("--dry-run", is_flag=True, help="Compute and count; queue nothing.")
@click.pass_obj
def jp_compute(app: App, years: tuple[int, ...], dry_run: bool) -> None:
    """Turn closed periods' activity into JP records; revise or void records whose evidence changed."""
    report = jp_core.run_jp(
        app.engine, app.settings, statement_settings(app.settings), years=years or None, dry_run=dry_run
    )
    verb = "would queue" if dry_run else "queued"
    stdout.print(
        f"JP {', '.join(map(str, report.years))}: {verb} {report.posted} new records "
        f"({report.jp_posted.normalize():f} JP in new and revised records), {report.revised} revised, "
        f"{report.voided} voided, {report.unchanged} unchanged; {report.people} people; "
        f"{report.open} in periods not closed yet; {report.unresolved} activities without a NIP"
    )


# --- ledger and reports -----------------------------------------------------------------------


@cli.group()
def ledger() -> None:
    """Mirror JP records from the LRS into the state store (what reports read)."""


@ledger.command("sync")
@click.option("--full", is_flag=True, help="Ignore the cursor and read the whole LRS again (a repair).")
@click.pass_obj
def ledger_sync(app: App, full: bool) -> None:
    """Read new JP records, voids and evidence from the LRS."""
    with app.lrs_client() as client, app.progress("ledger", None) as advance:
        report = ledger_core.sync_ledger(app.engine, app.settings, client, full=full, on_progress=advance)
    stdout.print(
        f"ledger: {report.read} statements read, {report.records} JP records, {report.voids} voids, "
        f"{report.evidence} evidence, cursor {report.cursor or '-'}"
    )


FORMATS = click.Choice(["table", "csv", "xlsx", "json"])


def _emit(
    fmt: str,
    output: Path | None,
    title: str,
    header: list[str],
    rows: list[list[Any]],
    sheets: dict[str, tuple[list[str], list[list[Any]]]] | None = None,
    **extra: Any,
) -> None:
    """Print or write a report in the chosen format."""
    if fmt == "xlsx":
        if output is None:
            raise LmsBridgeError("--format xlsx needs --output FILE.xlsx")
        export.write_xlsx(output, sheets or {title: (header, rows)})
        stdout.print(f"wrote {output}")
    elif fmt == "csv":
        export.write_text(output, export.to_csv(header, rows))
    elif fmt == "json":
        export.write_text(output, export.to_json(header, rows, report=title, **extra))
    else:
        table = Table(*header, title=title)
        for row in rows:
            table.add_row(
                *("-" if value is None else f"{value:f}" if isinstance(value, Decimal) else str(value) for value in row)
            )
        if stdout.is_terminal and len(rows) > 40:
            with stdout.pager():
                stdout.print(table)
        else:
            stdout.print(table)


def _jp_text(value: Decimal) -> str:
    return f"{value.normalize():f}"


@cli.group()
def report() -> None:
    """HR reports from the ledger: compliance, per person, per unit, SIASN export."""


@report.command("compliance")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--unit", help="Only this work unit code.")
@click.option("--as-of", "as_of", type=DateParam(), help="Count records up to this day (default: year end).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.option("--sheet-per-unit", is_flag=True, help="XLSX: one sheet per unit besides the summary.")
@click.pass_obj
def report_compliance(
    app: App, year: int, unit: str | None, as_of: Any, fmt: str, output: Path | None, sheet_per_unit: bool
) -> None:
    """Who has reached the yearly JP target, per person, with a summary per unit."""
    result = reports_core.compliance(app.engine, app.settings, year, unit=unit, as_of=as_of.date() if as_of else None)
    header = ["nip", "name", "unit", "unit_name", "employee_type", "jp", "target", "met", "jp_needed"]
    rows = [
        [
            r.nip,
            r.name,
            r.unit_code,
            r.unit_name,
            r.employee_type,
            r.jp.normalize(),
            r.target,
            "yes" if r.met else "no",
            r.needed.normalize(),
        ]
        for r in result.rows
    ]
    summary_header = ["unit", "unit_name", "people", "met", "share_met", "median_jp"]
    summary = [[u.unit_code, u.unit_name, u.people, u.met, round(u.share_met, 3), u.median_jp] for u in result.units]
    title = f"JP compliance {year} as of {result.as_of}"
    sheets: dict[str, tuple[list[str], list[list[Any]]]] = {
        "summary": (summary_header, summary),
        "people": (header, rows),
    }
    if sheet_per_unit:
        for summary_row in summary:
            sheets[str(summary_row[0])] = (header, [row for row in rows if row[2] == summary_row[0]])
    if fmt == "json":
        _emit(
            fmt,
            output,
            title,
            header,
            rows,
            year=year,
            as_of=str(result.as_of),
            units=[dict(zip(summary_header, [export.json_value(v) for v in row], strict=True)) for row in summary],
        )
        return
    _emit(fmt, output, title, header, rows, sheets)
    if fmt == "table":
        _emit("table", None, "per unit", summary_header, summary)


@report.command("person")
@click.argument("nip", nargs=-1, required=True)
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.pass_obj
def report_person(app: App, nip: tuple[str, ...], year: int, fmt: str, output: Path | None) -> None:
    """Every JP record of one person, with the rule and the evidence behind it."""
    number = parse_nip(" ".join(nip))
    if number is None:
        raise LmsBridgeError(f"{' '.join(nip)!r} is not a valid NIP")
    records = reports_core.person_records(app.engine, number.value, year)
    header = [
        "period",
        "rule",
        "code",
        "jp",
        "status",
        "evidence_count",
        "evidence_time",
        "evidence",
        "where",
        "evidence_id",
        "record_id",
    ]
    rows: list[list[Any]] = []
    total = Decimal(0)
    for record in records:
        status = "voided" if record.voided else "counted"
        total += Decimal(0) if record.voided else record.jp
        lines = record.evidence or [reports_core.EvidenceLine("-", "-", "-", "-")]
        for index, line in enumerate(lines):
            first = index == 0
            rows.append(
                [
                    record.period if first else "",
                    record.rule if first else "",
                    record.code if first else "",
                    record.jp.normalize() if first else "",
                    status if first else "",
                    record.evidence_count if first else "",
                    line.when,
                    line.what,
                    line.where,
                    line.statement_id,
                    record.statement_id if first else "",
                ]
            )
    _emit(
        fmt,
        output,
        f"JP records {year} of {number.value}: {_jp_text(total)} JP counted",
        header,
        rows,
        nip=number.value,
        year=year,
        jp=export.json_value(total),
    )


@report.command("units")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--as-of", "as_of", type=DateParam(), help="Units as of this day (default: year end).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.pass_obj
def report_units(app: App, year: int, as_of: Any, fmt: str, output: Path | None) -> None:
    """One row per unit with JP month by month."""
    units = reports_core.units_by_month(app.engine, app.settings, year, as_of=as_of.date() if as_of else None)
    header = ["unit", "unit_name", "people", *[f"{year}-{m:02d}" for m in range(1, 13)], "total"]
    rows = [
        [u.unit_code, u.unit_name, u.people, *[m.normalize() for m in u.months], u.total.normalize()] for u in units
    ]
    _emit(fmt, output, f"JP per unit and month {year}", header, rows, year=year)


@report.command("siasn")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--institution", required=True, help="institusiPenyelenggara: your institution's name.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="CSV file (default: stdout).")
@click.pass_obj
def report_siasn(app: App, year: int, institution: str, output: Path | None) -> None:
    """BKN SIASN "riwayat kursus" rows as CSV (reference ids left for the operator)."""
    rows = reports_core.siasn_rows(app.engine, year, institution=institution)
    header = list(reports_core.SIASN_COLUMNS)
    export.write_text(output, export.to_csv(header, [[row[key] for key in header] for row in rows]))


# --- users ------------------------------------------------------------------------------------


@cli.group()
def users() -> None:
    """Manage the HR users of the web page (serve-web)."""


@users.command("add")
@click.argument("username")
@click.option("--units", metavar="U1,U2", help="Unit codes the user may see (default: every unit).")
@click.option(
    "--password-env", metavar="VAR", help="Read the password from this environment variable (default: prompt twice)."
)
@click.pass_obj
def users_add(app: App, username: str, units: str | None, password_env: str | None) -> None:
    """Add a web user; the password is asked for (never given on the command line)."""
    codes = users_core.parse_units(units)
    if password_env:
        secret = app.settings.optional_secret(password_env)
        if secret is None:
            raise ConfigError(f"environment variable {password_env} is not set")
        password = secret.get_secret_value()
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    user = users_core.add_user(app.engine, username, password, codes)
    stdout.print(f"added web user {user.username} ({', '.join(user.units) if user.units else 'all units'})")


@users.command("list")
@click.pass_obj
def users_list(app: App) -> None:
    """List the web users, their units and whether they are active."""
    table = Table("username", "units", "active", "created", title="web users")
    for user in users_core.list_users(app.engine):
        table.add_row(
            user.username,
            ", ".join(user.units) or "all",
            "yes" if user.active else "no",
            f"{user.created_at:%Y-%m-%d %H:%M}Z",
        )
    stdout.print(table)


@users.command("disable")
@click.argument("username")
@click.pass_obj
def users_disable(app: App, username: str) -> None:
    """Disable a web user (their open sessions stop at the next click)."""
    changed = users_core.disable_user(app.engine, username)
    stdout.print(f"disabled web user {username}" if changed else f"web user {username} was already disabled")


# --- web --------------------------------------------------------------------------------------


@cli.command("serve-web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8300, show_default=True)
@click.option(
    "--allow-remote", is_flag=True, help="Allow an address other than loopback (put an HTTPS reverse proxy in front)."
)
@click.pass_obj
def serve_web(app: App, host: str, port: int, allow_remote: bool) -> None:
    """Serve the read-only HR web page (compliance, people, evidence, downloads) with waitress."""
    import ipaddress

    from lms_bridge.web import app as web_app

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise LmsBridgeError(
            f"refusing to listen on {host}: the page shows personal data over plain HTTP, so it "
            "stays on 127.0.0.1 unless you put an HTTPS reverse proxy in front and pass "
            "--allow-remote"
        )
    if not loopback:
        log.warning("listening on %s: only an HTTPS reverse proxy should reach this port", host)
    flask_app = web_app.create_app(app.settings, app.engine)
    if not users_core.list_users(app.engine):
        log.warning("no web users yet: add one with lms-bridge users add NAME")
    stderr.print(f"serving the HR web page on http://{host}:{port}/ (Ctrl-C stops)")
    web_app.serve(flask_app, host, port)


# --- operator tools: backfill, cursors, void, forget, runs, serve ------------------------------


@cli.command()
@click.option("--site", required=True, help="The source to re-pull (a Moodle site or a source LRS).")
@click.option("--since", type=DateParam(), required=True, help="Start of the window (local date or date-time).")
@click.option("--until", type=DateParam(), help="End of the window (default: now).")
@click.option("--stream", "streams", multiple=True, help="Only this stream (repeatable).")
@click.option("--dry-run", is_flag=True, help="Read and build statements; store nothing.")
@click.option("--wait", is_flag=True, help="Wait for a running sync of the site instead of stopping.")
@click.pass_obj
def backfill(app: App, site: str, since: Any, until: Any, streams: tuple[str, ...], dry_run: bool, wait: bool) -> None:
    """Re-pull a window of one source without duplicates and without moving its cursors."""
    try:
        with app.progress(site, None) as advance:
            report = backfill_core.backfill(
                app.engine,
                app.settings,
                site,
                since=since,
                until=until,
                streams=streams,
                dry_run=dry_run,
                wait=wait,
                on_progress=lambda s, n: advance(n, s),
            )
    except LockBusy as exc:
        raise LmsBridgeError(
            f"site {site} is being synced by another run ({exc.holder or 'unknown'}): try again later or add --wait"
        ) from exc
    title = f"backfill {site} from {since:%Y-%m-%d %H:%M}" + (f" to {until:%Y-%m-%d %H:%M}" if until else "")
    table = Table(
        "stream",
        "read",
        "new",
        "unchanged",
        "accounts",
        "invalid",
        title=title + (" (dry run: nothing stored)" if dry_run else ""),
    )
    for name, counts in report.streams.items():
        table.add_row(
            name, str(counts.pulled), str(counts.new), str(counts.unchanged), str(counts.links), str(counts.invalid)
        )
    stdout.print(table)
    if report.error:
        raise LmsBridgeError(report.error)


@cli.group()
def cursors() -> None:
    """List stream cursors; set one back (or forward) to a date."""


@cursors.command("list")
@click.option("--site", help="Only this source.")
@click.pass_obj
def cursors_list(app: App, site: str | None) -> None:
    """Show where each stream of each source has been pulled to."""
    table = Table("site", "stream", "position", "updated (UTC)", title="cursors")
    for row in cursors_core.list_cursors(app.engine, site):
        table.add_row(row.site_id, row.stream, row.summary(), f"{row.updated_at:%Y-%m-%d %H:%M:%S}")
    stdout.print(table)


@cursors.command("reset")
@click.option("--site", required=True, help="The source.")
@click.option("--stream", required=True, help="The stream (course_completions, activity_completions, forum_posts...).")
@click.option("--to", "to", type=DateParam(), required=True, help="The date the next sync reads from.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def cursors_reset(app: App, site: str, stream: str, to: Any, yes: bool) -> None:
    """Set a stream's cursor to a date: the next sync re-reads from there (already sent statements are not re-sent)."""
    plan = cursors_core.plan_reset(app.engine, app.settings, site, stream, to)
    before = "never synced" if plan.before is None else cursors_core.describe_position(plan.before)
    stdout.print(f"{site}/{stream}: {before} -> {cursors_core.describe_position(plan.after)}")
    if plan.forward:
        stdout.print(
            f"warning: this moves the cursor forward: activity before {to:%Y-%m-%d %H:%M} not pulled yet "
            "will only come with a backfill"
        )
    if not yes:
        click.confirm(f"reset cursor {site}/{stream}?", abort=True, err=True)
    try:
        cursors_core.apply_reset(app.engine, plan)
    except LockBusy as exc:
        raise LmsBridgeError(
            f"site {site} is being synced by another run ({exc.holder or 'unknown'}): "
            "reset it when that run has finished"
        ) from exc
    stdout.print(f"cursor {site}/{stream} reset: the next sync reads from {to:%Y-%m-%d %H:%M %Z}")


def _fetch_statement(app: App, statement_id: str) -> dict[str, Any] | None:
    """Read one statement from the LRS (for a void target the store does not know)."""
    with app.lrs_client() as client:
        return client.get_statement(statement_id)


@cli.command()
@click.option("--statement", "statement_ids", multiple=True, metavar="ID", help="A statement id to void (repeatable).")
@click.option("--person", metavar="NIP", help="Void this person's statements (with --source and --since).")
@click.option("--source", help="With --person: the source id the statements came from.")
@click.option("--since", type=DateParam(), help="With --person: the first day (or moment) to void.")
@click.option("--reason", required=True, help="Why (stored in the voiding statements: no personal data).")
@click.option("--dry-run", is_flag=True, help="Count what would be voided; queue nothing.")
@click.pass_obj
def void(
    app: App,
    statement_ids: tuple[str, ...],
    person: str | None,
    source: str | None,
    since: Any,
    reason: str,
    dry_run: bool,
) -> None:
    """Queue voiding statements for statements by id, or for a person's statements from a source since a date."""
    if bool(statement_ids) == bool(person) or (person and (not source or since is None)):
        raise click.UsageError("give either --statement ID, or --person NIP --source S --since DATE")
    if statement_ids:
        report = voids_core.void_statements(
            app.engine,
            app.settings,
            statement_ids,
            reason=reason,
            dry_run=dry_run,
            fetch=lambda sid: _fetch_statement(app, sid),
        )
    else:
        report = voids_core.void_person(
            app.engine, app.settings, person or "", source=source or "", since=since, reason=reason, dry_run=dry_run
        )
    verb = "would queue" if dry_run else "queued"
    stdout.print(
        f"{report.targets} statements to void: {verb} {report.queued} voiding statements, "
        f"{report.already} voided before; {report.evidence_removed} evidence rows and "
        f"{report.jp_records_voided} JP records dropped (run jp compute to revise JP)"
        + ("" if dry_run or not report.queued else "; run lms-bridge outbox flush to send them")
    )


@cli.command()
@click.argument("nip", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; change nothing.")
@click.pass_obj
def forget(app: App, nip: tuple[str, ...], yes: bool, dry_run: bool) -> None:
    """Erase a person (UU 27/2022 deletion request) from the state store and void their statements."""
    number = " ".join(nip)
    if not yes and not dry_run:
        click.confirm(
            f"remove every trace of NIP {number} from the state store and void their statements?", abort=True, err=True
        )
    report = voids_core.forget_person(app.engine, app.settings, number, dry_run=dry_run)
    done = "would remove" if dry_run else "removed"
    stdout.print(
        f"{number}: {done} {'the person row' if report.person else 'no person row (none stored)'}, "
        f"{report.identity_links} identity links ({report.pseudonym_links} pseudonym links), "
        f"{report.evidence} evidence rows, {report.jp_records} JP records, {report.ledger_records} ledger "
        f"records, {report.person_units} unit history rows; scrubbed {report.statements} statements from "
        f"the outbox ({report.unsent} never sent, now never will be)"
    )
    stdout.print(
        f"{'would queue' if dry_run else 'queued'} {report.voids_queued} voiding statements "
        f"({report.voids_already} voided before, {report.voids_rewritten} pending voids rewritten without "
        "the NIP)" + ("" if dry_run else ": run lms-bridge outbox flush to send them")
    )
    stdout.print(
        f"{'would keep' if dry_run else 'kept'} a tombstone of {report.tombstones} keyed digests (no NIP, "
        "no account id): syncs, imports, people import, ledger sync and jp compute skip the person now"
    )
    if report.accounts:
        stdout.print(
            "the sources still hold these accounts (lms-bridge ignores them now); remove or anonymise them "
            f"there: {', '.join(report.accounts)}"
        )
    stdout.print(
        "the LRS keeps voided statements (xAPI has no delete): ask its operator to purge them if the "
        "request covers the LRS copy"
    )


@cli.group()
def runs() -> None:
    """What each sync, flush and computation did."""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@runs.command("list")
@click.option("--site", help="Only runs against this source.")
@click.option("--command", "command_name", help="Only runs of this command (sync, flush, jp, ledger...).")
@click.option("--status", help="Only runs with this status (ok, failed, running, stopped, abandoned: killed).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.pass_obj
def runs_list(app: App, site: str | None, command_name: str | None, status: str | None, limit: int) -> None:
    """The latest runs, newest first."""
    table = Table("id", "command", "site", "started (UTC)", "took", "status", "new", "error", title="runs")
    for run in runs_core.list_runs(app.engine, limit=limit, site=site, command=command_name, status=status):
        new = sum(int(c.get("new", 0)) for c in run.streams().values())
        table.add_row(
            str(run.id),
            run.command,
            run.site_id or "-",
            f"{run.started_at:%Y-%m-%d %H:%M:%S}",
            _duration(run.duration_seconds),
            run.status,
            str(new) if run.streams() else "-",
            (run.error or "")[:80],
        )
    stdout.print(table)


@runs.command("show")
@click.argument("run_id", type=int)
@click.pass_obj
def runs_show(app: App, run_id: int) -> None:
    """One run: counts per stream, calls, duration and the error that stopped it."""
    run = runs_core.get_run(app.engine, run_id)
    finished = f"{run.finished_at:%Y-%m-%d %H:%M:%S} UTC" if run.finished_at else "not finished (running or killed)"
    stdout.print(
        f"run {run.id}: {run.command} {run.site_id or ''}".rstrip() + f", {run.status}; started "
        f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC, finished {finished}, took {_duration(run.duration_seconds)}"
    )
    streams = run.streams()
    if streams:
        keys = sorted({key for counts in streams.values() for key in counts})
        table = Table("stream", *keys, title="counts per stream")
        for name, counts in streams.items():
            table.add_row(name, *(str(counts.get(key, 0)) for key in keys))
        stdout.print(table)
    for key, value in run.counts.items():
        if key not in streams:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(value.items())) if isinstance(value, dict) else value
            stdout.print(f"{key}: {shown or '-'}")
    if run.error:
        stdout.print(f"error: {run.error}")


@cli.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help="Port of /healthz and /metrics on 127.0.0.1 (default: [serve] port, 9480; 0: any free port).",
)
@click.option(
    "--schedule",
    "schedules",
    multiple=True,
    metavar="JOB=CRON",
    help="Replace a job's schedule: sync, sync:<source>, flush, jp, ledger or inbox = a cron expression "
    "(5 fields, or 6 with seconds first) or off; repeatable.",
)
@click.pass_obj
def serve(app: App, schedules: tuple[str, ...], port: int | None) -> None:
    """Run syncs, flushes, JP and ledger on schedules until SIGTERM; serve /healthz and /metrics."""
    config = scheduler_core.serve_settings(app.settings, port=port, overrides=schedules)
    scheduler_core.serve(app.engine, app.settings, config)


# --- doctor -----------------------------------------------------------------------------------


@cli.command()
@click.pass_obj
def doctor(app: App) -> None:
    """Check config, secrets, database and LRS, with fixes."""
    results = doctor_checks.run_checks(app.settings, base_dir=app._base_dir())
    for check in results:
        mark = "ok  " if check.ok else "FAIL"
        stdout.print(f"{mark} {check.name}: {check.detail}" + ("" if check.ok or not check.fix else f" -> {check.fix}"))
    failed = [c for c in results if not c.ok]
    if failed:
        raise LmsBridgeError(f"{len(failed)} of {len(results)} checks failed")


def main() -> None:
    """Console-script entry point: run the CLI and turn errors into one clear sentence."""
    try:
        cli.main(standalone_mode=False, prog_name="lms-bridge")
    except click.exceptions.Abort:
        stderr.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LmsBridgeError as exc:
        if _state["debug"]:
            stderr.print(redact(traceback.format_exc()), markup=False)
        stderr.print(f"error: {redact(str(exc))}", markup=False)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        if _state["debug"]:
            stderr.print(redact(traceback.format_exc()), markup=False)
        stderr.print(
            f"error: unexpected {exc.__class__.__name__}: {redact(str(exc))} (run with --debug for the traceback)",
            markup=False,
        )
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
