"""``lms-bridge ledger`` and ``report``: what HR reads."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.table import Table
from sqlalchemy import Engine

from lms_bridge import i18n
from lms_bridge.cli.app import App, DateParam, cli, stderr, stdout
from lms_bridge.config.settings import CONFIG_ENV, DEFAULT_CONFIG_NAME, StateSettings
from lms_bridge.errors import EmptyAnswerError, LmsBridgeError
from lms_bridge.jp import engine as jp_core
from lms_bridge.ledger import export, labels
from lms_bridge.ledger import mirror as ledger_core
from lms_bridge.ledger import reports as reports_core
from lms_bridge.nip import parse_nip
from lms_bridge.store.db import normalise_url


@cli.group()
def ledger() -> None:
    """Mirror JP records from the LRS into the state store (what reports read)."""


@ledger.command("sync")
@click.option("--full", is_flag=True, help="Ignore the cursor and read the whole LRS again (a repair).")
@click.pass_obj
def ledger_sync(app: App, full: bool) -> None:
    """Read new JP records, voids and evidence from the LRS."""
    with app.lrs_client() as client, app.progress("ledger", None) as advance:
        report = ledger_core.sync_ledger(app.engine, app.settings, client, full=full, on_progress=advance)
    stdout.print(
        f"ledger: {report.read} statements read, {report.records} JP records, {report.voids} voids, "
        f"{report.evidence} evidence, cursor {report.cursor or '-'}"
    )


#: Every report offers the workbook first: it is what HR opens (CSV is for programs).
FORMATS = click.Choice(["xlsx", "table", "csv", "json"])
CSV_DIALECT = click.Choice(list(export.CSV_DIALECTS))


def _language(app: App) -> str:
    return app.settings.report.language


def _reading_engine(app: App) -> Engine:
    """The state store for reading, refused (exit 2, nothing created) when there is none to read.

    Reports only read: an absent config or database is a mistake to explain, never a new
    empty store (which would answer every report with an empty table).
    """
    _ = i18n.translator(_language(app))
    settings = app.settings
    if settings.config_path is None and settings.state.url == StateSettings().url:
        env = os.environ.get(CONFIG_ENV)
        raise EmptyAnswerError(
            _(
                "no configuration found: looked at ${env} ({env_state}) and {file}; "
                "pass --config FILE or run the command in the deployment's folder"
            ).format(
                env=CONFIG_ENV,
                env_state=env or _("not set"),
                file=Path.cwd() / DEFAULT_CONFIG_NAME,
            )
        )
    url = normalise_url(settings.state.url, settings.config_path.parent if settings.config_path else None)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(str(url.database)).is_file():
            raise EmptyAnswerError(
                _(
                    "the state database {path} does not exist (set by [state] url of {config}); "
                    "run `lms-bridge ledger sync` first"
                ).format(path=url.database, config=settings.config_path or _("the environment"))
            )
    return app.engine


def _check_year(app: App, engine: Engine, year: int, as_of: date | None) -> None:
    """Refuse a year or as-of date that can only give an empty answer, saying why."""
    _ = i18n.translator(_language(app))
    today = datetime.now(ZoneInfo(app.settings.deployment.timezone)).date()
    if year > today.year:
        raise EmptyAnswerError(_("{year} is in the future (today is {today})").format(year=year, today=today))
    if as_of is not None and as_of.year != year:
        raise EmptyAnswerError(
            _("the as-of date {as_of} is outside {year}: give a day between {year}-01-01 and {year}-12-31").format(
                as_of=as_of, year=year
            )
        )
    years = reports_core.ledger_years(engine)
    if not years:
        raise EmptyAnswerError(
            _(
                "the ledger holds no JP records at all; "
                "run `lms-bridge ledger sync` (after `jp compute` and `outbox flush`)"
            )
        )
    if year not in years:
        raise EmptyAnswerError(
            _("the ledger holds no JP records of {year}; years with records: {years}").format(
                year=year, years=", ".join(str(y) for y in years)
            )
        )


def _check_unit(app: App, engine: Engine, unit: str | None) -> str | None:
    """The unit code asked for, refused with the valid codes when the roster does not know it."""
    if unit is None or unit == reports_core.NOT_ON_ROSTER or reports_core.unit_known(engine, unit):
        return unit
    known = reports_core.known_units(engine)
    if unit in known:
        return unit
    _ = i18n.translator(_language(app))
    valid = ", ".join(f"{code} ({name})" if name else code for code, name in known.items()) or _("none")
    same = [code for code in known if code.casefold() == unit.casefold()]
    hint = _(" Did you mean {code}?").format(code=same[0]) if same else ""
    raise EmptyAnswerError(
        _("unknown unit {unit!r}: unit codes are case-sensitive; valid codes: {valid}.").format(unit=unit, valid=valid)
        + hint
    )


def _cell(value: Any, language: str, kind: str = "text") -> str:
    if value is None:
        return "-"
    if kind == "nip":
        return str(value)
    if kind == "percent":
        return f"{i18n.decimal(round(float(value) * 100, 1), language)} %"
    if isinstance(value, Decimal | float):
        return i18n.decimal(value, language)
    return str(value)


#: Columns never cut nor wrapped (what a reader looks a row up by and what they came for).
KEY_KINDS = ("nip", "jp")


def _widths(columns: list[export.Column], texts: list[list[str]], fixed: set[int]) -> list[int] | None:
    """Each column's width so that the table fits the terminal, or None when it cannot.

    A key column gets its longest cell, any other column at least its longest word (header
    included: rich wraps there); the room left is shared out up to each column's longest line.
    """
    longest = [max([len(c.header), *(len(t[i]) for t in texts)]) for i, c in enumerate(columns)]
    words = [max([3, *(len(w) for w in c.header.split())]) for c in columns]
    widths = [
        max([words[i], *(len(t[i]) for t in texts)])
        if i in fixed
        else max([words[i], *(len(w) for t in texts for w in t[i].split())])
        for i in range(len(columns))
    ]
    room = stdout.width - 1 - 3 * len(columns) - sum(widths)
    if room < 0:
        return None
    # One character at a time to each column still short of its longest line: the room is
    # shared evenly instead of going to whichever column comes first; cells before headers
    # (a header on two lines reads better than every row on two).
    cells = [max([0, *(len(t[i]) for t in texts)]) for i in range(len(columns))]
    for goal in (cells, longest):
        while room > 0 and any(w < n for w, n in zip(widths, goal, strict=True)):
            for index in range(len(columns)):
                if room > 0 and widths[index] < goal[index]:
                    widths[index] += 1
                    room -= 1
    return widths


def fits(columns: list[export.Column], rows: list[list[Any]], language: str, keys: tuple[int, ...] = ()) -> bool:
    """Whether the table fits the terminal without cutting a key column (see :func:`print_table`)."""
    texts = [[_cell(v, language, c.kind) for v, c in zip(row, columns, strict=True)] for row in rows]
    fixed = {i for i, c in enumerate(columns) if c.kind in KEY_KINDS} | set(keys)
    return _widths(columns, texts, fixed) is not None


def print_table(
    title: str, columns: list[export.Column], rows: list[list[Any]], language: str, keys: tuple[int, ...] = ()
) -> None:
    """A report on the terminal: a table when it fits, one block per row when it does not.

    NIP, name and JP are never cut nor wrapped: their columns are as wide as their longest
    cell, every other column at least as wide as its longest word (headers wrap at words),
    and when the terminal is too narrow for that every row is printed as ``header  value``
    lines instead. Widths are set here, not left to rich, which
    would narrow every column evenly (key columns included) when the table is too wide.
    """
    texts = [[_cell(v, language, c.kind) for v, c in zip(row, columns, strict=True)] for row in rows]
    fixed = {i for i, c in enumerate(columns) if c.kind in KEY_KINDS} | set(keys)
    widths = _widths(columns, texts, fixed)
    if widths is not None:
        table = Table(title=title, title_justify="left")
        for index, column in enumerate(columns):
            justify: Any = "right" if column.kind in ("jp", "int", "percent") else "left"
            # Every width holds the column's longest key cell whole, so only headers and
            # other columns' text wrap (at words, folding a word longer than its column).
            table.add_column(column.header, overflow="fold", justify=justify, width=widths[index])
        for text in texts:
            table.add_row(*text)
        _print_paged(table, len(rows))
        return
    stdout.print(title)
    width = max(len(c.header) for c in columns)
    blocks = []
    for text in texts:
        blocks.append("\n".join(f"{c.header.ljust(width)}  {v}" for c, v in zip(columns, text, strict=True)))
    _print_paged("\n\n".join(blocks), len(rows))


def _print_paged(renderable: Any, count: int) -> None:
    if stdout.is_terminal and count > 40:
        with stdout.pager():
            stdout.print(renderable)
    else:
        stdout.print(renderable)


def _need_output(app: App, fmt: str, output: Path | None) -> None:
    if fmt in ("xlsx", "pdf") and output is None:
        _ = i18n.translator(_language(app))
        raise LmsBridgeError(_("--format {fmt} needs --output FILE.{fmt}").format(fmt=fmt))


def _wrote(app: App, output: Path) -> None:
    _ = i18n.translator(_language(app))
    stdout.print(_("wrote {path}").format(path=output))


def _write_workbook(app: App, sheet: export.Sheet, title: str, as_of: date | None, output: Path, language: str) -> None:
    """One sheet as the HR workbook, under the deployment's title rows; then say where it went."""
    settings = app.settings
    titles = export.title_rows(
        title,
        language=language,
        institution=settings.report.institution,
        as_of=as_of,
        timezone=settings.deployment.timezone,
    )
    export.hr_workbook([sheet], titles, output, language)
    _wrote(app, output)


