"""The Flask app of the HR web page (server-rendered Jinja templates, no JavaScript).

Routes: ``/login`` (GET form, POST with a CSRF token), ``/logout`` (POST), ``/compliance``
(year, unit, as-of date, search; per-unit summary and people), ``/person/<nip>`` (records,
evidence, a JP-per-month SVG chart) and ``/compliance.csv`` / ``/compliance.xlsx``. Every
route but ``/login`` and static files redirects to the login page without a session.

A user limited to some units sees only people whose unit on the as-of date is one of
them; any other person's page answers 404. The user row is read on every request, so
``users disable`` ends a session at its next click.

The session cookie is signed (itsdangerous, via Flask) with the key in the environment
variable ``[web] secret_key_env`` names (default ``LMS_BRIDGE_WEB_SECRET_KEY``), or with a
random key made when the process starts (then every restart logs everyone out).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Flask, Response, abort, g, redirect, render_template, request, session, url_for
from markupsafe import Markup
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError
from lms_bridge.ledger import export, reports
from lms_bridge.store.models import LedgerRecord, Person
from lms_bridge.web import users as users_core
from lms_bridge.web.chart import month_bars

log = logging.getLogger("lms_bridge.web")

PAGE_SIZE = 100
MIN_SECRET_KEY_LENGTH = 32
#: Failed logins per username allowed within the window before the login answers 429.
MAX_FAILURES, FAILURE_WINDOW = 10, 15 * 60
COMPLIANCE_HEADER = ["nip", "name", "unit", "unit_name", "employee_type", "jp", "target", "met", "jp_needed", "pending"]
SUMMARY_HEADER = ["unit", "unit_name", "people", "met", "share_met", "median_jp"]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def secret_key(settings: Settings) -> tuple[bytes, bool]:
    """The session-signing key and whether it was generated for this process.

    Raises:
        ConfigError: when the configured key is shorter than 32 characters.
    """
    name = settings.web.secret_key_env
    value = settings.optional_secret(name)
    if value is None:
        return secrets.token_bytes(32), True
    text = value.get_secret_value()
    if len(text) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"secret {name} must have at least {MIN_SECRET_KEY_LENGTH} characters "
            "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return text.encode("utf-8"), False


class _LoginThrottle:
    """Counts failed logins per username in this process (a brake on password guessing)."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, username: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(username, deque())
        while failures and failures[0] < now - FAILURE_WINDOW:
            failures.popleft()
        return failures

    def blocked(self, username: str) -> bool:
        with self._lock:
            return len(self._recent(username, time.monotonic())) >= MAX_FAILURES

    def failed(self, username: str) -> None:
        with self._lock:
            self._recent(username, time.monotonic()).append(time.monotonic())

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)


@dataclass(frozen=True)
class Filters:
    """What the compliance page and its downloads were asked for."""

    year: int
    unit: str | None
    as_of: date
    query: str
    page: int

    def args(self, **change: Any) -> dict[str, Any]:
        """Query-string arguments for a link to the same view (with changes)."""
        values = {
            "year": self.year,
            "unit": self.unit or "",
            "as_of": self.as_of.isoformat(),
            "q": self.query,
            **change,
        }
        return {key: value for key, value in values.items() if value not in ("", None)}


@dataclass(frozen=True)
class ComplianceView:
    """The rows and summaries a user may see for some filters."""

    filters: Filters
    rows: list[reports.ComplianceRow]
    units: list[reports.UnitSummary]
    choices: list[tuple[str, str]]


@dataclass(frozen=True)
class RecordLine:
    """One record on the person page."""

    record: reports.PersonRecord
    day: date | None
    status: str


def _jp(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}"


def _today(settings: Settings) -> date:
    return datetime.now(ZoneInfo(settings.deployment.timezone)).date()


def _year_arg(settings: Settings) -> int:
    raw = request.args.get("year", "").strip()
    if not raw:
        return _today(settings).year
    if not raw.isdigit() or not 2000 <= int(raw) <= 2100:
        abort(400, description="the year must be a number between 2000 and 2100")
    return int(raw)


def _as_of_arg(settings: Settings, year: int) -> date:
    """The as-of date: asked for, else today in the current year, else the year's last day."""
    raw = request.args.get("as_of", "").strip()
    end = date(year, 12, 31)
    if raw:
        try:
            asked = date.fromisoformat(raw)
        except ValueError:
            abort(400, description="the as-of date must look like 2026-06-30")
        if asked.year != year:
            abort(400, description=f"the as-of date must be in {year}")
        return asked
    today = _today(settings)
    return min(today, end) if today.year == year else end


def _allowed(unit_code: str) -> bool:
    units: tuple[str, ...] = g.user.units
    return not units or unit_code in units


