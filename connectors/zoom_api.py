"""Live pulls from the Zoom Reports API (Server-to-Server OAuth): meeting and webinar attendance.

A ``[[sources]]`` entry of ``type = "zoom_api"`` names a Server-to-Server OAuth app (account id,
client id, the client secret's environment name) and the Zoom users whose past meetings are read,
each with the Community of Practice its sessions belong to.

One stream, ``meetings``: for each window of at most one month (Zoom's limit), each user's past
meetings (``GET /report/users/{userId}/meetings``), then each meeting's participants
(``GET /report/meetings/{uuid}/participants``; ``/report/webinars/{uuid}/participants`` for a
webinar, which the user report lists with a webinar ``type`` 5, 6 or 9). Both follow
``next_page_token``. A participant record is one join, like a row of the participants CSV, so the
rows go through the CSV connector's merge (:func:`connectors.attendance.merge_session`): one
``meeting_attended`` activity per person per session, with the same ``source`` (``zoom``), ``site``
(the meeting's community id, which is what ``lms-bridge import --community ID`` and an inbox record a
report under), keys and content as an imported participants report of that session exported "with
meeting data" (without it, the CSV has no meeting id and its keys cannot match).

The cursor is the last date the stream covered, ``{"through": "YYYY-MM-DD"}``; each pull starts
``overlap_days`` before it (Zoom's reports arrive late) and goes to today. A page is one meeting;
only the last page of a window carries the position, so the cursor passes a window only once every
meeting of it is committed. Re-read meetings are counted unchanged, never sent twice.

Attendees are identified by e-mail (a name when Zoom has no e-mail), pseudonymised at once with
the deployment's key; the HR roster links the pseudonyms to NIPs. No name is stored.

Where a pull and an import of the same session can still differ: a participant without e-mail who
renamed themselves (the CSV's "New (Original)" merge has no API counterpart; the API gives one name);
a join whose seconds Zoom rounds differently in the CSV than up to the whole minute (same statement
id, content kept as first queued); the evidence's ``guest`` fact, which the API does not give.

The access token is cached until a minute before it expires and fetched again once on a 401
(Zoom code 124, "Invalid access token"). A 429 waits for ``Retry-After`` (bounded), 5xx answers
and resets are retried with backoff. Neither the client secret nor a token is ever logged.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors import attendance
from connectors.base import Check, Pseudonymizer, Stream
from connectors.http import parse_iso_time, token_pages
from connectors.live import LiveConnector, LiveContext, LivePage
from connectors.token_api import TokenApiClient, probe
from lms_bridge.activity import Activity, ObjectRef
from lms_bridge.errors import ConfigError, FatalSourceError
from lms_bridge.identifiers import email_identifier, name_identifier

log = logging.getLogger(__name__)

TYPE = "zoom_api"
STREAM = "meetings"
#: Activities keep the export connector's source, so a pulled and an imported session are one.
SOURCE = "zoom"
#: Meeting ``type`` values Zoom gives webinars (5 webinar, 6 recurring without, 9 with a fixed time).
WEBINAR_TYPES = frozenset({5, 6, 9})
#: Zoom's reports take ``from``/``to`` windows of at most one month.
MAX_WINDOW_DAYS = 30
#: A participant record's ``duration`` above this is broken (no join lasts a year): its times are used instead.
_LONGEST_JOIN = 366 * 86_400
_ID = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class ZoomUser(BaseModel):
    """A Zoom user whose past meetings are read.

    Attributes:
        user: the user's Zoom id or e-mail address.
        community: the Community of Practice the user's sessions belong to: the ``site`` of their
            activities, so part of statement ids (choose it once).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    user: str = Field(min_length=1)
    community: str = Field(pattern=_ID)


#: An absolute http(s) URL with no query or fragment.
_HTTP_URL = r"^https?://[^/?#\s]+(/[^?#\s]*)?$"


