"""Moodle: incremental pull of a site's course activity through its REST web services.

Nothing is installed on the LMS: a web-service token (of a user allowed to see the
courses) is all it takes. Streams, in the order a sync runs them:

| stream | reads | statements |
|---|---|---|
| ``courses`` | course catalogue (site course dropped, hidden flagged; custom fields if asked) | none |
| ``webinars`` | BigBlueButton schedules (names) | none |
| ``enrolled_users`` | participants, lean fields: user id -> NIP links | none |
| ``course_completions`` | per recently active user per course with criteria | course completed |
| ``activity_completions`` | per recently active user per course | module completed, webinar attended |
| ``forum_posts`` | discussions by watermark, whole threads | discussion created, replied |
"""

from __future__ import annotations

from connectors.moodle.client import MoodleAPIError, MoodleClient, MoodleRecordError
from connectors.moodle.connector import CONNECTOR, MoodleConnector, MoodleReader, since_position
from connectors.moodle.settings import (
    CUSTOMFIELDS_FUNCTION,
    REQUIRED_FUNCTIONS,
    STREAM_NAMES,
    MoodleSettings,
    make_streams,
    missing_functions,
    required_functions,
)
from connectors.moodle.streams import Batch, SiteContext, UserLink

__all__ = [
    "CONNECTOR",
    "CUSTOMFIELDS_FUNCTION",
    "REQUIRED_FUNCTIONS",
    "STREAM_NAMES",
    "Batch",
    "MoodleAPIError",
    "MoodleClient",
    "MoodleConnector",
    "MoodleReader",
    "MoodleRecordError",
    "MoodleSettings",
    "SiteContext",
    "UserLink",
    "make_streams",
    "missing_functions",
    "required_functions",
    "since_position",
]
