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
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3 import exceptions as u3

from lms_bridge.retry import RetryPolicy, TransientHTTPError, retry_after_seconds
from lms_bridge.timeparse import parse_iso_time

USER_AGENT = "lms-bridge/0.1 (+https://github.com/lms-bridge)"

#: Connectors reach the shared policy and parser through this module too (one import for their plumbing).
__all__ = [
    "TRANSIENT_EXCEPTIONS",
    "USER_AGENT",
    "Answer",
    "FormPoster",
    "HTTPAnswer",
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


class HTTPAnswer(Protocol):
    """What the checks of an answer read: a ``requests.Response`` and an :class:`Answer` both are one."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The answer's headers, case-insensitive."""
        ...

    @property
    def content(self) -> bytes:
        """The whole body, decoded."""
        ...


class Answer:
    """An HTTP answer read whole (the body decoded from gzip or deflate): what :class:`FormPoster` returns.

    Attributes:
        status_code: the HTTP status.
        headers: the answer's headers (case-insensitive, as urllib3 gives them).
        content: the body.
    """

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content


class FormPoster:
    """POSTs form bodies to one URL through urllib3's connection pool directly, without ``requests`` per call.

    A ``requests`` call costs the client about 0.4 ms of CPU more than urllib3 alone (request preparation,
    hooks, cookie jar, response wrapping: BENCHMARKS.md, client CPU per call), on every one of a sync's tens
    of thousands of Moodle calls. What ``requests`` would do is done once, here, by ``requests`` itself, for
    a session made by :func:`make_session` for ``url`` (the environment read once): the headers it would send
    (User-Agent, Accept-Encoding, a ``~/.netrc`` or URL login as ``Authorization``, the form Content-Type),
    the connection pool its adapter would pick (a proxy's, SOCKS too, with its ``Proxy-Authorization``; the CA
    bundle and certificate checks) and the request target (the full URL through a plain HTTP proxy). Each
    :meth:`post` is then one ``urlopen`` on that pool: keep-alive, no urllib3 retries, no redirect followed
    (a 3xx is an answer for the caller to refuse), the body read whole and decoded.

    Failures are raised as the ``requests`` exceptions ``requests`` itself would raise for them, so callers
    keep one vocabulary (:data:`TRANSIENT_EXCEPTIONS`). Thread-safe: urllib3's pool is.

    Args:
        url: the one URL every post goes to (it may name a login: it becomes a header, as in ``requests``).
        pool_size: connections kept open (requests in flight).
        timeout: seconds to connect, and seconds without a byte while reading the answer.
    """

    def __init__(self, url: str, pool_size: int = 4, *, timeout: float = 60.0) -> None:
        self.url = url
        self._session = make_session(pool_size, url=url)
        prepared = self._session.prepare_request(requests.Request("POST", url, data=[("", "")]))
        adapter = self._session.get_adapter(url)
        assert isinstance(adapter, HTTPAdapter)  # noqa: S101 - make_session mounts only HTTPAdapters
        proxies = self._session.proxies
        verify = self._session.verify
        self._pool = adapter.get_connection_with_tls_context(prepared, verify, proxies=proxies)
        adapter.cert_verify(self._pool, url, verify, None)
        self._target = adapter.request_url(prepared, proxies)
        self._headers = {
            key: value if isinstance(value, str) else value.decode("latin-1")
            for key, value in prepared.headers.items()
            if key.lower() != "content-length"
        }
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)

    @property
    def headers(self) -> dict[str, str]:
        """The headers sent with every post (a copy; urllib3 adds Host and Content-Length)."""
        return dict(self._headers)

    def post(self, body: bytes) -> Answer:
        """POST one form-encoded body; the answer, whatever its status.

        Raises:
            requests.ConnectTimeout, requests.ReadTimeout: no connection or no answer in time.
            requests.ConnectionError: refused, reset, cut off, TLS or proxy failure (its subclasses
                ``SSLError``, ``ProxyError``).
            requests.exceptions.ContentDecodingError: a body that does not decode (bad gzip).
        """
        try:
            response = self._pool.urlopen(
                "POST",
                self._target,
                body=body,
                headers=self._headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=self._timeout,
                preload_content=True,
                decode_content=True,
            )
        except u3.HTTPError as exc:
            raise _as_requests_error(exc) from exc
        except OSError as exc:  # urllib3 wraps these; a bare one is still a connection failure
            raise requests.ConnectionError(exc) from exc
        return Answer(response.status, response.headers, response.data)

    def close(self) -> None:
        """Close the kept connections."""
        self._pool.close()
        self._session.close()


def _as_requests_error(exc: u3.HTTPError) -> requests.RequestException:
    """The exception ``requests`` raises for a urllib3 failure (``HTTPAdapter.send``, without urllib3 retries)."""
    if isinstance(exc, u3.NewConnectionError):  # a subclass of ConnectTimeoutError, but a refusal
        return requests.ConnectionError(exc)
    if isinstance(exc, u3.ConnectTimeoutError):
        return requests.ConnectTimeout(exc)
    if isinstance(exc, u3.ReadTimeoutError):
        return requests.ReadTimeout(exc)
    if isinstance(exc, u3.ProxyError):
        return requests.exceptions.ProxyError(exc)
    if isinstance(exc, u3.SSLError):
        return requests.exceptions.SSLError(exc)
    if isinstance(exc, u3.DecodeError):
        return requests.exceptions.ContentDecodingError(exc)
    return requests.ConnectionError(exc)  # ProtocolError (reset, cut off), ClosedPoolError, the rest


def transient_status(response: HTTPAnswer) -> TransientHTTPError | None:
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
