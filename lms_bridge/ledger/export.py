"""Writing report tables as CSV (Excel-friendly), JSON or XLSX.

CSV is UTF-8 with a BOM so that Excel opens names with accents correctly; JSON is
a list of objects with the same keys as the CSV header; XLSX has a bold, frozen
header row, column widths that fit, and optionally one sheet per group (unit).

Text from the sources (a roster name, a course title) can start like a spreadsheet formula
(``=HYPERLINK(...)``, ``+``, ``-``, ``@``, tab, CR): every writer here writes it as text, never
as a formula (issue 20). XLSX cells of text are string cells (and quote-prefixed when they start
like a formula, so editing them keeps them text); CSV text gets the usual leading ``'`` (OWASP).
Numbers stay numbers, a negative one too: only text is escaped, decided by the value's type.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

from lms_bridge import i18n
from lms_bridge.errors import InputError
from lms_bridge.jp.rules import Rule
from lms_bridge.ledger import labels, reports

Row = Sequence[Any]

#: How a spreadsheet formula can start (kept beside the SIASN reader, which undoes the escape).
FORMULA_START = reports.FORMULA_START
#: Text that is only a number (or a lone dash) cannot carry a formula: it is left as it is.
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?|-")


def defused_text(text: str) -> str:
    """Text as a CSV cell that a spreadsheet shows as typed: a leading ``'`` when it starts like a formula."""
    if text.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv_value(value: Any) -> Any:
    value = json_value(value)
    return defused_text(value) if isinstance(value, str) else value


