"""Live pulls from the Google Classroom API (a service account with domain-wide delegation).

A ``[[sources]]`` entry of ``type = "google_classroom"`` names the service account's JSON key file
(it must be mode 0600, like the secrets file) and the Workspace admin to impersonate (``subject``).
The connector signs a JWT (RS256, with ``google-auth``'s signer: the official library, so no
hand-written RSA) for the key file's ``token_uri`` with the Classroom read-only scopes, exchanges it
for an access token, caches the token until a minute before it expires and fetches a new one once
on a 401.

Streams:

* ``courses``: the catalogue (``GET /v1/courses``, ``pageToken`` paging, ACTIVE courses); no statements.
* ``submissions``: per course, student submissions in state TURNED_IN or RETURNED
  (``/v1/courses/{id}/courseWork/-/studentSubmissions``) whose ``updateTime`` is after the course's
  watermark (minus ``overlap_seconds``, default 0): each is a **completed module** (``module_completed``; the
  ``elearning`` rule, C3) of its course, at the time it was first turned in.
* ``announcements``: per course, announcements newest first (``orderBy=updateTime desc``) down to the
  course's watermark: each is a **CoP post** (``post_created``; the ``cop`` rule, C10) of its author.
  The text is never kept, only its length.

The Classroom API cannot filter submissions by time, so each pull lists a course's submissions
(one call per page) and keeps the new ones; course work titles and the students' e-mails are read
only when a course has something new. The cursor of each stream holds one ``updateTime`` watermark
per course (``{"courses": {id: "2024-03-12T02:00:00.000Z"}}``), written with the course's page.

People: a submission's ``userId`` is matched to the e-mail of the course's student list
(``/v1/courses/{id}/students``), an announcement's ``creatorUserId`` through
``/v1/userProfiles/{id}``; the e-mail is pseudonymised at once (the roster links it to a NIP) and
no name is stored. A user whose e-mail the API does not show is pseudonymised by Classroom id.

Comments: the public Classroom API has no endpoint for stream or announcement comments (the
resources are courses, courseWork, studentSubmissions, announcements, courseWorkMaterials, topics,
students, teachers, userProfiles...; see googleapis/google-api-nodejs-client issue 2091), so
comments are not read.
"""

from __future__ import annotations

import json
import logging
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import quote

import requests
from pydantic import BaseModel, ConfigDict, Field

from connectors.base import Check, Pseudonymizer, Stream
from connectors.http import parse_iso_time, token_pages
from connectors.live import LiveConnector, LiveContext, LivePage
from connectors.token_api import ApiSettings, TokenApiClient, probe
from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.errors import ConfigError, FatalSourceError
from lms_bridge.identifiers import email_identifier
from lms_bridge.redaction import register_secret

log = logging.getLogger(__name__)

TYPE = "google_classroom"
#: The ``source`` of its activities (an identity source whose actors are pseudonyms).
SOURCE = "google_classroom"
STREAMS = ("courses", "submissions", "announcements")
#: Read-only scopes: courses, students' submissions, announcements, rosters and their e-mails.
SCOPES = (
    "https://www.googleapis.com/auth/classroom.courses.readonly",
    "https://www.googleapis.com/auth/classroom.coursework.students.readonly",
    "https://www.googleapis.com/auth/classroom.announcements.readonly",
    "https://www.googleapis.com/auth/classroom.rosters.readonly",
    "https://www.googleapis.com/auth/classroom.profile.emails",
)
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_ID = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


#: An absolute http(s) URL with no query or fragment.
_HTTP_URL = r"^https?://[^/?#\s]+(/[^?#\s]*)?$"


