"""``lms-bridge users``: accounts of the HR web page."""

from __future__ import annotations

import click
from rich.table import Table

from lms_bridge.cli.app import App, cli, stdout
from lms_bridge.errors import ConfigError
from lms_bridge.web import users as users_core


@cli.group()
def users() -> None:
    """Manage the HR users of the web page (serve-web)."""


@users.command("add")
@click.argument("username")
@click.option("--units", metavar="U1,U2", help="Unit codes the user may see (default: every unit).")
@click.option(
    "--role",
    type=click.Choice(users_core.ROLES),
    default=users_core.HR,
    show_default=True,
    help="organiser: a CoP organiser, who sees only the Komunitas Belajar page (aggregates, small cells '< 5').",
)
@click.option(
    "--password-env", metavar="VAR", help="Read the password from this environment variable (default: prompt twice)."
)
@click.pass_obj
def users_add(app: App, username: str, units: str | None, role: str, password_env: str | None) -> None:
    """Add a web user; the password is asked for (never given on the command line)."""
    codes = users_core.parse_units(units)
    if password_env:
        secret = app.settings.optional_secret(password_env)
        if secret is None:
            raise ConfigError(f"environment variable {password_env} is not set")
        password = secret.get_secret_value()
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    user = users_core.add_user(app.engine, username, password, codes, role)
    stdout.print(
        f"added web user {user.username} ({', '.join(user.units) if user.units else 'all units'})"
        + ("; CoP organiser: the Komunitas Belajar page only" if not user.hr else "")
    )


@users.command("list")
@click.pass_obj
def users_list(app: App) -> None:
    """List the web users, their units and whether they are active."""
    table = Table("username", "units", "role", "active", "created", title="web users")
    for user in users_core.list_users(app.engine):
        table.add_row(
            user.username,
            ", ".join(user.units) or "all",
            user.role,
            "yes" if user.active else "no",
            f"{user.created_at:%Y-%m-%d %H:%M}Z",
        )
    stdout.print(table)


@users.command("disable")
@click.argument("username")
@click.pass_obj
def users_disable(app: App, username: str) -> None:
    """Disable a web user and revoke their open sessions at once."""
    changed = users_core.disable_user(app.engine, username)
    stdout.print(f"disabled web user {username}" if changed else f"web user {username} was already disabled")
