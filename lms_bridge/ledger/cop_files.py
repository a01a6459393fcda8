"""The CoP health report as files for the annual evaluation: XLSX and PDF in the CIPP layout.

Each community gets the four CIPP sections (Context, Input, Process, Product: the figures of
:data:`~lms_bridge.ledger.cop_view.FIGURES`, months across and the year last) and a blank *Cerita*
(stories) section the organiser fills in. The XLSX starts with a summary sheet of every community's year.
Small cells are "< 5" unless written for HR (``hr``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from lms_bridge import i18n
from lms_bridge.config.settings import Settings
from lms_bridge.errors import InputError
from lms_bridge.ledger import cop_view
from lms_bridge.ledger.cop import Community, CopReport
from lms_bridge.ledger.export import FONT, FONTS, title_rows

#: Year figures of the summary sheet (one row per community).
SUMMARY = (
    "members",
    "active",
    "active_rate",
    "newcomers",
    "reply_rate",
    "median_response_hours",
    "top1_posts",
    "peer_share",
    "cross_unit_edges",
    "units_reached",
    "brokers",
    "jp",
    "targets_met",
)
STORY_LINES = 8
_FORMATS = {"percent": "0.0%", "jp": "0.00", "hours": "0.0", "decimal": "0.00"}


def _title(report: CopReport, language: str) -> str:
    _ = i18n.translator(language)
    return _("Community of practice health, {year}").format(year=report.year)


def _titles(report: CopReport, language: str, settings: Settings, now: datetime | None) -> list[str]:
    return title_rows(
        _title(report, language),
        language=language,
        institution=settings.report.institution,
        as_of=None,
        timezone=settings.deployment.timezone,
        now=now,
    )


def _header(report: CopReport, language: str) -> list[str]:
    _ = i18n.translator(language)
    return [i18n.month_name(m, language) for m in range(1, 13)] + [_("Year")]


def _periods() -> list[int]:
    return [*range(1, 13), 0]


def _cell(figure: cop_view.Figure, community: Community, month: int, hr: bool, language: str) -> Any:
    """An XLSX cell: the number (typed), "< 5", "tidak tersedia" or empty where the figure has no column."""
    if not cop_view.applies(figure, month):
        return None
    value = cop_view.raw(figure, cop_view.figures_of(community, month), community, hr)
    if value == "not available":
        return i18n.translator(language)(cop_view.NOT_AVAILABLE)
    return value


def write_xlsx(
    report: CopReport,
    target: Path | IO[bytes],
    language: str,
    hr: bool,
    settings: Settings,
    now: datetime | None = None,
) -> None:
    """The workbook: a summary sheet, then one CIPP sheet per community with a blank stories section.

    Raises:
        InputError: when the file cannot be written (in ``language``).
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    _ = i18n.translator(language)
    titles = _titles(report, language, settings, now)
    workbook = Workbook()
    summary = workbook.active
    summary.title = _("Community")[:31]
    figures = {f.key: f for f in cop_view.FIGURES}
    for index, title in enumerate(titles, start=1):
        summary.cell(row=index, column=1, value=title).font = Font(bold=index == 1, size=13 if index == 1 else 11)
    head = len(titles) + 2
    summary.cell(row=head, column=1, value=_("Community")).font = Font(bold=True)
    for col, key in enumerate(SUMMARY, start=2):
        cell = summary.cell(row=head, column=col, value=_(figures[key].label).strip())
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        summary.column_dimensions[get_column_letter(col)].width = 16
    summary.column_dimensions["A"].width = 28
    for offset, community in enumerate(report.communities, start=1):
        summary.cell(row=head + offset, column=1, value=community.id)
        for col, key in enumerate(SUMMARY, start=2):
            cell = summary.cell(row=head + offset, column=col, value=_cell(figures[key], community, 0, hr, language))
            if isinstance(cell.value, int | float) and figures[key].kind in _FORMATS:
                cell.number_format = _FORMATS[figures[key].kind]
    summary.freeze_panes = f"B{head + 1}"
    band = PatternFill(start_color="FFDDE7F0", end_color="FFDDE7F0", fill_type="solid")
    thin = Side(style="thin", color="FF999999")
    used = {summary.title.lower()}
    for community in report.communities:
        name = "".join("_" if ch in "[]:*?/\\" else ch for ch in community.id)[:31] or "cop"
        base, number = name, 2
        while name.lower() in used:
            name, number = f"{base[:28]}-{number}", number + 1
        used.add(name.lower())
        sheet = workbook.create_sheet(name)
        for index, title in enumerate([*titles[:1], f"{_('Community')}: {community.id}", *titles[1:]], start=1):
            sheet.cell(row=index, column=1, value=title).font = Font(bold=index == 1, size=13 if index == 1 else 11)
        row = len(titles) + 3
        sheet.cell(row=row, column=1, value=_("Figure")).font = Font(bold=True)
        for col, text in enumerate(_header(report, language), start=2):
            sheet.cell(row=row, column=col, value=text).font = Font(bold=True)
            sheet.column_dimensions[get_column_letter(col)].width = 9
        sheet.column_dimensions["A"].width = 52
        header_row = row
        for section, label in cop_view.SECTIONS.items():
            row += 1
            for col in range(1, 15):
                sheet.cell(row=row, column=col).fill = band
            sheet.cell(row=row, column=1, value=_(label).upper()).font = Font(bold=True)
            for figure in cop_view.FIGURES:
                if figure.section != section:
                    continue
                row += 1
                sheet.cell(row=row, column=1, value=_(figure.label))
                for col, month in enumerate(_periods(), start=2):
                    cell = sheet.cell(row=row, column=col, value=_cell(figure, community, month, hr, language))
                    cell.alignment = Alignment(horizontal="right")
                    if isinstance(cell.value, int | float) and figure.kind in _FORMATS:
                        cell.number_format = _FORMATS[figure.kind]
        row += 2
        for col in range(1, 15):
            sheet.cell(row=row, column=col).fill = band
        sheet.cell(row=row, column=1, value=_(cop_view.STORIES).upper()).font = Font(bold=True)
        sheet.merge_cells(start_row=row + 1, start_column=1, end_row=row + STORY_LINES, end_column=14)
        box = sheet.cell(row=row + 1, column=1)
        box.alignment = Alignment(wrap_text=True, vertical="top")
        for r in range(row + 1, row + STORY_LINES + 1):
            for col in range(1, 15):
                sheet.cell(row=r, column=col).border = Border(left=thin, right=thin, top=thin, bottom=thin)
        sheet.freeze_panes = f"B{header_row + 1}"
        sheet.page_setup.orientation = "landscape"
        sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
        sheet.page_setup.fitToWidth = 1
        sheet.page_setup.fitToHeight = 0
        sheet.sheet_properties.pageSetUpPr.fitToPage = True
        sheet.print_title_rows = f"{header_row}:{header_row}"
    try:
        workbook.save(target)
    except OSError as exc:
        raise InputError(
            _("cannot write {path}: {reason}").format(path=target, reason=i18n.os_reason(exc, language))
        ) from exc


