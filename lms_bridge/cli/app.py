"""What every command shares: the ``App`` object, the consoles, the root group and the date option."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

if TYPE_CHECKING:
    # Only for annotations: ``lms-bridge --help`` must not load SQLAlchemy, pydantic or requests.
    from sqlalchemy import Engine

    from lms_bridge.config.settings import Settings
    from lms_bridge.ingest.pipeline import IngestReport
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
    from rich.table import Table

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
            from lms_bridge import store

            self._engine = store.open_engine(self.settings.state.url, self._base_dir())
        return self._engine

    def _base_dir(self) -> Path | None:
        return self.settings.config_path.parent if self.settings.config_path else None

    def lrs_client(self) -> LRSClient:
        """An LRS client with the configured credentials."""
        from lms_bridge.config.lrs import lrs_client

        return lrs_client(self.settings)

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Any]:
        """A progress bar on stderr when it is a terminal; silent under cron or ``--quiet``."""
        if self.quiet or not stderr.is_terminal:
            yield lambda _n, _label=None: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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

#: Each command of the root group: the module that defines it (imported when the command runs) and
#: the summary ``lms-bridge --help`` shows without importing it (``tests/test_cli_startup.py``
#: checks both against the commands themselves).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "alerts": (
        "lms_bridge.cli.operator",
        "Check the conditions serve alerts on, and test the [alerts] targets (e-mail, Telegram).",
    ),
    "backfill": (
        "lms_bridge.cli.operator",
        "Re-pull a window of one source without duplicates and without moving its cursors.",
    ),
    "cursors": ("lms_bridge.cli.operator", "List stream cursors; set one back (or forward) to a date."),
    "db": ("lms_bridge.cli.db", "Create and migrate the state store."),
    "demo": (
        "lms_bridge.cli.demo",
        "Run the demo: a fake Moodle and a local Ralph LRS, sync, imports, JP, flush, reports, then the HR page.",
    ),
    "doctor": (
        "lms_bridge.cli.doctor",
        "Check config, secrets, database and LRS (read-only unless --write-probe), with fixes.",
    ),
    "forget": (
        "lms_bridge.cli.operator",
        "Erase a person (UU 27/2022 deletion request) from the state store and void their statements.",
    ),
    "import": (
        "lms_bridge.cli.imports",
        "Import a chat export, attendance report, LMS completion report or activity file.",
    ),
    "init": (
        "lms_bridge.cli.operator",
        "Write a commented lms-bridge.toml and a 0600 secrets.env with fresh keys; never overwrites.",
    ),
    "inbox": ("lms_bridge.cli.imports", "Import the community exports dropped in the [[inboxes]] folders."),
    "jp": ("lms_bridge.cli.jp", "Compute JP records from stored activity and queue them for the LRS."),
    "ledger": (
        "lms_bridge.cli.reports",
        "Mirror JP records from the LRS into the state store (what reports read).",
    ),
    "outbox": ("lms_bridge.cli.outbox", "Send queued statements to the LRS; inspect and retry."),
    "people": (
        "lms_bridge.cli.people",
        "Import the HR roster; show a person; list accounts without a NIP; link chat display names.",
    ),
    "report": (
        "lms_bridge.cli.reports",
        "HR reports from the ledger: compliance, per person, per unit, SIASN export.",
    ),
    "rules": ("lms_bridge.cli.jp", "Check the JP rules in mappings/ and explain a person's JP."),
    "runs": ("lms_bridge.cli.operator", "What each sync, flush and computation did."),
    "serve": (
        "lms_bridge.cli.operator",
        "Run syncs, flushes, JP and ledger on schedules until SIGTERM; serve /healthz and /metrics.",
    ),
    "serve-web": (
        "lms_bridge.cli.web",
        "Serve the read-only HR web page (compliance, people, evidence, downloads) with waitress.",
    ),
    "sites": ("lms_bridge.cli.sync", "Register, list and test Moodle sites."),
    "sync": (
        "lms_bridge.cli.sync",
        "Pull new activity from Moodle sites, source LRSs and live APIs (Telegram, Zoom, Classroom) into the outbox.",
    ),
    "users": ("lms_bridge.cli.users", "Manage the HR users of the web page (serve-web)."),
    "void": (
        "lms_bridge.cli.operator",
        "Queue voiding statements for statements by id, or for a person's statements from a source since a date.",
    ),
    "worker": (
        "lms_bridge.cli.sync",
        "Run a Celery worker for distributed syncs and flushes until SIGTERM (see docs/scaling.md).",
    ),
}


#: Modules that add subcommands to a lazily loaded group (``report cop`` joins ``report``): loaded with it.
LAZY_SUBCOMMANDS: dict[str, tuple[str, ...]] = {"report": ("lms_bridge.cli.cop",)}


class LazyGroup(click.Group):
    """The root group: a command's module is imported when that command runs, not for ``--help``.

    Each module adds its commands to this group when imported (``@cli.command``), as before; the
    root help lists :data:`LAZY_COMMANDS`' summaries, so ``lms-bridge --help`` loads no
    SQLAlchemy, Alembic, pydantic or requests.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: D102
        return sorted(set(self.commands) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: D102
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            importlib.import_module(LAZY_COMMANDS[cmd_name][0])
            for module in LAZY_SUBCOMMANDS.get(cmd_name, ()):
                importlib.import_module(module)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands section of the help, as click writes it, from the summaries of unloaded modules."""
        names = [
            name for name in self.list_commands(ctx) if name not in self.commands or not self.commands[name].hidden
        ]
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is not None:
                rows.append((name, command.get_short_help_str(limit)))
            else:
                # A stand-in with the same help text shortens it exactly as the command would.
                rows.append((name, click.Command(name, help=LAZY_COMMANDS[name][1]).get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def load_all_commands() -> None:
    """Import every command module (what a caller that walks ``cli.commands`` needs first)."""
    for module, _ in LAZY_COMMANDS.values():
        importlib.import_module(module)
    for modules in LAZY_SUBCOMMANDS.values():
        for module in modules:
            importlib.import_module(module)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    from lms_bridge.config.settings import load_settings
    from lms_bridge.runtime.logs import setup_logging

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