def json_value(value: Any) -> Any:
    """A cell as JSON, CSV and XLSX want it: a Decimal becomes an int or a float (``2``, ``1.5``)."""
    if isinstance(value, Decimal):
        # The same as normalising first, without its cost (a 50,000-row workbook converts a million cells).
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def to_csv(header: Sequence[str], rows: Sequence[Row]) -> str:
    """CSV text with a BOM (Excel opens it as UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([defused_text(str(name)) for name in header])
    for row in rows:
        writer.writerow(["" if value is None else _csv_value(value) for value in row])
    return "\ufeff" + buffer.getvalue()


def to_json(header: Sequence[str], rows: Sequence[Row], **extra: Any) -> str:
    """A JSON document: ``{"rows": [{header: value}...], **extra}``."""
    data = {**extra, "rows": [{key: json_value(value) for key, value in zip(header, row, strict=True)} for row in rows]}
    return json.dumps(data, ensure_ascii=False, indent=1, default=str)


def write_text(path: Path | None, text: str, language: str | None = None) -> None:
    """Write text to ``path`` (UTF-8), or to stdout when ``path`` is None.

    Raises:
        InputError: when the file cannot be written (in ``language``, default Indonesian).
    """
    if path is None:
        import sys

        sys.stdout.write(text)
        if not text.endswith("\n"):
            sys.stdout.write("\n")
        return
    try:
        path.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        _ = i18n.translator(language)
        raise InputError(
            _("cannot write {path}: {reason}").format(path=path, reason=i18n.os_reason(exc, language))
        ) from exc


# --- What HR reads: Indonesian headers, title rows, typed columns (issue 19) ---------------------------

#: How a column's cells are written: text, NIP (18 digits, always text), JP (two decimals),
#: a whole number, a share (shown as a percentage) or a status (``met`` flags the row).
ColumnKind = Literal["text", "nip", "jp", "int", "percent", "status"]


@dataclass(frozen=True)
class Column:
    """One column of an HR table: its (already translated) header and its kind."""

    header: str
    kind: ColumnKind = "text"


@dataclass(frozen=True)
class Sheet:
    """One table to write: a sheet of the workbook, or the whole CSV.

    ``flag`` is the index of a boolean-ish column whose truthy cells mark a row that needs
    attention (belum memenuhi): XLSX colours such rows by conditional formatting.
    """

    name: str
    columns: Sequence[Column]
    rows: Sequence[Row]
    flag: int | None = None


#: CSV dialects (``--csv-dialect``). Excel opens a CSV with the list separator and decimal mark of
#: the computer's region: Indonesian Windows uses ``;`` and ``,``, so ``excel-id`` writes those;
#: ``excel`` is ``,`` and ``.``; ``plain`` is RFC 4180 for programs (``,``, ``.``, NIP as 18 digits,
#: no BOM). The two Excel dialects write a NIP in its official grouped form ``19880517 201403 2 004``:
#: Excel turns any run of more than 15 digits into a rounded number (``1.98805E+17``) and no quoting
#: stops it, while the 8-6-1-3 grouping cannot be read as a number in any locale, so the cell stays
#: text and the NIP exact (``lms_bridge.nip.parse_nip`` reads it back). A ``="..."`` formula, a
#: leading apostrophe or tab would put characters in the cell that are not the NIP.
CSV_DIALECTS = ("excel-id", "excel", "plain")


def default_csv_dialect(language: str) -> str:
    """The CSV dialect for a report language: ``excel-id`` in ``id``, ``excel`` otherwise."""
    return "excel-id" if language == "id" else "excel"


def grouped_nip(nip: str) -> str:
    """``198805172014032004`` -> ``19880517 201403 2 004`` (the NIP as written on paper)."""
    return f"{nip[:8]} {nip[8:14]} {nip[14]} {nip[15:]}" if len(nip) == 18 and nip.isdigit() else nip


def _csv_cell(value: Any, kind: ColumnKind, dialect: str) -> str:
    if value is None:
        return ""
    if kind == "nip":
        return defused_text(str(value) if dialect == "plain" else grouped_nip(str(value)))
    if isinstance(value, str):
        return defused_text(value)
    if isinstance(value, Decimal | float) or kind in ("jp", "percent"):
        text = f"{Decimal(str(value)).normalize():f}" if kind != "percent" else f"{round(float(value) * 100, 1):g}"
        return text.replace(".", ",") if dialect == "excel-id" else text
    return str(value)


def sheet_csv(sheet: Sheet, dialect: str = "excel-id", language: str | None = None) -> str:
    """One table as CSV in ``dialect`` (see :data:`CSV_DIALECTS`); the Excel dialects start with a BOM."""
    if dialect not in CSV_DIALECTS:
        _ = i18n.translator(language)
        raise InputError(
            _("unknown CSV dialect {dialect!r}: use {dialects}").format(
                dialect=dialect, dialects=", ".join(CSV_DIALECTS)
            )
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if dialect == "excel-id" else ",", lineterminator="\r\n")
    writer.writerow([defused_text(column.header) for column in sheet.columns])
    for row in sheet.rows:
        writer.writerow([_csv_cell(v, c.kind, dialect) for v, c in zip(row, sheet.columns, strict=True)])
    return ("" if dialect == "plain" else "\ufeff") + buffer.getvalue()


_NUMBER_FORMATS: dict[str, str] = {"nip": "@", "jp": "#,##0.00", "int": "0", "percent": "0%"}


def _xlsx_value(value: Any, kind: ColumnKind) -> Any:
    """A cell's value as the workbook stores it: a NIP as text, a Decimal as a number."""
    if kind == "nip":
        return None if value is None else str(value)
    return json_value(value)


