"""What every command shares: the ``App`` object, the consoles, the root group and the date option."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine

from lms_bridge import store
from lms_bridge.config.lrs import lrs_client
from lms_bridge.config.settings import Settings, load_settings
from lms_bridge.ingest.pipeline import IngestReport
from lms_bridge.runtime.logs import setup_logging
from xapi.lrs_client import LRSClient

log = logging.getLogger("lms_bridge")
# markup=False: data such as "[lrs] url" must print as written, not as rich markup.
stdout = Console(highlight=False, soft_wrap=True, markup=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def table_out() -> Console:
    """Where a wide table goes: stdout, or 160 columns when piped or under cron (rich's 80 would cut names)."""
    return stdout if stdout.is_terminal else Console(highlight=False, soft_wrap=True, markup=False, width=160)


def print_stream_counts(title: str, lead: Sequence[str], rows: Iterable[tuple[Sequence[str], IngestReport]]) -> None:
    """The per-stream table of a sync or a backfill: ``lead`` columns name the stream, then its counts."""
    table = Table(*lead, "read", "new", "unchanged", "accounts", "invalid", "changed", title=title)
    for names, counts in rows:
        table.add_row(
            *names,
            # Records read from the source (courses, accounts, answers), not only those that became activities.
            str(max(counts.read, counts.pulled)),
            str(counts.new),
            str(counts.unchanged),
            str(counts.links),
            str(counts.invalid),
            # Already queued with other content (the source changed it since): kept as first queued.
            str(counts.changed),
        )
    # Piped or under cron, the stream names and the changed column must not be cut to 80 columns.
    table_out().print(table)


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
        return lrs_client(self.settings)

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
            app = ctx.find_object(App) if ctx else None
            zone = app.settings.deployment.timezone if app else "UTC"
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        return moment
