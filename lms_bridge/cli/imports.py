"""``lms-bridge import`` and ``inbox``: files of community and webinar exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from lms_bridge.cli.app import App, cli, stdout
from lms_bridge.errors import ConfigError, LmsBridgeError
from lms_bridge.ingest import files as imports_core
from lms_bridge.store.locks import LockBusy, site_lock


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
    help="WhatsApp: read dates whose order the file cannot show as month/day, even when day/month "
    "would keep them in time order (without this or --day-first, the order that keeps the messages in "
    "time order; the file is refused when both or neither do).",
)
@click.option(
    "--day-first",
    is_flag=True,
    help="WhatsApp: read dates whose order the file cannot show as day/month, even when month/day "
    "would keep them in time order.",
)
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="WhatsApp: import an export whose few unreadable lines are skipped; the run records their numbers.",
)
@click.option(
    "--max-messages",
    type=click.IntRange(1),
    help="WhatsApp: the most messages one export may hold (default 1,000,000).",
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
    day_first: bool,
    skip_unreadable: bool,
    max_messages: int | None,
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
        day_first=day_first,
        skip_unreadable=skip_unreadable,
        max_messages=max_messages,
    )
    with app.progress(f"import {file.name}", parsed.expected) as advance:
        summary = imports_core.store_import(app.engine, app.settings, parsed, dry_run=dry_run, on_progress=advance)
    for line, reason in parsed.notes:
        stdout.print(f"line {line}: {reason}")
    if parsed.skipped_lines:
        lines = ", ".join(str(line) for line in parsed.skipped_lines)
        stdout.print(f"skipped {len(parsed.skipped_lines)} unreadable lines (--skip-unreadable): {lines}")
    stdout.print(_import_summary(file, summary, dry_run))


def _import_summary(file: Path, summary: imports_core.ImportSummary, dry_run: bool) -> str:
    """One line: what the file held, what was queued, and who was matched to a NIP."""
    parsed, report = summary.parsed, summary.report
    what = parsed.description + (f", community {parsed.community}" if parsed.community else "")
    singular = {"activities": "activity", "messages": "message", "rows": "row"}.get(parsed.unit, parsed.unit)
    if summary.activities == 0:  # nothing in the file to import at all: not the same as imported before
        return (
            f"{file} ({what}): {_count(parsed.records, singular, parsed.unit)} read, none of them participation "
            f"({parsed.skip_reason} skipped); nothing to import"
        )
    if summary.pending == 0:
        return f"{file} ({what}): nothing new (already imported)"
    counts = [f"{_count(parsed.records, singular, parsed.unit)} read"]
    if parsed.unit != "activities":
        counts.append(_count(summary.activities, "activity", "activities"))
    if parsed.skipped:
        counts.append(f"{parsed.skipped} skipped ({parsed.skip_reason})")
    counts.append(
        f"{'would add' if dry_run else 'added'} {_count(report.new, 'statement', 'statements')} to the outbox"
    )
    counts.append(f"{report.unchanged} already there")
    if report.changed:
        counts.append(f"{report.changed} changed since (kept as first queued)")
    if report.invalid or parsed.file_format.shows_invalid:
        counts.append(f"{report.invalid} invalid" + (" (see the log)" if report.invalid else ""))
    if parsed.file_format.people_by_pseudonym:
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
    from lms_bridge.ingest import inbox as inbox_core

    if not app.settings.inboxes:
        raise ConfigError(
            "no [[inboxes]] in the configuration: add one with path and community "
            "(see docs/sources/community-exports.md)"
        )
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
        f"{report.waiting} waiting to settle, {report.purged} purged by retention"
    )
    if report.errors:
        raise LmsBridgeError(
            f"{_count(len(report.errors), 'file', 'files')} could not be handled and stay "
            f"in place: {report.errors[0].inbox}/{report.errors[0].file}: {report.errors[0].detail}"
        )
