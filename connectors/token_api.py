"""HTTP APIs behind a short-lived bearer token (Zoom Reports, Google Classroom).

:class:`TokenApiClient` does what both need the same way: cache the access token until a
minute before it expires, fetch a new one once on a 401, retry resets, time-outs, cut-off
answers, 5xx and 429 (after ``Retry-After``) with backoff, count calls per endpoint, and turn
every failure into one sentence naming the source (never a token: each is registered with
the log redactor the moment it arrives). A subclass says how to ask for a token and how the
platform words its refusals.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests

from connectors.base import backoff_delay, make_session
from lms_bridge.errors import FatalSourceError, RetryableError
from lms_bridge.redaction import register_secret

log = logging.getLogger(__name__)


class ApiSettings(Protocol):
    """The settings keys :class:`TokenApiClient` reads (both connectors' settings models have them)."""

    id: str
    timeout: float
    max_attempts: int
    backoff_base: float
    backoff_cap: float
    max_retry_after: float


def retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds to wait from ``Retry-After``: a number, an HTTP date or (Zoom) an ISO date-time."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def strict_json(response: requests.Response) -> Any:
    """``response.json()``, refusing (ValueError) an answer holding a lone surrogate escape.

    JSON allows it, but no UTF-8 text can hold it: the statement id, the pseudonym and the
    database would each fail on it far from here, so the answer is refused where it is read.
    """
    data = response.json()
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError is a ValueError
    return data


class TokenApiClient:
    """GETs to an API with a cached bearer token, retries and call counts.

    Subclasses set :attr:`platform` (how errors name the API), :attr:`url_hint` (the settings to
    check when a URL is unusable), :attr:`auth_call`, and implement :meth:`request_token`,
    :meth:`token_refused` and :meth:`refusal`.
    """

    platform = "the API"
    url_hint = "the source's URLs"
    #: The call-count name of the token request.
    auth_call = "token"

    def __init__(
        self,
        settings: ApiSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self.session = session or make_session(pool_size=2)
        self.calls: Counter[str] = Counter()
        self._token: str | None = None
        self._expires = 0.0

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    # --- what a platform says ----------------------------------------------------------------------

    def request_token(self) -> requests.Response:
        """Ask for a new access token (through :meth:`send`); the answer is checked here."""
        raise NotImplementedError

    def token_refused(self, response: requests.Response) -> str:
        """The sentence for a token request the platform refused."""
        raise NotImplementedError

    def refusal(self, response: requests.Response) -> str:
        """The platform's own words for a refused request, briefly (its error code and message)."""
        raise NotImplementedError

    # --- the token ---------------------------------------------------------------------------------

    def access_token(self) -> str:
        """The cached token, or a new one (refreshed a minute early: one that expires in flight is a wasted call)."""
        if self._token is not None and time.monotonic() < self._expires:
            return self._token
        response = self.request_token()
        if response.status_code != 200:
            raise FatalSourceError(self.token_refused(response))
        data = self.answer(response, self.auth_call)
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise FatalSourceError(f"source {self.settings.id}: {self.platform}'s token answer has no access_token")
        register_secret(token)
        expires_in = data.get("expires_in") if isinstance(data.get("expires_in"), int) else 3600
        self._token, self._expires = token, time.monotonic() + max(0, expires_in - 60)
        return token

    # --- requests ----------------------------------------------------------------------------------

    def get(self, endpoint: str, url: str, params: Any = None, *, missing_ok: bool = False) -> dict[str, Any] | None:
        """GET ``url`` with the token; None for a 404 when ``missing_ok``.

        Raises:
            FatalSourceError: the platform refused the request (names the endpoint and its words).
            RetryableError: it kept failing (5xx, resets, 429) for ``max_attempts`` tries.
        """
        refreshed = False
        while True:
            headers = {"Authorization": f"Bearer {self.access_token()}"}
            response = self.send(
                endpoint,
                lambda headers=headers: self.session.get(  # type: ignore[misc]
                    url, params=params, headers=headers, timeout=self.settings.timeout
                ),
            )
            if response.status_code == 401 and not refreshed:
                # An expired or revoked token: fetch a new one, once.
                log.info(
                    "%s: %s answered 401 to %s: fetching a new access token",
                    self.settings.id,
                    self.platform,
                    endpoint,
                    extra={"site": self.settings.id},
                )
                self._token = None
                refreshed = True
                continue
            if response.status_code == 404 and missing_ok:
                return None
            if response.status_code != 200:
                raise FatalSourceError(
                    f"source {self.settings.id}: {self.platform} refused {endpoint} (HTTP "
                    f"{response.status_code}, {self.refusal(response)})"
                )
            data = self.answer(response, endpoint)
            if not isinstance(data, dict):
                raise FatalSourceError(
                    f"source {self.settings.id}: {self.platform}'s answer to {endpoint} is not an object"
                )
            return data

    def send(self, endpoint: str, call: Callable[[], requests.Response]) -> requests.Response:
        """Run ``call``, retrying resets, 5xx and 429 (after ``Retry-After``), at most ``max_attempts`` times."""
        settings = self.settings
        for attempt in range(1, settings.max_attempts + 1):
            self.calls[endpoint] += 1
            problem: str
            wait = backoff_delay(attempt, settings.backoff_base, settings.backoff_cap)
            try:
                response = call()
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as exc:  # resets, time-outs, cut-off answers
                problem = f"no answer ({exc.__class__.__name__})"
            except requests.RequestException as exc:  # a URL requests cannot use: retrying will not help
                raise FatalSourceError(
                    f"source {settings.id}: cannot call {endpoint} ({exc.__class__.__name__}): check {self.url_hint}"
                ) from None
            else:
                if response.status_code == 429:
                    after = retry_after_seconds(response)
                    kind = response.headers.get("X-RateLimit-Type") or "limit"  # Zoom names its limit
                    problem = (
                        f"rate limited (429, {kind}, retry after {after:g} s)"
                        if after is not None
                        else ("rate limited (429)")
                    )
                    if after is not None:
                        if after > settings.max_retry_after:
                            raise RetryableError(
                                f"source {settings.id}: {self.platform} rate-limits {endpoint} for "
                                f"{after:.0f} s more (longer than max_retry_after); the next sync "
                                "goes on"
                            )
                        wait = after
                elif response.status_code >= 500:
                    problem = f"HTTP {response.status_code}"
                else:
                    return response
            if attempt == settings.max_attempts:
                raise RetryableError(
                    f"source {settings.id}: {self.platform} kept failing on {endpoint} ({problem}) "
                    f"after {attempt} tries; the cursor keeps its place"
                )
            log.warning(
                "%s: %s %s: %s; retry %d in %.1f s",
                settings.id,
                self.platform,
                endpoint,
                problem,
                attempt,
                wait,
                extra={"site": settings.id},
            )
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def answer(self, response: requests.Response, endpoint: str) -> Any:
        """The answer's JSON, or one sentence when it is not JSON (or not UTF-8 text)."""
        try:
            return strict_json(response)
        except ValueError:
            raise FatalSourceError(
                f"source {self.settings.id}: {self.platform}'s answer to {endpoint} is not JSON "
                f"(HTTP {response.status_code})"
            ) from None
