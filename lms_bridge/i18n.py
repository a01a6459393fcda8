"""Translations and locale formatting for what HR reads (reports, exports, their errors).

A root leaf: it imports nothing from the project's stages, so every stage (ledger,
cli, web) can use it. Messages are written in English in the code and marked with
``_``; the catalogs are gettext files under ``lms_bridge/locale/<lang>/LC_MESSAGES/
lms_bridge.po`` read through Babel (``babel.support.Translations``). The compiled
``.mo`` files are committed next to them; ``tests/test_i18n.py`` fails when one is
older than its ``.po`` or when a marked message has no Indonesian translation.
Rebuild them with ``pybabel compile -d lms_bridge/locale -D lms_bridge``.

Bahasa Indonesia (``id``) is the default language; English (``en``) is available.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date as _babel_date
from babel.dates import get_month_names
from babel.numbers import format_decimal as _babel_decimal
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "lms_bridge"
LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"

#: Indonesia's three time zones as HR writes them (Permendagri: WIB, WITA, WIT).
_ZONE_NAMES = {
    "Asia/Jakarta": "WIB",
    "Asia/Pontianak": "WIB",
    "Asia/Makassar": "WITA",
    "Asia/Ujung_Pandang": "WITA",
    "Asia/Jayapura": "WIT",
}


def language_of(language: str | None) -> str:
    """``language`` when it is one we have a catalog for, else the default (``id``)."""
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


@cache
def translations(language: str) -> NullTranslations:
    """The catalog of ``language`` (``en`` falls back to the English msgids)."""
    return Translations.load(str(LOCALE_DIR), [language_of(language)], DOMAIN)


def translator(language: str | None) -> Callable[[str], str]:
    """Return the gettext of ``language``; mark messages as ``_ = i18n.translator(language)``, then ``_("...")``."""
    return translations(language_of(language)).gettext


def decimal(value: Decimal | float | int, language: str | None, *, places: int | None = None) -> str:
    """A number as the locale writes it: ``12,5`` in ``id``, ``12.5`` in ``en``.

    ``places`` fixes the decimals (``2`` gives ``12,50``); without it trailing zeros go.
    """
    pattern = None if places is None else "#,##0." + "0" * places
    return _babel_decimal(value, format=pattern, locale=language_of(language))


def long_date(day: date, language: str | None) -> str:
    """``7 Desember 2026`` (``id``) or ``December 7, 2026`` (``en``)."""
    return _babel_date(day, format="long", locale=language_of(language))


def zone_name(timezone: str, moment: datetime | None = None) -> str:
    """WIB, WITA or WIT for Indonesia's zones; otherwise the zone's own abbreviation (``UTC``...)."""
    if timezone in _ZONE_NAMES:
        return _ZONE_NAMES[timezone]
    return (moment or datetime.now(ZoneInfo(timezone))).astimezone(ZoneInfo(timezone)).tzname() or timezone


def local_time(moment: datetime, timezone: str, language: str | None, *, seconds: bool = False) -> str:
    """A moment in the deployment's zone with its name: ``7 Desember 2026 14.05 WIB``."""
    local = moment.astimezone(ZoneInfo(timezone))
    clock = local.strftime("%H.%M.%S" if seconds else "%H.%M")
    if language_of(language) == "en":
        clock = clock.replace(".", ":")
    return f"{long_date(local.date(), language)} {clock} {zone_name(timezone, moment)}"


def month_name(month: int, language: str | None) -> str:
    """The month's short name: ``Agu`` (``id``), ``Aug`` (``en``)."""
    return str(get_month_names("abbreviated", locale=language_of(language))[month])


def os_reason(exc: OSError, language: str | None) -> str:
    """Why a file could not be read or written, in ``language`` (the system says it in English).

    The common causes are translated; any other keeps the system's own words.
    """
    _ = translator(language)
    reasons = {
        errno.ENOENT: _("no such file or folder"),
        errno.EACCES: _("permission denied"),
        errno.EPERM: _("permission denied"),
        errno.EISDIR: _("it is a folder"),
        errno.ENOTDIR: _("a part of the path is not a folder"),
        errno.ENOSPC: _("the disk is full"),
        errno.EROFS: _("the file system is read-only"),
    }
    return reasons.get(exc.errno or 0, exc.strerror or str(exc))
