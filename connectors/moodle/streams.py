"""Moodle streams: each reads one kind of record and yields batches with the cursor they cover.

A stream gets its start position as an argument and yields :class:`Batch` objects;
the runner commits each batch's statements, identity links and position in one
transaction. Stream names key the cursors table: never rename one.

Values from JSON are typed, values from XML are strings: every field is read
through the ``_int``/``_bool``/``_text`` helpers so both formats give equal records.
"""

from __future__ import annotations

import functools
import html
import logging
import math
import re
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from connectors.http import offset_pages
from connectors.moodle.client import MoodleAPIError, MoodleClient, MoodleRecordError
from lms_bridge.activity import REPLY_TO, Activity, Kind, ObjectRef
from lms_bridge.errors import FatalSourceError, LmsBridgeError

log = logging.getLogger(__name__)

SOURCE = "moodle"
log = logging.getLogger(__name__)
#: lastcourseaccess is written at most once a minute and course completion is
#: aggregated by cron minutes after the last criterion: re-check users whose last
#: access falls this long before the watermark (tests/data/README.md, "Course completion").
COMPLETION_OVERLAP = 2 * 24 * 3600
#: An access this long before a time the server has already reached (the latest ``lastcourseaccess``
#: read in this run) has had its cron aggregation: asking about it once is enough. Likewise an access
#: asked about again this long (on the client's own clock) after it was first asked. Moodle's completion
#: task runs every minute on a site whose cron runs every minute; an hour leaves room for a slower cron.
COMPLETION_SETTLE = 3600
#: Completion calls queued per worker ahead of the one awaited: a sliding window keeps every worker
#: busy (no barrier between chunks), also while the runner builds and commits a batch.
COMPLETION_QUEUE_PER_WORKER = 2
#: Discussions active this long before a forum's watermark are tracked (post ids, reply count) so that
#: posts a moderator deletes are noticed and their statements voided: a week covers the time a
#: moderator usually takes, and the listing of a week of discussions is one page for most forums.
FORUM_RECHECK = 7 * 24 * 3600
#: Participants per ``core_enrol_get_enrolled_users`` page. The pages ask three lean fields (about 30
#: bytes a participant) and Moodle's cost is per participant (0.52 ms) plus per call (0.05 s): captured,
#: 9,999 participants took 5.19 s in one call and 5.70 s in ten pages. A big page costs the site no more,
#: and a sync with nothing new then grows with courses, not with people (issue 23 item 5).
PARTICIPANTS_PER_PAGE = 5000
#: Activities per batch of a completion stream: bounds memory whatever the size of a course.
BATCH_ACTIVITIES = 1000


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(value)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value not in ("", "0", "false")
    return bool(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class MoodleDataError(FatalSourceError):
    """Raised when a Moodle answer does not have the shape its web service documents.

    A field that is not a number, a time out of range or a list where an object
    belongs: the site stops with one sentence (the stream, never the data), and the
    cursors keep their last committed position.
    """


#: What reading a record of the wrong shape raises in Python.
_SHAPE_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError)


def _malformed(site: str, where: str, exc: Exception) -> MoodleDataError:
    return MoodleDataError(
        f"Moodle site {site} answered a malformed record while reading {where} "
        f"({type(exc).__name__}); check the site's web services or report it"
    )


def _guarded(read: Callable[..., Iterator[Batch]]) -> Callable[..., Iterator[Batch]]:
    """Turn shape errors raised while a stream reads into a :class:`MoodleDataError`."""

    @functools.wraps(read)
    def wrapper(self: Any, ctx: SiteContext, start: Any) -> Iterator[Batch]:
        try:
            yield from read(self, ctx, start)
        except LmsBridgeError:
            raise
        except _SHAPE_ERRORS as exc:
            raise _malformed(ctx.site, f"stream {getattr(self, 'name', '?')}", exc) from exc

    return wrapper


def _guarded_call(method: Callable[..., None]) -> Callable[..., None]:
    """The same for a plain method of :class:`SiteContext`."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except LmsBridgeError:
            raise
        except _SHAPE_ERRORS as exc:
            raise _malformed(self.site, "the course catalogue", exc) from exc

    return wrapper


_TAGS = re.compile(r"<[^>]+>")


def text_length(message_html: str) -> int:
    """Length of a post's visible text (privacy: the length is kept, never the text)."""
    return len(" ".join(html.unescape(_TAGS.sub(" ", message_html)).split()))


@dataclass(frozen=True)
class Course:
    """A course of the site catalogue (the site course id 1 is never one)."""

    id: int
    shortname: str
    fullname: str
    visible: bool
    completion_enabled: bool
    category_id: int
    idnumber: str
    #: Course custom fields (shortname -> raw value as text), read only when the site asks for them.
    customfields: dict[str, str] = field(default_factory=dict, hash=False)
    #: The course tags ``cop_forums.course_tags`` names that the course carries (lower case), read only then.
    tags: frozenset[str] = frozenset()

    def facts(self) -> dict[str, Any]:
        """What JP rules read about the course (program JP by shortname, custom field, idnumber or category)."""
        facts: dict[str, Any] = {
            "course_idnumber": self.idnumber,
            "course_shortname": self.shortname,
            "course_category": self.category_id,
        }
        if self.customfields:
            facts["course_customfields"] = dict(self.customfields)
        return facts

    def ref(self, wwwroot: str) -> ObjectRef:
        """The course as an activity object."""
        return ObjectRef("course", str(self.id), self.fullname, f"{wwwroot}/course/view.php?id={self.id}")


@dataclass(frozen=True)
class UserLink:
    """A site account and the NIP in its ``idnumber`` (raw, maybe blank or spaced)."""

    user_id: str
    idnumber: str


@dataclass
class Batch:
    """What a stream hands the runner for one transaction.

    Attributes:
        activities: the activities read.
        position: the cursor after this batch (JSON-able), or None to leave it.
        links: identity links read (enrolled users).
        read: Moodle records this batch read (courses, participants, completion answers, posts),
            for the run's counts; None: its activities and links.
        voids: natural keys of activities read before that Moodle no longer has (a deleted post).
    """

    activities: list[Activity] = field(default_factory=list)
    position: Any = None
    links: list[UserLink] = field(default_factory=list)
    read: int | None = None
    voids: list[str] = field(default_factory=list)


