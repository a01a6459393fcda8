"""The Flask app of the HR web page (server-rendered Jinja templates, no JavaScript).

Routes: ``/login`` (GET form, POST with a CSRF token), ``/logout`` (POST), ``/compliance``
(year, unit, as-of date, search; per-unit summary and people), ``/person/<nip>`` (records,
evidence, a JP-per-month SVG chart), ``/person/<nip>.pdf`` (the printable Rekap JP) and
``/compliance.xlsx`` / ``/compliance.csv`` (HR's workbook and CSV, in the page's language). Every
route but ``/login`` and static files redirects to the login page without a session.

A user limited to some units sees only people whose unit on the as-of date is one of
them; any other person's page answers 404. On a person's page such a user sees the records up
to the as-of date (what the total counts) and later ones only while the person was in one of
those units on the record's day: choosing an earlier as-of date does not show what the person
earned after moving to another unit.

Sessions are kept in the store (:mod:`lms_bridge.web.users`): logout and ``users disable`` revoke
them, a copied cookie stops working; a session ends after ``[web] session_hours`` without a click
and ``[web] session_max_hours`` after the login. Logins are throttled per client address and per
(address, name) in the store (:mod:`lms_bridge.web.throttle`).

The session cookie is signed (itsdangerous, via Flask) with the key in the environment
variable ``[web] secret_key_env`` names (default ``LMS_BRIDGE_WEB_SECRET_KEY``), or with a
random key made when the process starts (then every restart logs everyone out).

Behind a reverse proxy, ``X-Forwarded-*`` is believed only from ``[web] trusted_proxies``
(:class:`TrustedProxyFix`); served for remote clients (``serve-web --allow-remote``) the page
answers only requests that came over HTTPS through such a proxy, and its cookies are ``Secure``.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from babel.dates import get_month_names
from flask import Flask, Response, abort, g, redirect, render_template, request, session, url_for
from flask_babel import format_decimal, get_locale, gettext, lazy_gettext
from markupsafe import Markup
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as BaseResponse

from lms_bridge.config.settings import Settings
from lms_bridge.errors import ConfigError
from lms_bridge.ledger import export, labels, reports
from lms_bridge.store.models import Evidence, LedgerEvidence, LedgerRecord
from lms_bridge.web import cop as cop_pages
from lms_bridge.web import i18n, overview, throttle
from lms_bridge.web import users as users_core
from lms_bridge.web.chart import band_bars, month_bars
from lms_bridge.web.labels import kind_phrase, verb_phrase
from lms_bridge.web.report_cache import Entry, ReportCache

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("lms_bridge.web")

PAGE_SIZE = 100
MIN_SECRET_KEY_LENGTH = 32
#: The longest ``next`` a login or language switch follows.
MAX_NEXT_LENGTH = 2048
ERROR_TITLES = {
    400: lazy_gettext("The request could not be processed"),
    404: lazy_gettext("Page not found"),
    429: lazy_gettext("Too many attempts"),
    500: lazy_gettext("Something went wrong"),
}
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


def safe_next(value: str) -> str:
    r"""``value`` when it is a path on this site, else "" (the caller then goes to the home page).

    Strict on purpose (issue 20): a single leading ``/``, never ``//`` or a backslash, only printable
    ASCII (a browser drops a tab or newline, so ``/\t/evil.example/`` would become ``//evil.example/``;
    CR or LF would break the header), no scheme or host, checked both as given and once unquoted.
    """
    if not value or len(value) > MAX_NEXT_LENGTH:
        return ""
    for text in (value, unquote(value)):
        if not text.startswith("/") or text.startswith("//") or "\\" in text:
            return ""
        if any(not 0x20 <= ord(ch) <= 0x7E for ch in text):
            return ""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return ""
    return value


class TrustedProxyFix:
    """Werkzeug's ProxyFix for requests from a trusted reverse proxy only.

    A request whose peer address is in ``proxies`` has ``X-Forwarded-For``/``-Proto``/``-Host``/``-Port``
    applied (the last ``hops`` values); from any other peer those headers are dropped, so a client
    cannot claim another address (the login throttle counts by it) or HTTPS.
    """

    def __init__(self, app: WSGIApplication, proxies: Iterable[str], hops: int = 1) -> None:
        self.app = app
        self.proxies = [ipaddress.ip_network(item, strict=False) for item in proxies]
        self.fixed = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    def trusted(self, peer: str | None) -> bool:
        """Whether a peer address is one of the trusted proxies."""
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:  # noqa: D102
        if self.trusted(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        for name in [key for key in environ if key.startswith(("HTTP_X_FORWARDED_", "HTTP_FORWARDED"))]:
            del environ[name]
        return self.app(environ, start_response)


@dataclass(frozen=True)
class Filters:
    """What the compliance page and its downloads were asked for."""

    year: int
    unit: str | None
    as_of: date
    query: str
    page: int
    #: ``met``, ``unmet`` or "" (everybody).
    status: str = ""
    #: A column of overview.SORT_KEYS, or "" (by unit and NIP).
    sort: str = ""
    descending: bool = False

    def args(self, **change: Any) -> dict[str, Any]:
        """Query-string arguments for a link to the same view (with changes)."""
        values = {
            "year": self.year,
            "unit": self.unit or "",
            "as_of": self.as_of.isoformat(),
            "q": self.query,
            "status": self.status,
            "sort": self.sort,
            "dir": "desc" if self.sort and self.descending else "",
            **change,
        }
        return {key: value for key, value in values.items() if value not in ("", None)}


@dataclass(frozen=True)
class ComplianceView:
    """The rows and summaries a user may see for some filters."""

    filters: Filters
    #: The people of the table: searched, filtered by status and sorted.
    rows: list[reports.ComplianceRow]
    units: list[reports.UnitSummary]
    choices: list[tuple[str, str]]
    #: Everybody in the chosen units (before search and status filter): the overview's figures.
    everyone: list[reports.ComplianceRow]
    #: The cached report the view comes from (its derived figures are kept with it).
    entry: Entry


@dataclass(frozen=True)
class RecordLine:
    """One record on the person page."""

    record: reports.PersonRecord
    day: date | None
    #: counted, voided, pending or later (after the as-of date).
    status: str
    rule_label: str
    evidence: list[EvidenceItem]


@dataclass(frozen=True)
class EvidenceItem:
    """One piece of evidence as HR reads it: when (local), what was done, where, a link to the page."""

    statement_id: str
    when: datetime | None
    action: str
    name: str
    where: str
    url: str | None


def _today(settings: Settings) -> date:
    return datetime.now(ZoneInfo(settings.deployment.timezone)).date()


def _year_arg(settings: Settings) -> int:
    raw = request.args.get("year", "").strip()
    if not raw:
        return _today(settings).year
    if not raw.isdigit() or not 2000 <= int(raw) <= 2100:
        abort(400, description=gettext("The year must be a number between 2000 and 2100."))
    return int(raw)


def _as_of_arg(settings: Settings, year: int) -> date:
    """The as-of date: asked for, else today in the current year, else the year's last day."""
    raw = request.args.get("as_of", "").strip()
    end = date(year, 12, 31)
    if raw:
        try:
            asked = date.fromisoformat(raw)
        except ValueError:
            abort(400, description=gettext("The date must be written like 2026-06-30."))
        if asked.year != year:
            abort(400, description=gettext("The date must fall in %(year)s.", year=year))
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