def hr_workbook(
    sheets: Sequence[Sheet], titles: Sequence[str], target: Path | IO[bytes], language: str | None = None
) -> None:
    """Write an XLSX as HR prints it: title rows, then a table with filter buttons and typed cells.

    Every sheet gets the ``titles`` (institution, year, as-of date, generation time), a bold
    header with autofilter, frozen panes below it, number formats (NIP as text, JP with two
    decimals, shares as percentages), rows flagged by ``Sheet.flag`` filled light red through
    conditional formatting (so it follows edits and sorting), and print setup: landscape, fit
    to one page wide, the header row repeated on every page.

    Written with XlsxWriter in ``constant_memory`` mode: each row goes to a temporary file as soon as
    the next one starts, so a sheet of 50,000 people holds one row in memory. openpyxl (even
    write-only) made a cell object per formatted value and took 7 s of CPU for that sheet (issue 23);
    the workbook read back with openpyxl is the same cell by cell (tests/test_reports_hr.py).

    Raises:
        InputError: when the file cannot be written (in ``language``, default Indonesian).
    """
    import xlsxwriter
    from openpyxl.utils import get_column_letter
    from xlsxwriter.exceptions import FileCreateError

    # XlsxWriter keeps each sheet's rows (and, on close, each part of the file) in temporary files it removes only
    # when the workbook is written: a folder of our own goes away whatever happens (an error half-way too).
    scratch = tempfile.mkdtemp(prefix="lms-bridge-xlsx-")
    workbook = xlsxwriter.Workbook(target, {"constant_memory": True, "tmpdir": scratch})
    formats: dict[tuple[str | None, bool, bool, int], Any] = {}

    def style(number_format: str | None, quote: bool, bold: bool = False, size: int = 11) -> Any:
        """The cell format of a number format, quote prefix and font (None: none at all)."""
        key = (number_format, quote, bold, size)
        if key == (None, False, False, 11):
            return None
        if key not in formats:
            properties: dict[str, Any] = {"quote_prefix": quote, "bold": bold, "font_size": size}
            if number_format is not None:
                properties["num_format"] = number_format
            formats[key] = workbook.add_format(properties)
        return formats[key]

    flagged = workbook.add_format({"bg_color": "#F4CCCC", "fg_color": "#F4CCCC", "pattern": 1})
    used: set[str] = set()
    try:
        for spec in sheets:
            name = "".join("_" if ch in "[]:*?/\\" else ch for ch in spec.name)[:31] or "sheet"
            # Excel refuses a sheet name that starts or ends with an apostrophe (XlsxWriter checks it).
            name = re.sub(r"^'|'$", "_", name)
            base, number = name, 2
            while name.lower() in used:
                name = f"{base[:28]}-{number}"
                number += 1
            used.add(name.lower())
            sheet = workbook.add_worksheet(name)
            head = len(titles) + 2
            kinds = [column.kind for column in spec.columns]
            widths = [_column_width(spec, col) for col in range(len(spec.columns))]
            last_row = head + max(len(spec.rows), 1)
            last_col = len(spec.columns) - 1
            if last_row > MAX_ROWS or last_col >= MAX_COLUMNS:
                raise ValueError(f"the sheet {name} has more rows or columns than a worksheet holds")
            sheet.autofilter(head - 1, 0, last_row - 1, last_col)
            sheet.freeze_panes(head, 0)
            if spec.flag is not None and spec.rows:
                sheet.conditional_format(
                    head,
                    0,
                    last_row - 1,
                    last_col,
                    {
                        "type": "formula",
                        "criteria": f"=${get_column_letter(spec.flag + 1)}{head + 1}>0",
                        "format": flagged,
                    },
                )
            for index, width in enumerate(widths):
                # XlsxWriter stores (round(w * 7) + 5) / 7 for a width w in characters (the padding Excel adds):
                # W - 5/7 stores W exactly, the width openpyxl wrote.
                stored = min(max(width + 2, 8), 60)
                sheet.set_column(index, index, stored - 5 / 7)
            sheet.set_landscape()
            sheet.set_paper(9)  # A4
            sheet.fit_to_pages(1, 0)
            sheet.repeat_rows(head - 1)
            for index, title in enumerate(titles):
                title_style = style(None, title.startswith(FORMULA_START), index == 0, 13 if index == 0 else 11)
                _written(sheet.write_string(index, 0, title, title_style))
            for col, column in enumerate(spec.columns):
                header_style = style(None, column.header.startswith(FORMULA_START), True)
                _written(sheet.write_string(head - 1, col, column.header, header_style))
            plain = [style(_NUMBER_FORMATS.get(kind), False) for kind in kinds]
            quoted = [style(_NUMBER_FORMATS.get(kind), True) for kind in kinds]
            write_string, write_number, write_boolean = sheet.write_string, sheet.write_number, sheet.write_boolean
            for number, row in enumerate(spec.rows, start=head):
                for col, (raw, kind_of_column) in enumerate(zip(row, kinds, strict=True)):
                    value = _xlsx_value(raw, kind_of_column)
                    kind = type(value)
                    # The rows and columns fit (checked above): only text longer than a cell holds can fail.
                    if kind is str:
                        written = write_string(
                            number, col, value, quoted[col] if value.startswith(FORMULA_START) else plain[col]
                        )
                        if written:  # 0 unless the text was too long for a cell
                            _written(written)
                    elif kind is int or kind is float:
                        write_number(number, col, value, plain[col])
                    elif value is None:
                        if plain[col] is not None:
                            sheet.write_blank(number, col, None, plain[col])
                    elif kind is bool:
                        write_boolean(number, col, value, plain[col])
                    else:
                        raise TypeError(f"a workbook cell cannot hold {kind.__name__} ({value!r})")
        workbook.close()
    except (OSError, FileCreateError) as error:
        # XlsxWriter wraps the OSError of the file it could not create in its own FileCreateError.
        exc = error if isinstance(error, OSError) else error.args[0] if error.args else None
        if not isinstance(exc, OSError):
            raise
        _ = i18n.translator(language)
        raise InputError(
            _("cannot write {path}: {reason}").format(path=target, reason=i18n.os_reason(exc, language))
        ) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _column_width(spec: Sheet, col: int) -> int:
    """The widest cell of a column in characters (its header's, or its longest value's, +3 for JP's decimals)."""
    kind = spec.columns[col].kind
    values = [row[col] for row in spec.rows]
    if all(type(value) is str for value in values):
        longest = max(map(len, values), default=0)  # text: written as it is
    else:
        longest = max((len(str(_xlsx_value(value, kind))) for value in values if value is not None), default=0)
    return max(len(spec.columns[col].header), longest + (3 if kind == "jp" and values else 0))


