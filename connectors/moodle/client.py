"""The Moodle web-service client: REST over POST, JSON or XML, typed errors, retries.

Moodle answers errors as HTTP 200 with an ``exception`` object (JSON) or an
``<EXCEPTION>`` root (XML) (tests/data/README.md, "Errors"): :meth:`check_response`
is the only place where a status or a body becomes an error. The token travels in
the POST body, never in a URL, and never appears in a message or a log line.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import quote_plus

import requests
from lxml import etree
from pydantic import SecretStr

from connectors.http import (
    TRANSIENT_EXCEPTIONS,
    FormPoster,
    HTTPAnswer,
    RetryPolicy,
    TransientHTTPError,
    transient_status,
)
from lms_bridge.errors import FatalSourceError, RetryableError, SkippableRecordError
from lms_bridge.redaction import register_secret, sanitize_url

log = logging.getLogger(__name__)

ENDPOINT = "webservice/rest/server.php"


class MoodleAPIError(FatalSourceError):
    """Raised when Moodle answers an error body; keeps its ``errorcode``.

    Attributes:
        site: the configured site id.
        function: the web-service function called.
        errorcode: Moodle's error code (branch on it, not on the exception class).
    """

    def __init__(self, message: str, *, site: str, function: str, errorcode: str) -> None:
        super().__init__(message)
        self.site = site
        self.function = function
        self.errorcode = errorcode


class MoodleRecordError(MoodleAPIError, SkippableRecordError):
    """Raised for an error about one record (no criteria set, user not enrolled): skip it."""


#: Error codes that concern one record, not the site: the caller skips and goes on.
RECORD_ERRORCODES = frozenset({"nocriteriaset", "usernotenroled", "invalidrecord"})
#: What an operator should do about site-level error codes.
ERROR_HINTS = {
    "invalidtoken": "the token is wrong or was revoked: create a new one and update the token variable",
    "accessexception": "the function is not in the token's external service: add it (lms-bridge sites test lists them)",
    "invalidparameter": "Moodle refused a parameter (turn on site debugging to see which)",
    "errorcoursecontextnotvalid": "the token's user cannot access this course",
    "requireloginerror": "the token's user cannot access this course",
    "servicerequireslogin": "the token's user is suspended or cannot log in",
    "nopermissions": "the token's user lacks the capability named above; lms-bridge reads the whole site: give "
    "the token's user the Manager role at system level (Site administration > Users > Permissions > "
    "Assign system roles > Manager), which holds moodle/course:view, or see docs/moodle-setup.md",
    "tagsaredisabled": "cop_forums.course_tags needs Moodle's tags: turn on Site administration > General > "
    "Advanced features > Enable tags functionality (usetags)",
    "redirect": "lms-bridge does not follow a redirect, which would drop or move the token: set the site's url "
    "to the address Moodle answers on (the one redirected to, without /webservice/rest/server.php)",
    "http403": "turn on Site administration > General > Advanced features > Enable web services, and "
    "Site administration > Server > Web services > Manage protocols > REST (docs/moodle-setup.md)",
}


#: What ``quote_plus`` leaves as it is: a value made only of these is its own encoding.
_FORM_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


@functools.lru_cache(maxsize=4096)
def _form_key(key: str) -> str:
    return quote_plus(key)


def form_body(pairs: list[tuple[str, str]]) -> bytes:
    """The form body ``urllib.parse.urlencode`` (and so ``requests``) makes of ``pairs``, for less CPU.

    Keys (``options[0][name]``...) recur on every call: their encoding is remembered. Values that are
    numbers or plain words, most of them, need none. The rest go through ``quote_plus`` (UTF-8).
    """
    safe = _FORM_SAFE.fullmatch
    return "&".join(f"{_form_key(key)}={value if safe(value) else quote_plus(value)}" for key, value in pairs).encode(
        "ascii"
    )


def encode_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Encode parameters in PHP form syntax: ``options[0][name]=limitfrom``, ``values[0]=..``.

    Booleans become ``1``/``0`` as Moodle expects.
    """
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}[{key}]", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)
        elif isinstance(value, bool):
            pairs.append((prefix, "1" if value else "0"))
        elif value is not None:
            pairs.append((prefix, str(value)))

    for key, value in params.items():
        walk(key, value)
    return pairs


