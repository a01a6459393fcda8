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
from rich.table import Table
from sqlalchemy import Engine

from lms_bridge import doctor as doctor_checks
from lms_bridge import jp as jp_core
from lms_bridge import outbox as outbox_core
from lms_bridge import roster as roster_core
from lms_bridge import sites as sites_core
from lms_bridge import store
from lms_bridge import sync as sync_core
from lms_bridge.config import Settings, load_settings
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.imports import DEFAULT_IMPORT_SOURCE, import_activity_file
from lms_bridge.logs import setup_logging
from lms_bridge.nip import parse_nip
from lms_bridge.pipeline import statement_settings
from lms_bridge.redaction import redact
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
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Configuration file (default: $LMS_BRIDGE_CONFIG, else ./lms-bridge.toml, else built-in defaults).")
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
    stdout.print(f"state database {store.describe(engine)}: revision {after}"
                 + ("" if before == after else f" (was {before or 'empty'})"))


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
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", "source_id", default=DEFAULT_IMPORT_SOURCE, show_default=True,
              help="Source id the import is recorded under (its cursor key).")
@click.option("--dry-run", is_flag=True, help="Check the file and build the statements; store nothing.")
@click.pass_obj
def import_cmd(app: App, file: Path, source_id: str, dry_run: bool) -> None:
    """Import an activity file (JSON Lines of normalised activities)."""
    with app.progress(f"import {file.name}", None) as advance:
        report = import_activity_file(app.engine, app.settings, file, source_id=source_id, dry_run=dry_run,
                                      on_progress=advance)
    if report.pulled == 0:
        stdout.print(f"{file}: nothing new (already imported)")
        return
    verb = "would add" if dry_run else "added"
    stdout.print(f"{file}: {report.pulled} activities read, {verb} {report.new} statements to the outbox, "
                 f"{report.unchanged} already there, {report.invalid} invalid")


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
@click.option("--site", help="Sync only this site (default: every Moodle site in the config).")
@click.option("--stream", "streams", multiple=True, help="Sync only this stream (repeatable).")
@click.option("--since", type=DateParam(), help="Re-pull from this date without moving the cursors (a backfill).")
@click.option("--dry-run", is_flag=True, help="Read and build statements; store nothing.")
@click.pass_obj
def sync(app: App, site: str | None, streams: tuple[str, ...], since: Any, dry_run: bool) -> None:
    """Pull new activity from Moodle sites into the outbox."""
    reports = []
    for source in sync_core.moodle_sources(app.settings, site):
        with app.progress(f"{source.id}", None) as advance:
            reports.append(sync_core.sync_site(app.engine, app.settings, source, streams=streams or None,
                                               since=since, dry_run=dry_run,
                                               on_progress=lambda stream, n: advance(n, stream)))
    table = Table("site", "stream", "read", "new", "unchanged", "accounts", "invalid",
                  title="sync" + (" (dry run: nothing stored)" if dry_run else ""))
    for report in reports:
        for name, counts in report.streams.items():
            table.add_row(report.site, name, str(counts.pulled), str(counts.new), str(counts.unchanged),
                          str(counts.links), str(counts.invalid))
    stdout.print(table)
    failed = [r for r in reports if r.error]
    if failed:
        raise LmsBridgeError("; ".join(r.error or "" for r in failed))


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
@click.pass_obj
def people_import(app: App, roster: Path, dry_run: bool) -> None:
    """Import the HR roster CSV (NIP, name, unit, position, consented phones, Telegram ids, e-mails)."""
    from lms_bridge.pseudonym import pseudonymizer_from_settings

    pseudonymize = pseudonymizer_from_settings(app.settings)  # before the store: no key, nothing stored
    report = roster_core.import_roster(app.engine, roster, pseudonymize, dry_run=dry_run)
    for line, reason in report.skipped:
        stdout.print(f"line {line}: {reason}")
    for line, message in report.warnings:
        stdout.print(f"line {line}: warning: {message}")
    if report.stored == 0:
        raise LmsBridgeError(f"roster {roster}: none of its {report.rows} rows could be imported")
    verb = "would be imported" if dry_run else "imported"
    stdout.print(f"{roster}: {report.rows} rows read, {report.stored} persons {verb} ({report.imported} new, "
                 f"{report.updated} updated, {report.unchanged} unchanged), {len(report.skipped)} skipped; "
                 f"{report.identities} identities linked ({report.links_added} new, {report.links_moved} moved "
                 f"from another NIP), {report.links_removed} no longer listed unlinked"
                 + (" (dry run: nothing stored)" if dry_run else ""))