#: What one worksheet holds: rows, columns, characters (UTF-16 units) in a cell.
MAX_ROWS, MAX_COLUMNS, MAX_CELL_TEXT = 1_048_576, 16_384, 32_767


def _written(result: int) -> None:
    """XlsxWriter answers -1 for a cell outside the sheet and -2 for text it cut to 32,767 characters."""
    if result == -1:
        raise ValueError("the table has more rows or columns than a worksheet holds (1,048,576 x 16,384)")
    if result == -2:
        raise ValueError(f"a cell has more than {MAX_CELL_TEXT:,} characters, the most a worksheet cell holds")


def compliance_people_columns(language: str) -> list[Column]:
    """Columns of the per-person compliance table, translated."""
    _ = i18n.translator(language)
    return [
        Column(_("Unit code")),
        Column(_("Work unit")),
        Column(_("NIP"), "nip"),
        Column(_("Name")),
        Column(_("Employee type")),
        Column(_("JP"), "jp"),
        Column(_("Target"), "int"),
        Column(_("JP still needed"), "jp"),
        Column(_("Achievement"), "percent"),
        Column(_("Status"), "status"),
        Column(_("Pending"), "int"),
    ]


#: Index of "JP still needed" in :func:`compliance_people_columns` (flags rows not met).
NEEDED_COLUMN = 7


def status_text(met: bool, language: str) -> str:
    """``Sudah memenuhi`` / ``Belum memenuhi`` (``Met`` / ``Not met``)."""
    _ = i18n.translator(language)
    return _("Met") if met else _("Not met")


def unit_label(code: str, name: str | None, language: str) -> str:
    """A unit's name as HR reads it (the code when the roster gives none); people without a roster row."""
    _ = i18n.translator(language)
    if code == reports.NOT_ON_ROSTER:
        return _("(not on roster)")
    return name or code