def _compliance_view(cache: ReportCache, settings: Settings) -> ComplianceView:
    year = _year_arg(settings)
    as_of = _as_of_arg(settings, year)
    unit = request.args.get("unit", "").strip() or None
    query = request.args.get("q", "").strip()[:100]
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and int(raw_page) > 0 else 1
    if unit is not None and not _allowed(unit):
        abort(404)
    entry = cache.get(year, as_of)
    report = entry.report
    own: tuple[str, ...] = g.user.units

    def visible_units() -> tuple[list[reports.UnitSummary], list[tuple[str, str]]]:
        visible = [summary for summary in report.units if not own or summary.unit_code in own]
        if own:
            # The user's own units are choices even while nobody is counted in them yet.
            known = {summary.unit_code for summary in visible}
            visible += [reports.UnitSummary(code, None, 0, 0, Decimal(0)) for code in own if code not in known]
        choices = [(s.unit_code, f"{s.unit_code} - {s.unit_name}" if s.unit_name else s.unit_code) for s in visible]
        return visible, choices

    # The same for every request of a user with these units until the report changes.
    visible, choices = cache.derived(entry, ("visible", own), visible_units)
    if unit is not None and unit not in {code for code, _ in choices}:
        # A unit nobody is counted in (or a code typed in the wrong case): say so, with the valid codes.
        valid = ", ".join(code for code, _ in choices if code != reports.NOT_ON_ROSTER)
        abort(
            404,
            description=gettext(
                "Sorry, there is no work unit %(unit)s in the JP recap of %(year)s. The work units are: %(units)s.",
                unit=unit,
                year=year,
                units=valid or "-",
            ),
        )
    units = [summary for summary in visible if unit is None or summary.unit_code == unit]
    codes = frozenset(summary.unit_code for summary in units)
    # The same for every request of these units until the report changes: kept with it (report_cache).
    everyone = cache.derived(entry, ("everyone", codes), lambda: [row for row in report.rows if row.unit_code in codes])
    status = request.args.get("status", "")
    status = status if status in overview.STATUSES else ""
    sort = request.args.get("sort", "")
    sort = sort if sort in overview.SORT_KEYS else ""
    descending = request.args.get("dir", "") == "desc"

    def table() -> list[reports.ComplianceRow]:
        found = overview.filter_status([row for row in everyone if _matches(row, query)], status)
        return overview.sort_rows(found, sort, descending)

    # A search is not kept (any text: it would fill the cache); the views without one are few.
    rows = table() if query else cache.derived(entry, ("rows", codes, status, sort, descending), table)
    filters = Filters(year, unit, report.as_of, query, page, status, sort, descending)
    return ComplianceView(filters, rows, units, choices, everyone, entry)


