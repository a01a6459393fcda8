"""A Moodle site's settings (``[[sources]]`` with ``type = "moodle"``), its streams, the functions it needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.moodle.client import MoodleClient
from connectors.moodle.streams import (
    PARTICIPANTS_PER_PAGE,
    ActivityCompletionsStream,
    Batch,
    CopForums,
    CourseCompletionsStream,
    CoursesStream,
    EnrolledUsersStream,
    ForumPostsStream,
    SiteContext,
    WebinarsStream,
)


class MoodleStream(Protocol):
    """What every Moodle stream is: a name, and batches read from a position."""

    name: str

    def read(self, ctx: SiteContext, start: Any) -> Iterator[Batch]:
        """The stream's batches after ``start``, each with the position it covers."""
        ...


#: Functions the token's external service must include.
REQUIRED_FUNCTIONS = (
    "core_webservice_get_site_info",
    "core_course_get_courses",
    "core_enrol_get_enrolled_users",
    "core_completion_get_course_completion_status",
    "core_completion_get_activities_completion_status",
    "mod_forum_get_forums_by_courses",
    "mod_forum_get_forum_discussions",
    "mod_forum_get_discussion_posts",
    "core_course_get_contents",
    "core_user_get_users_by_field",
)

#: Needed only by sites that use BigBlueButton: without it the ``webinars`` stream is skipped with a note.
WEBINARS_FUNCTION = "mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses"

#: Needed only by sites with ``course_customfields = true`` (course custom fields: program JP).
CUSTOMFIELDS_FUNCTION = "core_course_get_courses_by_field"

#: Needed only by sites whose ``cop_forums`` names ``course_tags``: the course tag area, a tag's id, its courses.
TAG_FUNCTIONS = ("core_tag_get_tag_areas", "core_tag_get_tagindex", "core_course_search_courses")

#: Stream names in run order (catalogue first: the others read it).
STREAM_NAMES = ("courses", "webinars", "enrolled_users", "course_completions", "activity_completions", "forum_posts")


class MoodleSettings(BaseModel):
    """One Moodle site, from a ``[[sources]]`` entry with ``type = "moodle"``.

    Attributes:
        id: the site id (statement ids and cursors: never rename it).
        url: the site's wwwroot.
        token_env: environment variable (or secrets-file key) holding the web-service token.
        format: ``json`` or ``xml`` REST responses.
        max_in_flight: requests in flight toward the site.
        timeout: seconds per request.
        max_retries: retries of a transient failure (reset, 5xx, cut response).
        page_size: participants per ``core_enrol_get_enrolled_users`` page (why 5,000:
            ``streams.PARTICIPANTS_PER_PAGE``).
        discussions_per_page: discussions per ``mod_forum_get_forum_discussions`` page.
        cop_forums: which forums are Community of Practice (course categories, course id
            numbers, course tags; news forums only when ``news = true``): only their posts are read.
        course_customfields: also read course custom fields (``core_course_get_courses_by_field``)
            into the course facts (``course_customfields``), e.g. for ``customfield`` in
            mappings/program_jp.toml.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    type: str = "moodle"
    url: str = Field(pattern=r"^https?://")
    token_env: str
    format: str = Field(default="json", pattern=r"^(json|xml)$")
    max_in_flight: int = Field(default=4, ge=1, le=32)
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    backoff_base: float = Field(default=0.5, ge=0)
    page_size: int = Field(default=PARTICIPANTS_PER_PAGE, ge=1)
    discussions_per_page: int = Field(default=100, ge=1)
    course_customfields: bool = False
    cop_forums: CopForums = CopForums()

    def client(self, token: SecretStr) -> MoodleClient:
        """A client for this site."""
        return MoodleClient(
            self.id,
            self.url,
            token,
            fmt=self.format,
            timeout=self.timeout,
            max_in_flight=self.max_in_flight,
            max_retries=self.max_retries,
            backoff_base=self.backoff_base,
        )


def make_streams(settings: MoodleSettings) -> dict[str, MoodleStream]:
    """The site's streams by name, in run order."""
    streams: list[MoodleStream] = [
        CoursesStream(settings.course_customfields, settings.cop_forums.course_tags),
        WebinarsStream(),
        EnrolledUsersStream(settings.page_size, settings.max_in_flight),
        CourseCompletionsStream(settings.page_size, settings.max_in_flight),
        ActivityCompletionsStream(settings.page_size, settings.max_in_flight),
        ForumPostsStream(settings.discussions_per_page, settings.max_in_flight, settings.cop_forums),
    ]
    return {stream.name: stream for stream in streams}


def required_functions(settings: MoodleSettings | None = None) -> tuple[str, ...]:
    """Functions the token's service must include for this site (its settings may add some)."""
    functions: tuple[str, ...] = REQUIRED_FUNCTIONS
    if settings is not None and settings.course_customfields:
        functions = (*functions, CUSTOMFIELDS_FUNCTION)
    if settings is not None and settings.cop_forums.course_tags:
        functions = (*functions, *TAG_FUNCTIONS)
    return functions


def missing_functions(site_info: dict[str, Any], settings: MoodleSettings | None = None) -> list[str]:
    """Functions lms-bridge needs (for this site, when given) that the token's service lacks."""
    available = {str(f.get("name")) for f in site_info.get("functions") or []}
    return [name for name in required_functions(settings) if name not in available]