def cop_pdf(report: CopReport, language: str, hr: bool, settings: Settings, now: datetime | None = None) -> bytes:
    """The PDF: per community, the CIPP sections (months across, the year last) and a blank stories box."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    _ = i18n.translator(language)
    titles = _titles(report, language, settings, now)
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_title(_title(report, language))
    pdf.set_creator("lms-bridge")
    pdf.set_auto_page_break(True, margin=12)
    header = [_("Figure"), *_header(report, language)]
    for community in report.communities:
        pdf.add_page()
        pdf.set_font(FONT, "B", 13)
        pdf.multi_cell(0, 7, titles[0], new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 10)
        pdf.cell(0, 6, f"{_('Community')}: {community.id}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, "", 7)
        with pdf.table(
            col_widths=(75, *([15] * 13)),
            text_align=("LEFT", *(["RIGHT"] * 13)),
            headings_style=FontFace(emphasis="BOLD", fill_color=(230, 230, 230)),
            repeat_headings=1,
            line_height=3.6,
        ) as table:
            table.row(header)
            for section, label in cop_view.SECTIONS.items():
                table.row([_(label).upper(), *([""] * 13)], style=FontFace(emphasis="BOLD", fill_color=(221, 231, 240)))
                for figure in cop_view.FIGURES:
                    if figure.section != section:
                        continue
                    table.row(
                        [
                            _(figure.label).strip(),
                            *(
                                cop_view.text(figure, cop_view.figures_of(community, m), community, hr, language)
                                if cop_view.applies(figure, m)
                                else ""
                                for m in _periods()
                            ),
                        ]
                    )
        pdf.ln(3)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(0, 6, _(cop_view.STORIES).upper(), new_x="LMARGIN", new_y="NEXT")
        if pdf.get_y() + 40 > pdf.h - 12:
            pdf.add_page()
        pdf.rect(pdf.l_margin, pdf.get_y(), pdf.w - pdf.l_margin - pdf.r_margin, 40)
        pdf.ln(42)
    pdf.set_font(FONT, "", 8)
    pdf.multi_cell(0, 5, "\n".join(titles[1:]))
    return bytes(pdf.output())


def write_pdf(
    report: CopReport, target: Path, language: str, hr: bool, settings: Settings, now: datetime | None = None
) -> None:
    """Write :func:`cop_pdf` to ``target``.

    Raises:
        InputError: when the file cannot be written (in ``language``).
    """
    data = cop_pdf(report, language, hr, settings, now or datetime.now(UTC))
    try:
        target.write_bytes(data)
    except OSError as exc:
        _ = i18n.translator(language)
        raise InputError(
            _("cannot write {path}: {reason}").format(path=target, reason=i18n.os_reason(exc, language))
        ) from exc


__all__ = ["cop_pdf", "write_pdf", "write_xlsx"]
