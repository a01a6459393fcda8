"""A fake Admin SDK Reports API (Meet audit events) and OAuth token endpoint over real HTTP on 127.0.0.1.

Usage::

    key, public_pem = shared_service_account()
    with FakeMeetReports(public_pem=public_pem, client_email=key["client_email"], subject="admin@x") as fake:
        fake.add_call_ended("abc-defg-hij", "conf-1", "budi.s@example.org", "Budi Santoso",
                            ended="2024-03-12T03:02:00Z", seconds=3720)

The token endpoint is the Classroom fake's (JWT bearer grant, RS256 checked), asking for the audit
scope. ``GET /admin/reports/v1/activity/users/all/applications/meet`` answers as ``activities.list``
does: ``{"kind": "admin#reports#activities", "items": [...], "nextPageToken": ...}``, newest first,
filtered by ``eventName``, ``startTime`` and ``endTime`` and paged by ``maxResults``/``pageToken``.
Each item is an activity (``id.time``, ``id.uniqueQualifier``, ``id.applicationName``, ``actor``,
``events``) whose one event (``type`` ``call``, ``name`` ``call_ended``) carries ``parameters`` as
``{"name", "value"|"intValue"|"boolValue"}`` (``intValue`` is a string, as int64 values are in JSON).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from flask import Response, jsonify, request

from fakes.classroom import FakeClassroom

AUDIT_SCOPE = "https://www.googleapis.com/auth/admin.reports.audit.readonly"


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class FakeMeetReports(FakeClassroom):
    """A fake Workspace domain's Meet audit log on 127.0.0.1 (the Classroom fake's token endpoint)."""

    required_scopes = frozenset({AUDIT_SCOPE})
    thread_name = "fake-meet-reports"

    def __init__(self, **kwargs: Any) -> None:
        self.activities: list[dict[str, Any]] = []
        #: When set, the listing answers 403 PERMISSION_DENIED (a subject that may not read audit reports).
        self.forbidden = False
        super().__init__(**kwargs)
        self.app.add_url_rule("/admin/reports/v1/activity/users/all/applications/meet", "meet_activities", self._list)

    def add_call_ended(
        self,
        code: str,
        conference: str,
        identifier: str,
        display_name: str,
        *,
        ended: str,
        seconds: int,
        identifier_type: str = "email_address",
    ) -> None:
        """One endpoint that left conference ``conference`` (meeting code ``code``) at ``ended``."""
        number = len(self.activities) + 1
        parameters: list[dict[str, Any]] = [
            {"name": "conference_id", "value": conference},
            {"name": "meeting_code", "value": code},
            {"name": "endpoint_id", "value": f"boq_hlane_{number:06d}"},
            {"name": "device_type", "value": "web"},
            {"name": "display_name", "value": display_name},
            {"name": "duration_seconds", "intValue": str(seconds)},
            {"name": "is_external", "boolValue": False},
            {"name": "organizer_email", "value": self.subject},
        ]
        if identifier:
            parameters += [
                {"name": "identifier", "value": identifier},
                {"name": "identifier_type", "value": identifier_type},
            ]
        self.activities.append(
            {
                "kind": "admin#reports#activity",
                "id": {
                    "time": ended,
                    "uniqueQualifier": str(-4_000_000_000_000_000_000 + number),
                    "applicationName": "meet",
                    "customerId": "C01abcdef",
                },
                "etag": f'"etag-{number}"',
                "actor": {"callerType": "USER", "email": identifier, "profileId": f"1{number:020d}"},
                "ipAddress": "192.0.2.10",
                "events": [{"type": "call", "name": "call_ended", "parameters": parameters}],
            }
        )

    def _list(self) -> Response:
        self.calls["activities.list"] += 1
        if self.forbidden:
            response = jsonify(
                {
                    "error": {
                        "code": 403,
                        "message": "Not Authorized to access this resource/api",
                        "status": "PERMISSION_DENIED",
                    }
                }
            )
            response.status_code = 403
            return response
        found = [a for a in self.activities if request.args.get("eventName", "call_ended") == "call_ended"]
        if request.args.get("startTime"):
            found = [a for a in found if _moment(a["id"]["time"]) >= _moment(request.args["startTime"])]
        if request.args.get("endTime"):
            found = [a for a in found if _moment(a["id"]["time"]) <= _moment(request.args["endTime"])]
        found.sort(key=lambda a: _moment(a["id"]["time"]), reverse=True)  # newest first, as Google lists them
        size = min(1000, max(1, int(request.args.get("maxResults") or 1000)))
        token = request.args.get("pageToken") or ""
        offset = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        body: dict[str, Any] = {"kind": "admin#reports#activities", "etag": '"list-etag"'}
        if found[offset : offset + size]:
            body["items"] = found[offset : offset + size]
        if offset + size < len(found):
            body["nextPageToken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
        return jsonify(body)