@dataclass
class SiteContext:
    """What streams of one run share: the client and the course catalogue."""

    site: str
    client: MoodleClient
    wwwroot: str
    courses: dict[int, Course] = field(default_factory=dict)
    webinars: dict[int, str] = field(default_factory=dict)  # BigBlueButton cmid -> name
    #: Course id -> (user ids, lastcourseaccess; 0: never accessed) of the participants, read once per
    #: run (by ``enrolled_users`` or the first completion stream) and shared by both completion streams.
    #: Two compact arrays: 16 bytes a participant, not a dict per user.
    access: dict[int, tuple[array, array]] = field(default_factory=dict)
    #: The latest ``lastcourseaccess`` read in this run: the server's clock had reached it (source time).
    latest_access: int = 0
    #: BigBlueButton instance id -> scheduled length in seconds (0: not set or not readable), read once a run.
    sessions: dict[int, int] = field(default_factory=dict)
    _sessions_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Assignment instance id -> course id, read once a run (None: not read yet).
    assignments: dict[int, int] | None = None
    #: ``since`` -> course id -> {user id: latest grade time}: assignment grades written since then.
    grades: dict[int, dict[int, dict[str, int]]] = field(default_factory=dict)
    _grades_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: The client's clock (epoch seconds): only differences of its readings are used, so its skew
    #: against the server's clock does not matter. Tests pass their own to move time without sleeping.
    now: Callable[[], float] = time.time
    #: Account ids whose NIP this run already has (participants read, or looked up by :meth:`identify`).
    known: set[str] = field(default_factory=set)
    #: Course id -> cmid -> module name, from ``core_course_get_contents`` (read once per course, when needed).
    modules: dict[int, dict[int, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def module_name(self, course_id: int, cmid: int) -> str | None:
        """The name of a course module; the course's contents are read on the first ask (one call per course)."""
        with self._lock:
            names = self.modules.get(course_id)
            if names is None:
                names = {}
                contents = self.client.call(
                    "core_course_get_contents",
                    courseid=course_id,
                    options=[{"name": "excludecontents", "value": True}],
                )
                for section in contents or []:
                    for module in section.get("modules") or []:
                        names[_int(module.get("id"))] = _text(module.get("name"))
                self.modules[course_id] = names
        return names.get(cmid) or None

    def identify(self, user_ids: set[str]) -> list[UserLink]:
        """Links for accounts no participants pass of this run brought (a poster who left the course).

        One ``core_user_get_users_by_field`` call for all of them; an id Moodle no longer has
        (a deleted account) gets no link and stays a site account.
        """
        with self._lock:
            unknown = sorted((u for u in user_ids if u and u not in self.known), key=int)
            self.known.update(unknown)
        if not unknown:
            return []
        users = self.client.call("core_user_get_users_by_field", field="id", values=[int(u) for u in unknown])
        return [UserLink(_text(raw.get("id")), _text(raw.get("idnumber"))) for raw in users or []]

    def session_seconds(self, instance: int) -> int:
        """A BigBlueButton session's scheduled length (``closingtime - openingtime``), 0 when unknown.

        Read with ``mod_bigbluebuttonbn_meeting_info`` once per activity and run. Real Moodle asks
        its BigBlueButton server first and fails when it does not answer, and the function may be
        missing from the token's service: the length is then unknown (the JP rules hold the
        attendance as pending), never guessed.
        """
        with self._sessions_lock:
            if instance in self.sessions:
                return self.sessions[instance]
            try:
                info = self.client.call("mod_bigbluebuttonbn_meeting_info", bigbluebuttonbnid=instance)
            except MoodleAPIError as exc:
                log.warning(
                    "Moodle site %s: no schedule for BigBlueButton activity %s (%s): its attendances carry "
                    "no session length",
                    self.site,
                    instance,
                    exc.errorcode,
                )
                info = {}
            opening, closing = _int(info.get("openingtime")), _int(info.get("closingtime"))
            self.sessions[instance] = closing - opening if opening and closing > opening else 0
            return self.sessions[instance]

    def graded_since(self, since: int) -> dict[int, dict[str, int]]:
        """Course id -> {user id: grade time} of the assignment grades written at or after ``since``.

        A teacher grading after the student's last visit changes the completion (to pass or fail)
        without moving ``lastcourseaccess``: these users are asked again whatever their access.
        Two calls a run for the whole site (``mod_assign_get_assignments``, ``mod_assign_get_grades``),
        however many users have nothing new. A site whose token lacks them gets a warning; the
        rolling re-check of ``serve`` still reads late grades.
        """
        with self._grades_lock:
            if since in self.grades:
                return self.grades[since]
            found: dict[int, dict[str, int]] = {}
            try:
                if self.assignments is None:
                    # Without includenotenrolledcourses real Moodle answers only the courses the token's user is
                    # enrolled in (a Manager usually is in none: "courses": [] and a warning per course).
                    data = self.client.call(
                        "mod_assign_get_assignments", courseids=list(self.courses), includenotenrolledcourses=1
                    )
                    for warning in data.get("warnings") or []:
                        log.warning(
                            "Moodle site %s: mod_assign_get_assignments skipped course %s (%s): its late grades "
                            "are read by the rolling re-check only",
                            self.site,
                            warning.get("itemid"),
                            warning.get("message"),
                        )
                    self.assignments = {
                        _int(a.get("id")): _int(course.get("id"))
                        for course in data.get("courses") or []
                        for a in course.get("assignments") or []
                    }
                if self.assignments:
                    data = self.client.call(
                        "mod_assign_get_grades", assignmentids=sorted(self.assignments), since=since
                    )
                    for entry in data.get("assignments") or []:
                        course_id = self.assignments.get(_int(entry.get("assignmentid")))
                        if course_id is None:
                            continue
                        users = found.setdefault(course_id, {})
                        for grade in entry.get("grades") or []:
                            user, when = _text(grade.get("userid")), _int(grade.get("timemodified"))
                            users[user] = max(users.get(user, 0), when)
            except MoodleAPIError as exc:
                log.warning(
                    "Moodle site %s: assignment grades not readable (%s): a grade written after a student's "
                    "last visit is read by the rolling re-check only",
                    self.site,
                    exc.errorcode,
                )
                self.assignments = {}
            self.grades[since] = found
            return found

    @_guarded_call
    def load_catalogue(self, *, customfields: bool = False, tags: tuple[str, ...] = ()) -> None:
        """Read courses (site course dropped, sorted by id) and, when asked, their custom fields and tags.

        Raises:
            MoodleAPIError: ``accessexception`` naming ``core_course_get_courses_by_field`` when
                custom fields are asked for and the token's service lacks that function (likewise
                for the tag functions when ``tags`` are asked for).
        """
        fields = self.load_customfields() if customfields else {}
        tagged = self.load_course_tags(tags) if tags else {}
        courses = {}
        for raw in self.client.call("core_course_get_courses"):
            course_id = _int(raw.get("id"))
            if course_id == 1 or _text(raw.get("format")) == "site":
                continue  # the site front page is course 1 (fixtures README)
            courses[course_id] = Course(
                id=course_id,
                shortname=_text(raw.get("shortname")),
                fullname=_text(raw.get("fullname")),
                visible=_bool(raw.get("visible")),
                completion_enabled=_bool(raw.get("enablecompletion")),
                category_id=_int(raw.get("categoryid")),
                idnumber=_text(raw.get("idnumber")),
                customfields=fields.get(course_id, {}),
                tags=frozenset(tagged.get(course_id, ())),
            )
        self.courses = dict(sorted(courses.items()))

    def load_course_tags(self, names: tuple[str, ...]) -> dict[int, set[str]]:
        """Course id -> which of the tags ``names`` (lower case) the course carries.

        Moodle has no course listing with tags: the course tag area (``core_tag_get_tag_areas``:
        component ``core``, item type ``course``) gives the tag collection, each name its tag id
        (``core_tag_get_tagindex``: tag names match case-insensitively), and
        ``core_course_search_courses`` with ``criterianame = tagid`` the courses tagged with it.
        1 + 2 calls a tag per run. A tag no course carries yet does not exist in Moodle
        (``invalidrecord``): no course has it, with a warning.
        """
        found: dict[int, set[str]] = {}
        areas = self.client.call("core_tag_get_tag_areas")
        area = next(
            (
                a
                for a in (areas.get("areas") if isinstance(areas, dict) else None) or []
                if _text(a.get("component")) == "core" and _text(a.get("itemtype")) == "course"
            ),
            None,
        )
        if area is None or not _bool(area.get("enabled", True)):
            log.warning(
                "Moodle site %s: course tags are switched off (Site administration > Appearance > Manage tags): "
                "no course counts as Community of Practice by its tags",
                self.site,
            )
            return found
        for name in sorted({n.strip().lower() for n in names if n.strip()}):
            try:
                index = self.client.call(
                    "core_tag_get_tagindex",
                    tagindex={"tag": name, "tc": _int(area.get("tagcollid")), "ta": _int(area.get("id"))},
                )
            except MoodleRecordError as exc:
                if exc.errorcode != "invalidrecord":
                    raise
                log.warning("Moodle site %s: no course carries the tag %r (cop_forums.course_tags)", self.site, name)
                continue
            data = self.client.call("core_course_search_courses", criterianame="tagid", criteriavalue=index["tagid"])
            for raw in data.get("courses") or []:
                found.setdefault(_int(raw.get("id")), set()).add(name)
        return found

    def load_customfields(self) -> dict[int, dict[str, str]]:
        """Course id -> custom fields (shortname -> ``valueraw`` as text) of every course that has some.

        ``core_course_get_courses_by_field`` without field/value lists every course the token's
        user can see, with ``customfields`` (``core_course_get_courses`` does not return them).
        """
        data = self.client.call("core_course_get_courses_by_field")
        found: dict[int, dict[str, str]] = {}
        for raw in (data.get("courses") if isinstance(data, dict) else None) or []:
            values = {}
            for item in raw.get("customfields") or []:
                shortname = _text(item.get("shortname"))
                if shortname:
                    values[shortname] = _text(item.get("valueraw"))
            if values:
                found[_int(raw.get("id"))] = values
        return found


def enrolled_user_pages(ctx: SiteContext, course_id: int, fields: str, page_size: int) -> Iterator[list[dict]]:
    """Pages of a course's participants, lean ``userfields``, ``limitfrom``/``limitnumber``."""

    def fetch(offset: int) -> list[dict]:
        page: list[dict] = ctx.client.call(
            "core_enrol_get_enrolled_users",
            courseid=course_id,
            options=[
                {"name": "userfields", "value": fields},
                {"name": "limitfrom", "value": offset},
                {"name": "limitnumber", "value": page_size},
            ],
        )
        return page

    return offset_pages(fetch, page_size)


class _AccessRecorder:
    """Collects a course's (user id, lastcourseaccess) pairs into :attr:`SiteContext.access`."""

    def __init__(self) -> None:
        self.users = array("q")
        self.times = array("q")

    def add(self, raw: dict) -> None:
        # Never accessed (0) is kept: a teacher's override, completion by role or an import completes
        # users who never opened the course (issue 17).
        self.users.append(_int(raw.get("id")))
        self.times.append(_int(raw.get("lastcourseaccess")))

    def store(self, ctx: SiteContext, course_id: int) -> None:
        ctx.access[course_id] = (self.users, self.times)
        ctx.latest_access = max(ctx.latest_access, max(self.times, default=0))


def course_access(ctx: SiteContext, course: Course, page_size: int) -> tuple[array, array]:
    """The course's (user ids, lastcourseaccess) from this run's participants pass, paging it if not read yet."""
    if course.id not in ctx.access:
        recorder = _AccessRecorder()
        for page in enrolled_user_pages(ctx, course.id, "id,lastcourseaccess", page_size):
            for raw in page:
                recorder.add(raw)
        recorder.store(ctx, course.id)
    return ctx.access[course.id]


class CoursesStream:
    """The course catalogue: no statements, but counted and kept for the other streams."""

    name = "courses"

    def __init__(self, customfields: bool = False, tags: tuple[str, ...] = ()) -> None:
        self.customfields = customfields
        self.tags = tags

    @_guarded
    def read(self, ctx: SiteContext, start: Any) -> Iterator[Batch]:
        """Load the catalogue; the position records how many courses were seen."""
        ctx.load_catalogue(customfields=self.customfields, tags=self.tags)
        hidden = sum(1 for c in ctx.courses.values() if not c.visible)
        yield Batch(position={"courses": len(ctx.courses), "hidden": hidden}, read=len(ctx.courses))


class EnrolledUsersStream:
    """Participants of every course: builds the user id -> NIP links (no statements).

    Moodle has no time filter for enrolments, so every pass is full; the position is
    written after the last course (an unsorted stream commits after a full pass). The
    same pages also bring ``lastcourseaccess``, kept in :attr:`SiteContext.access` so the
    completion streams need no participants pass of their own. Up to ``max_workers``
    courses are paged at once (each course's pages in order); batches stay in course order.
    """

    name = "enrolled_users"

    def __init__(self, page_size: int = PARTICIPANTS_PER_PAGE, max_workers: int = 4) -> None:
        self.page_size = page_size
        self.max_workers = max_workers

    def _course_pages(self, ctx: SiteContext, course: Course) -> tuple[list[dict], _AccessRecorder]:
        """One course's participants (id and idnumber only) and its access times."""
        users: list[dict] = []
        recorder = _AccessRecorder()
        for page in enrolled_user_pages(ctx, course.id, "id,idnumber,lastcourseaccess", self.page_size):
            for raw in page:
                recorder.add(raw)
                users.append({"id": raw.get("id"), "idnumber": raw.get("idnumber")})
        return users, recorder

    @_guarded
    def read(self, ctx: SiteContext, start: Any) -> Iterator[Batch]:
        """Yield one batch of links per course; the last one carries the position."""
        seen: set[str] = set()
        courses = list(ctx.courses.values())
        queue: deque[tuple[Course, Future]] = deque()
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix=f"moodle-{self.name}") as pool:
            try:
                for index, course in enumerate(courses):
                    while len(queue) < self.max_workers and index + len(queue) < len(courses):
                        ahead = courses[index + len(queue)]
                        queue.append((ahead, pool.submit(self._course_pages, ctx, ahead)))
                    _, future = queue.popleft()
                    users, recorder = future.result()
                    recorder.store(ctx, course.id)
                    links: list[UserLink] = []
                    for raw in users:
                        user_id = _text(raw.get("id"))
                        ctx.known.add(user_id)
                        if user_id and user_id not in seen:
                            seen.add(user_id)
                            links.append(UserLink(user_id, _text(raw.get("idnumber"))))
                    last = index == len(courses) - 1
                    yield Batch(links=links, position={"accounts": len(seen)} if last else None, read=len(users))
            finally:
                for _, future in queue:
                    future.cancel()


def _completion_candidates(
    ctx: SiteContext,
    course: Course,
    since: int,
    page_size: int,
    rechecked: dict[str, int],
    graded: frozenset[str] = frozenset(),
    waiting: dict[str, tuple[int, int]] | None = None,
    started: float = 0.0,
    deferred: dict[str, tuple[int, int]] | None = None,
) -> Iterator[tuple[str, int]]:
    """The participants to ask about a course's completion.

    Those whose last access is at or after ``since``, except those already re-checked at that
    access, and those graded since the last run (``graded``) whatever their access. A participant
    who never accessed the course (``lastcourseaccess`` 0) is a candidate until asked once (then
    ``rechecked`` holds 0 for him); a backfill drops ``rechecked`` and asks him again.

    An access already asked about once and still waiting for cron (``waiting``: user id ->
    (access, first asked on the client's clock)) is not asked again until :data:`COMPLETION_SETTLE`
    has passed since that first ask (``started``: the client's clock now); it goes to ``deferred``
    meanwhile. So a sync with nothing new asks nobody, however many people visited in the last hour.
    """
    waiting = waiting or {}
    users, times = course_access(ctx, course, page_size)
    for user, last_access in zip(users, times, strict=True):
        user_id = str(user)
        recent = last_access >= since or last_access == 0
        if user_id in graded:
            yield user_id, last_access
        elif recent and rechecked.get(user_id) != last_access:
            first = waiting.get(user_id)
            if first is not None and first[0] == last_access and started - first[1] < COMPLETION_SETTLE:
                if deferred is not None:
                    deferred[user_id] = first
                continue
            yield user_id, last_access


def _first_asks(users: Any) -> dict[str, tuple[int, int]]:
    """A course's ``pending`` entries from a cursor: user id -> (lastcourseaccess, first asked).

    An entry of another shape is dropped: that user is then asked as if for the first time
    (one more hour of asks), never settled early.
    """
    if not isinstance(users, dict):
        return {}
    found: dict[str, tuple[int, int]] = {}
    for user, entry in users.items():
        if isinstance(entry, list | tuple) and len(entry) == 2 and all(isinstance(v, int) for v in entry):
            found[str(user)] = (entry[0], entry[1])
    return found


class _PerUserCompletionStream:
    """Shared walk of the completion streams: per course, the recently active users.

    Position: ``{"courses": {course_id: watermark}, "default": floor, "rechecked": {course_id:
    {user_id: lastcourseaccess}}, "pending": {course_id: {user_id: [lastcourseaccess, first_asked]}},
    "graded": next grade time}``. Users an assignment grade was written for since ``graded``
    (:meth:`SiteContext.graded_since`: two calls a run for the site) are asked whatever their access:
    a teacher's late grade moves the completion, not the student's ``lastcourseaccess``.
    The watermark is the latest ``lastcourseaccess`` seen (source time, never "now"). Cron aggregates
    course completion minutes after the last criterion without touching ``lastcourseaccess``, so an
    answer read too soon after an access may miss it: users whose access lies within
    :data:`COMPLETION_OVERLAP` before the watermark stay candidates. A candidate is not asked again
    about the same access (``rechecked``) once it was asked when the server's clock was already
    :data:`COMPLETION_SETTLE` past it (the latest access read in the run proves the clock got there),
    or once it was asked again at least :data:`COMPLETION_SETTLE` after the first ask, measured on
    the client's clock (``first_asked``, epoch seconds, in ``pending`` until then): a difference of
    two readings of one clock, so no skew, and whatever the sync interval the last ask comes after
    cron. Between the two asks the access is not asked at all: a fresh access is asked once when it is
    read, once more by the first sync at least an hour later, then never; a sync with nothing new asks
    nobody, however many people visited in the last hour (its calls do not grow with users). The
    price: a completion cron aggregates after the first ask is read up to an hour later (plus the sync
    interval), not at the next sync. A user who accesses the course
    again has a new ``lastcourseaccess`` and starts over. A cursor without ``pending`` (older
    versions) reads as "nobody asked yet": those users wait one more hour.

    Batches hold at most :data:`BATCH_ACTIVITIES` activities. Only a course's last batch
    carries a position (its watermark); the ones before it carry none, so after a crash
    mid-course the cursor still ends at the previous course and a rerun reads this course
    again from its start: nothing skipped, and deterministic statement ids make the part
    read twice harmless (the outbox keeps one row per id).
    """

    name = ""

    def __init__(self, page_size: int = PARTICIPANTS_PER_PAGE, max_workers: int = 4) -> None:
        self.page_size = page_size
        self.max_workers = max_workers

    def wanted(self, course: Course) -> bool:
        """Whether the course is worth asking at all."""
        return course.completion_enabled

    def fetch(self, ctx: SiteContext, course: Course, user_id: str) -> list[Activity]:
        """Call Moodle for one user in one course and return their activities."""
        raise NotImplementedError

    @_guarded
    def read(self, ctx: SiteContext, start: Any) -> Iterator[Batch]:
        """Yield a course's activities in batches; the course's last batch carries its new watermark."""
        start = start or {}
        marks: dict[str, int] = dict(start.get("courses", {}))
        default = int(start.get("default", 0))  # a backfill's floor for keys not seen yet
        rechecked: dict[str, dict[str, int]] = {key: dict(users) for key, users in start.get("rechecked", {}).items()}
        waiting: dict[str, dict[str, tuple[int, int]]] = {
            key: _first_asks(users) for key, users in (start.get("pending") or {}).items()
        }
        # Grades written since the last run (a fresh cursor: since the floor): their users are asked again.
        graded_from = int(start.get("graded", default))
        courses = [course for course in ctx.courses.values() if self.wanted(course)]
        late = ctx.graded_since(graded_from) if courses else {}
        graded_next = max([graded_from, *(t + 1 for users in late.values() for t in users.values())])
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix=f"moodle-{self.name}") as pool:
            for index, course in enumerate(courses):
                key = str(course.id)
                base = marks.get(key, default)
                known = rechecked.get(key, {})
                watermark = base
                asked: dict[str, int] = {}
                started = ctx.now()  # no later than any ask of this course in this run
                graded = frozenset(late.get(course.id, {}))
                firsts = waiting.get(key, {})
                deferred: dict[str, tuple[int, int]] = {}
                course_batches = self._read_course(
                    ctx, course, base, known, pool, asked, graded, firsts, started, deferred
                )
                pending: list[Activity] | None = None
                for activities in course_batches:
                    if pending is not None:
                        # Mid-course: no position (see the class docstring); the answers count on the last batch.
                        yield Batch(activities=pending, links=ctx.identify({a.actor for a in pending}), read=0)
                    pending = activities
                finished = math.ceil(ctx.now())  # no earlier than any ask (or access read) of this course
                if asked:
                    watermark = max(base, *asked.values())
                # Keep the re-checked users still inside the new window; record who was asked long
                # enough after their access (server clock) or after their first ask (client clock).
                since = watermark - COMPLETION_OVERLAP
                updated = {user: access for user, access in known.items() if access >= since or access == 0}
                # Accesses asked once and not yet an hour ago: they wait, unasked, with their first ask.
                still: dict[str, tuple[int, int]] = {u: e for u, e in deferred.items() if u not in asked}
                settled = ctx.latest_access - COMPLETION_SETTLE
                for user, access in asked.items():
                    first = firsts.get(user)
                    first_asked = first[1] if first is not None and first[0] == access else None
                    if access <= settled or (first_asked is not None and started - first_asked >= COMPLETION_SETTLE):
                        updated[user] = access
                    else:
                        updated.pop(user, None)
                        still[user] = (access, finished if first_asked is None else first_asked)
                marks[key] = watermark
                rechecked.pop(key, None)
                waiting.pop(key, None)
                if updated:
                    rechecked[key] = updated
                if still:
                    waiting[key] = still
                yield Batch(
                    activities=pending or [],
                    links=ctx.identify({a.actor for a in pending or []}),
                    read=len(asked),  # answers read: one per participant asked
                    position={
                        "courses": dict(marks),
                        "default": default,
                        "rechecked": {k: dict(v) for k, v in rechecked.items()},
                        "pending": {k: {u: list(e) for u, e in v.items()} for k, v in waiting.items()},
                        # Moved on with the last course only: a crash before it asks the graded users again.
                        "graded": graded_next if index == len(courses) - 1 else graded_from,
                    },
                )

    def _read_course(
        self,
        ctx: SiteContext,
        course: Course,
        base: int,
        known: dict[str, int],
        pool: ThreadPoolExecutor,
        asked: dict[str, int],
        graded: frozenset[str] = frozenset(),
        waiting: dict[str, tuple[int, int]] | None = None,
        started: float = 0.0,
        deferred: dict[str, tuple[int, int]] | None = None,
    ) -> Iterator[list[Activity]]:
        """A course's activities in lists of at most :data:`BATCH_ACTIVITIES`, in participant order.

        Calls run in a sliding window of ``max_workers * COMPLETION_QUEUE_PER_WORKER`` futures;
        the first call is awaited alone, so a course-wide error (``nocriteriaset``) costs one call.
        Fills ``asked`` with every candidate's user id and access time.
        """
        since = max(0, base - COMPLETION_OVERLAP) if base else 0
        candidates = _completion_candidates(
            ctx, course, since, self.page_size, known, graded, waiting, started, deferred
        )
        window = max(1, self.max_workers * COMPLETION_QUEUE_PER_WORKER)
        queue: deque[Future] = deque()
        activities: list[Activity] = []
        try:
            for user_id, access in candidates:
                asked[user_id] = access
                queue.append(pool.submit(self.fetch, ctx, course, user_id))
                while queue and (len(queue) >= window or len(asked) == 1):
                    activities.extend(queue.popleft().result())
                while len(activities) >= BATCH_ACTIVITIES:
                    yield activities[:BATCH_ACTIVITIES]
                    del activities[:BATCH_ACTIVITIES]
            while queue:
                activities.extend(queue.popleft().result())
        except MoodleRecordError as exc:
            if exc.errorcode != "nocriteriaset":
                raise
            # Completion enabled but no criteria: nothing to read here. The answer holds for
            # every participant, so they all count as asked (no call per user on the next sync).
            for user_id, access in candidates:
                asked[user_id] = access
            activities = []
        finally:
            for future in queue:
                future.cancel()
        while len(activities) > BATCH_ACTIVITIES:
            yield activities[:BATCH_ACTIVITIES]
            del activities[:BATCH_ACTIVITIES]
        yield activities