def compliance_people_rows(rows: Sequence[reports.ComplianceRow], language: str) -> list[list[Any]]:
    """Rows of :func:`compliance_people_columns`."""
    return [
        [
            r.unit_code if r.on_roster else "-",
            unit_label(r.unit_code, r.unit_name, language),
            r.nip,
            r.name or "-",
            r.employee_type,
            r.jp,
            r.target,
            r.needed,
            float(r.jp / r.target) if r.target else 1.0,
            status_text(r.met, language),
            r.pending,
        ]
        for r in rows
    ]


def compliance_summary_columns(language: str) -> list[Column]:
    """Columns of the per-unit summary, translated."""
    _ = i18n.translator(language)
    return [
        Column(_("Unit code")),
        Column(_("Work unit")),
        Column(_("Employees"), "int"),
        Column(_("Met"), "int"),
        Column(_("Not met"), "int"),
        Column(_("Share met"), "percent"),
        Column(_("Median JP"), "jp"),
        Column(_("Pending"), "int"),
    ]


def compliance_summary_rows(units: Sequence[reports.UnitSummary], language: str) -> list[list[Any]]:
    """Rows of :func:`compliance_summary_columns`."""
    return [
        [
            u.unit_code if u.unit_code != reports.NOT_ON_ROSTER else "-",
            unit_label(u.unit_code, u.unit_name, language),
            u.people,
            u.met,
            u.people - u.met,
            u.share_met,
            u.median_jp,
            u.pending,
        ]
        for u in units
    ]


def title_rows(
    title: str, *, language: str, institution: str, as_of: date | None, timezone: str, now: datetime | None = None
) -> list[str]:
    """The title rows of an export: institution and title, as-of date, generation time (WIB/WITA/WIT)."""
    _ = i18n.translator(language)
    lines = [f"{institution} \u2014 {title}" if institution else title]
    if as_of is not None:
        lines.append(_("as of {date}").format(date=i18n.long_date(as_of, language)))
    moment = now or datetime.now(UTC)
    lines.append(_("Generated {moment}").format(moment=i18n.local_time(moment, timezone, language)))
    return lines


def compliance_sheets(report: reports.ComplianceReport, language: str, *, per_unit: bool = True) -> list[Sheet]:
    """The compliance report as sheets: the summary per unit, everyone, then one sheet per unit."""
    _ = i18n.translator(language)
    columns = compliance_people_columns(language)
    summary = Sheet(_("Summary"), compliance_summary_columns(language), compliance_summary_rows(report.units, language))
    sheets = [summary, Sheet(_("All"), columns, compliance_people_rows(report.rows, language), NEEDED_COLUMN)]
    if per_unit:
        by_unit: dict[str, list[reports.ComplianceRow]] = {}
        for row in report.rows:
            by_unit.setdefault(row.unit_code, []).append(row)
        for unit in report.units:
            rows = by_unit.get(unit.unit_code, [])
            name = unit.unit_code if unit.unit_code != reports.NOT_ON_ROSTER else _("(not on roster)")
            sheets.append(Sheet(name, columns, compliance_people_rows(rows, language), NEEDED_COLUMN))
    return sheets


def compliance_title(report: reports.ComplianceReport, language: str) -> str:
    """``Rekap JP 2026`` (``JP recap 2026``)."""
    _ = i18n.translator(language)
    return _("JP recap {year}").format(year=report.year)


def write_compliance_xlsx(
    target: Path | IO[bytes],
    report: reports.ComplianceReport,
    *,
    language: str = i18n.DEFAULT_LANGUAGE,
    institution: str = "",
    timezone: str = "Asia/Jakarta",
    now: datetime | None = None,
    per_unit: bool = True,
) -> None:
    """The compliance report as HR's workbook: summary, everyone, one sheet per unit (see :func:`hr_workbook`)."""
    titles = title_rows(
        compliance_title(report, language),
        language=language,
        institution=institution,
        as_of=report.as_of,
        timezone=timezone,
        now=now,
    )
    hr_workbook(compliance_sheets(report, language, per_unit=per_unit), titles, target, language)