def _matches(row: reports.ComplianceRow, query: str) -> bool:
    if not query:
        return True
    needle = query.casefold()
    digits = re.sub(r"[\s.-]", "", query)
    return needle in (row.name or "").casefold() or (digits.isdigit() and digits in row.nip) or needle in row.nip


def _compliance_view(engine: Engine, settings: Settings) -> ComplianceView:
    year = _year_arg(settings)
    as_of = _as_of_arg(settings, year)
    unit = request.args.get("unit", "").strip() or None
    query = request.args.get("q", "").strip()[:100]
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and int(raw_page) > 0 else 1
    if unit is not None and not _allowed(unit):
        abort(404)
    report = reports.compliance(engine, settings, year, as_of=as_of)
    visible = [summary for summary in report.units if _allowed(summary.unit_code)]
    if g.user.units:
        # The user's own units are choices even while nobody is counted in them yet.
        known = {summary.unit_code for summary in visible}
        visible += [reports.UnitSummary(code, None, 0, 0, Decimal(0)) for code in g.user.units if code not in known]
    choices = [(s.unit_code, f"{s.unit_code} - {s.unit_name}" if s.unit_name else s.unit_code) for s in visible]
    units = [summary for summary in visible if unit is None or summary.unit_code == unit]
    codes = {summary.unit_code for summary in units}
    rows = [row for row in report.rows if row.unit_code in codes and _matches(row, query)]
    return ComplianceView(Filters(year, unit, report.as_of, query, page), rows, units, choices)


def _table(view: ComplianceView) -> tuple[list[list[Any]], list[list[Any]]]:
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
        for r in view.rows
    ]
    summary = [[u.unit_code, u.unit_name, u.people, u.met, round(u.share_met, 3), u.median_jp] for u in view.units]
    return rows, summary


def _download_name(view: ComplianceView, extension: str) -> str:
    unit = re.sub(r"[^A-Za-z0-9_.-]+", "-", view.filters.unit or "all")
    return f"jp-compliance-{view.filters.year}-{unit}-{view.filters.as_of.isoformat()}.{extension}"


