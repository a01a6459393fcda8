"""``lms-bridge db``: the state store's schema."""

from __future__ import annotations

import click

from lms_bridge import store
from lms_bridge.cli.app import App, cli, stdout


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