def _write_csv(output: Path | None, sheet: export.Sheet, csv_dialect: str | None, language: str) -> None:
    """One sheet as CSV, in the dialect asked for or the language's Excel dialect."""
    text = export.sheet_csv(sheet, csv_dialect or export.default_csv_dialect(language), language)
    export.write_text(output, text, language)


@cli.group()
def report() -> None:
    """HR reports from the ledger: compliance, per person, per unit, SIASN export.

    In Bahasa Indonesia unless `[report] language = "en"`. XLSX is the format to open in
    Excel; CSV is for programs (`--csv-dialect`).
    """


def _csv_option(function: Any) -> Any:
    return click.option(
        "--csv-dialect",
        type=CSV_DIALECT,
        help="CSV: excel-id (; and decimal comma, the default in Bahasa Indonesia), excel (, and .), "
        "plain (RFC 4180 for programs: NIP as 18 digits, no BOM).",
    )(function)


@report.command("compliance")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--unit", help="Only this work unit code.")
@click.option(
    "--unit-prefix", help="Only units whose code starts with this (an institution's units in a national ledger)."
)
@click.option("--as-of", "as_of", type=DateParam(), help="Count records up to this day (default: year end).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.option(
    "--sheet-per-unit", is_flag=True, hidden=True, help="Kept for old scripts: XLSX always has one sheet per unit."
)
@_csv_option
@click.pass_obj
def report_compliance(
    app: App,
    year: int,
    unit: str | None,
    unit_prefix: str | None,
    as_of: Any,
    fmt: str,
    output: Path | None,
    sheet_per_unit: bool,
    csv_dialect: str | None,
) -> None:
    """Who has reached the yearly JP target, per person, with a summary per unit."""
    language = _language(app)
    _need_output(app, fmt, output)
    engine = _reading_engine(app)
    day = as_of.date() if as_of else None
    _check_year(app, engine, year, day)
    unit = _check_unit(app, engine, unit)
    if unit_prefix is not None and not reports_core.unit_known(engine, prefix=unit_prefix):
        _ = i18n.translator(language)
        raise EmptyAnswerError(
            _("no unit code starts with {prefix!r} (unit codes are case-sensitive)").format(prefix=unit_prefix)
        )
    result = reports_core.compliance(engine, app.settings, year, unit=unit, unit_prefix=unit_prefix, as_of=day)
    if not result.rows:
        _ = i18n.translator(language)
        raise EmptyAnswerError(
            _("nobody belongs to unit {unit} on {date} (the roster's unit history moved everyone elsewhere)").format(
                unit=unit or f"{unit_prefix}*", date=result.as_of
            )
        )
    if fmt == "xlsx" and output is not None:
        export.write_compliance_xlsx(
            output,
            result,
            language=language,
            institution=app.settings.report.institution,
            timezone=app.settings.deployment.timezone,
        )
        _wrote(app, output)
        return
    if fmt == "csv":
        export.write_text(output, export.compliance_csv(result, language=language, dialect=csv_dialect), language)
        return
    if fmt == "json":
        header = ["nip", "name", "unit", "unit_name", "employee_type", "jp", "target", "met", "jp_needed", "pending"]
        rows = [
            [
                r.nip,
                r.name,
                r.unit_code,
                r.unit_name,
                r.employee_type,
                r.jp.normalize(),
                r.target,
                "yes" if r.met else "no",
                r.needed.normalize(),
                r.pending,
            ]
            for r in result.rows
        ]
        summary_header = ["unit", "unit_name", "people", "met", "share_met", "median_jp", "pending"]
        summary = [
            [u.unit_code, u.unit_name, u.people, u.met, round(u.share_met, 3), u.median_jp, u.pending]
            for u in result.units
        ]
        export.write_text(
            output,
            export.to_json(
                header,
                rows,
                report=f"JP compliance {year} as of {result.as_of}",
                year=year,
                as_of=str(result.as_of),
                units=[dict(zip(summary_header, [export.json_value(v) for v in row], strict=True)) for row in summary],
            ),
            language,
        )
        return
    _ = i18n.translator(language)
    title = (
        export.compliance_title(result, language)
        + " "
        + _("as of {date}").format(date=i18n.long_date(result.as_of, language))
    )
    met = sum(1 for r in result.rows if r.met)
    columns = export.compliance_people_columns(language)
    rows = export.compliance_people_rows(result.rows, language)
    # The terminal shows what a reader scans for, one table per unit: who, JP, how far from the
    # target, status (the files have every column).
    keep = [2, 3, 5, 7, 9]
    stdout.print(title)
    by_unit: dict[str, list[list[Any]]] = {}
    for row, standing in zip(rows, result.rows, strict=True):
        by_unit.setdefault(standing.unit_code, []).append([row[i] for i in keep])
    for unit_row in result.units:
        code = unit_row.unit_code
        mine = by_unit.get(code, [])
        name = export.unit_label(code, unit_row.unit_name, language)
        stdout.print()
        heading = name if code in (name, reports_core.NOT_ON_ROSTER) else f"{name} ({code})"
        print_table(heading, [columns[i] for i in keep], mine, language, keys=(1,))
    stdout.print(_("{met} of {people} employees have met their JP target").format(met=met, people=len(result.rows)))
    stdout.print()
    # "Not met" is people minus met: left out here so the summary fits 80 columns.
    brief = [0, 1, 2, 3, 5, 6, 7]
    summary_columns = export.compliance_summary_columns(language)
    summary_rows = export.compliance_summary_rows(result.units, language)
    print_table(
        _("Per work unit"),
        [summary_columns[i] for i in brief],
        [[row[i] for i in brief] for row in summary_rows],
        language,
    )


