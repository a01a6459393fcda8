"""HTTP plumbing every live connector shares: the session, which answers are transient, paging.

The retry policy itself (:class:`~lms_bridge.retry.RetryPolicy`: backoff, ``Retry-After``) and the ISO
time parser (:func:`~lms_bridge.timeparse.parse_iso_time`) are root leaves of ``lms_bridge``, so the
outbox, the ledger and ``xapi`` use the same ones; this module says which ``requests`` failures and
answers they apply to: connection resets, time-outs and answers cut off in transit
(:data:`TRANSIENT_EXCEPTIONS`), HTTP 5xx, and 429 with its ``Retry-After``. A connector says only how
its failures read: the policy raises :class:`~lms_bridge.errors.RetryableError` when the tries run
out, and each retry is logged once by the connector's ``on_retry`` (with the URL redacted).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from lms_bridge.retry import RetryPolicy, TransientHTTPError, retry_after_seconds
from lms_bridge.timeparse import parse_iso_time

USER_AGENT = "lms-bridge/0.1 (+https://github.com/lms-bridge)"

#: Connectors reach the shared policy and parser through this module too (one import for their plumbing).
__all__ = [
    "TRANSIENT_EXCEPTIONS",
    "USER_AGENT",
    "RetryPolicy",
    "TransientHTTPError",
    "make_session",
    "offset_pages",
    "parse_iso_time",
    "token_pages",
    "transient_status",
]

#: What requests raises for a reset, a time-out or an answer cut off in transit: worth another try.
TRANSIENT_EXCEPTIONS: tuple[type[requests.RequestException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def make_session(pool_size: int = 4, *, url: str | None = None) -> requests.Session:
    """A ``requests.Session`` sized for ``pool_size`` requests in flight, without urllib3 retries.

    Retries are the connector's job (it knows which calls are safe to repeat and
    logs each one once, with the URL redacted); urllib3's own would be invisible.

    With ``url`` (a session that only calls one site), what ``requests`` reads from the
    environment for that URL is read once, here: the proxy (``HTTPS_PROXY``, ``NO_PROXY``...),
    the CA bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) and a ``~/.netrc`` login. By
    default ``requests`` reads them again on every request, scanning the whole environment
    twice: about a third of the client's CPU per Moodle call (BENCHMARKS.md, client CPU per
    call). A change of the environment after the session is made is not seen.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    if url is not None:
        session.proxies.update(requests.utils.get_environ_proxies(url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
        login = requests.utils.get_netrc_auth(url)
        if login:
            session.auth = login
        session.trust_env = False
    return session


def transient_status(response: requests.Response) -> TransientHTTPError | None:
    """The retryable failure an answer is (5xx, or 429 with its ``Retry-After``), or None when it is not one.

    The error's message is a short reason (``HTTP 502``, ``rate limited (429, limit, retry after 1 s)``).
    """
    status = response.status_code
    if status == 429:
        after = retry_after_seconds(response.headers.get("Retry-After"))
        kind = response.headers.get("X-RateLimit-Type") or "limit"  # Zoom names its limit
        reason = f"rate limited (429, {kind}, retry after {after:g} s)" if after is not None else "rate limited (429)"
        return TransientHTTPError(reason, after)
    if status >= 500:
        return TransientHTTPError(f"HTTP {status}")
    return None


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
