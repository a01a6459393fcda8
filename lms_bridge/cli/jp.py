"""``lms-bridge rules`` and ``jp``: the JP rules and computing JP records."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import click
from rich.table import Table
from sqlalchemy.orm import Session

from lms_bridge.cli.app import App, cli, stdout
from lms_bridge.config.statements import statement_settings
from lms_bridge.errors import LmsBridgeError
from lms_bridge.jp import engine as jp_core
from lms_bridge.jp.rules import RuleSet
from lms_bridge.nip import parse_nip
from lms_bridge.store import jp as jp_store


@cli.group()
def rules() -> None:
    """Check the JP rules in mappings/ and explain a person's JP."""


@rules.command("check")
@click.pass_obj
def rules_check(app: App) -> None:
    """Validate the rule files and print the effective rules."""
    ruleset, program = jp_core.load_rule_files(app.settings)
    table = Table(
        "rule",
        "version",
        "in force",
        "code",
        "kinds",
        "only when",
        "credit",
        "caps",
        title=f"JP rules ({ruleset.path})",
    )
    for rule in ruleset.rules:
        if rule.credit == "per_item":
            credit = f"{rule.jp_per_item} JP per {'activity' if rule.record == 'activity' else 'activity, per day'}"
        elif rule.credit == "daily_tiers":
            credit = (
                "; ".join(
                    f">= {t.min_items} {'/'.join(sorted(t.kinds)) or 'activities'}: {t.jp} JP" for t in rule.tiers
                )
                + " (per day)"
            )
        elif rule.credit == "minutes":
            credit = (
                f"minutes / {ruleset.minutes_per_jp}, if >= {rule.min_share} of the session "
                f"(else >= {rule.min_minutes} min)"
            )
        else:
            credit = f"program JP ({program.path.name})"
        if rule.jp_factor is not None:
            credit += f", x {rule.jp_factor}"
        caps = ", ".join(f"{cap} JP/{period}" for period, cap in rule.caps().items()) or "-"
        if rule.cap_group != rule.id:
            caps += f" (shared by {rule.cap_group})"
        when = [f"jp_form in {'/'.join(sorted(rule.forms))}"] if rule.forms else []
        when += [f"{name} in {'/'.join(sorted(values))}" for name, values in rule.match]
        if rule.sources:
            when.append(f"source in {'/'.join(sorted(rule.sources))}")
        table.add_row(
            rule.id,
            str(rule.version),
            rule.period_text(),
            "/".join(sorted(rule.forms)) or rule.code,
            ", ".join(sorted(rule.kinds)),
            "; ".join(when) or "-",
            credit,
            caps,
        )
    stdout.print(table)
    _print_timeline(ruleset)
    for assignment in ruleset.assignments:
        condition = "; ".join(f"{name} in {'/'.join(sorted(values))}" for name, values in assignment.when)
        facts = ", ".join(f"{name} = {value}" for name, value in assignment.facts)
        stdout.print(f"assign: {facts} when {condition}")
    stdout.print("an activity counts under the first rule in force on its local day that matches it (one rule each)")
    stdout.print(
        f"precision {ruleset.precision} JP, 1 JP = {ruleset.minutes_per_jp} minutes, a day is closed "
        f"{ruleset.grace_hours} h after it ended ({app.settings.deployment.timezone}); program JP for "
        f"{len(program.sites)} site(s) in {program.path}"
    )
    _print_held(app)


def _print_timeline(ruleset: RuleSet) -> None:
    """When each rule version starts and ends, in date order, with the regulation it follows."""
    events: list[tuple[str, str]] = []
    for rule in ruleset.rules:
        start = rule.effective_from.isoformat() if rule.effective_from else "always"
        events.append((start, f"{rule.id} v{rule.version} ({rule.code}) in force: {rule.citation or 'no citation'}"))
        if rule.effective_to is not None:
            events.append(((rule.effective_to + timedelta(days=1)).isoformat(), f"{rule.id} v{rule.version} ends"))
    table = Table("from", "change", title="Rule timeline")
    seen: set[tuple[str, str]] = set()
    for day, change in sorted(events, key=lambda event: (event[0] != "always", event[0])):
        if (day, change) not in seen:
            seen.add((day, change))
            table.add_row(day, change)
    stdout.print(table)


