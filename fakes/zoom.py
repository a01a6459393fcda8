"""A fake Zoom API (Server-to-Server OAuth and the Reports API) over real HTTP on 127.0.0.1.

Usage::

    with FakeZoom(account_id="acc", client_id="cid", client_secret="...") as zoom:
        zoom.add_meeting("host@example.org", meeting_id=81200000001, uuid="aB/c+d==", topic="Webinar",
                         start="2024-03-12T01:55:10Z", end="2024-03-12T04:02:40Z",
                         participants=[{"user_email": "budi.s@example.org", "name": "Budi",
                                        "join_time": "2024-03-12T01:58:01Z", "leave_time": "...", "duration": 3809}])
        zoom.inject_fault("expired")                 # the next API call answers 401 code 124
        zoom.inject_fault("429", path="participants") # 429 with Retry-After and X-RateLimit-* headers
        zoom.inject_fault("502", times=2)
        zoom.calls["report/meetings/participants"]

Shapes follow Zoom's API reference: ``POST /oauth/token?grant_type=account_credentials&account_id=``
with Basic auth answers ``access_token``/``token_type``/``expires_in``/``scope``; errors are
``{"code": ..., "message": ...}``; lists page with ``page_size`` and ``next_page_token``; report
windows (``from``/``to``, dates) span at most one month. Meeting UUIDs that hold ``/`` must arrive
double URL-encoded: a single-encoded one does not match the route (404), as on Zoom.
Tokens are ``TOKEN_PREFIX`` + a counter, so a test can search its outputs for any of them.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, jsonify, request

from fakes.flask_fake import FlaskFake

#: Every access token the fake issues starts with this (tests grep outputs for it).
TOKEN_PREFIX = "zoom-fake-access-9c2e41-"  # noqa: S105 - a test token prefix
#: The client secret tests give the fake (tests/proof/test_zz_secrets.py searches outputs for it).
TEST_CLIENT_SECRET = "zoom-test-client-secret-71d0c4b9"  # noqa: S105 - a test secret
RATE_LIMIT_MESSAGE = "You have reached the maximum per-second rate limit for this API. Try again later."
BAD_GATEWAY = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
)


@dataclass
class _Fault:
    kind: str  # one of FAULT_KINDS
    path: str  # substring of the request path it applies to ("" = any API call)
    times: int
    after: int = 0  # matching calls answered normally first


FAULT_KINDS = ("expired", "429", "502", "reset", "revoked")


class FakeZoom(FlaskFake):
    """A fake Zoom account on 127.0.0.1 (``port=0`` picks a free port)."""

    def __init__(
        self,
        *,
        account_id: str,
        client_id: str,
        client_secret: str,
        port: int = 0,
        expires_in: int = 3600,
        retry_after: int = 1,
    ) -> None:
        self.account_id, self.client_id, self.client_secret = account_id, client_id, client_secret
        self.expires_in = expires_in
        self.retry_after = retry_after
        self.meetings: dict[str, list[dict[str, Any]]] = {}  # user -> meeting records
        self.participants: dict[str, list[dict[str, Any]]] = {}  # uuid -> participant records
        self.calls: Counter[str] = Counter()
        self.requests: list[str] = []  # request paths (with query) in arrival order
        self._tokens: set[str] = set()
        self._issued = 0
        self._faults: list[_Fault] = []
        self.revoked = False  # the OAuth app's credentials are refused (see inject_fault)
        #: The scopes the OAuth app was given: without report:read:admin, report calls answer 400
        #: code 4711, as Zoom does for a token that lacks a scope.
        self.scopes = "report:read:admin"
        self._lock = threading.Lock()
        super().__init__(self._make_app(), port)

    # --- data ---------------------------------------------------------------------------------------

    def add_meeting(
        self,
        user: str,
        *,
        meeting_id: int,
        uuid: str,
        topic: str,
        start: str,
        end: str,
        participants: list[dict[str, Any]],
        meeting_type: int = 2,
    ) -> None:
        """Add a past meeting (``meeting_type`` 5 for a webinar) of ``user`` and its participant records."""
        records = [
            {
                "id": f"p{index}",
                "user_id": str(16778240 + index),
                "status": "in_meeting",
                "failover": False,
                "registrant_id": "",
                **record,
            }
            for index, record in enumerate(participants)
        ]
        with self._lock:
            self.meetings.setdefault(user, []).append(
                {
                    "uuid": uuid,
                    "id": meeting_id,
                    "host_id": "z8yCxjabcdEFGHfghijk",
                    "type": meeting_type,
                    "topic": topic,
                    "user_name": "Host",
                    "user_email": user,
                    "start_time": start,
                    "end_time": end,
                    "duration": 0,
                    "total_minutes": 0,
                    "participants_count": len(records),
                    "source": "Zoom",
                }
            )
            self.participants[uuid] = records

    def add_user(self, user: str) -> None:
        """A user of the account with no past meeting (others than those added answer 404, code 1001)."""
        with self._lock:
            self.meetings.setdefault(user, [])

    def inject_fault(self, kind: str, *, path: str = "", times: int = 1, after: int = 0) -> None:
        """Answer ``times`` API calls whose path contains ``path`` with a fault, after ``after`` good ones.

        ``expired``: 401 ``{"code": 124, "message": "Invalid access token."}`` (and the token is dropped);
        ``429``: 429 with ``Retry-After`` and Zoom's ``X-RateLimit-*`` headers; ``502``: nginx's 502 page;
        ``reset``: the connection is closed without an answer; ``revoked``: as ``expired``, and the app's
        credentials are refused from then on (``invalid_client``) until :attr:`revoked` is set back to False.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.append(_Fault(kind, path, times, after))

    def expire_tokens(self) -> None:
        """Revoke every token issued so far (the next call answers 401, code 124)."""
        with self._lock:
            self._tokens.clear()

    @property
    def tokens_issued(self) -> int:
        return self._issued

    # --- the server (start, stop, url: fakes/flask_fake.py) ---------------------------------------

    thread_name = "fake-zoom"

    # --- handlers -----------------------------------------------------------------------------------

    def _fault_for(self, path: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.path in path:
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.times -= 1
                    if fault.kind in ("expired", "revoked"):
                        self._tokens.clear()
                        self.revoked = self.revoked or fault.kind == "revoked"
                    return fault.kind
        return None

    def _make_app(self) -> Flask:
        app = Flask("fake_zoom")

        def error(status: int, code: int, message: str) -> Response:
            response = jsonify({"code": code, "message": message})
            response.status_code = status
            return response

        @app.post("/oauth/token")
        def token() -> Response:
            self.calls["oauth/token"] += 1
            auth = request.authorization
            if (
                request.args.get("grant_type") != "account_credentials"
                or request.args.get("account_id") != self.account_id
            ):
                response = jsonify(
                    {"reason": "Invalid request : Unsupported grant type or account", "error": "invalid_request"}
                )
                response.status_code = 400
                return response
            if auth is None or auth.username != self.client_id or auth.password != self.client_secret or self.revoked:
                response = jsonify({"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
                response.status_code = 401
                return response
            with self._lock:
                self._issued += 1
                value = f"{TOKEN_PREFIX}{self._issued:04d}"
                self._tokens.add(value)
            return jsonify(
                {
                    "access_token": value,
                    "token_type": "bearer",
                    "expires_in": self.expires_in,
                    "scope": self.scopes,
                    "api_url": self.url,
                }
            )

        @app.before_request
        def check() -> Response | None:
            if request.path == "/oauth/token":
                return None
            self.requests.append(request.full_path)
            fault = self._fault_for(request.path)
            if fault == "429":
                response = error(429, 429, RATE_LIMIT_MESSAGE)
                response.headers.update(
                    {
                        "Retry-After": str(self.retry_after),
                        "X-RateLimit-Category": "Heavy",
                        "X-RateLimit-Type": "QPS",
                        "X-RateLimit-Limit": "40",
                        "X-RateLimit-Remaining": "0",
                    }
                )
                return response
            if fault == "502":
                return Response(BAD_GATEWAY, status=502, content_type="text/html")
            if fault == "reset":
                # Close the connection without an answer; werkzeug drops the reply it then cannot write.
                request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
                return Response(b"", status=500)
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or header[7:] not in self._tokens:
                return error(401, 124, "Invalid access token.")
            if request.path.startswith("/v2/report/") and "report:read:admin" not in self.scopes.split():
                return error(400, 4711, "Invalid access token, does not contain scopes:[report:read:admin].")
            return None

        def paged(records: list[dict[str, Any]], key: str, extra: dict[str, Any]) -> Response:
            size = min(300, max(1, int(request.args.get("page_size") or 30)))
            token = request.args.get("next_page_token") or ""
            offset = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
            chunk = records[offset : offset + size]
            following = offset + size
            next_token = base64.urlsafe_b64encode(str(following).encode()).decode() if following < len(records) else ""
            return jsonify(
                {
                    **extra,
                    "page_count": (len(records) + size - 1) // size,
                    "page_size": size,
                    "total_records": len(records),
                    "next_page_token": next_token,
                    key: chunk,
                }
            )

        @app.get("/v2/report/users/<user>/meetings")
        def user_meetings(user: str) -> Response:
            self.calls["report/users/meetings"] += 1
            try:
                first = date.fromisoformat(request.args["from"])
                last = date.fromisoformat(request.args["to"])
            except (KeyError, ValueError):
                return error(400, 300, "Invalid date: from and to are required (yyyy-mm-dd).")
            if (last - first).days > 31 or last < first:
                return error(400, 300, "The date range must be within one month.")
            if request.args.get("type", "past") != "past":
                return error(400, 300, "Invalid type.")
            if user not in self.meetings:
                return error(404, 1001, f"User does not exist: {user}.")
            found = [
                m for m in self.meetings.get(user, []) if first <= date.fromisoformat(m["start_time"][:10]) <= last
            ]
            return paged(found, "meetings", {"from": first.isoformat(), "to": last.isoformat()})

        def participants(kind: str, meeting: str) -> Response:
            self.calls[f"report/{kind}/participants"] += 1
            uuid = unquote(meeting)  # the path arrives decoded once: a double-encoded "/" is "%2F" here
            if uuid not in self.participants:
                return error(404, 3001, "Meeting does not exist: " + uuid + ".")
            return paged(self.participants[uuid], "participants", {})

        @app.get("/v2/report/meetings/<meeting>/participants")
        def meeting_participants(meeting: str) -> Response:
            return participants("meetings", meeting)

        @app.get("/v2/report/webinars/<meeting>/participants")
        def webinar_participants(meeting: str) -> Response:
            return participants("webinars", meeting)

        return app