def _xml_value(element: etree._Element) -> Any:
    tag = element.tag
    if tag == "VALUE":
        return None if element.get("null") == "null" else (element.text or "")
    if tag == "MULTIPLE":
        return [_xml_value(child) for child in element if isinstance(child.tag, str)]
    if tag == "SINGLE":
        result: dict[str, Any] = {}
        for key in element:
            if key.tag != "KEY":
                continue
            children = [child for child in key if isinstance(child.tag, str)]
            result[key.get("name")] = _xml_value(children[0]) if children else None
        return result
    raise ValueError(f"unexpected element <{tag}>")


def parse_xml(body: bytes) -> Any:
    """Parse a Moodle REST XML body into Python values (strings, lists, dicts, None).

    An ``<EXCEPTION>`` root becomes ``{"exception", "errorcode", "message"[, "debuginfo"]}``,
    the JSON error shape, so one check handles both formats.
    """
    root = etree.fromstring(body, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    if root.tag == "EXCEPTION":
        error = {
            "exception": root.get("class"),
            "errorcode": root.findtext("ERRORCODE") or "",
            "message": root.findtext("MESSAGE") or "",
        }
        if root.find("DEBUGINFO") is not None:
            error["debuginfo"] = root.findtext("DEBUGINFO") or ""
        return error
    if root.tag != "RESPONSE":
        raise ValueError(f"unexpected root <{root.tag}>")
    children = [child for child in root if isinstance(child.tag, str)]
    return _xml_value(children[0]) if children else None


class MoodleClient:
    """Calls one Moodle site's REST web services.

    Thread-safe: several threads may call at once; at most ``max_in_flight``
    requests are on the wire toward the site at any time.

    Args:
        site: the configured site id (for messages).
        url: the site's wwwroot, e.g. ``https://lms.example.go.id``.
        token: the web-service token.
        fmt: ``json`` (default) or ``xml``; both parse to the same records.
        timeout: seconds per request.
        max_in_flight: requests in flight toward this site.
        max_retries: retries of a transient failure before giving up.
        backoff_base: first wait between retries in seconds (doubles, capped at 30 s).
        call_slot: optional factory of a context manager held around each HTTP request, on top
            of ``max_in_flight`` (distributed workers pass one that shares the site's limit
            across processes: :func:`lms_bridge.runtime.distributed.request_slot`).
    """

    def __init__(
        self,
        site: str,
        url: str,
        token: SecretStr,
        *,
        fmt: str = "json",
        timeout: float = 60.0,
        max_in_flight: int = 4,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        call_slot: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        if fmt not in ("json", "xml"):
            raise ValueError("fmt must be json or xml")
        self.site = site
        self.url = url.rstrip("/")
        self.endpoint = f"{self.url}/{ENDPOINT}"
        self._token = token
        register_secret(token.get_secret_value())
        self.fmt = fmt
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        # urllib3 directly, with what requests would send prepared once (connectors.http.FormPoster).
        self.http = FormPoster(self.endpoint, max_in_flight, timeout=timeout)
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self.call_slot = call_slot
        self._lock = threading.Lock()
        #: Calls made per function (for run summaries and benchmarks).
        self.calls: dict[str, int] = {}
        #: Response bytes received.
        self.bytes_received = 0

    def close(self) -> None:
        """Close the site's kept connections."""
        self.http.close()

    def __enter__(self) -> MoodleClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _where(self, function: str) -> str:
        """The prefix of an error about one call: site, URL (secrets masked) and function."""
        return f"Moodle site {self.site} ({sanitize_url(self.url)}) {function}"

    def check_response(self, function: str, response: HTTPAnswer) -> Any:
        """Turn one HTTP response into data or a typed error.

        Raises:
            RetryableError: 5xx/429, or a body that does not parse (a proxy page or a
                PHP time-out that cut the response).
            MoodleRecordError: an error about one record (``nocriteriaset``...).
            MoodleAPIError: any other Moodle error (``invalidtoken``...).
        """
        # The error prefix (sanitize_url) is built only when there is an error, not on every call.
        transient = transient_status(response)
        if transient is not None:
            raise TransientHTTPError(f"{self._where(function)}: HTTP {response.status_code}", transient.retry_after)
        if response.status_code == 403 and not response.content.strip():
            # Moodle's answer when web services or the REST protocol are off: an empty 403.
            raise MoodleAPIError(
                f"{self._where(function)}: HTTP 403 with an empty body: web services or the REST protocol are "
                f"switched off ({ERROR_HINTS['http403']})",
                site=self.site,
                function=function,
                errorcode="http403",
            )
        if 300 <= response.status_code < 400:
            # Not followed: a POST redirected loses its body (the token) or carries it to another address.
            location = sanitize_url(response.headers.get("Location") or "nowhere")
            raise MoodleAPIError(
                f"{self._where(function)}: HTTP {response.status_code}: the site redirects to {location} "
                f"({ERROR_HINTS['redirect']})",
                site=self.site,
                function=function,
                errorcode=f"http{response.status_code}",
            )
        if response.status_code != 200:
            raise MoodleAPIError(
                f"{self._where(function)}: HTTP {response.status_code}",
                site=self.site,
                function=function,
                errorcode=f"http{response.status_code}",
            )
        try:
            data = json.loads(response.content) if self.fmt == "json" else parse_xml(response.content)
        except (ValueError, RecursionError, etree.XMLSyntaxError) as exc:
            raise RetryableError(
                f"{self._where(function)}: the response is not complete {self.fmt.upper()} "
                f"({len(response.content)} bytes; cut by a time-out or a proxy?)"
            ) from exc
        if isinstance(data, dict) and "exception" in data and "errorcode" in data:
            code = str(data.get("errorcode") or "")
            message = str(data.get("message") or "").strip()
            hint = ERROR_HINTS.get(code)
            text = f"{self._where(function)}: {code}: {message}" + (f" ({hint})" if hint else "")
            error_class = MoodleRecordError if code in RECORD_ERRORCODES else MoodleAPIError
            raise error_class(text, site=self.site, function=function, errorcode=code)
        return data

    def _post(self, function: str, params: Mapping[str, Any]) -> Any:
        # The form body requests would make of these pairs (UTF-8, quote_plus); the token only in it.
        body = form_body(
            [
                ("wstoken", self._token.get_secret_value()),
                ("wsfunction", function),
                ("moodlewsrestformat", self.fmt),
                *encode_params(params),
            ]
        )
        with self._slots, self.call_slot() if self.call_slot else nullcontext():
            try:
                response = self.http.post(body)
            except requests.Timeout as exc:
                raise RetryableError(f"{self._where(function)}: no answer within {self.timeout:g} s") from exc
            except TRANSIENT_EXCEPTIONS as exc:
                raise RetryableError(f"{self._where(function)}: connection failed or was reset") from exc
        with self._lock:
            self.calls[function] = self.calls.get(function, 0) + 1
            self.bytes_received += len(response.content)
        return self.check_response(function, response)

    def call(self, function: str, **params: Any) -> Any:
        """Call a web-service function; retry transient failures with backoff.

        Retrying is safe: every function lms-bridge calls only reads.

        Raises:
            RetryableError: still failing after ``max_retries`` retries.
            MoodleAPIError, MoodleRecordError: Moodle refused the call.
        """
        policy = RetryPolicy(attempts=self.max_retries + 1, backoff_base=self.backoff_base, backoff_cap=30.0)

        def on_retry(exc: RetryableError, attempt: int, delay: float) -> None:
            log.warning(
                "%s; retry %d of %d in %.1f s", exc, attempt, self.max_retries, delay, extra={"site": self.site}
            )

        return policy.run(lambda: self._post(function, params), on_retry=on_retry)