def _sort_change(filters: Filters, column: str) -> dict[str, str | None]:
    """The link of a column heading: the other direction when sorted by it, else the useful one first.

    The useful one: the largest JP, target and shortfall first; names, NIPs and units from A.
    """
    if filters.sort == column:
        descending = not filters.descending
    else:
        descending = column in ("jp", "target", "needed")
    return {"sort": column, "dir": "desc" if descending else None, "page": None}


def _download_name(view: ComplianceView, extension: str) -> str:
    unit = re.sub(r"[^A-Za-z0-9_.-]+", "-", view.filters.unit or "all")
    return f"jp-compliance-{view.filters.year}-{unit}-{view.filters.as_of.isoformat()}.{extension}"


def _web_url(value: str | None) -> str | None:
    """The address when it is a web page HR can open (http or https), else None."""
    if value and re.match(r"https?://[^\s/]+\.[^\s]+$", value):
        return value
    return None


def _evidence(engine: Engine, records: list[reports.PersonRecord]) -> dict[str, EvidenceItem]:
    """Statement id -> the evidence as HR reads it (the ledger's mirror first, then this bridge's own)."""
    wanted = sorted({e.statement_id for r in records for e in r.evidence})
    found: dict[str, EvidenceItem] = {}
    with Session(engine) as db:
        for index in range(0, len(wanted), 500):
            chunk = wanted[index : index + 500]
            for e in db.scalars(select(Evidence).where(Evidence.statement_id.in_(chunk))):
                found[e.statement_id] = EvidenceItem(
                    e.statement_id,
                    e.occurred_at,
                    kind_phrase(e.kind),
                    e.object_key,
                    f"{e.source}/{e.site_id}",
                    _web_url(e.object_key),
                )
            for m in db.scalars(select(LedgerEvidence).where(LedgerEvidence.statement_id.in_(chunk))):
                found[m.statement_id] = EvidenceItem(
                    m.statement_id,
                    m.timestamp,
                    verb_phrase(m.verb),
                    m.object_name or m.object_id,
                    m.platform or "",
                    _web_url(m.object_id),
                )
    return found