def _print_held(app: App) -> None:
    """The courses whose completions are held as pending: what to add to program_jp.toml."""
    with Session(app.engine) as session:
        held = jp_store.held_courses(session)
    if not held:
        stdout.print("held as pending: none (every completion's program JP is known)")
        return
    table = Table(
        "site",
        "course",
        "people",
        "activities",
        "first",
        "last",
        title="Held as pending: courses whose program JP is unknown (add them to program_jp.toml)",
    )
    for course in held:
        table.add_row(
            course.site_id,
            course.course,
            str(course.people),
            str(course.items),
            course.first.isoformat(),
            course.last.isoformat(),
        )
    stdout.print(table)


@rules.command("explain")
@click.argument("nip", nargs=-1, required=True)
@click.option("--year", type=click.IntRange(2000, 2100), required=True, help="Local calendar year.")
@click.pass_obj
def rules_explain(app: App, nip: tuple[str, ...], year: int) -> None:
    """Show, per record, which rule gave how many JP from which evidence."""
    number = parse_nip(" ".join(nip))
    if number is None:
        raise LmsBridgeError(
            f"{' '.join(nip)!r} is not a valid NIP (18 digits: birth date, appointment, gender, sequence)"
        )
    credits, records, known = jp_core.explain(app.engine, app.settings, number.value, year)
    if not known:
        raise LmsBridgeError(f"no person with NIP {number.value} and no activity of theirs in the state database")
    table = Table("period", "rule", "code", "raw JP", "JP", "status", "evidence", title=f"JP {year} of {number.value}")
    total = Decimal(0)
    for credit in credits:
        record = records.get(credit.key)
        if credit.pending:
            status = "pending"
        elif credit.jp == 0:
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
        evidence = "\n".join(
            f"{item.occurred_at:%Y-%m-%d %H:%M}Z {item.source}/{item.site_id} {item.kind} "
            f"{item.object_key} ({item.statement_id[:8]})"
            for item in credit.evidence
        )
        table.add_row(
            credit.period,
            f"{credit.rule.id} v{credit.rule.version}",
            credit.code,
            f"{credit.raw.normalize():f}",
            f"{credit.jp.normalize():f}",
            status,
            evidence,
        )
    stdout.print(table)
    stdout.print(f"{number.value}: {total.normalize():f} JP posted for {year}")
    for _, merge in jp_core.duplicates(app.engine, app.settings, year, nip=number.value):
        stdout.print(
            f"credited once: {merge.dropped.occurred_at:%Y-%m-%d %H:%M}Z {jp_core.activity_key(merge.dropped)} "
            f"({merge.dropped.statement_id[:8]}) is the same event as {jp_core.activity_key(merge.kept)} "
            f"({merge.kept.statement_id[:8]}): {merge.explanation}"
        )
    held = sum(1 for credit in credits if credit.pending)
    if held:
        stdout.print(
            f"{held} held as pending: the program JP of their course is unknown "
            "(`lms-bridge rules check` lists the courses to configure)"
        )


@cli.group()
def jp() -> None:
    """Compute JP records from stored activity and queue them for the LRS."""


@jp.command("compute")
@click.option(
    "--year",
    "years",
    type=click.IntRange(2000, 2100),
    multiple=True,
    help="Local calendar year to compute (repeatable; default: this year, and last year in January).",
)
@click.option("--dry-run", is_flag=True, help="Compute and count; queue nothing.")
@click.pass_obj
def jp_compute(app: App, years: tuple[int, ...], dry_run: bool) -> None:
    """Turn closed periods' activity into JP records; revise or void records whose evidence changed."""
    report = jp_core.run_jp(
        app.engine, app.settings, statement_settings(app.settings), years=years or None, dry_run=dry_run
    )
    verb = "would queue" if dry_run else "queued"
    stdout.print(
        f"JP {', '.join(map(str, report.years))}: {verb} {report.posted} new records "
        f"({report.jp_posted.normalize():f} JP in new and revised records), {report.revised} revised, "
        f"{report.voided} voided, {report.unchanged} unchanged; {report.people} people; "
        f"{report.open} in periods not closed yet; {report.unresolved} activities without a NIP"
    )
    if report.held:
        stdout.print(
            f"held as pending: {report.held} credits of {report.held_courses} course(s) whose program JP is "
            "unknown (nothing posted for them); `lms-bridge rules check` lists the courses to configure "
            "in program_jp.toml"
        )