def compliance_csv(
    report: reports.ComplianceReport, *, language: str = i18n.DEFAULT_LANGUAGE, dialect: str | None = None
) -> str:
    """The per-person compliance table as CSV (dialect default: ``excel-id`` in ``id``, see :data:`CSV_DIALECTS`)."""
    people = Sheet("", compliance_people_columns(language), compliance_people_rows(report.rows, language))
    return sheet_csv(people, dialect or default_csv_dialect(language), language)


# --- Rekap JP: the printable recap of one person -----------------------------------------------------


def record_status(record: reports.PersonRecord, language: str) -> str:
    """``dihitung`` / ``dibatalkan`` / ``ditunda`` (counted / voided / pending)."""
    _ = i18n.translator(language)
    if record.pending:
        return _("pending")
    return _("voided") if record.voided else _("counted")


def rule_label(record: reports.PersonRecord, rules: Mapping[str, Rule], language: str) -> str:
    """``C10 Komunitas belajar (CoP): paling banyak 2 JP per hari`` (see :mod:`lms_bridge.ledger.labels`)."""
    return labels.record_rule_label(record.rule, record.code, rules, language)


def _verb_words(language: str) -> dict[str, str]:
    """The xAPI verbs of mappings/statements.toml as a sentence starts: ``completed`` -> ``menyelesaikan``."""
    _ = i18n.translator(language)
    return {
        "completed": _("completed"),
        "create": _("started the discussion"),
        "created": _("created"),
        "replied": _("replied in"),
        "posted": _("posted in"),
        "attended": _("attended"),
        "joined": _("joined"),
    }


def evidence_text(line: reports.EvidenceLine, language: str, timezone: str) -> str:
    """One piece of evidence as HR reads it: local time, what (the verb in the report's language), where."""
    when = i18n.local_time(line.at, timezone, language) if line.at else line.when
    verb, _space, rest = line.what.partition(" ")
    what = f"{_verb_words(language).get(verb, verb)} {rest}".strip()
    return f"{when}: {what} ({line.where})" if line.where not in ("", "-") else f"{when}: {what}"


def records_digest(nip: str, year: int, as_of: date, records: Sequence[reports.PersonRecord]) -> str:
    """The verification hash of a recap: SHA-256 of the canonical listing of the records it shows.

    The listing is UTF-8 text, one line ``rekap-jp/2|NIP|YEAR|AS-OF`` (the as-of date as
    ``YYYY-MM-DD``: the recap counts records of periods up to it) then one line per record in
    the order shown: ``period|rule|code|jp|state|record id|evidence ids (comma-separated)``,
    with ``jp`` normalised (``2``, ``1.5``) and ``state`` one of counted, voided, pending.
    Anyone can list the same records again (``report person NIP --year Y --as-of D --format json``
    prints the hash too) and compare: the same records give the same hash, whatever language.
    """
    lines = [f"rekap-jp/2|{nip}|{year}|{as_of.isoformat()}"]
    for record in records:
        state = "pending" if record.pending else "voided" if record.voided else "counted"
        evidence = ",".join(line.statement_id for line in record.evidence)
        jp = f"{record.jp.normalize():f}"
        lines.append(f"{record.period}|{record.rule}|{record.code}|{jp}|{state}|{record.statement_id}|{evidence}")
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


#: DejaVu Sans (Debian's fonts-dejavu-core, Bitstream Vera licence in fonts/LICENSE): a Unicode
#: TrueType font embedded in the PDF, so that every name prints as the roster writes it (the PDF
#: core fonts know Latin-1 only, which loses names such as "Ayu \u1e62." or "Nguy\u1ec5n").
FONTS = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVuSans"


