"""``lms-bridge people``: the HR roster and unresolved identities."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lms_bridge.cli.app import App, DateParam, cli, stdout
from lms_bridge.errors import LmsBridgeError
from lms_bridge.identity import roster as roster_core
from lms_bridge.ingest import files as imports_core

#: How a display name's canonical identifier starts (lms_bridge.identifiers.name_identifier).
NAME_PREFIX = "name:"


@cli.group()
def people() -> None:
    """Import the HR roster; show a person; list accounts without a NIP; link chat display names."""


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
    from lms_bridge.identity.pseudonym import pseudonymizer_from_settings

    pseudonymize = pseudonymizer_from_settings(app.settings)  # before the store: no key, nothing stored
    report = roster_core.import_roster(
        app.engine,
        roster,
        pseudonymize,
        dry_run=dry_run,
        effective=effective.date() if effective else None,
        max_bytes=app.settings.limits.roster_max_mb << 20,
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


def _csv_cell(text: str) -> str:
    """A value as it must be written in a CSV cell (quoted when it holds a comma, quote or semicolon)."""
    if any(ch in text for ch in ',;"'):
        return '"' + text.replace('"', '""') + '"'
    return text


@people.command("suggest")
@click.argument("file", metavar="PATH", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--community", metavar="ID", required=True, help="Id of the Community of Practice of the export.")
@click.option("--source", type=click.Choice(imports_core.FORMATS), help="The file's format (default: told from it).")
@click.option("--chat", metavar="ID|NAME", help="The chat to read from a Telegram export that holds several.")
@click.option("--month-first", is_flag=True, help="WhatsApp: read dates the file cannot order as month/day.")
@click.option("--day-first", is_flag=True, help="WhatsApp: read dates the file cannot order as day/month.")
@click.pass_obj
def people_suggest(
    app: App, file: Path, community: str, source: str | None, chat: str | None, month_first: bool, day_first: bool
) -> None:
    """Print each sender known only by display name with its closest roster people; store nothing.

    Confirm the right pairs in a CSV with the header display_name,nip (names as printed here) and
    link them with `lms-bridge people link-names`.
    """
    from lms_bridge.identity import names as names_core

    senders: dict[str, str] = {}  # pseudonym -> canonical display name: memory only, never stored

    def observe(pseudonymize: Callable[[str], str]) -> Callable[[str], str]:
        def seen(identifier: str) -> str:
            pseudonym = pseudonymize(identifier)
            if identifier.startswith(NAME_PREFIX):
                senders[pseudonym] = identifier[len(NAME_PREFIX) :]
            return pseudonym

        return seen

    parsed = imports_core.read_import_file(
        app.settings,
        file,
        source=source,
        community=community,
        chat=chat,
        month_first=month_first,
        day_first=day_first,
        observe=observe,
    )
    messages = Counter(activity.actor for activity, _ in parsed.items)
    report = names_core.suggest(app.engine, community, senders, dict(messages))
    for item in report.suggestions:
        unit = "activity" if item.messages == 1 else "activities"
        found = "; ".join(f"{c.nip} {c.name} ({c.score:g})" for c in item.candidates) or "no roster name is close"
        stdout.print(f"{_csv_cell(item.name)} ({item.messages} {unit}): {found}")
    if not report.names:
        stdout.print(
            f"{file}: no sender is known by display name only (senders are phone numbers or platform ids: "
            "link them through the roster's telepon/telegram_id columns)"
        )
        return
    stdout.print(
        f"{file}: {report.names} senders by display name, {report.linked} already linked, "
        f"{len(report.suggestions)} to confirm"
        + (f"; {report.unlinked_other} other senders match no roster identity" if report.unlinked_other else "")
        + "; nothing stored"
    )
    if report.suggestions:
        stdout.print(
            "confirm the right pairs in a CSV with the header display_name,nip (names as printed above), then run "
            f"lms-bridge people link-names --community {community} FILE"
        )


@people.command("link-names")
@click.argument("file", metavar="PATH", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--community", metavar="ID", required=True, help="Id of the Community the names were seen in.")
@click.pass_obj
def people_link_names(app: App, file: Path, community: str) -> None:
    """Link confirmed display names (CSV display_name,nip) to people within one community.

    Only a keyed pseudonym of each normalised name is stored. Past activity of the name in that
    community counts for the person at the next `lms-bridge jp compute`.
    """
    from lms_bridge.identity import names as names_core
    from lms_bridge.identity.pseudonym import pseudonymizer_from_settings

    imports_core.check_id(community, "--community")
    pseudonymize = pseudonymizer_from_settings(app.settings)  # before the store: no key, nothing stored
    report = names_core.link_names(app.engine, community, file, pseudonymize)
    counts = report.counts
    stdout.print(
        f"{file}: {report.rows} names linked in community {community} ({counts.added} new, {counts.moved} moved "
        f"to another NIP, {counts.unchanged} unchanged); their past activity counts at the next jp compute"
    )