class ZoomSettings(BaseModel):
    """A ``[[sources]]`` entry of ``type = "zoom_api"``.

    Attributes:
        id: the source id (keys the cursor and the runs).
        type: ``zoom_api``.
        account_id: the Server-to-Server OAuth app's account id.
        client_id: the app's client id.
        client_secret_env: environment variable (or secrets-file key) holding the client secret.
        users: the users whose meetings are read, each with its community.
        meetings: meeting id -> community, for meetings of a user that belong to another CoP.
        api_url: the API base.
        oauth_url: the OAuth base (``/oauth/token`` is under it).
        initial_days: how far back the first pull reads.
        overlap_days: how far before the cursor each pull starts again.
        page_size: records per page (Zoom allows up to 300).
        timeout: seconds per request.
        max_attempts: tries of one request (5xx, resets, 429) before the source stops.
        backoff_base, backoff_cap: seconds between retries, doubled per failure, capped.
        max_retry_after: the longest ``Retry-After`` waited for; a longer one stops the source.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    type: Literal["zoom_api"]
    account_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret_env: str = Field(min_length=1)
    users: list[ZoomUser] = Field(min_length=1)
    meetings: dict[str, Annotated[str, Field(pattern=_ID)]] = Field(default_factory=dict)
    api_url: str = Field(default="https://api.zoom.us/v2", pattern=_HTTP_URL)
    oauth_url: str = Field(default="https://zoom.us", pattern=_HTTP_URL)
    initial_days: int = Field(default=30, ge=1, le=180)
    overlap_days: int = Field(default=2, ge=0, le=30)
    page_size: int = Field(default=300, ge=1, le=300)
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_base: float = Field(default=1.0, ge=0)
    backoff_cap: float = Field(default=60.0, ge=0)
    max_retry_after: float = Field(default=120.0, ge=0)


class ZoomClient(TokenApiClient):
    """GETs to the Zoom API with a cached Server-to-Server OAuth token, retries and call counts."""

    platform = "Zoom"
    url_hint = "api_url or oauth_url"
    auth_call = "oauth/token"

    def __init__(
        self,
        settings: ZoomSettings,
        secret: SecretStr,
        *,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(settings, sleep=sleep, session=session)
        self.settings: ZoomSettings = settings
        self._secret = secret

    def request_token(self) -> requests.Response:
        """Server-to-Server OAuth: the account's credentials for a token (``account_credentials`` grant)."""
        url = f"{self.settings.oauth_url.rstrip('/')}/oauth/token"
        params = {"grant_type": "account_credentials", "account_id": self.settings.account_id}
        return self.send(
            self.auth_call,
            lambda: self.session.post(
                url,
                params=params,
                auth=(self.settings.client_id, self._secret.get_secret_value()),
                timeout=self.settings.timeout,
            ),
        )

    def token_refused(self, response: requests.Response) -> str:
        """The sentence for refused OAuth credentials, naming the settings to check."""
        return (
            f"source {self.settings.id}: Zoom refused the OAuth app's credentials (HTTP "
            f"{response.status_code}{_oauth_reason(response)}); check account_id, client_id and "
            f"{self.settings.client_secret_env}"
        )

    def refusal(self, response: requests.Response) -> str:
        """Zoom's ``code`` and ``message``."""
        code, message = _zoom_error(response)
        return f"code {code}: {message}"

    def get_api(
        self, endpoint: str, path: str, params: dict[str, Any] | None = None, *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        """GET ``path`` under the API base; None for a 404 when ``missing_ok`` (a meeting without a report)."""
        return self.get(
            endpoint, f"{self.settings.api_url.rstrip('/')}/{path.lstrip('/')}", params, missing_ok=missing_ok
        )

    def pages(
        self, endpoint: str, path: str, key: str, params: dict[str, Any], *, missing_ok: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """The ``key`` lists of every page, following ``next_page_token`` (nothing for a 404 when ``missing_ok``)."""

        def fetch(token: str) -> dict[str, Any] | None:
            return self.get_api(
                endpoint,
                path,
                {**params, "page_size": self.settings.page_size, **({"next_page_token": token} if token else {})},
                missing_ok=missing_ok,
            )

        def repeated() -> FatalSourceError:
            return FatalSourceError(
                f"source {self.settings.id}: Zoom's {endpoint} answer gives a "
                "next_page_token it gave before (the listing would never end)"
            )

        for data in token_pages(fetch, "next_page_token", repeated):
            records = data.get(key) or []
            if not isinstance(records, list):
                raise FatalSourceError(f"source {self.settings.id}: Zoom's {endpoint} answer has no {key} list")
            yield [record for record in records if isinstance(record, dict)]


def _oauth_reason(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    reason = data.get("error") if isinstance(data, dict) else None
    return f", {reason}" if isinstance(reason, str) and reason.isascii() and len(reason) < 60 else ""


def _zoom_error(response: requests.Response) -> tuple[str, str]:
    """Zoom's ``{"code": ..., "message": ...}`` error body, or what the answer was."""
    try:
        data = response.json()
    except ValueError:
        return "none", "not a JSON answer"
    if not isinstance(data, dict):
        return "none", "not a JSON object"
    return str(data.get("code", "none")), str(data.get("message", ""))[:200]


def meeting_path(kind: str, uuid: str) -> str:
    """``report/{meetings|webinars}/{uuid}/participants``; a UUID with ``/`` is double URL-encoded (Zoom's rule)."""
    encoded = quote(uuid, safe="")
    if "/" in uuid:
        encoded = quote(encoded, safe="")
    return f"report/{kind}/{encoded}/participants"


def _parse_time(value: object) -> datetime | None:
    return parse_iso_time(value, naive_is_utc=True)


class ZoomReader:
    """Reads the ``meetings`` stream of one Zoom source (see the module docstring)."""

    def __init__(
        self,
        settings: ZoomSettings,
        client: ZoomClient,
        pseudonymize: Pseudonymizer,
        tz: ZoneInfo,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self.settings = settings
        self.client = client
        self.calls = client.calls
        self.pseudonymize = pseudonymize
        self.tz = tz
        self.today = today

    def read(self, stream: str, start: Any, since: datetime | None = None) -> Iterator[LivePage]:
        """Yield one page per meeting of every window from the cursor (or ``since``) to today."""
        if stream != STREAM:
            raise ConfigError(f"source {self.settings.id}: unknown stream {stream!r} (streams: {STREAM})")
        today = self.today()
        if since is not None:
            first = since.astimezone(UTC).date()
        elif isinstance(start, dict) and isinstance(start.get("through"), str):
            first = date.fromisoformat(start["through"]) - timedelta(days=self.settings.overlap_days)
        else:
            first = today - timedelta(days=self.settings.initial_days)
        seen: set[str] = set()
        window_start = first
        while window_start <= today:
            window_end = min(today, window_start + timedelta(days=MAX_WINDOW_DAYS - 1))
            last: LivePage | None = None
            for page in self._window(window_start, window_end, seen):
                if last is not None:
                    yield last
                last = page
            last = last or LivePage()
            last.position = {"through": window_end.isoformat()}
            yield last
            window_start = window_end + timedelta(days=1)

    def _window(self, first: date, last: date, seen: set[str]) -> Iterator[LivePage]:
        params = {"from": first.isoformat(), "to": last.isoformat(), "type": "past"}
        for user in self.settings.users:
            path = f"report/users/{quote(user.user, safe='@')}/meetings"
            for meetings in self.client.pages("report/users/meetings", path, "meetings", params):
                for meeting in meetings:
                    uuid = str(meeting.get("uuid") or "")
                    if not uuid or uuid in seen:
                        continue
                    seen.add(uuid)
                    yield self._meeting(meeting, uuid, user.community)

    def _meeting(self, meeting: dict[str, Any], uuid: str, community: str) -> LivePage:
        page = LivePage(read=1)
        meeting_id = str(meeting.get("id") or "").strip()
        start = _parse_time(meeting.get("start_time"))
        if not meeting_id.isdigit() or start is None:
            page.skipped["meeting without id or start time"] += 1
            return page
        webinar = isinstance(meeting.get("type"), int) and meeting["type"] in WEBINAR_TYPES
        kind = "webinars" if webinar else "meetings"
        session = attendance.AttendanceSession(
            meeting_id=meeting_id, topic=str(meeting.get("topic") or "") or None, start=start.astimezone(self.tz)
        )
        # A meeting nobody joined has no participants report: Zoom answers 404 (code 3001).
        for records in self.client.pages(
            f"report/{kind}/participants", meeting_path(kind, uuid), "participants", {}, missing_ok=True
        ):
            for record in records:
                page.read += 1
                row = self._row(record, len(session.rows) + 1)
                if row is None:
                    page.skipped["waiting room or no identity"] += 1
                    session.skipped += 1
                    continue
                session.rows.append(row)
        # Site and grouping are the community, as `lms-bridge import --community` records a report.
        community = self.settings.meetings.get(meeting_id, community)
        activities = attendance.merge_session(session, source=SOURCE, site=community, pseudonymize=self.pseudonymize)
        group = ObjectRef(type="community", native_id=community)
        page.activities = [_grouped(activity, group) for activity in activities]
        return page

    def _row(self, record: dict[str, Any], line: int) -> attendance.PresenceRow | None:
        """A participant record as a report row; None for waiting-room time or a record naming nobody."""
        if str(record.get("status") or "").casefold() == "in_waiting_room":
            return None
        join, leave = _parse_time(record.get("join_time")), _parse_time(record.get("leave_time"))
        if join is None:
            return None
        if leave is not None and leave < join:
            leave = join
        identifier = email_identifier(str(record.get("user_email") or "")) if record.get("user_email") else None
        kind: Literal["email", "name"] = "email"
        if identifier is None:
            identifier, kind = name_identifier(str(record.get("name") or "")), "name"
        if identifier is None:
            return None
        duration = record.get("duration")
        seconds = (
            int(duration)
            if isinstance(duration, int) and 0 <= duration <= _LONGEST_JOIN
            else (int((leave - join).total_seconds()) if leave is not None else 0)
        )
        # The participants CSV states whole minutes per row, rounded up: the same here, so a pulled and an
        # imported session give the same duration.
        minutes = math.ceil(seconds / 60)
        return attendance.PresenceRow(
            line=line,
            identity=(kind, identifier),
            join=join.astimezone(self.tz),
            leave=leave.astimezone(self.tz) if leave is not None else None,
            seconds=minutes * 60,
        )


def _grouped(activity: Activity, group: ObjectRef) -> Activity:
    return replace(activity, grouping=group)


@contextmanager
def open_reader(settings: ZoomSettings, context: LiveContext) -> Iterator[ZoomReader]:
    """Open a reader: the client secret and the pseudonymiser are looked up first (ConfigError if unset)."""
    secret = context.secret(settings.client_secret_env)
    pseudonymize = context.pseudonymizer()
    client = ZoomClient(settings, secret)
    try:
        yield ZoomReader(settings, client, pseudonymize, context.timezone)
    finally:
        client.close()


def check_source(settings: ZoomSettings, context: LiveContext) -> Check:
    """A token from the OAuth app, then each user's meetings report of today (the listing a sync reads first)."""
    secret = context.secret(settings.client_secret_env)
    # Two tries at most: doctor should answer in seconds, not after a sync's backoff.
    client = ZoomClient(settings.model_copy(update={"max_attempts": min(settings.max_attempts, 2)}), secret)
    today = datetime.now(UTC).date().isoformat()

    def listing() -> str:
        for user in settings.users:
            client.get_api(
                "report/users/meetings",
                f"report/users/{quote(user.user, safe='@')}/meetings",
                {"from": today, "to": today, "type": "past", "page_size": 1},
            )
        return f"the meetings report of {len(settings.users)} user(s) can be read"

    def listing_fix(sentence: str) -> str:
        if "code 4711" in sentence:
            return "add the scope report:read:admin to the Server-to-Server OAuth app (App Marketplace > Scopes)"
        if "code 1001" in sentence:
            return "list in users only users of the Zoom account the OAuth app belongs to"
        return "check api_url and the users listed"

    return probe(
        f"{TYPE} {settings.id}",
        client,
        listing,
        token_fix=f"check account_id, client_id and the client secret in {settings.client_secret_env} "
        "(the Server-to-Server OAuth app's credentials) and oauth_url",
        listing_fix=listing_fix,
    )


def reset_position(stream: str, current: Any, to: datetime) -> dict[str, str]:
    """The cursor of a stream synced through ``to``'s date (the next pull re-reads the overlap before it)."""
    return {"through": to.astimezone(UTC).date().isoformat()}


CONNECTOR = LiveConnector(
    type=TYPE,
    streams=(Stream(STREAM),),
    settings_model=ZoomSettings,
    opener=open_reader,
    link_source=SOURCE,
    dated_position=reset_position,
    checker=check_source,
)