def person_pdf(
    standing: reports.ComplianceRow,
    records: Sequence[reports.PersonRecord],
    year: int,
    *,
    rules: Mapping[str, Rule],
    as_of: date | None = None,
    language: str = i18n.DEFAULT_LANGUAGE,
    institution: str = "",
    timezone: str = "Asia/Jakarta",
    now: datetime | None = None,
) -> bytes:
    """The *Rekap JP* of one person as PDF bytes (fpdf2).

    Who, unit, year, the as-of date ("per tanggal"), every record with its rule and evidence,
    totals against the target, and the verification hash (:func:`records_digest`). ``records``
    are those of :func:`reports.person_records` for the same ``as_of`` (default: 31 December),
    so the totals are the ones the person page and the compliance report show for that day.
    """
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    _ = i18n.translator(language)
    counted = sum((r.jp for r in records if not r.voided and not r.pending), Decimal(0))
    end = reports.as_of_day(year, as_of)
    digest = records_digest(standing.nip, year, end, records)
    # Every page names whose recap it is and which page of how many: printed pages get separated.
    page_line = " \u00b7 ".join(
        (_("JP recap {year}").format(year=year), grouped_nip(standing.nip), _("Page {page} of {pages}"))
    )

    class Recap(FPDF):  # type: ignore[misc]
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font(FONT, "", 8)
            self.cell(0, 5, page_line.format(page=self.page_no(), pages="{nb}"), align="C")

    pdf = Recap(orientation="landscape", format="A4")
    pdf.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_title(_("JP recap {year}").format(year=year) + f" {standing.nip}")
    pdf.set_creator("lms-bridge")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font(FONT, "B", 14)
    heading = _("JP recap {year}").format(year=year)
    # multi_cell: a long institution name wraps instead of running off the page.
    pdf.multi_cell(0, 7, f"{institution} \u2014 {heading}" if institution else heading, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 11)
    pdf.cell(0, 6, _("as of {date}").format(date=i18n.long_date(end, language)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    facts = [
        (_("Name"), standing.name or "-"),
        (_("NIP"), grouped_nip(standing.nip)),
        (_("Work unit"), unit_label(standing.unit_code, standing.unit_name, language)),
        (_("Year"), str(year)),
        (_("JP counted"), i18n.decimal(counted, language, places=2)),
        (_("Target"), str(standing.target)),
        (_("JP still needed"), i18n.decimal(max(Decimal(standing.target) - counted, Decimal(0)), language, places=2)),
        (_("Status"), status_text(counted >= standing.target, language)),
    ]
    for label, value in facts:
        pdf.set_font(FONT, "B", 10)
        pdf.cell(45, 6, label)
        pdf.set_font(FONT, "", 10)
        pdf.multi_cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font(FONT, "", 8)
    header = (_("Period"), _("Rule"), _("JP"), _("State"), _("Evidence"))
    with pdf.table(
        col_widths=(22, 62, 16, 22, 155),
        text_align=("LEFT", "LEFT", "RIGHT", "LEFT", "LEFT"),
        headings_style=FontFace(emphasis="BOLD", fill_color=(230, 230, 230)),
        repeat_headings=1,
        line_height=4.5,
    ) as table:
        table.row(list(header))
        for record in records:
            lines = [evidence_text(line, language, timezone) for line in record.evidence]
            # Several pieces of evidence wrap over many lines: a bullet marks where each begins.
            evidence = "\n".join(f"\u2022 {line}" for line in lines) if len(lines) > 1 else (lines or ["-"])[0]
            table.row(
                [
                    record.period,
                    rule_label(record, rules, language),
                    i18n.decimal(record.jp, language, places=2),
                    record_status(record, language),
                    evidence,
                ]
            )
        if not records:
            table.row(["-", _("no JP records in this year"), "-", "-", "-"])
    pdf.ln(4)
    pdf.set_font(FONT, "", 9)
    moment = now or datetime.now(UTC)
    pdf.multi_cell(
        0,
        5,
        _("Generated {moment}").format(moment=i18n.local_time(moment, timezone, language))
        + "\n"
        + _("Verification hash (SHA-256 of the records listed): {digest}").format(digest=digest),
    )
    return bytes(pdf.output())
