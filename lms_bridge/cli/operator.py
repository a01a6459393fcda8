"""Operator tools: ``init``, ``backfill``, ``cursors``, ``void``, ``forget``, ``runs``, ``serve``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from lms_bridge.cli.app import App, DateParam, cli, print_stream_counts, stdout, table_out
from lms_bridge.errors import LmsBridgeError
from lms_bridge.operator import backfill as backfill_core
from lms_bridge.operator import cursors as cursors_core
from lms_bridge.outbox import voids as voids_core
from lms_bridge.runtime import scheduler as scheduler_core
from lms_bridge.store import runs as runs_core
from lms_bridge.store.locks import LockBusy


@cli.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Folder to write lms-bridge.toml and secrets.env into.",
)
@click.option("--institution", help="The institution's name, printed on every HR export.")
@click.option("--timezone", help="Time zone of the day boundaries: Asia/Jakarta (WIB), Asia/Makassar, Asia/Jayapura.")
@click.option("--lrs-url", help="The LRS's xAPI endpoint (default: a local Ralph, http://127.0.0.1:8100/xAPI/).")
@click.option("--lrs-user", help="The LRS user (default: lms-bridge).")
@click.option("--state-url", help="State database (default: sqlite:///lms-bridge.db next to the config).")
@click.option("--no-input", is_flag=True, help="Ask nothing: take the options given and the defaults.")
def init(
    folder: Path,
    institution: str | None,
    timezone: str | None,
    lrs_url: str | None,
    lrs_user: str | None,
    state_url: str | None,
    no_input: bool,
) -> None:
    """Write a commented lms-bridge.toml and a 0600 secrets.env with fresh keys; never overwrites.

    Options not given are asked for (with their defaults) when run in a terminal. The LRS password
    is taken from $LMS_BRIDGE_LRS_PASSWORD when set, else asked without echo, else left as a
    placeholder in secrets.env: never pass a password as an option (it would stay in the shell history).
    """
    from lms_bridge.operator import starter

    ask = not no_input and sys.stdin.isatty()
    defaults = starter.StarterAnswers(institution="")

    def answer(given: str | None, prompt: str, default: str) -> str:
        if given is not None:
            return given
        return str(click.prompt(prompt, default=default or None)) if ask else default

    answers = starter.StarterAnswers(
        institution=answer(institution, "Institution name (as on HR exports)", ""),
        timezone=answer(timezone, "Time zone (Asia/Jakarta, Asia/Makassar, Asia/Jayapura)", defaults.timezone),
        lrs_url=answer(lrs_url, "LRS xAPI endpoint", defaults.lrs_url),
        lrs_username=answer(lrs_user, "LRS user", defaults.lrs_username),
        lrs_password=os.environ.get("LMS_BRIDGE_LRS_PASSWORD")
        or (
            str(click.prompt("LRS password (empty: fill it in later)", default="", hide_input=True, show_default=False))
            if ask
            else ""
        ),
        state_url=answer(state_url, "State database", defaults.state_url),
    )
    config_path, secrets_path = starter.write_starter(folder, answers)
    stdout.print(f"wrote {config_path} and {secrets_path} (mode 0600, with a new pseudonym key and web key)")
    if not answers.lrs_password:
        stdout.print(f"next: put the LRS password in {secrets_path} (LMS_BRIDGE_LRS_PASSWORD=...)")
    stdout.print(
        f"next: back up {secrets_path} (the pseudonym key can never change), then run: "
        f"lms-bridge --config {config_path} doctor"
    )
    stdout.print(
        "then add a Moodle site: lms-bridge sites add SITE_ID --url https://lms.example.go.id --token-env MOODLE_TOKEN"
    )


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
    print_stream_counts(
        title + (" (dry run: nothing stored)" if dry_run else ""),
        ["stream"],
        (([name], counts) for name, counts in report.streams.items()),
    )
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
        f"{report.evidence} evidence rows, {report.jp_records} JP records, {report.held_credits} held credits, "
        f"{report.ledger_records} ledger "
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
        # Piped, the stream names must not be cut to fit 80 columns (read, voided: more columns than before).
        table_out().print(table)
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
    help="Replace a job's schedule: sync, sync:<source>, flush, jp, ledger, inbox or recheck = a cron expression "
    "(5 fields, or 6 with seconds first) or off; repeatable.",
)
@click.pass_obj
def serve(app: App, schedules: tuple[str, ...], port: int | None) -> None:
    """Run syncs, flushes, JP and ledger on schedules until SIGTERM; serve /healthz and /metrics."""
    config = scheduler_core.serve_settings(app.settings, port=port, overrides=schedules)
    scheduler_core.serve(app.engine, app.settings, config)


@cli.group()
def alerts() -> None:
    """Check the conditions serve alerts on, and test the [alerts] targets (e-mail, Telegram)."""


@alerts.command("check")
@click.pass_obj
def alerts_check(app: App) -> None:
    """Print the conditions true now (failing or silent sources, dead letters, old pending statements); exit 1 if any.

    For cron: cron mails the output when something needs an operator. serve's alerts job sends the same
    conditions to the [alerts] targets once when they start and once when they end.
    """
    from lms_bridge.runtime import alerts as alerts_core

    found = alerts_core.current_conditions(app.engine, app.settings)
    for condition in found:
        stdout.print(f"ALERT {condition.key}: {condition.text}", markup=False, highlight=False)
    if found:
        raise LmsBridgeError(f"{len(found)} condition(s) need an operator")
    stdout.print("ok: no source failing or silent, no dead letter, no old pending statement")


@alerts.command("test")
@click.pass_obj
def alerts_test(app: App) -> None:
    """Send one test message to each [alerts] target; exit 1 when one cannot be reached."""
    from lms_bridge.runtime import alerts as alerts_core

    alerts_core.require_targets(app.settings.alerts)
    failures = alerts_core.deliver(
        app.settings, "[lms-bridge] test", "A test message from lms-bridge alerts test: this target works."
    )
    for failure in failures:
        stdout.print(f"FAIL {failure}", markup=False)
    if failures:
        raise LmsBridgeError(f"{len(failures)} of {len(app.settings.alerts.targets)} alert target(s) failed")
    stdout.print(f"ok: a test message went to {len(app.settings.alerts.targets)} target(s)")