def create_app(settings: Settings, engine: Engine, *, key: bytes | None = None, remote: bool = False) -> Flask:
    """Build the web app.

    Args:
        settings: the deployment's settings (targets, time zone, ``[report] language``, ``[web]``).
        engine: the state store (already migrated).
        key: the session-signing key (default: :func:`secret_key`).
        remote: served to other machines (``serve-web --allow-remote``): only HTTPS through a
            trusted proxy is answered, and cookies are ``Secure``.

    Returns:
        The Flask application (serve it with waitress: :func:`serve`).

    Raises:
        ConfigError: when ``remote`` and ``[web] trusted_proxies`` is empty.
    """
    if remote and not settings.web.trusted_proxies:
        raise ConfigError(
            "serve-web --allow-remote needs the address of the HTTPS reverse proxy in [web] trusted_proxies "
            '(e.g. trusted_proxies = ["10.0.0.5"]): the page is served only over HTTPS through it'
        )
    app = Flask(__name__)
    cache = ReportCache(engine, settings, entries=settings.web.report_cache_entries)
    app.extensions["lms_bridge_report_cache"] = cache
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
        SESSION_COOKIE_SECURE=remote,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=min(settings.web.session_hours, settings.web.session_max_hours)),
        MAX_CONTENT_LENGTH=16 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    if settings.web.trusted_proxies:
        app.wsgi_app = TrustedProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, settings.web.trusted_proxies, settings.web.proxy_hops
        )
    i18n.install(app, settings.report.language, settings.deployment.timezone)
    idle = timedelta(hours=settings.web.session_hours)
    lifetime = timedelta(hours=settings.web.session_max_hours)

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
            abort(
                400,
                description=gettext(
                    "This form has expired or did not come from this site. Please reload the page and try again."
                ),
            )

    def language_links() -> list[tuple[str, str, str]]:
        """(code, name, link) of each language, the link coming back to this page."""
        here = request.full_path if request.query_string else request.path
        return [
            (code, i18n.LANGUAGE_NAMES[code], url_for("set_language", lang=code, next=here)) for code in i18n.LANGUAGES
        ]

    app.jinja_env.globals.update(csrf_token=csrf_token, language_links=language_links)

    @app.before_request
    def require_https() -> None:
        if remote and request.scheme != "https":
            log.warning("web request refused: not HTTPS through a trusted proxy (from %s)", request.remote_addr)
            abort(
                400,
                description=gettext(
                    "This page is open only over HTTPS. Please open it with the https:// address the "
                    "administrator gave you."
                ),
            )

    @app.before_request
    def require_login() -> BaseResponse | None:
        if request.endpoint in ("login", "static", "set_language"):
            return None
        token = session.get("sid")
        user = users_core.session_user(engine, token, idle=idle, lifetime=lifetime) if isinstance(token, str) else None
        if user is None:
            session.pop("sid", None)
            target = request.full_path if request.query_string else request.path
            return redirect(url_for("login", next=target))
        g.user = user
        if not user.hr and request.endpoint not in cop_pages.ORGANISER_ENDPOINTS:
            return cop_pages.organiser_home()  # a CoP organiser sees community aggregates only
        return None

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Language", i18n.current_language())
        response.vary.add("Accept-Language")
        response.vary.add("Cookie")
        if remote:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.errorhandler(400)
    @app.errorhandler(404)
    @app.errorhandler(429)
    def error_page(error: Any) -> tuple[str, int]:
        own = error.description != type(error).description
        if error.code == 404 and not own:
            message = gettext(
                "Sorry, the page you asked for does not exist or is not open to your account. "
                "Please go back to the JP recap and choose again."
            )
        elif error.code == 429:
            message = gettext("Too many attempts in a short time. Please wait a moment and try again.")
        else:
            # Our own descriptions are translated sentences; Werkzeug's defaults are English.
            message = error.description if own else gettext("Sorry, the request could not be processed.")
        return render_template("error.html", code=error.code, title=ERROR_TITLES[error.code], message=message), (
            error.code
        )

    @app.errorhandler(500)
    def server_error(error: Any) -> tuple[str, int]:
        message = gettext(
            "Sorry, something went wrong on our side. Please try again in a moment; if it happens again, "
            "tell the administrator the time it happened."
        )
        return render_template("error.html", code=500, title=ERROR_TITLES[500], message=message), 500

    @app.get("/language/<lang>")
    def set_language(lang: str) -> BaseResponse:
        """Switch the page's language (kept for a year in a cookie) and come back to the page."""
        if lang not in i18n.LANGUAGES:
            abort(404)
        response = redirect(safe_next(request.args.get("next", "")) or url_for("compliance_page"))
        response.set_cookie(
            i18n.LANGUAGE_COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="Lax", path="/", secure=remote
        )
        return response

    @app.route("/login", methods=["GET", "POST"])
    def login() -> BaseResponse | str | tuple[str, int]:
        next_url = safe_next(request.values.get("next", ""))
        if request.method != "POST":  # GET, and HEAD (Flask adds it): `curl -I` answered 400 as a failed login
            return render_template("login.html", next=next_url, error=None, username="")
        check_csrf()
        username = request.form.get("username", "").strip().lower()[:64]
        password = request.form.get("password", "")[:1024]
        address = request.remote_addr
        if not throttle.reserve(engine, address, username):
            log.warning("web login refused for %s from %s: too many attempts", username, address)
            error = gettext("Too many failed attempts. Please wait 15 minutes and try again.")
            return render_template("login.html", next=next_url, username=username, error=error), 429
        user = users_core.authenticate(engine, username, password)
        token = users_core.start_session(engine, user.username, idle=idle, lifetime=lifetime) if user else None
        if user is None or token is None:
            log.warning("web login failed for %s from %s", username, address)
            error = gettext("The username or password is not right. Please try again.")
            return render_template("login.html", next=next_url, username=username, error=error), 401
        throttle.succeeded(engine, address, username)
        session.clear()
        session.permanent = True
        session["sid"] = token
        session["csrf"] = secrets.token_urlsafe(32)
        log.info("web login: %s from %s", user.username, address)
        return redirect(next_url or url_for("compliance_page"))

    cop_pages.register(app, settings, engine)

    @app.post("/logout")
    def logout() -> BaseResponse:
        check_csrf()
        token = session.get("sid")
        if isinstance(token, str):
            users_core.end_session(engine, token)
        session.clear()
        return redirect(url_for("login"))

    @app.get("/")
    def index() -> BaseResponse:
        return redirect(url_for("compliance_page"))

    @app.get("/compliance")
    def compliance_page() -> str:
        view = _compliance_view(cache, settings)
        f = view.filters
        # The pace is measured up to the as-of date, or up to today when the as-of date is still to come.
        pace_day = max(min(f.as_of, _today(settings)), date(f.year, 1, 1))
        fresh = overview.freshness(engine, view.entry.newest_record)
        # Everything the body shows comes from the cached report (view.entry: its version and the rules' digest)
        # and from this key: the filters (units, search, page, status, sort), the language, the user's units (the
        # rows and choices they may see; only HR users reach this page), the pace day, the freshness line and the
        # path the links start with. A search is never kept (any text would fill the cache).
        key = (f, i18n.current_language(), g.user.hr, g.user.units, pace_day, fresh, request.script_root)

        def body() -> Markup:
            return Markup(render_template("_compliance_body.html", **_body_context(view, pace_day, fresh)))  # noqa: S704

        return render_template(
            "compliance.html", year=f.year, body=body() if f.query else cache.page(view.entry, key, body)
        )

    def _body_context(view: ComplianceView, pace_day: date, fresh: overview.Freshness) -> dict[str, Any]:
        """What ``_compliance_body.html`` shows, for a page whose body is not kept."""
        f = view.filters
        pages = max(1, -(-len(view.rows) // PAGE_SIZE))
        page = min(f.page, pages)
        shown = view.rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        downloads = {ext: url_for(f"download_{ext}", **f.args()) for ext in ("xlsx", "csv")}
        links = {
            "prev": url_for("compliance_page", **f.args(page=page - 1)) if page > 1 else None,
            "next": url_for("compliance_page", **f.args(page=page + 1)) if page < pages else None,
        }
        sort_links = {
            column: url_for("compliance_page", **f.args(**_sort_change(f, column))) for column in overview.SORT_KEYS
        }
        status_links = {
            status: url_for("compliance_page", **f.args(status=status, page=None))
            for status in ("", *overview.STATUSES)
        }
        person_args = urlencode({"year": f.year, "as_of": f.as_of.isoformat()})
        everyone = view.everyone
        figures = cache.derived(
            view.entry,
            ("figures", frozenset(u.unit_code for u in view.units), pace_day),
            lambda: overview.figures(everyone, f.year, pace_day),
        )
        target = figures.target
        bands = figures.bands
        band_labels = []
        for band in bands:
            if band.high is None:
                band_labels.append(gettext("%(jp)s JP or more", jp=format_decimal(band.low, format="#,##0.##")))
            elif band.high == 0:
                band_labels.append(gettext("No JP yet"))
            else:
                band_labels.append(
                    gettext(
                        "%(low)s to under %(high)s JP",
                        low=format_decimal(band.low, format="#,##0.##"),
                        high=format_decimal(band.high, format="#,##0.##"),
                    )
                )
        # band_bars escapes every text it is given; the rest are numbers.
        distribution = Markup(  # noqa: S704
            band_bars(
                [band.people for band in bands],
                band_labels,
                title=gettext("Civil servants per JP band, %(year)s", year=f.year),
            )
        )
        # The 200 rows of an institution's summary are the same for every page of the same units and language.
        unit_summary = cache.derived(
            view.entry,
            ("summary", frozenset(u.unit_code for u in view.units), f.year, i18n.current_language()),
            lambda: Markup(render_template("_unit_summary.html", units=view.units, year=f.year)),  # noqa: S704
        )
        return {
            "unit_summary": unit_summary,
            "view": view,
            "rows": shown,
            "page": page,
            "pages": pages,
            "downloads": downloads,
            "links": links,
            "sort_links": sort_links,
            "status_links": status_links,
            "person_args": person_args,
            "total": len(everyone),
            "met": figures.met,
            "target": target,
            "same_target": figures.same_target,
            "distribution": distribution,
            "close": figures.close,
            "at_risk": figures.at_risk,
            "year_end": pace_day == date(f.year, 12, 31),
            "pace_day": pace_day,
            "fresh": fresh,
        }

    def _download(view: ComplianceView, extension: str, body: bytes, mimetype: str) -> Response:
        return Response(
            body,
            mimetype=mimetype,
            headers={"Content-Disposition": f'attachment; filename="{_download_name(view, extension)}"'},
        )

    def _visible_report(view: ComplianceView) -> reports.ComplianceReport:
        """The report as the page shows it: the user's units, searched, filtered and sorted."""
        f = view.filters
        return reports.ComplianceReport(f.year, f.as_of, rows=view.rows, units=view.units)

    @app.get("/compliance.xlsx")
    def download_xlsx() -> Response:
        """HR's workbook (title rows, Indonesian headers, print setup) in the page's language."""
        view = _compliance_view(cache, settings)
        buffer = io.BytesIO()
        export.write_compliance_xlsx(
            buffer,
            _visible_report(view),
            language=i18n.current_language(),
            institution=settings.report.institution,
            timezone=settings.deployment.timezone,
            # One sheet per unit as well, for the officer who prints or sends one unit.
            per_unit=view.filters.unit is None,
        )
        return _download(
            view, "xlsx", buffer.getvalue(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )

    @app.get("/compliance.csv")
    def download_csv() -> Response:
        """The people of the table as CSV: Indonesian Excel's ``;`` and decimal comma in ``id``."""
        view = _compliance_view(cache, settings)
        text = export.compliance_csv(_visible_report(view), language=i18n.current_language())
        return _download(view, "csv", text.encode("utf-8"), "text/csv")

    def _person(nip: str) -> tuple[int, date, reports.ComplianceRow]:
        """Year, as-of date and standing of a person this user may see; 404 for anyone else."""
        if not re.fullmatch(r"\d{18}", nip):
            abort(404)
        year = _year_arg(settings)
        end = _as_of_arg(settings, year)
        # Unit, type, target and JP exactly as the compliance report counts them.
        standing = reports.person_standing(engine, settings, nip, year, as_of=end)
        if not reports.person_known(engine, nip) or not _allowed(standing.unit_code):
            abort(404)
        return year, end, standing

    @app.get("/person/<nip>.pdf")
    def person_pdf(nip: str) -> Response:
        """The printable Rekap JP of a person (with its verification hash), in the page's language."""
        year, end, standing = _person(nip)
        # The page's as-of date: the recap lists and totals what the page counts on that day.
        records = reports.person_records(engine, nip, year, as_of=end)
        body = export.person_pdf(
            standing,
            records,
            year,
            rules=labels.deployment_rules(settings),
            as_of=end,
            language=i18n.current_language(),
            institution=settings.report.institution,
            timezone=settings.deployment.timezone,
        )
        return Response(
            body,
            mimetype="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="rekap-jp-{year}-{nip}.pdf"'},
        )

    @app.get("/person/<nip>")
    def person_page(nip: str) -> str:
        year, end, standing = _person(nip)
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
        rules = labels.deployment_rules(settings)
        records = reports.person_records(engine, nip, year)
        if g.user.units:
            # Later than the as-of date: only what the person earned while in one of the user's units.
            history = reports.unit_history(engine, nip)
            records = [
                record
                for record in records
                if (record.day is not None and record.day <= end)
                or (record.day is not None and _allowed(reports.unit_on(history, record.day) or ""))
            ]
        evidence = _evidence(engine, records)
        lines, months = [], [Decimal(0)] * 12
        for record in records:
            day = days.get(record.statement_id, record.day)
            if day is None and record.pending and re.fullmatch(r"\d{4}-\d{2}-\d{2}", record.period):
                day = date.fromisoformat(record.period)
            if record.voided:
                status = "voided"
            elif record.pending:
                status = "pending"
            elif day is not None and day > end:
                status = "later"
            else:
                status = "counted"
                if day is not None:
                    months[day.month - 1] += record.jp
            unknown = gettext("not in the ledger (posted by another system?)")
            items = [
                evidence.get(e.statement_id, EvidenceItem(e.statement_id, None, "", unknown, "", None))
                for e in record.evidence
            ]
            label = labels.record_rule_label(record.rule, record.code, rules, i18n.current_language())
            lines.append(RecordLine(record, day, status, label, items))
        names = get_month_names("abbreviated", locale=get_locale())
        number = [format_decimal(value, format="#,##0.##") for value in months]
        # month_bars escapes every text it is given; the rest are numbers.
        chart = Markup(  # noqa: S704
            month_bars(
                months,
                title=gettext("JP per month in %(year)s, %(nip)s", year=year, nip=nip),
                labels=[names[m] for m in range(1, 13)],
                target=standing.target,
                target_label=gettext("Target %(jp)s JP", jp=standing.target),
                cumulative_label=gettext("JP so far in the year"),
                number=number,
            )
        )
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
            pending=standing.pending,
            year=year,
            as_of=end,
            lines=lines,
            chart=chart,
            back=back,
            pdf=url_for("person_pdf", nip=nip, year=year, as_of=end.isoformat()),
        )

    return app


def serve(app: Flask, host: str, port: int, *, threads: int = 8) -> None:
    """Serve the app with waitress until interrupted."""
    from waitress import serve as waitress_serve

    # waitress 3 deletes every X-Forwarded-* header unless its own trusted_proxy is set, and so refused every
    # request through nginx under --allow-remote (seen behind deploy/nginx-lms-bridge.conf). TrustedProxyFix
    # already keeps those headers only from [web] trusted_proxies and drops them from anyone else.
    waitress_serve(app, host=host, port=port, threads=threads, ident="lms-bridge", clear_untrusted_proxy_headers=False)
