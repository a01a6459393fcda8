"""``lms-bridge sync``, ``worker`` and ``sites``: pulling from configured sources."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from lms_bridge.cli.app import App, DateParam, _state, cli, print_stream_counts, stderr, stdout
from lms_bridge.config.settings import load_settings
from lms_bridge.errors import LmsBridgeError
from lms_bridge.ingest import runner as sync_core
from lms_bridge.operator import sites as sites_core
from lms_bridge.redaction import redact
from lms_bridge.store.locks import LockBusy


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
            with app.progress(f"{source.id}", None) as advance:
                reports.append(
                    sync_core.sync_source(
                        app.engine,
                        app.settings,
                        source,
                        streams=source_streams,
                        since=since,
                        dry_run=dry_run,
                        on_progress=lambda stream, n: advance(n, stream),
                        wait=wait,
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
    print_stream_counts(
        "sync" + (" (dry run: nothing stored)" if dry_run else ""),
        ["site", "stream"],
        (([report.site, name], counts) for report in reports for name, counts in report.streams.items()),
    )
    for report in reports:
        if report.skipped:
            reasons = ", ".join(f"{count} {sync_core.skip_label(reason)}" for reason, count in report.skipped.items())
            stdout.print(f"{report.site}: {sum(report.skipped.values())} statements skipped ({reasons})")
    failed = [r for r in reports if r.error]
    if failed:
        raise LmsBridgeError("; ".join(r.error or "" for r in failed))


def _sync_distributed(app: App, site: str | None, streams: tuple[str, ...], wait: bool) -> None:
    """``sync --distributed``: enqueue the tasks, print their ids, or wait and print their results."""
    from lms_bridge.runtime import distributed

    celery = distributed.make_celery(app.settings)
    if wait:
        distributed.check_wait(celery)  # before anything is enqueued
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
    from lms_bridge.runtime import distributed

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
    """Add a Moodle site to the config file, print the Moodle admin steps for its token, then test it.

    The token stays in the environment or the secrets file. The test is the one ``sites test`` runs;
    when the token is not set yet it says so and the site stays added (set it, then run ``sites test``).
    """
    path = sites_core.add_site(app.settings, site_id=site_id, url=url, token_env=token_env, fmt=fmt)
    stdout.print(f"added site {site_id} to {path}")
    stdout.print(sites_core.setup_steps(url, token_env), markup=False, highlight=False)
    settings = load_settings(path)
    if settings.optional_secret(token_env) is None:
        stdout.print(f"{token_env} is not set yet: set it, then run: lms-bridge sites test {site_id}")
        return
    line, ok = sites_core.test_line(settings, settings.source(site_id))
    stdout.print(line, markup=False)
    if not ok:
        raise LmsBridgeError(
            f"site {site_id} was added but failed its test: fix the above, then run lms-bridge sites test {site_id}"
        )


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
    """Call each site (site info) and list the functions its token's service lacks; or check one source of any type."""
    failures = 0
    for source in sites_core.test_sources(app.settings, site_id):
        line, ok = sites_core.test_line(app.settings, source)
        failures += not ok
        stdout.print(line)
    if failures:
        raise LmsBridgeError(f"{failures} site(s) failed the test")