@people.command("show")
@click.argument("nip", nargs=-1, required=True)
@click.pass_obj
def people_show(app: App, nip: tuple[str, ...]) -> None:
    """Show a person by NIP: roster fields, linked identities, activity per source, JP per year."""
    person = roster_core.show_person(app.engine, " ".join(nip))
    if person is None:
        digits = "".join(ch for ch in "".join(nip) if ch.isdigit())
        raise LmsBridgeError(f"no person with NIP {digits} in the state database: import the roster "
                             "(lms-bridge people import) or sync a site that knows them")
    table = Table("field", "value", title=f"person {person.nip}", show_header=False)
    for label, value in (("NIP", person.nip), ("employee type", person.employee_type), ("name", person.name),
                         ("unit", " ".join(v for v in (person.unit_code, person.unit_name) if v) or None),
                         ("position", person.position)):
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
        table.add_row(actor.source, actor.site_id, actor.local_id, str(actor.activities),
                      f"{actor.first_at:%Y-%m-%d}" if actor.first_at else "-",
                      f"{actor.last_at:%Y-%m-%d}" if actor.last_at else "-")
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
@click.pass_obj
def outbox_flush(app: App, limit: int | None, batch_size: int | None) -> None:
    """Post pending statements to the LRS in batches; retries transient failures."""
    lrs = app.settings.lrs
    pending = store.outbox_counts(app.engine).pending
    with app.lrs_client() as client, app.progress("flush", min(pending, limit or pending)) as advance:
        report = outbox_core.flush(
            app.engine, client, batch_size=batch_size or lrs.batch_size, max_attempts=lrs.max_attempts,
            backoff_base=lrs.backoff_base, backoff_cap=lrs.backoff_cap, limit=limit, on_progress=advance,
        )
    stdout.print(f"sent {report.sent} statements in {report.posts} requests, {report.dead} dead letters")
    if report.gave_up:
        raise LmsBridgeError(f"the LRS failed {lrs.max_attempts} times in a row ({report.last_error}); "
                             "the remaining statements stay queued for the next flush")


@outbox.command("status")
@click.pass_obj
def outbox_status(app: App) -> None:
    """Count queued, sent and dead-lettered statements."""
    counts = store.outbox_counts(app.engine)
    table = Table("status", "statements", title="outbox")
    table.add_row("pending", str(counts.pending))
    table.add_row("sent", str(counts.sent))
    table.add_row("dead", str(counts.dead))
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
            credit = "; ".join(f">= {t.min_items} {'/'.join(sorted(t.kinds)) or 'activities'}: {t.jp} JP"
                               for t in rule.tiers) + " (per day)"
        elif rule.credit == "minutes":
            credit = (f"minutes / {ruleset.minutes_per_jp}, if >= {rule.min_share} of the session "
                      f"(else >= {rule.min_minutes} min)")
        else:
            credit = f"program JP ({program.path.name})"
        caps = ", ".join(f"{cap} JP/{period}" for period, cap in rule.caps().items()) or "-"
        if rule.cap_group != rule.id:
            caps += f" (shared by {rule.cap_group})"
        table.add_row(rule.id, str(rule.version), rule.code, ", ".join(sorted(rule.kinds)), credit, caps)
    stdout.print(table)
    stdout.print(f"precision {ruleset.precision} JP, 1 JP = {ruleset.minutes_per_jp} minutes, a day is closed "
                 f"{ruleset.grace_hours} h after it ended ({app.settings.deployment.timezone}); program JP for "
                 f"{len(program.sites)} site(s) in {program.path}")


@rules.command("explain")
@click.argument("nip", nargs=-1, required=True)
@click.option("--year", type=click.IntRange(2000, 2100), required=True, help="Local calendar year.")
@click.pass_obj
def rules_explain(app: App, nip: tuple[str, ...], year: int) -> None:
    """Show, per record, which rule gave how many JP from which evidence."""
    number = parse_nip(" ".join(nip))
    if number is None:
        raise LmsBridgeError(f"{' '.join(nip)!r} is not a valid NIP (18 digits: birth date, appointment, gender, "
                             "sequence)")
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
        evidence = "\n".join(f"{item.occurred_at:%Y-%m-%d %H:%M}Z {item.source}/{item.site_id} {item.kind} "
                             f"{item.object_key} ({item.statement_id[:8]})" for item in credit.evidence)
        table.add_row(credit.period, f"{credit.rule.id} v{credit.rule.version}", credit.rule.code,
                      f"{credit.raw.normalize():f}", f"{credit.jp.normalize():f}", status, evidence)
    stdout.print(table)
    stdout.print(f"{number.value}: {total.normalize():f} JP posted for {year}")


@cli.group()
def jp() -> None:
    """Compute JP records from stored activity and queue them for the LRS."""


@jp.command("compute")
@click.option("--year", "years", type=click.IntRange(2000, 2100), multiple=True,
              help="Local calendar year to compute (repeatable; default: this year, and last year in January).")
@click.option("--dry-run", is_flag=True, help="Compute and count; queue nothing.")
@click.pass_obj
def jp_compute(app: App, years: tuple[int, ...], dry_run: bool) -> None:
    """Turn closed periods' activity into JP records; revise or void records whose evidence changed."""
    report = jp_core.run_jp(app.engine, app.settings, statement_settings(app.settings), years=years or None,
                            dry_run=dry_run)
    verb = "would queue" if dry_run else "queued"
    stdout.print(f"JP {', '.join(map(str, report.years))}: {verb} {report.posted} new records "
                 f"({report.jp_posted.normalize():f} JP in new and revised records), {report.revised} revised, "
                 f"{report.voided} voided, {report.unchanged} unchanged; {report.people} people; "
                 f"{report.open} in periods not closed yet; {report.unresolved} activities without a NIP")


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
        stderr.print(f"error: unexpected {exc.__class__.__name__}: {redact(str(exc))} "
                     "(run with --debug for the traceback)", markup=False)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
