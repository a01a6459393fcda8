"""``lms-bridge outbox``: statements on their way to the LRS, and dead letters."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Column, Table

from lms_bridge import store
from lms_bridge.cli.app import App, cli, stdout
from lms_bridge.errors import LmsBridgeError
from lms_bridge.operator import outbox_admin
from lms_bridge.outbox import flush as outbox_core


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
    already = f" ({report.already} were already in the LRS: read back after a 409, equal)" if report.already else ""
    stdout.print(f"sent {report.sent} statements in {report.posts} requests, {report.dead} dead letters{already}")
    if report.gave_up:
        raise LmsBridgeError(
            f"the LRS failed {lrs.max_attempts} times in a row ({report.last_error}); "
            "the remaining statements stay queued for the next flush"
        )


def _flush_distributed(app: App, tasks: int, limit: int | None, wait: bool) -> None:
    """``outbox flush --distributed``: enqueue flush tasks; with ``--wait`` show what each sent."""
    from lms_bridge.runtime import distributed

    celery = distributed.make_celery(app.settings)
    if wait:
        distributed.check_wait(celery)  # before anything is enqueued
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
