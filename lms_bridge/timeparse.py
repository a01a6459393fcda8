"""The one ISO 8601 time parser: source APIs, ``Retry-After``, the ledger's statements, xAPI comparisons.

A root leaf (it imports nothing of the project), so ``connectors``, ``xapi`` and every stage of
``lms_bridge`` read times the same way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

#: Digits past the microseconds (an LRS may store nanoseconds): datetime keeps six.
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_iso_time(value: Any, *, naive_is_utc: bool, bounded: bool = True) -> datetime | None:
    """An ISO 8601 date-time (``Z`` or an offset) as an aware UTC datetime; None when it is not one.

    Args:
        value: the text (anything else is None).
        naive_is_utc: read a time without a zone as UTC (else it is None: xAPI times must have one).
        bounded: refuse years 1 and 9999: an overlap subtracted, or another zone, leaves datetime's range.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
        if moment.tzinfo is None or moment.utcoffset() is None:
            if not naive_is_utc:
                return None
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment if not bounded or 1 < moment.year < 9999 else None
