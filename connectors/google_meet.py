"""Live pulls of Google Meet attendance from the Workspace Admin SDK Reports API (docs/google-meet.md).

A ``[[sources]]`` entry of ``type = "google_meet"`` names the service account's JSON key file (mode
0600) and the Workspace admin it impersonates (``subject``), like a Classroom source: the same JWT
bearer grant, with the one read-only audit scope.

One stream, ``attendance``: the Meet audit log's ``call_ended`` events
(``GET /admin/reports/v1/activity/users/all/applications/meet?eventName=call_ended``, ``startTime``,
``endTime``, ``maxResults``, ``pageToken``/``nextPageToken``). Each event is one endpoint (one join of
one device) that left a conference: its parameters give the conference id, the meeting code, the
participant's ``identifier`` (with ``identifier_type``), ``display_name`` and ``duration_seconds``.

The events of one conference are one session. A participant's endpoints become one presence row,
as a Meet attendance sheet has one row per person: first join (the earliest event time less its
duration), last exit, and the summed time in the call; the sheet states minutes, so the join and the
exit are cut to the minute and the time in the call is rounded up to whole minutes. The rows go
through the attendance reader's merge (:func:`connectors.attendance.merge_session`) with ``source``
``meet`` and the meeting code as meeting id: a pulled meeting gives the same activities (keys and
content) as its sheet imported with ``lms-bridge import --source meet --community ID``.

Position: ``{"event_time": ISO}``, the latest event time read. Each pull starts ``overlap_minutes``
before it (Google delivers audit events late) and stops ``settle_minutes`` before now (a meeting still
running has not ended all its endpoints); events read twice give the same statement ids, so they count
as unchanged. Only a pull's last page carries the position.

People are identified by e-mail (``identifier_type`` ``email_address``), else by display name,
pseudonymised at once; no name, e-mail or IP address is kept.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

import requests
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors import attendance
from connectors.base import Check, Pseudonymizer, Stream
from connectors.google_classroom import ClassroomClient, delegation_fix, google_error, read_key_file
from connectors.http import parse_iso_time, token_pages
from connectors.live import LiveConnector, LiveContext, LivePage
from connectors.token_api import probe
from lms_bridge.activity import ObjectRef
from lms_bridge.errors import ConfigError, FatalSourceError
from lms_bridge.identifiers import email_identifier, name_identifier

log = logging.getLogger(__name__)

TYPE = "google_meet"
STREAM = "attendance"
#: Activities keep the Meet sheet's source, so a pulled and an imported meeting are one.
SOURCE = "meet"
#: The one scope: read the audit reports (Meet's among them).
SCOPES = ("https://www.googleapis.com/auth/admin.reports.audit.readonly",)
ENDPOINT = "activities.list"
ACTIVITIES_PATH = "admin/reports/v1/activity/users/all/applications/meet"
_ID = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
_HTTP_URL = r"^https?://[^/?#\s]+(/[^?#\s]*)?$"
#: An endpoint's ``duration_seconds`` above this is broken (no join lasts a year): it is skipped.
_LONGEST_JOIN = 366 * 86_400


class MeetSettings(BaseModel):
    """A ``[[sources]]`` entry of ``type = "google_meet"``.

    Attributes:
        id: the source id (keys the cursor and the runs).
        type: ``google_meet``.
        key_file: the service account's JSON key (mode 0600; relative to the config file).
        subject: the Workspace admin the service account impersonates (domain-wide delegation).
        oauth_endpoint: the token endpoint (default: the key file's ``token_uri``).
        api_url: the Admin SDK base.
        community: the Community of Practice of every meeting not in ``meetings``: the ``site`` of
            their activities (None: only the meetings listed are read).
        meetings: meeting code -> community, for meetings of another CoP (or the only ones read).
        initial_days: how far back the first pull reads (Google keeps Meet audit events 180 days).
        overlap_minutes: how far before the position each pull starts again.
        settle_minutes: how long before now each pull stops (meetings still running are read later).
        page_size: events per page (``maxResults``, at most 1000).
        timeout, max_attempts, backoff_base, backoff_cap, max_retry_after: as for Classroom.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    type: Literal["google_meet"]
    key_file: Path
    subject: str = Field(min_length=3)
    oauth_endpoint: str | None = Field(default=None, pattern=_HTTP_URL)
    api_url: str = Field(default="https://admin.googleapis.com", pattern=_HTTP_URL)
    community: str | None = Field(default=None, pattern=_ID)
    meetings: dict[str, Annotated[str, Field(pattern=_ID)]] = Field(default_factory=dict)
    initial_days: int = Field(default=30, ge=1, le=180)
    overlap_minutes: int = Field(default=240, ge=0)
    settle_minutes: int = Field(default=60, ge=0)
    page_size: int = Field(default=1000, ge=1, le=1000)
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_base: float = Field(default=1.0, ge=0)
    backoff_cap: float = Field(default=60.0, ge=0)
    max_retry_after: float = Field(default=120.0, ge=0)

    @model_validator(mode="after")
    def _some_meetings(self) -> Self:
        if self.community is None and not self.meetings:
            raise ValueError("give community (for every meeting) or meetings (meeting code -> community)")
        return self


class MeetReportsClient(ClassroomClient):
    """GETs to the Reports API: the Classroom client's service-account token, with the audit scope."""

    platform = "the Reports API"
    scopes = SCOPES
    scopes_label = "the scope admin.reports.audit.readonly"

    def refusal(self, response: requests.Response) -> str:
        """Google's words, and what to check for a refusal that is about access (403) or the URL (404)."""
        words = google_error(response)
        if response.status_code == 403:
            return f"{words}; {self.settings.subject} must be a Workspace admin allowed to read audit reports"
        if response.status_code == 404:
            return f"{words}; check api_url"
        return words

    def events(self, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
        """Every ``call_ended`` activity between ``start`` and ``end``, over all pages."""
        url = f"{self.settings.api_url.rstrip('/')}/{ACTIVITIES_PATH}"
        params = {
            "eventName": "call_ended",
            "startTime": _rfc3339(start),
            "endTime": _rfc3339(end),
            "maxResults": self.settings.page_size,
        }

        def fetch(token: str) -> dict[str, Any] | None:
            return self.get(ENDPOINT, url, {**params, **({"pageToken": token} if token else {})})

        def repeated() -> FatalSourceError:
            return FatalSourceError(
                f"source {self.settings.id}: the Reports API gives a nextPageToken it gave before "
                "(the listing would never end)"
            )

        for data in token_pages(fetch, "nextPageToken", repeated):
            items = data.get("items") or []
            if not isinstance(items, list):
                raise FatalSourceError(f"source {self.settings.id}: the Reports API's answer has no items list")
            yield from (item for item in items if isinstance(item, dict))


def _rfc3339(moment: datetime) -> str:
    # Google's own form (``2010-10-28T10:26:35.000Z``): milliseconds.
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Endpoint:
    """One ``call_ended`` event: one device's time in one conference."""

    key: str  # the event's own id (time and uniqueQualifier): an event read twice counts once
    ended: datetime
    conference: str
    code: str
    identifier: str
    identifier_type: str
    display_name: str
    seconds: int


def _parameters(event: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for parameter in event.get("parameters") or []:
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str):
            for field in ("value", "intValue", "boolValue"):
                if field in parameter:
                    found[parameter["name"]] = parameter[field]
                    break
    return found


def endpoints(item: dict[str, Any]) -> Iterator[Endpoint | None]:
    """The ``call_ended`` events of one activity record (None for one that lacks what a row needs)."""
    raw_id = item.get("id")
    ident: dict[str, Any] = raw_id if isinstance(raw_id, dict) else {}
    ended = parse_iso_time(ident.get("time"), naive_is_utc=True)
    for event in item.get("events") or []:
        if not isinstance(event, dict) or event.get("name") != "call_ended":
            continue
        values = _parameters(event)
        duration = str(values.get("duration_seconds", ""))
        conference, code = str(values.get("conference_id") or ""), str(values.get("meeting_code") or "")
        if ended is None or not duration.isdigit() or int(duration) > _LONGEST_JOIN or not conference or not code:
            yield None
            continue
        yield Endpoint(
            key=f"{ident.get('time')}|{ident.get('uniqueQualifier')}|{values.get('endpoint_id', '')}",
            ended=ended,
            conference=conference,
            code=_meeting_code(code),
            identifier=str(values.get("identifier") or ""),
            identifier_type=str(values.get("identifier_type") or ""),
            display_name=str(values.get("display_name") or ""),
            seconds=int(duration),
        )


class MeetReader:
    """Reads the ``attendance`` stream of one Meet source (see the module docstring)."""

    def __init__(
        self,
        settings: MeetSettings,
        client: MeetReportsClient,
        pseudonymize: Pseudonymizer,
        tz: ZoneInfo,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.client = client
        self.calls = client.calls
        self.pseudonymize = pseudonymize
        self.tz = tz
        self.now = now

    def read(self, stream: str, start: Any, since: datetime | None = None) -> Iterator[LivePage]:
        """Yield one page per conference ended in the window; the last page carries the latest event time."""
        if stream != STREAM:
            raise ConfigError(f"source {self.settings.id}: unknown stream {stream!r} (streams: {STREAM})")
        end = self.now() - timedelta(minutes=self.settings.settle_minutes)
        position = _position_time(start)
        if since is not None:
            first = since
        elif position is not None:
            first = position - timedelta(minutes=self.settings.overlap_minutes)
        else:
            first = self.now() - timedelta(days=self.settings.initial_days)
        if first >= end:
            yield LivePage()
            return
        conferences: dict[str, list[Endpoint]] = {}
        seen: set[str] = set()
        broken = 0
        latest: datetime | None = None
        for item in self.client.events(first, end):
            for found in endpoints(item):
                if found is None:
                    broken += 1
                    continue
                if found.key in seen:
                    continue  # pages moved while they were read: the event is on two of them
                seen.add(found.key)
                latest = found.ended if latest is None or found.ended > latest else latest
                conferences.setdefault(found.conference, []).append(found)
        pages = [self._conference(ends) for ends in sorted(conferences.values(), key=lambda e: max(x.ended for x in e))]
        last = pages[-1] if pages else LivePage()
        if broken:
            last.read += broken
            last.skipped["call_ended event without time, conference, code or duration"] += broken
        if latest is not None and (position is None or latest > position):
            last.position = {"event_time": _rfc3339(latest)}
        yield from pages[:-1]
        yield last

    def _conference(self, ends: list[Endpoint]) -> LivePage:
        page = LivePage(read=len(ends))
        code = ends[0].code
        community = self.settings.meetings.get(code, self.settings.community)
        if community is None:
            page.skipped["meeting of no configured community"] += len(ends)
            return page
        people: dict[tuple[str, str], list[Endpoint]] = {}
        for end in ends:
            identity = _identity(end)
            if identity is None:
                page.skipped["participant without e-mail or name"] += 1
                continue
            people.setdefault(identity, []).append(end)
        session = attendance.AttendanceSession(meeting_id=code, topic=None, start=None)
        for line, (identity, mine) in enumerate(people.items(), start=1):
            # One row per person, as the sheet has: cut to the minute the sheet shows.
            join = min(end.ended - timedelta(seconds=end.seconds) for end in mine).replace(second=0, microsecond=0)
            leave = max(end.ended for end in mine).replace(second=0, microsecond=0)
            minutes = math.ceil(sum(end.seconds for end in mine) / 60)
            kind: Literal["email", "name"] = "email" if identity[0] == "email" else "name"
            session.rows.append(
                attendance.PresenceRow(
                    line=line,
                    identity=(kind, identity[1]),
                    join=join.astimezone(self.tz),
                    leave=leave.astimezone(self.tz),
                    seconds=minutes * 60,
                )
            )
        if session.rows:
            session.start = min(row.join for row in session.rows)
        activities = attendance.merge_session(session, source=SOURCE, site=community, pseudonymize=self.pseudonymize)
        group = ObjectRef(type="community", native_id=community)
        page.activities = [replace(activity, grouping=group) for activity in activities]
        return page


def _identity(end: Endpoint) -> tuple[str, str] | None:
    """The e-mail when Meet gives one, else the display name (as the sheet's rows are read)."""
    if end.identifier_type == "email_address":
        identifier = email_identifier(end.identifier)
        if identifier is not None:
            return "email", identifier
    named = name_identifier(end.display_name)
    return ("name", named) if named is not None else None


def _meeting_code(text: str) -> str:
    """The code as a Meet sheet shows it (``abc-defg-hij``), whether Google gives it with dashes or without."""
    letters = text.strip().lower().replace("-", "")
    return f"{letters[:3]}-{letters[3:7]}-{letters[7:]}" if len(letters) == 10 and letters.isalpha() else text.lower()


def _position_time(position: Any) -> datetime | None:
    if isinstance(position, dict):
        return parse_iso_time(position.get("event_time"), naive_is_utc=True)
    return None


@contextmanager
def open_reader(settings: MeetSettings, context: LiveContext) -> Iterator[MeetReader]:
    """Open a reader: the key file (0600) and the pseudonymiser are checked first (ConfigError)."""
    key = read_key_file(context.resolve_path(settings.key_file))
    pseudonymize = context.pseudonymizer()
    client = MeetReportsClient(settings, key)
    try:
        yield MeetReader(settings, client, pseudonymize, context.timezone)
    finally:
        client.close()


def check_source(settings: MeetSettings, context: LiveContext) -> Check:
    """A token for the subject with the audit scope, then one ``call_ended`` event of the last day."""
    key = read_key_file(context.resolve_path(settings.key_file))
    # Two tries at most: doctor should answer in seconds, not after a sync's backoff.
    client = MeetReportsClient(settings.model_copy(update={"max_attempts": min(settings.max_attempts, 2)}), key)

    def listing() -> str:
        end = datetime.now(UTC)
        client.get(
            ENDPOINT,
            f"{settings.api_url.rstrip('/')}/{ACTIVITIES_PATH}",
            {
                "eventName": "call_ended",
                "startTime": _rfc3339(end - timedelta(days=1)),
                "endTime": _rfc3339(end),
                "maxResults": 1,
            },
        )
        return f"{settings.subject} may read the Meet audit log"

    return probe(
        f"{TYPE} {settings.id}",
        client,
        listing,
        token_fix=delegation_fix(client),
        listing_fix=lambda sentence: (
            f"make subject {settings.subject} a Workspace admin whose role may read "
            "audit reports (Reports API), and check api_url"
        ),
    )


def reset_position(stream: str, current: Any, to: datetime) -> dict[str, str]:
    """The position of a stream that read every event up to ``to`` (the next pull re-reads the overlap)."""
    return {"event_time": _rfc3339(to)}


CONNECTOR = LiveConnector(
    type=TYPE,
    streams=(Stream(STREAM),),
    settings_model=MeetSettings,
    opener=open_reader,
    link_source=SOURCE,
    dated_position=reset_position,
    checker=check_source,
)
