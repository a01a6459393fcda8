"""The web page's languages: Bahasa Indonesia by default, English available (Flask-Babel, gettext).

The language of a request: the one the user picked with the switch on the page (a cookie),
else the browser's Accept-Language when it names one we have, else ``[report] language``.
Numbers and dates are written for that language by Babel (``19,5``; ``7 Desember 2026``),
times in the deployment's time zone with the zone Indonesians name it by (WIB, WITA, WIT).

Catalogs: ``translations/<lang>/LC_MESSAGES/messages.po``, compiled to ``messages.mo`` by
``scripts/translations.py compile`` (both are committed; tests/test_web.py checks they agree).
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.numbers import format_decimal as babel_format_decimal
from flask import Flask, request
from flask_babel import Babel, format_date, format_time, get_locale

#: Languages the page speaks (catalogs under translations/), the default first.
LANGUAGES = ("id", "en")
LANGUAGE_NAMES = {"id": "Bahasa Indonesia", "en": "English"}
#: The cookie that keeps the language a user switched to (a preference, not a secret).
LANGUAGE_COOKIE = "lms_bridge_lang"
#: Indonesia's three time zones by the IANA names its regions use (Permendagri / BMKG usage).
ZONE_LABELS = {
    "Asia/Jakarta": "WIB",
    "Asia/Pontianak": "WIB",
    "Asia/Makassar": "WITA",
    "Asia/Ujung_Pandang": "WITA",
    "Asia/Jayapura": "WIT",
}


def zone_label(timezone: str, moment: datetime | None = None) -> str:
    """WIB, WITA or WIT for an Indonesian zone; the zone's own abbreviation (or name) elsewhere."""
    if timezone in ZONE_LABELS:
        return ZONE_LABELS[timezone]
    local = (moment or datetime.now(ZoneInfo(timezone))).astimezone(ZoneInfo(timezone))
    return local.tzname() or timezone


@functools.lru_cache(maxsize=4096)
def _formatted(value: Decimal | float | int, pattern: str, locale: str) -> str:
    """Babel's number formatting, kept: a page formats ~600 figures, most of them the same few values.

    Equal values (``Decimal("12")``, ``Decimal("12.00")``, ``12``) share an entry; they format the same.
    """
    return babel_format_decimal(value, format=pattern, locale=locale)


def install(app: Flask, default_language: str, timezone: str) -> Babel:
    """Set up Flask-Babel on ``app`` and the Jinja filters the templates format with."""

    def select_locale() -> str:
        chosen = request.cookies.get(LANGUAGE_COOKIE, "")
        if chosen in LANGUAGES:
            return chosen
        return request.accept_languages.best_match(LANGUAGES) or default_language

    app.config.update(BABEL_DEFAULT_LOCALE=default_language, BABEL_DEFAULT_TIMEZONE=timezone)
    babel = Babel(app, locale_selector=select_locale)
    label = ZONE_LABELS.get(timezone)

    def number(value: Decimal | float | int, digits: int = 2) -> str:
        """A JP figure: up to two decimals, no trailing zeros, the locale's decimal sign."""
        pattern = "#,##0." + "#" * digits if digits else "#,##0"
        return _formatted(value, pattern, str(get_locale()))

    def percent(value: float) -> str:
        return _formatted(round(value * 100), "#,##0", str(get_locale())) + "%"

    def long_date(value: date) -> str:
        return format_date(value, format="long")

    def short_date(value: date) -> str:
        return format_date(value, format="medium")

    def local_time(value: datetime) -> str:
        """A UTC moment as a local date and time with its zone: ``2 Mar 2026 09.00 WIB``."""
        zone = label or zone_label(timezone, value)
        return f"{format_date(value, format='medium')} {format_time(value, format='short')} {zone}"

    app.jinja_env.filters.update(
        jp=number, percent=percent, long_date=long_date, short_date=short_date, local_time=local_time
    )
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, LANGUAGE_NAMES=LANGUAGE_NAMES, current_language=current_language)
    return babel


def current_language() -> str:
    """The language of the request being answered."""
    locale = get_locale()
    return locale.language if locale is not None else LANGUAGES[0]