@report.command("person")
@click.argument("nip", nargs=-1, required=True)
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["xlsx", "pdf", "table", "csv", "json"]),
    default="table",
    show_default=True,
    help="pdf: the printable Rekap JP with its verification hash.",
)
@click.option("--as-of", "as_of", type=DateParam(), help="Count records up to this day (default: year end).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@_csv_option
@click.pass_obj
def report_person(
    app: App, nip: tuple[str, ...], year: int, as_of: Any, fmt: str, output: Path | None, csv_dialect: str | None
) -> None:
    """Every JP record of one person, with the rule and the evidence behind it."""
    language = _language(app)
    _ = i18n.translator(language)
    number = parse_nip(" ".join(nip))
    if number is None:
        raise LmsBridgeError(_("{value!r} is not a valid NIP").format(value=" ".join(nip)))
    _need_output(app, fmt, output)
    engine = _reading_engine(app)
    day = as_of.date() if as_of else None
    _check_year(app, engine, year, day)
    end = reports_core.as_of_day(year, day)
    if not reports_core.person_known(engine, number.value):
        raise EmptyAnswerError(
            _("NIP {nip} is neither on the roster nor in the ledger (check the digits, or import the roster)").format(
                nip=number.value
            )
        )
    # Records and totals of the same window: the recap's hash covers exactly what its totals add up.
    records = reports_core.person_records(engine, number.value, year, as_of=end)
    standing = reports_core.person_standing(engine, app.settings, number.value, year, as_of=end)
    digest = export.records_digest(number.value, year, end, records)
    timezone = app.settings.deployment.timezone
    rules = labels.deployment_rules(app.settings)
    if fmt == "pdf" and output is not None:
        data = export.person_pdf(
            standing,
            records,
            year,
            rules=rules,
            as_of=end,
            language=language,
            institution=app.settings.report.institution,
            timezone=timezone,
        )
        try:
            output.write_bytes(data)
        except OSError as exc:
            reason = i18n.os_reason(exc, language)
            raise LmsBridgeError(_("cannot write {path}: {reason}").format(path=output, reason=reason)) from exc
        _wrote(app, output)
        stdout.print(_("verification hash: {digest}").format(digest=digest))
        return
    if fmt == "json":
        header = [
            "period",
            "rule",
            "code",
            "jp",
            "status",
            "evidence_count",
            "evidence_time",
            "evidence",
            "where",
            "evidence_id",
            "record_id",
        ]
        rows: list[list[Any]] = []
        total = Decimal(0)
        for record in records:
            status = "pending" if record.pending else "voided" if record.voided else "counted"
            total += Decimal(0) if record.voided else record.jp
            for index, line in enumerate(record.evidence or [reports_core.EvidenceLine("-", "-", "-", "-")]):
                first = index == 0
                rows.append(
                    [
                        record.period if first else "",
                        record.rule if first else "",
                        record.code if first else "",
                        record.jp.normalize() if first else "",
                        status if first else "",
                        record.evidence_count if first else "",
                        line.when,
                        line.what,
                        line.where,
                        line.statement_id,
                        record.statement_id if first else "",
                    ]
                )
        export.write_text(
            output,
            export.to_json(
                header,
                rows,
                report=f"JP records {year} of {number.value}",
                nip=number.value,
                year=year,
                as_of=end.isoformat(),
                jp=export.json_value(total),
                hash=digest,
            ),
            language,
        )
        return
    columns = [
        export.Column(_("Period")),
        export.Column(_("Rule")),
        export.Column(_("JP"), "jp"),
        export.Column(_("State")),
        export.Column(_("Evidence")),
    ]
    rows = [
        [
            record.period,
            export.rule_label(record, rules, language),
            record.jp,
            export.record_status(record, language),
            "\n".join(export.evidence_text(line, language, timezone) for line in record.evidence) or "-",
        ]
        for record in records
    ]
    counted = sum((r.jp for r in records if not r.voided and not r.pending), Decimal(0))
    title = _("JP recap {year}").format(year=year) + f": {standing.name or '-'} ({number.value})"
    if fmt in ("xlsx", "csv"):
        sheet = export.Sheet(_("JP recap {year}").format(year=year), columns, rows)
        if fmt == "csv":
            _write_csv(output, sheet, csv_dialect, language)
            return
        if output is None:  # checked by _need_output; says so to the type checker
            raise LmsBridgeError("--format xlsx needs --output")
        _write_workbook(app, sheet, title, end, output, language)
        return
    title += " \u2014 " + _("as of {date}").format(date=i18n.long_date(end, language))
    if records:
        print_table(title, columns, rows, language)
    else:
        stdout.print(title)
        stdout.print(_("No JP records of {nip} in {year}.").format(nip=number.value, year=year))
    stdout.print(
        _("{jp} JP counted of a target of {target}; {state}").format(
            jp=i18n.decimal(counted, language),
            target=standing.target,
            state=export.status_text(counted >= standing.target, language),
        )
    )
    stdout.print(_("verification hash: {digest}").format(digest=digest))


@report.command("units")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--as-of", "as_of", type=DateParam(), help="Units as of this day (default: year end).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@_csv_option
@click.pass_obj
def report_units(app: App, year: int, as_of: Any, fmt: str, output: Path | None, csv_dialect: str | None) -> None:
    """One row per unit with JP month by month."""
    language = _language(app)
    _ = i18n.translator(language)
    _need_output(app, fmt, output)
    engine = _reading_engine(app)
    day = as_of.date() if as_of else None
    _check_year(app, engine, year, day)
    units = reports_core.units_by_month(engine, app.settings, year, as_of=day)
    if fmt == "json":
        header = ["unit", "unit_name", "people", *[f"{year}-{m:02d}" for m in range(1, 13)], "total", "pending"]
        plain = [
            [u.unit_code, u.unit_name, u.people, *[m.normalize() for m in u.months], u.total.normalize(), u.pending]
            for u in units
        ]
        export.write_text(
            output, export.to_json(header, plain, report=f"JP per unit and month {year}", year=year), language
        )
        return
    months = [i18n.month_name(m, language) for m in range(1, 13)]
    columns = [
        export.Column(_("Unit code")),
        export.Column(_("Work unit")),
        export.Column(_("Employees"), "int"),
        *[export.Column(name, "jp") for name in months],
        export.Column(_("Total JP"), "jp"),
        export.Column(_("Pending"), "int"),
    ]
    rows = [
        [
            u.unit_code if u.unit_code != reports_core.NOT_ON_ROSTER else "-",
            export.unit_label(u.unit_code, u.unit_name, language),
            u.people,
            *u.months,
            u.total,
            u.pending,
        ]
        for u in units
    ]
    title = _("JP per work unit and month, {year}").format(year=year)
    sheet = export.Sheet(title[:31], columns, rows)
    if fmt == "xlsx" and output is not None:
        _write_workbook(app, sheet, title, day or date(year, 12, 31), output, language)
    elif fmt == "csv":
        _write_csv(output, sheet, csv_dialect, language)
    elif fits(columns, rows, language):
        print_table(title, columns, rows, language)
    else:
        # Too wide for the terminal: months down, units across, the units named below.
        across = [export.Column(_("Month"))] + [export.Column(str(row[0]), "jp") for row in rows]
        down = [[columns[i].header, *(row[i] for row in rows)] for i in range(2, len(columns))]
        print_table(title, across, down, language)
        for row in rows:
            stdout.print(f"{row[0]}: {row[1]}")


@report.command("duplicates")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@_csv_option
@click.pass_obj
def report_duplicates(app: App, year: int, fmt: str, output: Path | None, csv_dialect: str | None) -> None:
    """Audit: activities credited once because another source showed the same event."""
    language = _language(app)
    _ = i18n.translator(language)
    _need_output(app, fmt, output)
    merges = jp_core.duplicates(_reading_engine(app), app.settings, year)
    rows: list[list[Any]] = [
        [
            nip,
            f"{merge.dropped.local_date}",
            jp_core.activity_key(merge.kept),
            merge.kept.statement_id,
            jp_core.activity_key(merge.dropped),
            merge.dropped.statement_id,
            labels.merge_reason(merge, language),
        ]
        for nip, merge in merges
    ]
    title = _("Same event through two sources, credited once ({year}): {count}").format(year=year, count=len(rows))
    if fmt == "json":
        # JSON is for programs: the keys stay the same in every language, and reason_code is the engine's.
        header = ["nip", "day", "kept", "kept_id", "left_out", "left_out_id", "reason", "reason_code"]
        coded = [[*row, merge.reason] for row, (_nip, merge) in zip(rows, merges, strict=True)]
        export.write_text(output, export.to_json(header, coded, report=title, year=year), language)
        return
    columns = [
        export.Column(_("NIP"), "nip"),
        export.Column(_("Day")),
        export.Column(_("Credited")),
        export.Column(_("Credited record")),
        export.Column(_("Left out")),
        export.Column(_("Left-out record")),
        export.Column(_("Reason")),
    ]
    sheet = export.Sheet(_("Credited once"), columns, rows)
    if fmt == "csv":
        _write_csv(output, sheet, csv_dialect, language)
    elif fmt == "xlsx" and output is not None:
        _write_workbook(app, sheet, title, None, output, language)
    elif rows:
        print_table(title, columns, rows, language)
    else:
        stdout.print(_("No activity of {year} was credited once for two sources.").format(year=year))


@report.command("siasn")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--institution", required=True, help="institusiPenyelenggara: your institution's name.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file (default: stdout).")
@click.option(
    "--reconcile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An existing SIASN riwayat kursus export (CSV or JSON): leave out the rows already there.",
)
@click.option("--instansi-id", help="instansiId (default: [export] of the SIASN mapping).")
@click.option("--lokasi-id", help="lokasiId (default: [export] of the SIASN mapping).")
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SIASN mapping file (default: mappings/siasn.toml).",
)
@click.pass_obj
def report_siasn(
    app: App,
    year: int,
    institution: str,
    fmt: str,
    output: Path | None,
    reconcile: Path | None,
    instansi_id: str | None,
    lokasi_id: str | None,
    mapping: Path | None,
) -> None:
    """BKN SIASN "riwayat kursus" rows (kursus/save fields): CSV, or JSON with one payload per row.

    pnsOrangId is the roster's siasn_id: people without one are listed on stderr and left out.
    """
    language = _language(app)
    _ = i18n.translator(language)
    rows = reports_core.siasn_rows(
        _reading_engine(app),
        year,
        institution=institution,
        # Loaded here so that a wrong mapping file is reported in the report's language.
        mapping=reports_core.load_siasn_mapping(mapping or reports_core.DEFAULT_SIASN_MAPPING, language),
        instansi_id=instansi_id,
        lokasi_id=lokasi_id,
    )
    missing = sorted({row.nip for row in rows if row.payload["pnsOrangId"] is None})
    ready = [row for row in rows if row.payload["pnsOrangId"] is not None]
    known: set[tuple[str, str, str]] = set()
    if reconcile is not None:
        known = reports_core.read_siasn_riwayat(reconcile, language)
    fresh = [row for row in ready if row.key() not in known]
    header = list(reports_core.SIASN_COLUMNS)
    if fmt == "json":
        payloads = [row.payload for row in fresh]
        export.write_text(output, json.dumps(payloads, ensure_ascii=False, indent=1), language)
    else:
        export.write_text(
            output, export.to_csv(header, [[row.payload[key] for key in header] for row in fresh]), language
        )
    total = sum((row.jp for row in rows), Decimal(0))
    hours = sum(int(row.payload["jumlahJam"]) for row in rows)
    stderr.print(
        _(
            "SIASN {year}: {written} rows written, {known} already in SIASN; "
            "{jp} JP in the compliance report, {hours} whole hours in rows"
        ).format(
            year=year,
            written=len(fresh),
            known=len(ready) - len(fresh),
            jp=i18n.decimal(total, language),
            hours=hours,
        )
    )
    if missing:
        stderr.print(
            _("{count} people have no siasn_id in the roster (add the column; their rows are left out): {nips}").format(
                count=len(missing), nips=", ".join(missing)
            )
        )
