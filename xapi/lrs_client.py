"""A small xAPI LRS client: one ``requests.Session``, batches apart from transport.

Retry scope: :meth:`LRSClient.post_statements` never retries by itself; it raises
:class:`~lms_bridge.errors.RetryableError` (for a 429, a :class:`~lms_bridge.retry.TransientHTTPError`
with the ``Retry-After`` wait) and the outbox decides, with the backoff of :mod:`lms_bridge.retry`. Re-posting a
batch is safe because statement ids are deterministic and bodies byte-stable: for
a statement it already holds an LRS answers 204 (Ralph) or 409 (ADL's LRS, for any
id it holds; xAPI 1.0.3 allows both), and :meth:`LRSClient.compare_held` tells a
409 for our own statement from a real conflict by reading it back
(:mod:`xapi.compare`). Credentials and statement bodies are never logged.

Usage::

    with LRSClient("http://127.0.0.1:8100/xAPI/", "user", password) as lrs:
        stored = lrs.post_statements([built.body for built in statements])
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urljoin

import requests
from pydantic import SecretStr

from lms_bridge.errors import (
    LRSAuthError,
    LRSConflictError,
    LRSError,
    LRSRejectedError,
    LRSServerError,
    RetryableError,
)
from lms_bridge.redaction import sanitize_url
from lms_bridge.retry import TransientHTTPError, retry_after_seconds
from xapi.compare import digest, first_difference

log = logging.getLogger(__name__)

XAPI_VERSION = "1.0.3"
#: The versions lms-bridge can write (``[lrs] version``; docs/lrs.md, "Choosing the xAPI version").
XAPI_VERSIONS = ("1.0.3", "2.0.0")
#: How much of an LRS error body is kept in a message (Ralph's 422 bodies can be long).
_MAX_DETAIL = 300


@dataclass(frozen=True)
class PostResult:
    """The LRS's answer to a POST that succeeded.

    Attributes:
        status: 200 (some stored) or 204 (all already stored, same content).
        stored_ids: the ids the LRS says it stored now (empty on 204).
    """

    status: int
    stored_ids: tuple[str, ...]


@dataclass(frozen=True)
class HeldStatement:
    """What the LRS holds under a statement id, compared with what we sent.

    Attributes:
        outcome: ``same`` (the LRS holds our statement, voided or not), ``different``
            (another statement has the id) or ``absent`` (the LRS shows none).
        detail: for ``different``, one sentence with the first differing property and
            both bodies' digests (no values: they may be personal data).
    """

    outcome: Literal["same", "different", "absent"]
    detail: str = ""


def _detail(response: requests.Response) -> str:
    try:
        payload = response.json()
        detail = payload.get("detail", payload) if isinstance(payload, dict) else payload
        text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    except ValueError:
        text = response.text
    text = " ".join(text.split())
    return text[:_MAX_DETAIL] + ("..." if len(text) > _MAX_DETAIL else "")


class LRSClient:
    """Posts and reads statements on one xAPI endpoint.

    Args:
        url: the xAPI endpoint, e.g. ``http://127.0.0.1:8100/xAPI/``.
        username: Basic-auth user.
        password: Basic-auth password (kept as a ``SecretStr``).
        timeout: seconds for one request (connect and read).
        version: the ``X-Experience-API-Version`` sent on every request (``1.0.3`` or ``2.0.0``);
            ``auto`` sends 2.0.0 when the LRS's ``about`` lists it, else 1.0.3 (see :meth:`negotiate`).
    """

    def __init__(
        self,
        url: str,
        username: str,
        password: SecretStr | str,
        *,
        timeout: float = 30.0,
        version: str = XAPI_VERSION,
    ) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.statements_url = urljoin(self.url, "statements")
        self.timeout = timeout
        secret = password if isinstance(password, SecretStr) else SecretStr(password)
        #: The session holds the credentials; never log ``session.auth``.
        self.session = requests.Session()
        self.session.auth = (username, secret.get_secret_value())
        self.session.headers.update({"X-Experience-API-Version": XAPI_VERSION, "Content-Type": "application/json"})
        self.configured_version = version
        self._negotiated = version != "auto"
        if version != "auto":
            self.session.headers["X-Experience-API-Version"] = version

    @property
    def version(self) -> str:
        """The xAPI version this client speaks (``auto`` is resolved on first use, see :meth:`negotiate`)."""
        if not self._negotiated:
            self.negotiate()
        return str(self.session.headers["X-Experience-API-Version"])

    def negotiate(self) -> str:
        """Resolve ``version = "auto"``: 2.0.0 when ``about`` lists it, else 1.0.3 (no ``about``: Ralph).

        Only the header follows: statement content never depends on which LRS answered
        (docs/lrs.md, "Choosing the xAPI version").
        """
        if not self._negotiated:
            about = self.about()
            versions = [str(v) for v in (about or {}).get("version", [])]
            self.session.headers["X-Experience-API-Version"] = "2.0.0" if "2.0.0" in versions else XAPI_VERSION
            self._negotiated = True
        return str(self.session.headers["X-Experience-API-Version"])

    def __enter__(self) -> LRSClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        where = f"the LRS at {sanitize_url(self.url)}"
        if not self._negotiated and not url.endswith("/about"):
            self.negotiate()
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise RetryableError(f"{where} did not answer within {self.timeout:g} s") from exc
        except requests.ConnectionError as exc:
            raise RetryableError(f"{where} cannot be reached (connection failed)") from exc
        except requests.RequestException as exc:
            raise LRSError(f"request to {where} failed: {exc.__class__.__name__}") from exc

    def _raise_for(self, response: requests.Response) -> None:
        status = response.status_code
        if status in (200, 204):
            return
        where = f"the LRS at {sanitize_url(self.url)}"
        if status in (401, 403):
            raise LRSAuthError(
                f"{where} refused the credentials (HTTP {status}): check [lrs] username and the password"
            )
        if status == 409:
            raise LRSConflictError(_detail(response))
        if status in (400, 413, 422):
            raise LRSRejectedError(f"HTTP {status}: {_detail(response)}")
        if status >= 500:
            raise LRSServerError(f"{where} answered HTTP {status}", status=status, detail=_detail(response))
        if status == 429:
            # The wait the LRS asks for, read by the one retry policy's rules (lms_bridge.retry).
            raise TransientHTTPError(
                f"{where} answered HTTP {status}", retry_after_seconds(response.headers.get("Retry-After"))
            )
        raise LRSError(f"{where} answered HTTP {status}: {_detail(response)}")

    def post_statements(self, bodies: Sequence[str]) -> PostResult:
        """POST statements (canonical JSON texts) as one batch.

        Raises:
            RetryableError: timeout, connection failure, 429 or 5xx (safe to re-post); for a 5xx
                it is an :class:`~lms_bridge.errors.LRSServerError` carrying the LRS's answer.
            LRSConflictError: 409, the LRS holds one of these ids (the same statement or
                another: :meth:`compare_held` tells which).
            LRSRejectedError: 400/413/422, the LRS refused something in the batch.
            LRSAuthError: 401/403.
        """
        if not bodies:
            return PostResult(status=204, stored_ids=())
        payload = ("[" + ",".join(bodies) + "]").encode("utf-8")
        response = self._request("POST", self.statements_url, data=payload)
        self._raise_for(response)
        if response.status_code == 204 or not response.content:
            return PostResult(status=response.status_code, stored_ids=())
        try:
            ids = response.json()
        except ValueError:
            ids = []
        return PostResult(status=response.status_code, stored_ids=tuple(str(i) for i in ids if isinstance(i, str)))

    def get_statement(self, statement_id: str, *, voided: bool = False) -> dict[str, Any] | None:
        """Return one statement by id, or None when the LRS does not hold it.

        Ralph answers ``{"statements": [...]}`` and 200 with an empty list for an
        unknown id (docs/lrs.md §3); a conformant LRS answers the bare statement
        or 404. Both are handled. A conformant LRS hides a voided statement from
        ``statementId``; ``voided=True`` asks with ``voidedStatementId`` instead.
        """
        key = "voidedStatementId" if voided else "statementId"
        response = self._request("GET", self.statements_url, params={key: statement_id})
        if response.status_code == 404:
            return None
        self._raise_for(response)
        payload = response.json()
        if isinstance(payload, dict) and "statements" in payload:
            found = payload["statements"]
            payload = found[0] if found else None
        # Only the statement asked for: Ralph 5.1.0 ignores voidedStatementId and answers a page
        # of every statement, whose first one is some other statement.
        if isinstance(payload, dict) and str(payload.get("id", "")).lower() == statement_id.lower():
            return payload
        return None

    def compare_held(self, body: str) -> HeldStatement:
        """Read back the statement the LRS holds under ``body``'s id and compare it with ``body``.

        Looks with ``statementId``, then with ``voidedStatementId`` (a conformant LRS hides
        a voided statement from the first). Ralph, which does not hide voided statements,
        may refuse the second parameter: that counts as "not held".

        Raises:
            RetryableError: timeout, connection failure, 429 or 5xx.
            LRSAuthError: 401/403 (the user cannot read statements).
        """
        sent = json.loads(body)
        statement_id = str(sent.get("id"))
        held = self.get_statement(statement_id)
        if held is None:
            try:
                held = self.get_statement(statement_id, voided=True)
            except LRSRejectedError:
                held = None
        if held is None:
            return HeldStatement("absent")
        where = first_difference(sent, held)
        if where is None:
            return HeldStatement("same")
        return HeldStatement(
            "different",
            f"the LRS holds a different statement with id {statement_id} (first difference: {where}; "
            f"sent {digest(sent)}, stored {digest(held)})",
        )

    def about(self) -> dict[str, Any] | None:
        """GET ``about``: the LRS's xAPI versions, or None when it has no such resource.

        A conformant LRS answers ``{"version": ["1.0.3", ...]}``; Ralph 5.1.0 answers 404
        (docs/lrs.md §3).

        Raises:
            RetryableError: timeout, connection failure, 429 or 5xx.
            LRSAuthError: 401/403.
        """
        response = self._request("GET", urljoin(self.url, "about"))
        status = response.status_code
        if status in (401, 403, 429) or status >= 500 and status != 501:
            self._raise_for(response)
        if status != 200:
            return None
        try:
            payload = response.json()
        except ValueError:
            return None
        return payload if isinstance(payload, dict) and isinstance(payload.get("version"), list) else None

    def get_statements_page(self, more: str | None = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET one page of statements: the first (``params``) or the one a ``more`` link names.

        One request, no retry (reading is safe to repeat: the caller decides).

        Args:
            more: the ``more`` link of the previous page (relative or absolute), or None.
            params: query parameters of the first page (ignored with ``more``).

        Returns:
            The StatementResult object (``statements`` and maybe ``more``).

        Raises:
            RetryableError: timeout, connection failure, 429 or 5xx.
            LRSAuthError: 401/403.
            LRSError: any other refusal, or a body that is not a StatementResult in JSON.
        """
        url = urljoin(self.url, more) if more else self.statements_url
        response = self._request("GET", url, params=None if more else dict(params or {}))
        self._raise_for(response)
        try:
            page = response.json()
        except ValueError:
            page = None
        if not isinstance(page, dict) or not isinstance(page.get("statements", []), list):
            raise LRSError(
                f"the LRS at {sanitize_url(self.url)} answered a statements page that is not "
                "an xAPI StatementResult in JSON"
            )
        return page

    def iter_statements(self, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Yield every statement matching ``params``, following ``more`` links.

        Stops on an empty page too: Ralph returns an extra empty page when the
        total is a multiple of the limit (docs/lrs.md §3).
        """
        more: str | None = None
        seen_pages: set[str] = set()
        while True:
            page = self.get_statements_page(more, params)
            statements = page.get("statements", [])
            yield from statements
            more = page.get("more")
            if not statements or not more or more in seen_pages:
                return
            seen_pages.add(more)
