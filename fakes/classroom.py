"""A fake Google Classroom API and OAuth token endpoint over real HTTP on 127.0.0.1.

Usage::

    key, public_pem = make_service_account("http://127.0.0.1:0/token")   # a fresh RSA key (cryptography)
    with FakeClassroom(public_pem=public_pem, client_email=key["client_email"], subject="admin@x") as fake:
        key["token_uri"] = fake.token_uri
        fake.add_course("c1", "Pelatihan Dasar")
        fake.add_student("c1", "u1", "budi.s@example.org")
        fake.add_submission("c1", "w1", "u1", "Tugas 1", turned_in="2024-03-12T02:00:00Z")
        fake.add_announcement("c1", "a1", "t1", "Selamat datang", "2024-03-12T01:00:00Z")
        fake.inject_fault("expired")          # the next API call answers 401 UNAUTHENTICATED
        fake.inject_fault("429", path="studentSubmissions")
        fake.calls["studentSubmissions"]

The token endpoint takes the JWT-bearer grant (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``,
``assertion``) and verifies the assertion's RS256 signature with the test's public key, its ``aud``,
``iss``, ``sub`` and scopes, answering ``{"error": "invalid_grant", ...}`` otherwise, as Google's does.
API answers follow the Classroom REST reference: lists page with ``pageSize``/``pageToken`` and
``nextPageToken``; errors are ``{"error": {"code", "message", "status"}}``. Tokens start with
``TOKEN_PREFIX`` so a test can search its outputs for any of them.
"""

from __future__ import annotations

import base64
import functools
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify, request

from fakes.flask_fake import FlaskFake
from fakes.zoom import BAD_GATEWAY

TOKEN_PREFIX = "ya29.fake-classroom-5d81f3-"  # noqa: S105 - a test token prefix
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
REQUIRED_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/classroom.courses.readonly",
        "https://www.googleapis.com/auth/classroom.coursework.students.readonly",
        "https://www.googleapis.com/auth/classroom.announcements.readonly",
        "https://www.googleapis.com/auth/classroom.rosters.readonly",
    }
)


def make_service_account(
    token_uri: str, client_email: str = "lms-bridge@proj.iam.gserviceaccount.com"
) -> tuple[dict[str, Any], bytes]:
    """A service account key (the JSON key file's fields) with a fresh 2048-bit RSA key, and its public PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = {
        "type": "service_account",
        "project_id": "proj",
        "private_key_id": "0f1e2d3c4b5a",
        "private_key": pem,
        "client_email": client_email,
        "client_id": "104857600000000000001",
        "token_uri": token_uri,
    }
    return info, public


@functools.cache
def shared_service_account() -> tuple[dict[str, Any], bytes]:
    """One test key per process: the tests use it and ``tests/proof/test_zz_secrets.py`` searches for its lines.

    The ``token_uri`` is a placeholder: copy the fake's ``token_uri`` into a copy of the dict.
    """
    return make_service_account("http://127.0.0.1:9/token")


def private_key_lines() -> list[str]:
    """The base64 lines of :func:`shared_service_account`'s private key (what a leak would show)."""
    pem = shared_service_account()[0]["private_key"]
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


@dataclass
class _Fault:
    kind: str  # "expired", "429", "502"
    path: str
    times: int


