"""HTTP plumbing every live connector shares: the session, the one retry policy, paging, time parsing.

One retry policy for every source API (:class:`RetryPolicy`): connection resets, time-outs and
answers cut off in transit (:data:`TRANSIENT_EXCEPTIONS`), HTTP 5xx, and 429 after the wait the
server asks for (``Retry-After``, bounded by ``max_retry_after``) are tried again with a doubling,
capped backoff; anything else is final. A connector says only how its failures read: the
policy raises :class:`~lms_bridge.errors.RetryableError` when the tries run out, and each
retry is logged once by the connector's ``on_retry`` (with the URL redacted).

Connectors import this module, never the other way round; ``xapi/lrs_client.py`` keeps a loop of
its own because ``xapi`` must not import ``connectors``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from lms_bridge.errors import RetryableError

USER_AGENT = "lms-bridge/0.1 (+https://github.com/lms-bridge)"

T = TypeVar("T")

#: What requests raises for a reset, a time-out or an answer cut off in transit: worth another try.
TRANSIENT_EXCEPTIONS: tuple[type[requests.RequestException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def make_session(pool_size: int = 4) -> requests.Session:
    """A ``requests.Session`` sized for ``pool_size`` requests in flight, without urllib3 retries.

    Retries are the connector's job (it knows which calls are safe to repeat and
    logs each one once, with the URL redacted); urllib3's own would be invisible.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): ``base * 2**(attempt-1)``, capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


def retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds to wait from ``Retry-After``: a number, an HTTP date or (Zoom) an ISO date-time."""
    value = (response.headers.get("Retry-After") or "").strip()
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


def transient_status(response: requests.Response) -> TransientHTTPError | None:
    """The retryable failure an answer is (5xx, or 429 with its ``Retry-After``), or None when it is not one.

    The error's message is a short reason (``HTTP 502``, ``rate limited (429, limit, retry after 1 s)``).
    """
    status = response.status_code
    if status == 429:
        after = retry_after_seconds(response)
        kind = response.headers.get("X-RateLimit-Type") or "limit"  # Zoom names its limit
        reason = f"rate limited (429, {kind}, retry after {after:g} s)" if after is not None else "rate limited (429)"
        return TransientHTTPError(reason, after)
    if status >= 500:
        return TransientHTTPError(f"HTTP {status}")
    return None


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


def token_pages(
    fetch: Callable[[str], dict[str, Any] | None], next_key: str, on_repeat: Callable[[], Exception]
) -> Iterator[dict[str, Any]]:
    """Every answer of a listing paged by a continuation token (``next_page_token``, ``nextPageToken``).

    Args:
        fetch: GETs the page of a token ("" for the first page); None ends the listing (a 404).
        next_key: the answer's key holding the next page's token (empty or absent: the last page).
        on_repeat: the error raised when a token comes back (the listing would never end).
    """
    token = ""
    seen: set[str] = set()  # a token given twice would loop forever
    while True:
        data = fetch(token)
        if data is None:
            return
        yield data
        seen.add(token)
        token = str(data.get(next_key) or "")
        if not token:
            return
        if token in seen:
            raise on_repeat()


def offset_pages(fetch: Callable[[int], list[Any]], page_size: int) -> Iterator[list[Any]]:
    """Every non-empty page of a listing paged by offset, until a page shorter than ``page_size``.

    Args:
        fetch: the page starting at an offset.
        page_size: records a full page holds.
    """
    offset = 0
    while True:
        page = fetch(offset)
        if not page:
            return
        yield page
        if len(page) < page_size:
            return
        offset += page_size


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
