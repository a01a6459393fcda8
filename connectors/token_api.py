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
from typing import Any, Protocol

import requests

from connectors.base import Check
from connectors.http import (
    TRANSIENT_EXCEPTIONS,
    RetryPolicy,
    TransientHTTPError,
    make_session,
    transient_status,
)
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
        """Run ``call`` under the retry policy (:class:`~connectors.http.RetryPolicy`), ``max_attempts`` tries."""
        settings = self.settings

        def attempt() -> requests.Response:
            self.calls[endpoint] += 1
            try:
                response = call()
            except TRANSIENT_EXCEPTIONS as exc:  # resets, time-outs, cut-off answers
                raise TransientHTTPError(f"no answer ({exc.__class__.__name__})") from None
            except requests.RequestException as exc:  # a URL requests cannot use: retrying will not help
                raise FatalSourceError(
                    f"source {settings.id}: cannot call {endpoint} ({exc.__class__.__name__}): check {self.url_hint}"
                ) from None
            failure = transient_status(response)
            if failure is not None:
                raise failure
            return response

        def on_retry(problem: RetryableError, number: int, wait: float) -> None:
            log.warning(
                "%s: %s %s: %s; retry %d in %.1f s",
                settings.id,
                self.platform,
                endpoint,
                problem,
                number,
                wait,
                extra={"site": settings.id},
            )

        def gave_up(problem: RetryableError, tries: int) -> RetryableError:
            return RetryableError(
                f"source {settings.id}: {self.platform} kept failing on {endpoint} ({problem}) "
                f"after {tries} tries; the cursor keeps its place"
            )

        def too_long(problem: RetryableError, after: float) -> RetryableError:
            return RetryableError(
                f"source {settings.id}: {self.platform} rate-limits {endpoint} for "
                f"{after:.0f} s more (longer than max_retry_after); the next sync goes on"
            )

        policy = RetryPolicy(
            attempts=settings.max_attempts,
            backoff_base=settings.backoff_base,
            backoff_cap=settings.backoff_cap,
            max_retry_after=settings.max_retry_after,
            sleep=self._sleep,
        )
        return policy.run(attempt, on_retry=on_retry, gave_up=gave_up, too_long=too_long)

    def answer(self, response: requests.Response, endpoint: str) -> Any:
        """The answer's JSON, or one sentence when it is not JSON (or not UTF-8 text)."""
        try:
            return strict_json(response)
        except ValueError:
            raise FatalSourceError(
                f"source {self.settings.id}: {self.platform}'s answer to {endpoint} is not JSON "
                f"(HTTP {response.status_code})"
            ) from None


def probe(
    name: str,
    client: TokenApiClient,
    listing: Callable[[], str],
    *,
    token_fix: str,
    listing_fix: Callable[[str], str],
) -> Check:
    """A token API's self-check: a token, then one listing the sync needs (what ``doctor`` shows).

    Args:
        name: what is checked (``zoom_api zoom-bkd``).
        client: the source's client (closed here).
        listing: makes the one listing call; returns what it found, one phrase.
        token_fix: what to fix when the platform refuses the token request (credentials, scopes).
        listing_fix: what to fix when it refuses the listing, from the refusal's sentence.
    """
    try:
        try:
            client.access_token()
        except FatalSourceError as exc:
            return Check(name, False, str(exc), token_fix)
        try:
            found = listing()
        except FatalSourceError as exc:
            return Check(name, False, str(exc), listing_fix(str(exc)))
    except RetryableError as exc:
        return Check(name, False, str(exc), f"check {client.url_hint} and that this machine reaches {client.platform}")
    finally:
        client.close()
    return Check(name, True, f"{client.platform} issued a token; {found}")
