"""The *Komunitas Belajar* page: CoP health for organisers (aggregates) and HR (exact figures).

A CoP organiser (``users add --role organiser``) sees this page only: figures per community and month in
the CIPP sections, small cells ("< 5") hidden, never a person or a pseudonym. HR sees the same page with
exact figures. A user limited to units sees the communities with members of those units.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, Response, abort, g, render_template, request
from flask_babel import gettext
from sqlalchemy import Engine

from lms_bridge import i18n as core_i18n
from lms_bridge.config.settings import Settings
from lms_bridge.ledger import cop, cop_files, cop_view
from lms_bridge.web import i18n


@dataclass(frozen=True)
class Row:
    """One line of a community's table: a section heading (no cells) or a figure and its cells."""

    label: str
    cells: list[str]
    heading: bool = False


def _year(settings: Settings) -> int:
    raw = request.args.get("year", "").strip()
    if not raw:
        return datetime.now(ZoneInfo(settings.deployment.timezone)).year
    if not raw.isdigit() or not 2000 <= int(raw) <= 2100:
        abort(400, description=gettext("The year must be a number between 2000 and 2100."))
    return int(raw)


def _report(engine: Engine, settings: Settings) -> tuple[int, str, cop.CopReport, cop.CopReport]:
    """The year, the chosen community id, the report shown and the one of every visible community."""
    year = _year(settings)
    chosen = request.args.get("community", "").strip()
    every = cop.cop_report(engine, settings, year, units=g.user.units)
    if chosen and chosen not in {c.id for c in every.communities}:
        abort(404)
    shown = cop.CopReport(year, [c for c in every.communities if not chosen or c.id == chosen])
    return year, chosen, shown, every


def _rows(community: cop.Community, months: list[int], hr: bool, language: str) -> list[Row]:
    _ = core_i18n.translator(language)
    rows = []
    for section, name in cop_view.SECTIONS.items():
        rows.append(Row(_(name), [], heading=True))
        for figure in cop_view.FIGURES:
            if figure.section == section:
                cells = [
                    cop_view.text(figure, cop_view.figures_of(community, m), community, hr, language)
                    if cop_view.applies(figure, m)
                    else ""
                    for m in months
                ]
                rows.append(Row(_(figure.label).strip(), cells))
    return rows


def register(app: Flask, settings: Settings, engine: Engine) -> None:
    """Add ``/komunitas`` and its XLSX download to the app."""

    @app.get("/komunitas")
    def komunitas() -> str:
        year, chosen, shown, every = _report(engine, settings)
        language = i18n.current_language()
        _ = core_i18n.translator(language)
        tables = []
        for community in shown.communities:
            months = cop_view.periods(community)
            header = [core_i18n.month_name(m, language) if m else _("Year") for m in months]
            tables.append((community, header, _rows(community, months, g.user.hr, language)))
        return render_template(
            "komunitas.html",
            year=year,
            chosen=chosen,
            choices=[c.id for c in every.communities],
            tables=tables,
            hr=g.user.hr,
            stories=_(cop_view.STORIES),
        )

    @app.get("/komunitas.xlsx")
    def komunitas_xlsx() -> Response:
        year, chosen, shown, _every = _report(engine, settings)
        body = io.BytesIO()
        cop_files.write_xlsx(shown, body, i18n.current_language(), g.user.hr, settings)
        name = f"komunitas-belajar-{year}{'-' + chosen if chosen else ''}.xlsx".replace(":", "-")
        response = Response(
            body.getvalue(), mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


#: Endpoints an organiser may open (besides login, language and static files).
ORGANISER_ENDPOINTS = frozenset({"komunitas", "komunitas_xlsx", "logout"})


def organiser_home() -> Any:
    """Where an organiser lands."""
    from flask import redirect, url_for

    return redirect(url_for("komunitas"))
