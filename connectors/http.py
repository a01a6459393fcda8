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

import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import pycurl
import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH

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
        headers: the answer's headers (case-insensitive; parsed from the raw header block when first read,
            since most answers are only ever read for their status and body).
        content: the body.
    """

    __slots__ = ("_head", "_headers", "content", "status_code")

    def __init__(self, status_code: int, head: bytes, content: bytes) -> None:
        self.status_code = status_code
        self.content = content
        self._head = head
        self._headers: CaseInsensitiveDict[str] | None = None

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers of the final answer (a repeated name keeps its last value)."""
        if self._headers is None:
            self._headers = CaseInsensitiveDict()
            for line in self._head.decode("latin-1").split("\r\n")[1:]:  # [0] is the status line
                name, sep, value = line.partition(":")
                if sep:
                    self._headers[name.strip()] = value.strip()
        return self._headers


class _Handle:
    """One libcurl easy handle (one kept connection) with the buffers its callbacks fill."""

    __slots__ = ("body", "curl", "head")

    def __init__(self, options: list[tuple[int, Any]]) -> None:
        self.curl = pycurl.Curl()
        self.body: list[bytes] = []
        self.head: list[bytes] = []
        for option, value in options:
            self.curl.setopt(option, value)
        self.curl.setopt(pycurl.WRITEFUNCTION, self.body.append)
        self.curl.setopt(pycurl.HEADERFUNCTION, self._header)

    def _header(self, line: bytes) -> None:
        if line.startswith(b"HTTP/"):  # a new block: keep only the final answer's headers
            self.head.clear()
        self.head.append(line)


class FormPoster:
    """POSTs form bodies to one URL through libcurl (pycurl), with what ``requests`` would send prepared once.

    A ``requests`` call costs the client about 1.5 ms of CPU, urllib3 alone about 0.8 ms and libcurl about
    0.3 ms (keep-alive POST of a 1 KB answer; BENCHMARKS.md, client CPU per call), on every one of a sync's
    tens of thousands of Moodle calls: most of urllib3's share is ``http.client`` parsing headers in Python.
    What ``requests`` would do is still decided once, here, by ``requests`` itself, for a session made by
    :func:`make_session` for ``url`` (the environment read once): the headers it would send (User-Agent,
    Accept, Accept-Encoding, a ``~/.netrc`` or URL login as ``Authorization``, the form Content-Type), the
    proxy it would use (``NO_PROXY`` applied; HTTP, HTTPS or SOCKS, with its login) and the CA bundle it
    would check the site's certificate against (``REQUESTS_CA_BUNDLE``, else certifi's: never the bundle
    libcurl was built with). Each :meth:`post` is then one ``perform`` on a kept handle: keep-alive, HTTP/1.1,
    no retries, no redirect followed (a 3xx is an answer for the caller to refuse), the body read whole and
    decoded by libcurl (gzip, deflate: what Accept-Encoding offers).

    Failures are raised as the ``requests`` exceptions ``requests`` would raise for them, so callers keep one
    vocabulary (:data:`TRANSIENT_EXCEPTIONS`); their messages are libcurl's (host and port, never the URL's
    login or the body). Thread-safe: a post takes a free handle (a new one when none is), so there are as
    many kept connections as posts ever in flight at once.

    Args:
        url: the one URL every post goes to (it may name a login: it becomes a header, as in ``requests``).
        pool_size: handles (connections) expected in flight; more are made on demand.
        timeout: seconds to connect, and seconds without a byte while waiting for or reading the answer.
            The latter is libcurl's low-speed check (under 1 byte/s for that many whole seconds, at least
            one): since libcurl averages the speed over its last 5 s, it fires up to ~6 s late right after
            the request was sent (60 s is 61-66 s; measured: 0.3 s is 4-7 s).
    """

    def __init__(self, url: str, pool_size: int = 4, *, timeout: float = 60.0) -> None:
        self.url = url
        self.pool_size = pool_size
        with make_session(pool_size, url=url) as session:
            prepared = session.prepare_request(requests.Request("POST", url, data=[("", "")]))
            proxy = requests.utils.select_proxy(url, session.proxies)
            verify = session.verify
        headers = {
            key: value if isinstance(value, str) else value.decode("latin-1")
            for key, value in prepared.headers.items()
            if key.lower() != "content-length"
        }
        self._headers = dict(headers)
        encoding = headers.pop("Accept-Encoding", None)
        # libcurl adds Host and Content-Length; an empty "Expect:" stops its 100-continue on large bodies.
        lines = [f"{key}: {value}" for key, value in headers.items()] + ["Expect:"]
        if proxy:  # nor does requests send libcurl's Proxy-Connection (an empty header removes it)
            lines.append("Proxy-Connection:")
        parsed = urllib3.util.parse_url(url)
        target = parsed._replace(auth=None).url  # the login is the Authorization header already
        options: list[tuple[int, Any]] = [
            (pycurl.URL, target),
            (pycurl.HTTPHEADER, lines),
            (pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1),
            (pycurl.NOSIGNAL, 1),
            (pycurl.FOLLOWLOCATION, 0),
            (pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS),
            (pycurl.CONNECTTIMEOUT_MS, max(1, round(timeout * 1000))),
            (pycurl.LOW_SPEED_LIMIT, 1),
            (pycurl.LOW_SPEED_TIME, max(1, math.ceil(timeout))),
            (pycurl.NETRC, pycurl.NETRC_IGNORED),  # requests read ~/.netrc already (into Authorization)
            # "" is no proxy, even if libcurl would find one in the environment (requests applied NO_PROXY).
            (pycurl.PROXY, proxy or ""),
        ]
        if encoding:
            options.append((pycurl.ACCEPT_ENCODING, encoding))
        if verify is False:
            options += [(pycurl.SSL_VERIFYPEER, 0), (pycurl.SSL_VERIFYHOST, 0)]
        else:
            bundle = requests.utils.extract_zipped_paths(DEFAULT_CA_BUNDLE_PATH if verify is True else verify)
            if os.path.isdir(bundle):
                options += [(pycurl.CAPATH, bundle)]
            elif os.path.isfile(bundle):
                options += [(pycurl.CAINFO, bundle), (pycurl.CAPATH, "")]
            else:  # what requests raises for a missing bundle
                raise OSError(f"Could not find a suitable TLS CA certificate bundle, invalid path: {bundle}")
        self._proxied = bool(proxy)
        self._options = options
        self._free: list[_Handle] = [_Handle(options)]
        self._all: list[_Handle] = list(self._free)
        self._lock = threading.Lock()

    @property
    def headers(self) -> dict[str, str]:
        """The headers sent with every post (a copy; libcurl adds Host and Content-Length)."""
        return dict(self._headers)

    def _take(self) -> _Handle:
        with self._lock:
            if self._free:
                return self._free.pop()
        handle = _Handle(self._options)
        with self._lock:
            self._all.append(handle)
        return handle

    def post(self, body: bytes) -> Answer:
        """POST one form-encoded body; the answer, whatever its status.

        Raises:
            requests.ConnectTimeout, requests.ReadTimeout: no connection or no answer in time.
            requests.ConnectionError: refused, reset, cut off, TLS or proxy failure (its subclasses
                ``SSLError``, ``ProxyError``).
            requests.exceptions.ContentDecodingError: a body that does not decode (bad gzip).
        """
        handle = self._take()
        curl = handle.curl
        try:
            curl.setopt(pycurl.POSTFIELDS, body)
            curl.perform()
            return Answer(curl.getinfo(pycurl.RESPONSE_CODE), b"".join(handle.head), b"".join(handle.body))
        except pycurl.error as exc:
            raise _as_requests_error(exc, proxied=self._proxied) from None
        finally:
            handle.body.clear()
            handle.head.clear()
            with self._lock:
                self._free.append(handle)

    def close(self) -> None:
        """Close the kept connections."""
        with self._lock:
            handles, self._all, self._free = self._all, [], []
        for handle in handles:
            handle.curl.close()