class ClassroomSettings(BaseModel):
    """A ``[[sources]]`` entry of ``type = "google_classroom"``.

    Attributes:
        id: the source id (the ``site`` of its activities; never rename it).
        type: ``google_classroom``.
        key_file: the service account's JSON key (mode 0600; relative to the config file).
        subject: the Workspace admin the service account impersonates (domain-wide delegation).
        oauth_endpoint: the token endpoint (default: the key file's ``token_uri``; a config key may not
            contain "token": the config refuses such keys as inline secrets).
        api_url: the Classroom API base.
        course_ids: read only these courses (default: every ACTIVE course the admin sees).
        communities: course id -> the Community of Practice its announcements belong to
            (default: the course itself groups them).
        overlap_seconds: how far before a watermark each pull starts again (default 0: strictly after it;
            records re-read in an overlap count as unchanged).
        page_size: records per page.
        timeout: seconds per request.
        max_attempts: tries of one request (5xx, resets, 429) before the source stops.
        backoff_base, backoff_cap: seconds between retries, doubled per failure, capped.
        max_retry_after: the longest ``Retry-After`` waited for; a longer one stops the source.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID)
    type: Literal["google_classroom"]
    key_file: Path
    subject: str = Field(min_length=3)
    oauth_endpoint: str | None = Field(default=None, pattern=_HTTP_URL)
    api_url: str = Field(default="https://classroom.googleapis.com", pattern=_HTTP_URL)
    course_ids: list[str] = Field(default_factory=list)
    communities: dict[str, Annotated[str, Field(pattern=_ID)]] = Field(default_factory=dict)
    overlap_seconds: int = Field(default=0, ge=0)
    page_size: int = Field(default=100, ge=1, le=1000)
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_base: float = Field(default=1.0, ge=0)
    backoff_cap: float = Field(default=60.0, ge=0)
    max_retry_after: float = Field(default=120.0, ge=0)


def read_key_file(path: Path) -> dict[str, Any]:
    """Read a service account key file, refusing one that group or others can read.

    Raises:
        ConfigError: the file is missing, readable by others, or not a service account key.
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"service account key file {path} cannot be read ({exc.strerror})") from exc
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"service account key file {path} is readable by others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        # Never echo the content: it holds a private key.
        raise ConfigError(f"service account key file {path} is not a JSON key file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"service account key file {path} is not a service account key (not a JSON object)")
    missing = [key for key in ("client_email", "private_key", "token_uri") if not isinstance(data.get(key), str)]
    if data.get("type") != "service_account" or missing:
        raise ConfigError(
            f"service account key file {path} is not a service account key "
            f"(missing {', '.join(missing) or 'type = service_account'})"
        )
    register_secret(data["private_key"])
    for line in data["private_key"].splitlines():
        if len(line) >= 16 and not line.startswith("-----"):
            register_secret(line)  # a key line quoted alone in an error is masked too
    return data


class ServiceAccountSettings(ApiSettings, Protocol):
    """The settings keys a service-account client reads (Classroom's and Meet's settings models have them)."""

    subject: str
    oauth_endpoint: str | None
    api_url: str
    page_size: int


class ClassroomClient(TokenApiClient):
    """GETs to the Classroom API with a cached service-account token, retries and call counts."""

    platform = "Classroom"
    url_hint = "api_url, oauth_endpoint or the key file's token_uri"
    #: The scopes the JWT asks for, and how the refusal of a token names them.
    scopes: tuple[str, ...] = SCOPES
    scopes_label = "the Classroom scopes"

    def __init__(
        self, settings: ServiceAccountSettings, key: dict[str, Any], *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        from google.auth import crypt

        super().__init__(settings, sleep=sleep)
        self.settings: ServiceAccountSettings = settings
        self._key = key
        try:
            self._signer = crypt.RSASigner.from_service_account_info(key)
        except (ValueError, TypeError):
            raise ConfigError(
                f"source {settings.id}: the service account key file's private_key is not an RSA "
                "private key in PEM form"
            ) from None

    def _assertion(self) -> bytes:
        from google.auth import jwt

        now = int(time.time())
        payload = {
            "iss": self._key["client_email"],
            "sub": self.settings.subject,
            "scope": " ".join(self.scopes),
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        }
        return jwt.encode(self._signer, payload)

    @property
    def token_uri(self) -> str:
        """The token endpoint: the setting, else the key file's."""
        return self.settings.oauth_endpoint or str(self._key["token_uri"])

    def request_token(self) -> requests.Response:
        """The JWT bearer grant: a signed assertion for the subject, exchanged at the token endpoint."""
        data = {"grant_type": JWT_GRANT, "assertion": self._assertion()}
        return self.send(
            self.auth_call, lambda: self.session.post(self.token_uri, data=data, timeout=self.settings.timeout)
        )

    def token_refused(self, response: requests.Response) -> str:
        """The sentence for a refused token request, naming what to check."""
        return (
            f"source {self.settings.id}: Google refused the service account's token request (HTTP "
            f"{response.status_code}, {google_error(response)}); check the key file, domain-wide delegation "
            f"of {self.scopes_label} and subject {self.settings.subject}"
        )

    def refusal(self, response: requests.Response) -> str:
        """Google's error status and message."""
        return google_error(response)

    def get_api(self, endpoint: str, path: str, params: list[tuple[str, Any]] | None = None) -> dict[str, Any]:
        """GET ``path`` under the API base (a list of params, so ``states`` can repeat)."""
        return self.get(endpoint, f"{self.settings.api_url.rstrip('/')}/{path.lstrip('/')}", params) or {}

    def items(
        self, endpoint: str, path: str, key: str, params: list[tuple[str, Any]] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every record of ``key`` over all pages (``pageToken``/``nextPageToken``)."""

        def fetch(token: str) -> dict[str, Any]:
            query = [*(params or []), ("pageSize", self.settings.page_size), *([("pageToken", token)] if token else [])]
            return self.get_api(endpoint, path, query)

        def repeated() -> FatalSourceError:
            return FatalSourceError(
                f"source {self.settings.id}: Classroom's {endpoint} answer gives a "
                "nextPageToken it gave before (the listing would never end)"
            )

        for data in token_pages(fetch, "nextPageToken", repeated):
            records = data.get(key) or []
            if not isinstance(records, list):
                raise FatalSourceError(f"source {self.settings.id}: Classroom's {endpoint} answer has no {key} list")
            yield from (record for record in records if isinstance(record, dict))


def google_error(response: requests.Response) -> str:
    """Google's error status (``PERMISSION_DENIED``, ``invalid_grant``...) and message, briefly."""
    try:
        data = response.json()
    except ValueError:
        return "not a JSON answer"
    if not isinstance(data, dict):
        return "not a JSON object"
    error = data.get("error")
    if isinstance(error, dict):
        return f"{error.get('status', error.get('code', ''))}: {str(error.get('message', ''))[:200]}"
    return f"{error}: {str(data.get('error_description', ''))[:200]}"


def _time(value: object) -> datetime | None:
    return parse_iso_time(value, naive_is_utc=True)


#: Seconds before a listing's start that a course's watermark may reach (see :meth:`ClassroomReader.read`).
SETTLE_SECONDS = 300


def _watermarks(start: Any) -> dict[str, str]:
    if isinstance(start, dict) and isinstance(start.get("courses"), dict):
        return {str(k): str(v) for k, v in start["courses"].items()}
    return {}


class ClassroomReader:
    """Reads the streams of one Classroom source (see the module docstring)."""

    def __init__(
        self,
        settings: ClassroomSettings,
        client: ClassroomClient,
        pseudonymize: Pseudonymizer,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.now = now
        self.client = client
        self.calls = client.calls
        self.pseudonymize = pseudonymize
        self._courses: list[dict[str, Any]] | None = None
        self._profiles: dict[str, str] = {}  # user id -> pseudonym

    def read(self, stream: str, start: Any, since: datetime | None = None) -> Iterator[LivePage]:
        """Yield the stream's pages: the catalogue, or one page per course with its new watermark."""
        if stream == "courses":
            yield LivePage(read=len(self.courses()))
            return
        if stream not in STREAMS:
            raise ConfigError(f"source {self.settings.id}: unknown stream {stream!r} (streams: {', '.join(STREAMS)})")
        marks = _watermarks(start)
        for course in self.courses():
            course_id = str(course["id"])
            floor = since if since is not None else _time(marks.get(course_id))
            if floor is not None and since is None:
                floor -= timedelta(seconds=self.settings.overlap_seconds)
            listing_started = self.now()
            if stream == "submissions":
                page, newest = self._submissions(course, floor)
            else:
                page, newest = self._announcements(course, floor)
            if newest is not None:
                # A listing is not a snapshot: a record updated while its pages were read may sit on a page
                # already read, older than the newest seen on a later page. The watermark therefore never
                # passes the listing's start (less SETTLE_SECONDS of clock skew and Google's eventual
                # consistency): the next pull re-reads that span, which costs only "unchanged" statements.
                newest = min(newest, listing_started - timedelta(seconds=SETTLE_SECONDS))
            if newest is not None and newest > (_time(marks.get(course_id)) or datetime.min.replace(tzinfo=UTC)):
                marks[course_id] = newest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            page.position = {"courses": dict(marks)}
            yield page

    def courses(self) -> list[dict[str, Any]]:
        """The courses read (ACTIVE ones, or those of ``course_ids``), listed once per run."""
        if self._courses is None:
            found = [
                course
                for course in self.client.items("courses", "v1/courses", "courses", [("courseStates", "ACTIVE")])
                if course.get("id")
            ]
            wanted = set(self.settings.course_ids)
            self._courses = [course for course in found if not wanted or str(course["id"]) in wanted]
            missing = wanted - {str(course["id"]) for course in self._courses}
            if missing:
                log.warning(
                    "%s: course_ids %s are not ACTIVE courses %s sees: not read",
                    self.settings.id,
                    ", ".join(sorted(missing)),
                    self.settings.subject,
                    extra={"site": self.settings.id},
                )
        return self._courses

    # --- submissions -----------------------------------------------------------------------------------

    def _submissions(self, course: dict[str, Any], floor: datetime | None) -> tuple[LivePage, datetime | None]:
        course_id = str(course["id"])
        page = LivePage()
        path = f"v1/courses/{quote(course_id, safe='')}/courseWork/-/studentSubmissions"
        fresh: list[dict[str, Any]] = []
        newest: datetime | None = None
        for record in self.client.items(
            "studentSubmissions", path, "studentSubmissions", [("states", "TURNED_IN"), ("states", "RETURNED")]
        ):
            page.read += 1
            updated = _time(record.get("updateTime"))
            if updated is None:
                page.skipped["submission without updateTime"] += 1
                continue
            newest = updated if newest is None or updated > newest else newest
            if floor is None or updated > floor:
                fresh.append(record)
        if not fresh:
            return page, newest
        titles = {
            str(work.get("id")): str(work.get("title") or "") or None
            for work in self.client.items(
                "courseWork", f"v1/courses/{quote(course_id, safe='')}/courseWork", "courseWork"
            )
        }
        students = self._students(course_id)
        parent = ObjectRef(type="course", native_id=course_id, title=str(course.get("name") or "") or None)
        for record in fresh:
            work_id, user_id = str(record.get("courseWorkId") or ""), str(record.get("userId") or "")
            turned_in = _first_turned_in(record) or _time(record.get("updateTime"))
            if not work_id or not user_id or turned_in is None:
                page.skipped["submission without course work, user or time"] += 1
                continue
            actor = students.get(user_id) or self.pseudonymize(f"{SOURCE}:{user_id}")
            page.activities.append(
                Activity(
                    source=SOURCE,
                    site=self.settings.id,
                    kind=Kind.MODULE_COMPLETED,
                    # Guard: the key recipe; changing it changes every statement id already in the LRS.
                    native_id=f"course={course_id}|work={work_id}|user={user_id}",
                    actor=actor,
                    object=ObjectRef(type="module", native_id=f"{course_id}/{work_id}", title=titles.get(work_id)),
                    occurred_at=turned_in,
                    parent=parent,
                )
            )
        return page, newest

    def _students(self, course_id: str) -> dict[str, str]:
        """Student user id -> pseudonym of the e-mail (pseudonymised at once; nothing else is kept)."""
        found: dict[str, str] = {}
        for student in self.client.items("students", f"v1/courses/{quote(course_id, safe='')}/students", "students"):
            raw = student.get("profile")
            profile: dict[str, Any] = raw if isinstance(raw, dict) else {}
            identifier = email_identifier(str(profile.get("emailAddress") or ""))
            user_id = str(student.get("userId") or profile.get("id") or "")
            if identifier is not None and user_id:
                found[user_id] = self.pseudonymize(identifier)
        return found

    # --- announcements ---------------------------------------------------------------------------------

    def _announcements(self, course: dict[str, Any], floor: datetime | None) -> tuple[LivePage, datetime | None]:
        course_id = str(course["id"])
        page = LivePage()
        newest: datetime | None = None
        community = self.settings.communities.get(course_id)
        grouping = (
            ObjectRef(type="community", native_id=community)
            if community
            else ObjectRef(type="course", native_id=course_id, title=str(course.get("name") or "") or None)
        )
        path = f"v1/courses/{quote(course_id, safe='')}/announcements"
        for record in self.client.items(
            "announcements",
            path,
            "announcements",
            [("announcementStates", "PUBLISHED"), ("orderBy", "updateTime desc")],
        ):
            updated = _time(record.get("updateTime"))
            if updated is not None and floor is not None and updated <= floor:
                break  # newest first: everything after this was read before
            page.read += 1
            created = _time(record.get("creationTime")) or updated
            author = str(record.get("creatorUserId") or "")
            if updated is None or created is None or not record.get("id") or not author:
                page.skipped["announcement without id, author or time"] += 1
                continue
            newest = updated if newest is None or updated > newest else newest
            page.activities.append(
                Activity(
                    source=SOURCE,
                    site=self.settings.id,
                    kind=Kind.POST_CREATED,
                    # Guard: the key recipe; changing it changes every statement id already in the LRS.
                    native_id=f"course={course_id}|announcement={record['id']}",
                    actor=self._profile(author),
                    object=ObjectRef(type="post", native_id=f"{course_id}/{record['id']}"),
                    occurred_at=created,
                    grouping=grouping,
                    # Privacy: the length of the text, never the text.
                    extras={"text_length": len(str(record.get("text") or ""))},
                )
            )
        return page, newest

    def _profile(self, user_id: str) -> str:
        """The pseudonym of a user's e-mail (``/v1/userProfiles/{id}``, read once per run)."""
        if user_id not in self._profiles:
            profile = self.client.get_api("userProfiles", f"v1/userProfiles/{quote(user_id, safe='')}")
            identifier = email_identifier(str(profile.get("emailAddress") or ""))
            self._profiles[user_id] = self.pseudonymize(identifier or f"{SOURCE}:{user_id}")
        return self._profiles[user_id]


def _first_turned_in(record: dict[str, Any]) -> datetime | None:
    """When the submission was first turned in (its history), so a later return changes nothing."""
    times = []
    history = record.get("submissionHistory")
    for entry in history if isinstance(history, list) else []:
        state = entry.get("stateHistory") if isinstance(entry, dict) else None
        if isinstance(state, dict) and state.get("state") == "TURNED_IN":
            moment = _time(state.get("stateTimestamp"))
            if moment is not None:
                times.append(moment)
    return min(times) if times else None


@contextmanager
def open_reader(settings: ClassroomSettings, context: LiveContext) -> Iterator[ClassroomReader]:
    """Open a reader: the key file (0600) and the pseudonymiser are checked first (ConfigError)."""
    key = read_key_file(context.resolve_path(settings.key_file))
    pseudonymize = context.pseudonymizer()
    client = ClassroomClient(settings, key)
    try:
        yield ClassroomReader(settings, client, pseudonymize)
    finally:
        client.close()


def delegation_fix(client: ClassroomClient) -> str:
    """What to fix when Google refuses a service account's token request (one sentence)."""
    return (
        f"check the key file and subject {client.settings.subject}, and that the Admin console's domain-wide "
        f"delegation grants the service account's client id the scopes {', '.join(client.scopes)}"
    )


def check_source(settings: ClassroomSettings, context: LiveContext) -> Check:
    """A token for the subject with the Classroom scopes, then the first page of ACTIVE courses."""
    key = read_key_file(context.resolve_path(settings.key_file))
    # Two tries at most: doctor should answer in seconds, not after a sync's backoff.
    client = ClassroomClient(settings.model_copy(update={"max_attempts": min(settings.max_attempts, 2)}), key)

    def listing() -> str:
        data = client.get_api("courses", "v1/courses", [("courseStates", "ACTIVE"), ("pageSize", 1)])
        courses = data.get("courses") or []
        return f"{settings.subject} sees {'ACTIVE courses' if courses else 'no ACTIVE course'}"

    return probe(
        f"{TYPE} {settings.id}",
        client,
        listing,
        token_fix=delegation_fix(client),
        listing_fix=lambda sentence: (
            f"make subject {settings.subject} a Workspace admin or a teacher of the courses, and check api_url"
        ),
    )


def reset_position(stream: str, current: Any, to: datetime) -> dict[str, dict[str, str]]:
    """Every known course's watermark set to ``to`` (courses not seen yet are still read whole)."""
    mark = to.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"courses": dict.fromkeys(_watermarks(current), mark)}


CONNECTOR = LiveConnector(
    type=TYPE,
    streams=tuple(Stream(name) for name in STREAMS),
    settings_model=ClassroomSettings,
    opener=open_reader,
    link_source=SOURCE,
    dated_position=reset_position,
    checker=check_source,
)