class CourseCompletionsStream(_PerUserCompletionStream):
    """Course completions, one call per recently active user per course with criteria.

    The response has no course completion time: under aggregation ALL it is the latest
    criterion time, under ANY the earliest completed one (fixtures README).
    """

    name = "course_completions"

    def fetch(self, ctx: SiteContext, course: Course, user_id: str) -> list[Activity]:
        """The user's completion of the course, when complete."""
        try:
            data = ctx.client.call(
                "core_completion_get_course_completion_status", courseid=course.id, userid=int(user_id)
            )
        except MoodleRecordError as exc:
            if exc.errorcode == "usernotenroled":
                return []
            raise
        status = data.get("completionstatus") or {}
        if not _bool(status.get("completed")):
            return []
        times = [_int(c.get("timecompleted")) for c in status.get("completions") or [] if _int(c.get("timecompleted"))]
        if not times:
            return []
        completed_at = min(times) if _int(status.get("aggregation"), 1) == 2 else max(times)
        return [
            Activity(
                source=SOURCE,
                site=ctx.site,
                kind=Kind.COURSE_COMPLETED,
                native_id=f"course={course.id}|user={user_id}",
                actor=user_id,
                object=course.ref(ctx.wwwroot),
                occurred_at=_time(completed_at),
                extras=course.facts(),
            )
        ]