#: libcurl's error codes (curl/curl.h), by what ``requests`` raises for the same failure.
_CURL_TIMEOUT = 28
_CURL_PROXY = frozenset({5, 97})  # could not resolve the proxy; a proxy handshake failed
_CURL_SSL = frozenset({35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98})
_CURL_DECODING = frozenset({61})  # bad content encoding (a body that does not gunzip)
_CURL_CONNECT = frozenset({6, 7})  # could not resolve the host; could not connect (refused, unreachable)


def _as_requests_error(exc: pycurl.error, *, proxied: bool) -> requests.RequestException:
    """The exception ``requests`` raises for a libcurl failure (``HTTPAdapter.send``, without retries).

    Its message is libcurl's, naming at most a host and port (the URL given to libcurl holds no login, and
    the token travels only in the body).
    """
    code, text = exc.args if len(exc.args) == 2 else (-1, str(exc))
    message = f"{text} (libcurl error {code})"
    if code == _CURL_TIMEOUT:
        if "too slow" in text:  # the low-speed check: connected, then no byte for the read time-out
            return requests.ReadTimeout(message)
        return requests.ConnectTimeout(message)
    if code in _CURL_PROXY or (proxied and (code in _CURL_CONNECT or "CONNECT" in text or "proxy" in text.lower())):
        return requests.exceptions.ProxyError(message)
    if code in _CURL_SSL:
        return requests.exceptions.SSLError(message)
    if code in _CURL_DECODING:
        return requests.exceptions.ContentDecodingError(message)
    return requests.ConnectionError(message)  # refused, reset, empty reply, cut off (18), the rest


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