class FakeClassroom(FlaskFake):
    """A fake Workspace domain's Classroom on 127.0.0.1 (``port=0`` picks a free port)."""

    #: The scopes a token request must ask for (another Google API's fake sets its own).
    required_scopes: frozenset[str] = REQUIRED_SCOPES

    def __init__(
        self,
        *,
        public_pem: bytes,
        client_email: str,
        subject: str,
        port: int = 0,
        expires_in: int = 3599,
        retry_after: int = 1,
    ) -> None:
        self.public_pem = public_pem
        self.client_email = client_email
        self.subject = subject
        self.expires_in = expires_in
        self.retry_after = retry_after
        self.courses: list[dict[str, Any]] = []
        self.course_work: dict[str, list[dict[str, Any]]] = {}
        self.submissions: dict[str, list[dict[str, Any]]] = {}
        self.students: dict[str, list[dict[str, Any]]] = {}
        self.announcements: dict[str, list[dict[str, Any]]] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self._tokens: set[str] = set()
        self._issued = 0
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        #: The scopes the domain-wide delegation grants the service account (None: whatever it asks).
        #: A token request for a scope not in it is refused, as Google does (401 unauthorized_client).
        self.delegated_scopes: frozenset[str] | None = None
        super().__init__(self._make_app(), port)

    # --- data ---------------------------------------------------------------------------------------

    def add_course(self, course_id: str, name: str, state: str = "ACTIVE") -> None:
        self.courses.append(
            {
                "id": course_id,
                "name": name,
                "courseState": state,
                "ownerId": "t1",
                "creationTime": "2024-01-02T00:00:00.000Z",
                "updateTime": "2024-01-02T00:00:00.000Z",
                "alternateLink": f"https://classroom.google.com/c/{course_id}",
            }
        )

    def add_profile(self, user_id: str, email: str | None, name: str = "Someone") -> None:
        profile: dict[str, Any] = {"id": user_id, "name": {"fullName": name}}
        if email:
            profile["emailAddress"] = email
        self.profiles[user_id] = profile

    def add_student(self, course_id: str, user_id: str, email: str | None, name: str = "Student") -> None:
        self.add_profile(user_id, email, name)
        self.students.setdefault(course_id, []).append(
            {"courseId": course_id, "userId": user_id, "profile": self.profiles[user_id]}
        )

    def add_submission(
        self,
        course_id: str,
        work_id: str,
        user_id: str,
        title: str,
        *,
        turned_in: str,
        state: str = "TURNED_IN",
        updated: str | None = None,
    ) -> None:
        works = self.course_work.setdefault(course_id, [])
        if not any(work["id"] == work_id for work in works):
            works.append(
                {
                    "courseId": course_id,
                    "id": work_id,
                    "title": title,
                    "state": "PUBLISHED",
                    "workType": "ASSIGNMENT",
                    "creationTime": "2024-01-03T00:00:00.000Z",
                }
            )
        history = [
            {"stateHistory": {"state": "CREATED", "stateTimestamp": turned_in, "actorUserId": user_id}},
            {"stateHistory": {"state": "TURNED_IN", "stateTimestamp": turned_in, "actorUserId": user_id}},
        ]
        if state == "RETURNED":
            history.append(
                {"stateHistory": {"state": "RETURNED", "stateTimestamp": updated or turned_in, "actorUserId": "t1"}}
            )
        records = self.submissions.setdefault(course_id, [])
        records[:] = [r for r in records if not (r["courseWorkId"] == work_id and r["userId"] == user_id)]
        records.append(
            {
                "courseId": course_id,
                "courseWorkId": work_id,
                "id": f"S{work_id}{user_id}",
                "userId": user_id,
                "creationTime": turned_in,
                "updateTime": updated or turned_in,
                "state": state,
                "late": False,
                "courseWorkType": "ASSIGNMENT",
                "submissionHistory": history,
            }
        )

    def add_announcement(
        self, course_id: str, announcement_id: str, author: str, text: str, created: str, updated: str | None = None
    ) -> None:
        self.announcements.setdefault(course_id, []).append(
            {
                "courseId": course_id,
                "id": announcement_id,
                "text": text,
                "state": "PUBLISHED",
                "alternateLink": f"https://classroom.google.com/c/{course_id}/p/{announcement_id}",
                "creationTime": created,
                "updateTime": updated or created,
                "creatorUserId": author,
                "assigneeMode": "ALL_STUDENTS",
            }
        )

    def inject_fault(self, kind: str, *, path: str = "", times: int = 1) -> None:
        """Answer the next ``times`` API calls whose path holds ``path``: ``expired`` (401), ``429`` or ``502``."""
        if kind not in ("expired", "429", "502"):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.append(_Fault(kind, path, times))

    @property
    def tokens_issued(self) -> int:
        return self._issued

    # --- the server (start, stop, url: fakes/flask_fake.py) ---------------------------------------

    thread_name = "fake-classroom"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    # --- handlers -----------------------------------------------------------------------------------

    def _fault_for(self, path: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.path in path:
                    fault.times -= 1
                    if fault.kind == "expired":
                        self._tokens.clear()
                    return fault.kind
        return None

    def _make_app(self) -> Flask:
        app = Flask("fake_classroom")

        def error(status: int, name: str, message: str) -> Response:
            response = jsonify({"error": {"code": status, "message": message, "status": name}})
            response.status_code = status
            return response

        def grant_error(message: str) -> Response:
            response = jsonify({"error": "invalid_grant", "error_description": message})
            response.status_code = 400
            return response

        @app.post("/token")
        def token() -> Response:
            from google.auth import jwt
            from google.auth.exceptions import GoogleAuthError

            self.calls["token"] += 1
            if request.form.get("grant_type") != JWT_GRANT:
                return grant_error("Invalid grant_type.")
            try:
                claims = jwt.decode(request.form.get("assertion", ""), certs=self.public_pem, audience=self.token_uri)
            except (GoogleAuthError, ValueError):
                return grant_error("Invalid JWT Signature.")
            if claims.get("iss") != self.client_email or claims.get("sub") != self.subject:
                response = jsonify(
                    {
                        "error": "unauthorized_client",
                        "error_description": "Client is unauthorized to retrieve access tokens using this method.",
                    }
                )
                response.status_code = 401
                return response
            asked = set(str(claims.get("scope", "")).split())
            if self.delegated_scopes is not None and not asked <= self.delegated_scopes:
                response = jsonify(
                    {
                        "error": "unauthorized_client",
                        "error_description": "Client is unauthorized to retrieve access tokens using this method, "
                        "or client not authorized for any of the scopes requested.",
                    }
                )
                response.status_code = 401
                return response
            if not self.required_scopes <= asked:
                return grant_error("Invalid OAuth scope or ID token audience provided.")
            with self._lock:
                self._issued += 1
                value = f"{TOKEN_PREFIX}{self._issued:04d}"
                self._tokens.add(value)
            return jsonify({"access_token": value, "expires_in": self.expires_in, "token_type": "Bearer"})

        @app.before_request
        def check() -> Response | None:
            if request.path == "/token":
                return None
            fault = self._fault_for(request.path)
            if fault == "429":
                response = error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Read requests'.")
                response.headers["Retry-After"] = str(self.retry_after)
                return response
            if fault == "502":
                return Response(BAD_GATEWAY, status=502, content_type="text/html")
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or header[7:] not in self._tokens:
                return error(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected "
                    "OAuth 2 access token, login cookie or other valid authentication credential.",
                )
            return None

        def paged(endpoint: str, records: list[dict[str, Any]], key: str) -> Response:
            self.calls[endpoint] += 1
            size = min(1000, max(1, int(request.args.get("pageSize") or 100)))
            token = request.args.get("pageToken") or ""
            offset = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
            body: dict[str, Any] = {key: records[offset : offset + size]} if records[offset : offset + size] else {}
            if offset + size < len(records):
                body["nextPageToken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
            return jsonify(body)

        def course_or_404(course_id: str) -> Response | None:
            if not any(course["id"] == course_id for course in self.courses):
                return error(404, "NOT_FOUND", "Requested entity was not found.")
            return None

        @app.get("/v1/courses")
        def courses() -> Response:
            states = request.args.getlist("courseStates")
            return paged("courses", [c for c in self.courses if not states or c["courseState"] in states], "courses")

        @app.get("/v1/courses/<course_id>/courseWork")
        def course_work(course_id: str) -> Response:
            return course_or_404(course_id) or paged("courseWork", self.course_work.get(course_id, []), "courseWork")

        @app.get("/v1/courses/<course_id>/courseWork/<work_id>/studentSubmissions")
        def submissions(course_id: str, work_id: str) -> Response:
            states = request.args.getlist("states")
            found = [
                s
                for s in self.submissions.get(course_id, [])
                if (work_id == "-" or s["courseWorkId"] == work_id) and (not states or s["state"] in states)
            ]
            return course_or_404(course_id) or paged("studentSubmissions", found, "studentSubmissions")

        @app.get("/v1/courses/<course_id>/students")
        def students(course_id: str) -> Response:
            return course_or_404(course_id) or paged("students", self.students.get(course_id, []), "students")

        @app.get("/v1/courses/<course_id>/announcements")
        def announcements(course_id: str) -> Response:
            found = list(self.announcements.get(course_id, []))
            if request.args.get("orderBy", "updateTime desc") == "updateTime desc":
                found.sort(key=lambda a: a["updateTime"], reverse=True)
            else:
                found.sort(key=lambda a: a["updateTime"])
            return course_or_404(course_id) or paged("announcements", found, "announcements")

        @app.get("/v1/userProfiles/<user_id>")
        def profile(user_id: str) -> Response:
            self.calls["userProfiles"] += 1
            if user_id not in self.profiles:
                return error(404, "NOT_FOUND", "Requested entity was not found.")
            return jsonify(self.profiles[user_id])

        return app