_MINUTES = re.compile(r"(\d+)\s*minute")

#: BigBlueButton completion rules that need the person in the meeting room (mod/bigbluebuttonbn
#: classes/completion/custom_completion.php): attendance minutes and the engagement counts.
_PRESENCE_RULES = frozenset(
    {
        "completionattendance",
        "completionengagementchats",
        "completionengagementtalks",
        "completionengagementraisehand",
        "completionengagementpollvotes",
        "completionengagementemojis",
    }
)


class ActivityCompletionsStream(_PerUserCompletionStream):
    """Activity completions (incl. BigBlueButton attendance), per recently active user per course.

    ``state`` 1 = complete, 2 = complete and passed, 3 = complete and failed. A
    BigBlueButton module completed by a rule that needs presence (attendance minutes, engagement)
    becomes an attendance without a duration (Moodle's logs have no web service), with the
    rule's minimum and the scheduled session length as facts; one completed by "view" alone
    becomes ``module_viewed``.
    """

    name = "activity_completions"

    def fetch(self, ctx: SiteContext, course: Course, user_id: str) -> list[Activity]:
        """The user's completed modules in the course."""
        try:
            data = ctx.client.call(
                "core_completion_get_activities_completion_status", courseid=course.id, userid=int(user_id)
            )
        except MoodleRecordError as exc:
            if exc.errorcode == "usernotenroled":
                return []
            raise
        found = []
        for raw in data.get("statuses") or []:
            state, completed = _int(raw.get("state")), _int(raw.get("timecompleted"))
            if state not in (1, 2, 3) or not completed:
                continue
            cmid, modname = _int(raw.get("cmid")), _text(raw.get("modname"))
            url = f"{ctx.wwwroot}/mod/{modname}/view.php?id={cmid}"
            common: dict[str, Any] = {
                "source": SOURCE,
                "site": ctx.site,
                "actor": user_id,
                "occurred_at": _time(completed),
                "parent": course.ref(ctx.wwwroot),
            }
            rules = {_text(detail.get("rulename")) for detail in raw.get("details") or []}
            if modname == "bigbluebuttonbn" and rules & _PRESENCE_RULES:
                # Moodle keeps the minutes present in its logs, which no web service exposes: the
                # statement states no duration. The rule's minimum and the scheduled session length
                # (mod_bigbluebuttonbn_meeting_info) are facts the JP rules may use.
                extras = dict(course.facts())
                for detail in raw.get("details") or []:
                    if _text(detail.get("rulename")) == "completionattendance":
                        match = _MINUTES.search(_text((detail.get("rulevalue") or {}).get("description")))
                        if match:
                            extras["attended_minutes_at_least"] = int(match.group(1))
                session = ctx.session_seconds(_int(raw.get("instance")))
                if session:
                    extras["session_seconds"] = session
                found.append(
                    Activity(
                        kind=Kind.MEETING_ATTENDED,
                        native_id=f"cm={cmid}|user={user_id}",
                        object=ObjectRef("meeting", str(cmid), ctx.webinars.get(cmid), url),
                        extras=extras,
                        **common,
                    )
                )
            elif modname == "bigbluebuttonbn" and rules == {"completionview"}:
                # Completion by "view": the person opened the activity page, which is not attending.
                found.append(
                    Activity(
                        kind=Kind.MODULE_VIEWED,
                        native_id=f"cm={cmid}|user={user_id}",
                        object=ObjectRef("module", str(cmid), ctx.webinars.get(cmid), url),
                        extras=dict(course.facts()),
                        **common,
                    )
                )
            else:
                extras = {"success": state == 2} if state in (2, 3) else {}
                extras.update(course.facts())
                found.append(
                    Activity(
                        kind=Kind.MODULE_COMPLETED,
                        native_id=f"cm={cmid}|user={user_id}",
                        object=ObjectRef("module", str(cmid), ctx.module_name(course.id, cmid), url),
                        extras=extras,
                        **common,
                    )
                )
        return found


