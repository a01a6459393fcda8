"""The one retry policy: which waits a transient failure gets, and how many tries it has.

Every caller that tries an HTTP request again uses this root leaf (it imports only the
project's errors and time parser, never ``requests``): the live connectors through
:class:`RetryPolicy` (:mod:`connectors.http` turns answers into :class:`TransientHTTPError`), and the
outbox flush, which schedules its rows' next tries with :func:`backoff_delay`.

The policy: a transient failure (a reset, a time-out, an answer cut off in transit, HTTP 5xx, 429)
is tried again after a doubling, capped backoff, or after the wait the server asks for
(``Retry-After``: seconds, an HTTP date or an ISO date-time), bounded by ``max_retry_after``;
anything else is final.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from lms_bridge.errors import RetryableError
from lms_bridge.timeparse import parse_iso_time

T = TypeVar("T")


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): ``base * 2**(attempt-1)``, capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: a number, an HTTP date or (Zoom) an ISO date-time.

    None when there is no value or it reads as none of them; a time in the past waits 0 s.
    """
    value = (value or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    moment = parse_iso_time(value, naive_is_utc=True, bounded=False)
    if moment is None:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class TransientHTTPError(RetryableError):
    """A failure worth another try, with the wait the server asked for (``Retry-After``), if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and after how long, a transient failure is tried again.

    Attributes:
        attempts: tries in all (the first one included).
        backoff_base: seconds before the first retry; doubles each time.
        backoff_cap: the longest backoff.
        max_retry_after: the longest wait a server may ask for (429 ``Retry-After``); a longer one
            gives up at once (the next sync goes on).
        sleep: waits between tries (tests may pass a fake).
    """

    attempts: int
    backoff_base: float
    backoff_cap: float = 30.0
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = time.sleep

    def run(
        self,
        call: Callable[[], T],
        *,
        on_retry: Callable[[RetryableError, int, float], None],
        gave_up: Callable[[RetryableError, int], RetryableError] = lambda exc, attempts: exc,
        too_long: Callable[[RetryableError, float], RetryableError] | None = None,
    ) -> T:
        """``call()``, tried again after each :class:`~lms_bridge.errors.RetryableError` it raises.

        Args:
            call: one try; raises ``RetryableError`` (a :class:`TransientHTTPError` may carry a wait)
                for a transient failure, anything else for a final one.
            on_retry: logs one retry: (the failure, the retry's number, seconds it waits).
            gave_up: the error raised when the tries run out: (the last failure, tries made);
                by default the last failure itself.
            too_long: the error raised when the server asks for a wait beyond ``max_retry_after``
                (by default :paramref:`gave_up`'s).

        Raises:
            RetryableError: from ``gave_up`` or ``too_long``.
        """
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except RetryableError as exc:
                wait = getattr(exc, "retry_after", None)
                if wait is not None and wait > self.max_retry_after:
                    raise (too_long(exc, wait) if too_long else gave_up(exc, attempt)) from None
                if attempt >= self.attempts:
                    failure = gave_up(exc, attempt)
                    if failure is exc:
                        raise
                    raise failure from None
                delay = wait if wait is not None else backoff_delay(attempt, self.backoff_base, self.backoff_cap)
                on_retry(exc, attempt, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - attempts >= 1
