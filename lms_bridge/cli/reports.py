"""``lms-bridge ledger`` and ``report``: what HR reads."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from lms_bridge.cli.app import App, DateParam, cli, stderr, stdout
from lms_bridge.errors import LmsBridgeError
from lms_bridge.jp import engine as jp_core
from lms_bridge.ledger import export
from lms_bridge.ledger import mirror as ledger_core
from lms_bridge.ledger import reports as reports_core
from lms_bridge.nip import parse_nip


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


FORMATS = click.Choice(["table", "csv", "xlsx", "json"])


def _emit(
    fmt: str,
    output: Path | None,
    title: str,
    header: list[str],
    rows: list[list[Any]],
    sheets: dict[str, tuple[list[str], list[list[Any]]]] | None = None,
    **extra: Any,
) -> None:
    """Print or write a report in the chosen format."""
    if fmt == "xlsx":
        if output is None:
            raise LmsBridgeError("--format xlsx needs --output FILE.xlsx")
        export.write_xlsx(output, sheets or {title: (header, rows)})
        stdout.print(f"wrote {output}")
    elif fmt == "csv":
        export.write_text(output, export.to_csv(header, rows))
    elif fmt == "json":
        export.write_text(output, export.to_json(header, rows, report=title, **extra))
    else:
        table = Table(*header, title=title)
        for row in rows:
            table.add_row(
                *("-" if value is None else f"{value:f}" if isinstance(value, Decimal) else str(value) for value in row)
            )
        if stdout.is_terminal and len(rows) > 40:
            with stdout.pager():
                stdout.print(table)
        else:
            stdout.print(table)


def _jp_text(value: Decimal) -> str:
    return f"{value.normalize():f}"


@cli.group()
def report() -> None:
    """HR reports from the ledger: compliance, per person, per unit, SIASN export."""


@report.command("compliance")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--unit", help="Only this work unit code.")
@click.option("--as-of", "as_of", type=DateParam(), help="Count records up to this day (default: year end).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.option("--sheet-per-unit", is_flag=True, help="XLSX: one sheet per unit besides the summary.")
@click.pass_obj
def report_compliance(
    app: App, year: int, unit: str | None, as_of: Any, fmt: str, output: Path | None, sheet_per_unit: bool
) -> None:
    """Who has reached the yearly JP target, per person, with a summary per unit."""
    result = reports_core.compliance(app.engine, app.settings, year, unit=unit, as_of=as_of.date() if as_of else None)
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
        [u.unit_code, u.unit_name, u.people, u.met, round(u.share_met, 3), u.median_jp, u.pending] for u in result.units
    ]
    title = f"JP compliance {year} as of {result.as_of}"
    sheets: dict[str, tuple[list[str], list[list[Any]]]] = {
        "summary": (summary_header, summary),
        "people": (header, rows),
    }
    if sheet_per_unit:
        for summary_row in summary:
            sheets[str(summary_row[0])] = (header, [row for row in rows if row[2] == summary_row[0]])
    if fmt == "json":
        _emit(
            fmt,
            output,
            title,
            header,
            rows,
            year=year,
            as_of=str(result.as_of),
            units=[dict(zip(summary_header, [export.json_value(v) for v in row], strict=True)) for row in summary],
        )
        return
    _emit(fmt, output, title, header, rows, sheets)
    if fmt == "table":
        _emit("table", None, "per unit", summary_header, summary)


@report.command("person")
@click.argument("nip", nargs=-1, required=True)
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.pass_obj
def report_person(app: App, nip: tuple[str, ...], year: int, fmt: str, output: Path | None) -> None:
    """Every JP record of one person, with the rule and the evidence behind it."""
    number = parse_nip(" ".join(nip))
    if number is None:
        raise LmsBridgeError(f"{' '.join(nip)!r} is not a valid NIP")
    records = reports_core.person_records(app.engine, number.value, year)
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
        lines = record.evidence or [reports_core.EvidenceLine("-", "-", "-", "-")]
        for index, line in enumerate(lines):
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
    _emit(
        fmt,
        output,
        f"JP records {year} of {number.value}: {_jp_text(total)} JP counted",
        header,
        rows,
        nip=number.value,
        year=year,
        jp=export.json_value(total),
    )


@report.command("units")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--as-of", "as_of", type=DateParam(), help="Units as of this day (default: year end).")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.pass_obj
def report_units(app: App, year: int, as_of: Any, fmt: str, output: Path | None) -> None:
    """One row per unit with JP month by month."""
    units = reports_core.units_by_month(app.engine, app.settings, year, as_of=as_of.date() if as_of else None)
    header = ["unit", "unit_name", "people", *[f"{year}-{m:02d}" for m in range(1, 13)], "total", "pending"]
    rows = [
        [u.unit_code, u.unit_name, u.people, *[m.normalize() for m in u.months], u.total.normalize(), u.pending]
        for u in units
    ]
    _emit(fmt, output, f"JP per unit and month {year}", header, rows, year=year)


@report.command("duplicates")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.pass_obj
def report_duplicates(app: App, year: int, fmt: str, output: Path | None) -> None:
    """Audit: activities credited once because another source showed the same event."""
    merges = jp_core.duplicates(app.engine, app.settings, year)
    header = ["nip", "day", "kept", "kept_id", "left_out", "left_out_id", "reason"]
    rows: list[list[Any]] = [
        [
            nip,
            f"{merge.dropped.local_date}",
            jp_core.activity_key(merge.kept),
            merge.kept.statement_id,
            jp_core.activity_key(merge.dropped),
            merge.dropped.statement_id,
            merge.reason,
        ]
        for nip, merge in merges
    ]
    _emit(fmt, output, f"Same event through two sources, credited once ({year}): {len(rows)}", header, rows, year=year)


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
    rows = reports_core.siasn_rows(
        app.engine,
        year,
        institution=institution,
        mapping=reports_core.load_siasn_mapping(mapping) if mapping else None,
        instansi_id=instansi_id,
        lokasi_id=lokasi_id,
    )
    missing = sorted({row.nip for row in rows if row.payload["pnsOrangId"] is None})
    ready = [row for row in rows if row.payload["pnsOrangId"] is not None]
    known: set[tuple[str, str, str]] = set()
    if reconcile is not None:
        known = reports_core.read_siasn_riwayat(reconcile)
    fresh = [row for row in ready if row.key() not in known]
    header = list(reports_core.SIASN_COLUMNS)
    if fmt == "json":
        payloads = [row.payload for row in fresh]
        export.write_text(output, json.dumps(payloads, ensure_ascii=False, indent=1))
    else:
        export.write_text(output, export.to_csv(header, [[row.payload[key] for key in header] for row in fresh]))
    total = sum((row.jp for row in rows), Decimal(0))
    hours = sum(int(row.payload["jumlahJam"]) for row in rows)
    stderr.print(
        f"SIASN {year}: {len(fresh)} rows written, {len(ready) - len(fresh)} already in SIASN; "
        f"{_jp_text(total)} JP in the compliance report, {hours} whole hours in rows"
    )
    if missing:
        stderr.print(
            f"{len(missing)} people have no siasn_id in the roster (add the column; their rows are left out): "
            + ", ".join(missing)
        )