class WebinarsStream:
    """BigBlueButton schedules: webinar names for attendance records (no statements)."""

    name = "webinars"

    @_guarded
    def read(self, ctx: SiteContext, start: Any) -> Iterator[Batch]:
        """Load the webinars of every course in one call."""
        try:
            data = ctx.client.call("mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses", courseids=list(ctx.courses))
        except MoodleAPIError as exc:
            if exc.errorcode != "accessexception":
                raise
            # A site without BigBlueButton need not grant its function (issue 17): no webinars to name.
            log.info("%s: BigBlueButton's function is not in the token's service: webinars skipped", ctx.site)
            yield Batch(position={"webinars": 0, "skipped": "mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses"})
            return
        for raw in data.get("bigbluebuttonbns") or []:
            ctx.webinars[_int(raw.get("coursemodule"))] = _text(raw.get("name"))
        yield Batch(position={"webinars": len(ctx.webinars)}, read=len(ctx.webinars))


def _tracked_entry(entry: Any) -> bool:
    """Whether a ``recent`` cursor entry has its shape (an entry of another shape is dropped, not trusted)."""
    return (
        isinstance(entry, list | tuple)
        and len(entry) == 4
        and all(isinstance(v, int) for v in entry[:3])
        and isinstance(entry[3], list)
        and all(isinstance(v, int) for v in entry[3])
    )