def create_app(settings: Settings, engine: Engine, *, key: bytes | None = None) -> Flask:
    """Build the web app.

    Args:
        settings: the deployment's settings (targets, time zone, ``[web]``).
        engine: the state store (already migrated).
        key: the session-signing key (default: :func:`secret_key`).

    Returns:
        The Flask application (serve it with waitress: :func:`serve`).
    """
    app = Flask(__name__)
    if key is None:
        key, generated = secret_key(settings)
        if generated:
            log.warning(
                "%s is not set: sessions are signed with a key made for this process and end when it stops",
                settings.web.secret_key_env,
            )
    app.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_NAME="lms_bridge_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.web.session_hours),
        MAX_CONTENT_LENGTH=16 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.jinja_env.filters["jp"] = _jp
    throttle = _LoginThrottle()

    def csrf_token() -> str:
        token = session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            session["csrf"] = token
        return token

    def check_csrf() -> None:
        sent = request.form.get("csrf_token", "")
        token = session.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(sent.encode(), token.encode()):
            abort(400, description="the form expired or did not come from this site: reload the page and try again")

    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def require_login() -> BaseResponse | None:
        if request.endpoint in ("login", "static"):
            return None
        username = session.get("user")
        user = users_core.get_active_user(engine, username) if isinstance(username, str) else None
        if user is None:
            session.pop("user", None)
            target = request.full_path if request.query_string else request.path
            return redirect(url_for("login", next=target))
        g.user = user
        return None

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.errorhandler(400)
    @app.errorhandler(404)
    @app.errorhandler(429)
    def error_page(error: Any) -> tuple[str, int]:
        return render_template(
            "error.html",
            code=error.code,
            title=error.name,
            message=error.description if error.code != 404 else "Nothing here for you.",
        ), error.code

    @app.route("/login", methods=["GET", "POST"])
    def login() -> BaseResponse | str | tuple[str, int]:
        next_url = request.values.get("next", "")
        if not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
            next_url = ""
        if request.method == "GET":
            return render_template("login.html", next=next_url, error=None, username="")
        check_csrf()
        username = request.form.get("username", "").strip().lower()[:64]
        password = request.form.get("password", "")[:1024]
        if throttle.blocked(username):
            log.warning("web login refused for %s: too many failed attempts", username)
            return render_template(
                "login.html", next=next_url, username=username, error="Too many failed attempts: wait 15 minutes."
            ), 429
        user = users_core.authenticate(engine, username, password)
        if user is None:
            throttle.failed(username)
            log.warning("web login failed for %s", username)
            return render_template(
                "login.html", next=next_url, username=username, error="Wrong username or password."
            ), 401
        throttle.succeeded(username)
        session.clear()
        session.permanent = True
        session["user"] = user.username
        session["csrf"] = secrets.token_urlsafe(32)
        log.info("web login: %s", user.username)
        return redirect(next_url or url_for("compliance_page"))

    @app.post("/logout")
    def logout() -> BaseResponse:
        check_csrf()
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    def index() -> BaseResponse:
        return redirect(url_for("compliance_page"))

    @app.get("/compliance")
    def compliance_page() -> str:
        view = _compliance_view(engine, settings)
        pages = max(1, -(-len(view.rows) // PAGE_SIZE))
        page = min(view.filters.page, pages)
        shown = view.rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        downloads = {ext: url_for(f"download_{ext}", **view.filters.args()) for ext in ("csv", "xlsx")}
        links = {
            "prev": url_for("compliance_page", **view.filters.args(page=page - 1)) if page > 1 else None,
            "next": url_for("compliance_page", **view.filters.args(page=page + 1)) if page < pages else None,
        }
        person_args = urlencode({"year": view.filters.year, "as_of": view.filters.as_of.isoformat()})
        return render_template(
            "compliance.html",
            view=view,
            rows=shown,
            page=page,
            pages=pages,
            downloads=downloads,
            links=links,
            person_args=person_args,
        )

    @app.get("/compliance.csv")
    def download_csv() -> Response:
        view = _compliance_view(engine, settings)
        rows, _ = _table(view)
        body = export.to_csv(COMPLIANCE_HEADER, rows).encode("utf-8")
        return Response(
            body,
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{_download_name(view, "csv")}"'},
        )

    @app.get("/compliance.xlsx")
    def download_xlsx() -> Response:
        view = _compliance_view(engine, settings)
        rows, summary = _table(view)
        with tempfile.TemporaryDirectory(prefix="lms-bridge-web-") as folder:
            path = Path(folder) / "compliance.xlsx"
            export.write_xlsx(path, {"summary": (SUMMARY_HEADER, summary), "people": (COMPLIANCE_HEADER, rows)})
            body = path.read_bytes()
        return Response(
            body,
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{_download_name(view, "xlsx")}"'},
        )

    @app.get("/person/<nip>")
    def person_page(nip: str) -> str:
        if not re.fullmatch(r"\d{18}", nip):
            abort(404)
        year = _year_arg(settings)
        end = _as_of_arg(settings, year)
        # Unit, type, target and JP exactly as the compliance report counts them.
        standing = reports.person_standing(engine, settings, nip, year, as_of=end)
        with Session(engine) as db:
            days = dict(
                db.execute(
                    select(LedgerRecord.statement_id, LedgerRecord.period_day).where(
                        LedgerRecord.nip == nip,
                        LedgerRecord.period_day >= date(year, 1, 1),
                        LedgerRecord.period_day <= date(year, 12, 31),
                    )
                ).all()
            )
            known = (
                db.scalar(select(Person.id).where(Person.nip == nip)) is not None
                or db.scalar(select(LedgerRecord.statement_id).where(LedgerRecord.nip == nip).limit(1)) is not None
            )
        if not known or not _allowed(standing.unit_code):
            abort(404)
        lines, months = [], [Decimal(0)] * 12
        for record in reports.person_records(engine, nip, year):
            day = days.get(record.statement_id)
            if record.voided:
                status = "voided"
            elif record.pending:
                status = "pending (program JP not configured)"
            elif day is not None and day > end:
                status = "after the as-of date"
            else:
                status = "counted"
                if day is not None:
                    months[day.month - 1] += record.jp
            lines.append(RecordLine(record, day, status))
        # month_bars escapes the only text it is given (the title); the rest are numbers.
        chart = Markup(month_bars(months, title=f"JP per month {year} of {nip}"))  # noqa: S704
        back = url_for("compliance_page", year=year, as_of=end.isoformat())
        return render_template(
            "person.html",
            nip=nip,
            name=standing.name,
            on_roster=standing.on_roster,
            unit_code=standing.unit_code,
            unit_name=standing.unit_name,
            employee_type=standing.employee_type,
            target=standing.target,
            total=standing.jp,
            met=standing.met,
            needed=standing.needed,
            year=year,
            as_of=end,
            lines=lines,
            chart=chart,
            back=back,
        )

    return app


def serve(app: Flask, host: str, port: int, *, threads: int = 8) -> None:
    """Serve the app with waitress until interrupted."""
    from waitress import serve as waitress_serve

    waitress_serve(app, host=host, port=port, threads=threads, ident="lms-bridge")
