"""``lms-bridge report cop``: CoP health per community and month, in CIPP sections."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from lms_bridge import i18n
from lms_bridge.cli.app import App, stdout
from lms_bridge.cli.reports import _check_unit, _language, _need_output, _reading_engine, _wrote, print_table, report
from lms_bridge.errors import EmptyAnswerError
from lms_bridge.ledger import cop, cop_files, cop_view, export


@report.command("cop")
@click.option("--year", type=click.IntRange(2000, 2100), required=True)
@click.option("--community", help="Only this community (its id, e.g. cop-wi-7, or course:<id> of a Moodle CoP forum).")
@click.option("--unit", help="Only communities with members of this work unit code.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "xlsx", "json", "pdf"]), default="table", show_default=True
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file.")
@click.option(
    "--hr-view",
    is_flag=True,
    help="HR's view: exact figures about fewer than 5 people (default: the organisers' view shows '< 5').",
)
@click.pass_obj
def report_cop(
    app: App, year: int, community: str | None, unit: str | None, fmt: str, output: Path | None, hr_view: bool
) -> None:
    """Is each community of practice alive, open and connecting units? Figures per month and for the year."""
    language = _language(app)
    _ = i18n.translator(language)
    _need_output(app, fmt, output)
    engine = _reading_engine(app)
    today = datetime.now(ZoneInfo(app.settings.deployment.timezone)).date()
    if year > today.year:
        raise EmptyAnswerError(_("{year} is in the future (today is {today})").format(year=year, today=today))
    code = _check_unit(app, engine, unit)
    key = cop.community_key(community) if community else None
    result = cop.cop_report(engine, app.settings, year, community=key, units=(code,) if code else ())
    if not result.communities:
        known = cop.cop_report(engine, app.settings, year).communities if key or code else []
        if key:
            raise EmptyAnswerError(
                _("no community {community!r} with activity up to {year}; communities: {known}").format(
                    community=community, year=year, known=", ".join(c.id for c in known) or _("none")
                )
            )
        raise EmptyAnswerError(
            _("no community of practice has activity up to {year}").format(year=year)
            if not code
            else _("no community of {year} has members of unit {unit}").format(year=year, unit=code)
        )
    if fmt == "json":
        export.write_text(output, json.dumps(cop_view.as_json(result, hr_view), ensure_ascii=False, indent=1), language)
        return
    if fmt in ("xlsx", "pdf") and output is not None:
        settings = app.settings
        if fmt == "xlsx":
            cop_files.write_xlsx(result, output, language, hr_view, settings)
        else:
            cop_files.write_pdf(result, output, language, hr_view, settings)
        _wrote(app, output)
        return
    for entry in result.communities:
        months = cop_view.periods(entry)
        columns = [export.Column(_("Figure"))] + [
            export.Column(i18n.month_name(m, language)[:3] if m else _("Year"), "int") for m in months
        ]
        rows = []
        for section, name in cop_view.SECTIONS.items():
            rows.append([_(name).upper()] + [""] * len(months))
            for figure in cop_view.FIGURES:
                if figure.section != section:
                    continue
                rows.append(
                    [_(figure.label)]
                    + [
                        cop_view.text(figure, cop_view.figures_of(entry, m), entry, hr_view, language)
                        if cop_view.applies(figure, m)
                        else ""
                        for m in months
                    ]
                )
        title = _("CoP health {year}: {community}").format(year=year, community=entry.id)
        print_table(title, columns, rows, language)
    if not hr_view:
        stdout.print(_("Figures about 1 to 4 people are shown as < 5 (HR's view: --hr-view)."))