def _track(discussion: dict, posts: list[dict]) -> list:
    """A thread's ``recent`` entry: [timemodified, numreplies, first post id, [reply ids]] from its posts."""
    live = [p for p in posts if not _bool(p.get("isdeleted"))]
    first = next(
        (_int(p.get("id")) for p in live if p.get("parentid") in (None, "", 0, "0") and not _bool(p.get("hasparent"))),
        0,
    )
    replies = sorted(_int(p.get("id")) for p in live if _int(p.get("id")) != first)
    modified = max([_int(p.get("timemodified")) for p in posts] or [0])
    timemodified = _int(discussion.get("timemodified"), modified) if discussion else modified
    numreplies = _int(discussion.get("numreplies"), len(posts) - 1) if discussion else len(posts) - 1
    return [timemodified, numreplies, first, replies]


class CopForums(BaseModel):
    """Which forums of a site are Community of Practice (``cop_forums`` of a Moodle source).

    A forum counts when its course is in one of ``categories``, has one of
    ``course_idnumbers`` or carries one of ``course_tags`` (all empty: every course), and
    it is not a news forum (``type = "news"``: the teacher's announcements) unless ``news``
    is true.

    Attributes:
        categories: course category ids.
        course_idnumbers: course id numbers (the course's ``idnumber``, exact).
        course_tags: course tags (Moodle's course "Tags" field; case-insensitive, as Moodle matches them).
        news: also count news (announcement) forums.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    categories: tuple[int, ...] = ()
    course_idnumbers: tuple[str, ...] = ()
    course_tags: tuple[str, ...] = ()
    news: bool = False

    @field_validator("course_tags")
    @classmethod
    def _lower(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(sorted({tag.strip().lower() for tag in tags}))
        if "" in cleaned:
            raise ValueError("a course tag is empty")
        return cleaned

    def takes(self, course: Course, forum_type: str) -> bool:
        """Whether a forum of this type in this course is a CoP forum."""
        if forum_type == "news" and not self.news:
            return False
        if not self.categories and not self.course_idnumbers and not self.course_tags:
            return True
        return (
            course.category_id in self.categories
            or (bool(course.idnumber) and course.idnumber in self.course_idnumbers)
            or bool(course.tags & set(self.course_tags))
        )


class ForumPostsStream:
    """Forum discussions and posts, by watermark on the discussion's ``timemodified``.

    Discussions come newest-activity first with pinned ones on top of page 0 whatever
    their date (fixtures README), so the walk stops at the first non-pinned discussion
    older than its floor and never stops on a pinned one. A discussion whose
    ``timemodified`` is at or after the watermark is read whole (posts have no
    "since" call), and of its posts only those created or edited at or after the
    watermark become activities: a post read before is not stated again, so an edit
    counts as ``changed`` once, at the sync after it, not at every later re-read.
    A forum's threads are fetched through a thread pool of ``max_workers``
    (the client bounds requests in flight) and kept in discussion order.

    Deleted posts: Moodle 4.5 removes a post a moderator deletes (with its replies; the
    first post takes the whole discussion) and moves the discussion's ``timemodified``
    back to its latest remaining post, so the watermark never sees it. The position
    keeps, for the discussions active within :data:`FORUM_RECHECK` before the watermark,
    their ``timemodified``, ``numreplies`` and post ids (``recent``); the walk lists down
    to that window, and a tracked discussion whose time or reply count changed, or that is
    no longer listed, is read again: posts gone since are voided (their CoP JP with them).
    Nothing new costs no call beyond the listing.

    Position: ``{"forums": {forum_id: watermark}, "default": floor, "seen": {forum_id:
    [discussion ids whose timemodified equals the watermark]}, "recent": {forum_id:
    {discussion_id: [timemodified, numreplies, first post id, [reply ids]]}}}``, committed
    per forum: a discussion still at the watermark second was read whole by the sync that
    set it, so it is not read again; a new post moves its ``timemodified`` past the watermark.
    """

    name = "forum_posts"

    def __init__(self, page_size: int = 100, max_workers: int = 4, cop: CopForums | None = None) -> None:
        self.page_size = page_size
        self.max_workers = max_workers
        self.cop = cop or CopForums()

    @_guarded
    def read(self, ctx: SiteContext, start: Any) -> Iterator[Batch]:
        """Yield one batch per forum with changed discussions."""
        start = start or {}
        marks: dict[str, int] = dict(start.get("forums", {}))
        default = int(start.get("default", 0))  # a backfill's floor for forums not seen yet
        seen: dict[str, list[int]] = {key: list(ids) for key, ids in start.get("seen", {}).items()}
        recent: dict[str, dict[str, list]] = {
            key: {d: list(entry) for d, entry in tracked.items() if _tracked_entry(entry)}
            for key, tracked in (start.get("recent") or {}).items()
            if isinstance(tracked, dict)
        }
        forums = ctx.client.call("mod_forum_get_forums_by_courses", courseids=list(ctx.courses))
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix=f"moodle-{self.name}") as pool:
            for forum in sorted(forums, key=lambda f: _int(f.get("id"))):
                course = ctx.courses.get(_int(forum.get("course")))
                if course is None or not self.cop.takes(course, _text(forum.get("type"))):
                    # Not a CoP forum (site configuration): never read, no watermark kept, so a
                    # forum added to the configuration later is read from the stream's floor.
                    continue
                key = str(_int(forum.get("id")))
                watermark = marks.get(key, default)
                already = set(seen.get(key, ())) if key in marks else set()
                tracked = recent.get(key, {}) if key in marks else {}
                forum_ref = ObjectRef(
                    "forum",
                    str(_int(forum.get("cmid"))),
                    _text(forum.get("name")),
                    f"{ctx.wwwroot}/mod/forum/view.php?id={_int(forum.get('cmid'))}",
                )
                floor = watermark - FORUM_RECHECK if tracked else watermark
                listed = list(self._changed_discussions(ctx, int(key), floor))
                changed = [d for d in listed if _int(d.get("timemodified")) >= watermark]
                newest = max([watermark, *(_int(d.get("timemodified")) for d in changed)])
                at_newest = {_int(d.get("discussion")) for d in changed if _int(d.get("timemodified")) == newest}
                if newest == watermark:
                    at_newest |= already
                to_read = [
                    d
                    for d in changed
                    if not (_int(d.get("timemodified")) == watermark and _int(d.get("discussion")) in already)
                ]
                by_id = {str(_int(d.get("discussion"))): d for d in listed}
                reading = {str(_int(d.get("discussion"))) for d in to_read}
                # Tracked threads that shrank or moved back in time (a deletion), still listed.
                for disc_id, entry in tracked.items():
                    now = by_id.get(disc_id)
                    if disc_id in reading or now is None:
                        continue
                    if [_int(now.get("timemodified")), _int(now.get("numreplies"))] != entry[:2]:
                        to_read.append(now)
                        reading.add(disc_id)
                missing = [d for d in tracked if d not in by_id]
                # A thread read whole at the watermark second has its posts of that second stated.
                sinces = [watermark + 1 if _int(d.get("discussion")) in already else watermark for d in to_read]
                read_posts = functools.partial(self._posts, ctx, course, forum_ref)
                activities: list[Activity] = []
                voids: list[str] = []
                count = 0
                updated: dict[str, list] = {}
                for discussion, (found, posts) in zip(to_read, pool.map(read_posts, sinces, to_read), strict=True):
                    activities.extend(found)
                    count += len(posts)
                    disc_id = str(_int(discussion.get("discussion")))
                    entry = _track(discussion, posts)
                    voids.extend(self._gone(ctx, disc_id, tracked.get(disc_id), entry))
                    updated[disc_id] = entry
                for disc_id in missing:
                    posts_now = self._thread_if_exists(ctx, int(disc_id))
                    if posts_now is None:  # the discussion was deleted
                        voids.extend(self._gone(ctx, disc_id, tracked[disc_id], None))
                    else:  # its latest posts were deleted: it fell below the window
                        voids.extend(self._gone(ctx, disc_id, tracked[disc_id], _track({}, posts_now)))
                        count += len(posts_now)
                marks[key] = newest
                seen[key] = sorted(at_newest)
                keep = newest - FORUM_RECHECK
                merged = {d: e for d, e in tracked.items() if d not in missing and d in by_id}
                merged.update(updated)
                recent[key] = {d: e for d, e in merged.items() if e[0] >= keep}
                yield Batch(
                    activities=activities,
                    links=ctx.identify({a.actor for a in activities}),
                    read=count,
                    voids=voids,
                    position={
                        "forums": dict(marks),
                        "default": default,
                        "seen": {k: list(v) for k, v in seen.items() if v},
                        "recent": {k: v for k, v in recent.items() if v},
                    },
                )

    def _gone(self, ctx: SiteContext, disc_id: str, before: list | None, now: list | None) -> list[str]:
        """Natural keys of the activities of a tracked thread's posts that are gone now."""
        if before is None:
            return []
        first, replies = int(before[2]), {int(r) for r in before[3]}
        keys = []
        if now is None or int(now[2]) != first:
            keys.append(f"{SOURCE}|{ctx.site}|{Kind.DISCUSSION_CREATED.value}|discussion={disc_id}")
        remaining = set() if now is None else {int(r) for r in now[3]}
        keys.extend(f"{SOURCE}|{ctx.site}|{Kind.REPLY_CREATED.value}|{post}" for post in sorted(replies - remaining))
        return keys

    def _thread_if_exists(self, ctx: SiteContext, discussion_id: int) -> list[dict] | None:
        """A thread's posts, or None when Moodle no longer has the discussion."""
        try:
            data = ctx.client.call(
                "mod_forum_get_discussion_posts", discussionid=discussion_id, sortby="created", sortdirection="ASC"
            )
        except MoodleAPIError as exc:
            # Moodle 4.5 answers a deleted discussion with a record error (or, from its PHP
            # code path that reads the missing record, a general exception).
            if exc.errorcode in ("invalidrecord", "generalexceptionmessage"):
                return None
            raise
        posts: list[dict] = data.get("posts") or []
        return posts

    def _changed_discussions(self, ctx: SiteContext, forum_id: int, watermark: int) -> Iterator[dict]:
        page = 0
        while True:
            data = ctx.client.call(
                "mod_forum_get_forum_discussions", forumid=forum_id, page=page, perpage=self.page_size
            )
            discussions = data.get("discussions") or []
            for discussion in discussions:
                if _int(discussion.get("timemodified")) >= watermark:
                    yield discussion
                elif not _bool(discussion.get("pinned")):
                    return  # sorted by last post, newest first: the rest is older
            if len(discussions) < self.page_size:
                return
            page += 1

    def _posts(
        self, ctx: SiteContext, course: Course, forum_ref: ObjectRef, since: int, discussion: dict
    ) -> tuple[list[Activity], list[dict]]:
        """A thread's activities (posts created or edited at or after ``since``) and all its posts as read."""
        discussion_id = _int(discussion.get("discussion"))
        url = f"{ctx.wwwroot}/mod/forum/discuss.php?d={discussion_id}"
        discussion_ref = ObjectRef("discussion", str(discussion_id), _text(discussion.get("name")), url)
        grouping = course.ref(ctx.wwwroot)
        data = ctx.client.call(
            "mod_forum_get_discussion_posts", discussionid=discussion_id, sortby="created", sortdirection="ASC"
        )
        found = []
        posts = data.get("posts") or []
        # The thread's first post is stated as the discussion: a reply to it answers "discussion:<id>".
        roots = {
            _int(post.get("id"))
            for post in posts
            if post.get("parentid") in (None, "", 0, "0") and not _bool(post.get("hasparent"))
        }
        for post in posts:
            if _bool(post.get("isdeleted")):
                continue
            if max(_int(post.get("timecreated")), _int(post.get("timemodified"))) < since:
                continue  # read and stated before, unchanged since: not stated again
            post_id, author = _int(post.get("id")), post.get("author") or {}
            common: dict[str, Any] = {
                "source": SOURCE,
                "site": ctx.site,
                "actor": _text(author.get("id")),
                "occurred_at": _time(_int(post.get("timecreated"))),
                "grouping": grouping,
                "extras": {"text_length": text_length(_text(post.get("message")))},
            }
            if post.get("parentid") in (None, "", 0, "0") and not _bool(post.get("hasparent")):
                found.append(
                    Activity(
                        kind=Kind.DISCUSSION_CREATED,
                        native_id=f"discussion={discussion_id}",
                        object=discussion_ref,
                        parent=forum_ref,
                        **common,
                    )
                )
            else:
                parent_id = _int(post.get("parentid"))
                if parent_id:  # Moodle's own reply link (the post answered)
                    common["extras"][REPLY_TO] = (
                        f"discussion:{discussion_id}" if parent_id in roots else f"post:{parent_id}"
                    )
                found.append(
                    Activity(
                        kind=Kind.REPLY_CREATED,
                        native_id=str(post_id),
                        object=ObjectRef("post", str(post_id), None, f"{url}#p{post_id}"),
                        parent=discussion_ref,
                        **common,
                    )
                )
        return found, posts


StreamFactory = Callable[[], Any]
