"""NIP (Nomor Identitas PNS) and NI PPPK: normalise, validate, classify (docs/domain.md §3a).

An 18-digit number: birth date ``YYYYMMDD``, appointment ``YYYYMM`` (PNS) or
``YYYY`` + a 2-digit code that is not a month (PPPK), gender ``1``/``2``, and a
3-digit sequence from ``001``. Written with spaces or dots
(``19660801.198803.1.001``), stored as the bare 18-digit text, never an integer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

_SEPARATORS = re.compile(r"[\s.\-\u00a0\u202f]+")


class EmployeeType(StrEnum):
    """What the number says about its holder."""

    PNS = "PNS"
    PPPK = "PPPK"


@dataclass(frozen=True)
class Nip:
    """A valid, normalised NIP.

    Attributes:
        value: the 18 digits.
        employee_type: PNS (appointment month 01-12) or PPPK (a code that is not a month).
        birth_date: from digits 1-8.
        gender: ``1`` male, ``2`` female.
    """

    value: str
    employee_type: EmployeeType
    birth_date: date
    gender: str


def normalise_nip(raw: str | None) -> str | None:
    """Strip separators; return the 18 digits, or None when it is not 18 digits."""
    if raw is None:
        return None
    digits = _SEPARATORS.sub("", str(raw))
    return digits if len(digits) == 18 and digits.isascii() and digits.isdigit() else None


def parse_nip(raw: str | None, *, today: date | None = None) -> Nip | None:
    """Normalise and validate a NIP; return None when it is not one.

    Args:
        raw: the number as written (spaces and dots allowed).
        today: the reference date for "not in the future" (default: today).
    """
    digits = normalise_nip(raw)
    if digits is None:
        return None
    today = today or date.today()
    try:
        birth = date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None
    appointment_year, code = int(digits[8:12]), int(digits[12:14])
    gender, sequence = digits[14], int(digits[15:18])
    if gender not in "12" or sequence == 0:
        return None
    if not (birth.year + 14 <= appointment_year <= today.year) or birth > today:
        return None
    if 1 <= code <= 12:
        if (appointment_year, code) > (today.year, today.month):
            return None
        kind = EmployeeType.PNS
    else:
        # NI PPPK: digits 13-14 count work agreements, not a month (docs/domain.md §3a).
        kind = EmployeeType.PPPK
    return Nip(value=digits, employee_type=kind, birth_date=birth, gender=gender)
