"""Moodle as a :class:`~connectors.base.Connector`: its streams, self-check, cursors and request slots."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from connectors.base import Check, Connector, Context, Page, SourceVoid, Stream
from connectors.moodle.client import ERROR_HINTS, MoodleAPIError, MoodleClient
from connectors.moodle.settings import (
    WEBINARS_FUNCTION,
    MoodleSettings,
    make_streams,
    missing_functions,
    required_functions,
)
from connectors.moodle.streams import SOURCE, SiteContext
from lms_bridge.errors import ConfigError, LmsBridgeError

#: Streams whose position holds per-key watermarks (Unix seconds), and the key.
WATERMARKS = {"course_completions": "courses", "activity_completions": "courses", "forum_posts": "forums"}


def since_position(stream: str, start: Any, since: datetime) -> Any:
    """The position a stream would hold had it synced up to ``since``: every watermark set to it."""
    key = WATERMARKS.get(stream)
    if key is None:
        return start
    epoch = int(since.timestamp())
    return {key: dict.fromkeys((start or {}).get(key, {}), epoch), "default": epoch}


def _epochs(position: Any) -> list[int]:
    if not isinstance(position, dict):
        return []
    values = [position.get("default", 0)]
    for key in ("courses", "forums"):
        marks = position.get(key)
        if isinstance(marks, dict):
            values.extend(marks.values())
    return [int(v) for v in values if isinstance(v, int | float)]


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC") if epoch else "the start"


class MoodleReader:
    """One sync's connection to a site: the client and the catalogue its streams share.

    Args:
        settings: the site's settings.
        token: the web-service token.
        request_slot: see :attr:`connectors.base.Context.request_slot`.
    """

    def __init__(
        self,
        settings: MoodleSettings,
        token: SecretStr,
        request_slot: Callable[[int], AbstractContextManager[object]] | None = None,
    ) -> None:
        self.settings = settings
        self.client: MoodleClient = settings.client(token)
        if request_slot is not None:
            # Each request also holds one of the site's max_in_flight slots shared by every worker.
            self.client.call_slot = lambda: request_slot(settings.max_in_flight)
        self.context = SiteContext(site=settings.id, client=self.client, wwwroot=settings.url.rstrip("/"))
        self.streams = make_streams(settings)

    def __enter__(self) -> MoodleReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()

    @property
    def calls(self) -> dict[str, int]:
        """Web-service calls made so far, per function."""
        return self.client.calls

    def read(self, stream: str, start: Any, since: datetime | None = None) -> Iterator[Page]:
        """A stream's batches as pages; a backfill starts from every watermark set to ``since``."""
        if since is not None:
            start = since_position(stream, start, since)
        for batch in self.streams[stream].read(self.context, start):
            yield Page(
                activities=list(batch.activities),
                accounts={link.user_id: link.idnumber for link in batch.links},
                position=batch.position,
                read=len(batch.activities) + len(batch.links) if batch.read is None else batch.read,
                voids=[SourceVoid(f"moodle:{key}", key, (key,)) for key in batch.voids],
            )


class _Opening:
    """Opens a :class:`MoodleReader` when a ``with`` enters it (so no client is made for a run never started)."""

    def __init__(self, settings: MoodleSettings, token: SecretStr, context: Context) -> None:
        self.settings, self.token, self.context = settings, token, context
        self.reader: MoodleReader | None = None

    def __enter__(self) -> MoodleReader:
        self.reader = MoodleReader(self.settings, self.token, self.context.request_slot)
        return self.reader

    def __exit__(self, *exc_info: object) -> None:
        if self.reader is not None:
            self.reader.client.close()


class MoodleConnector(Connector[MoodleSettings]):
    """A Moodle site (``type = "moodle"``), read through its REST web services."""

    type = SOURCE
    label = "Moodle site"
    # The catalogue and webinar names feed the other streams: always read. enrolled_users links
    # accounts to NIPs, which the per-user streams' actors need: it runs before them.
    streams = (
        Stream("courses", always=True),
        Stream("webinars", always=True),
        Stream("enrolled_users", first=True),
        Stream("course_completions", side_by_side=True),
        Stream("activity_completions", side_by_side=True),
        Stream("forum_posts", side_by_side=True),
    )
    settings_model = MoodleSettings
    link_source = SOURCE
    # forum_posts voids the statements of posts a moderator deleted (their CoP JP follows).
    voids = True
    skip_labels = None

    def site_url(self, settings: MoodleSettings) -> str | None:
        """The site's wwwroot."""
        return settings.url

    def open(self, settings: MoodleSettings, context: Context) -> AbstractContextManager[MoodleReader]:
        """A reader; the token is looked up now (a ConfigError before any run is recorded)."""
        return _Opening(settings, context.secret(settings.token_env), context)

    def check(self, entry: Mapping[str, Any], context: Context) -> Check:
        """Call ``core_webservice_get_site_info``; name the functions the token's service lacks."""
        name = f"moodle {entry.get('id')}"
        try:
            site = self.settings(entry)
            with site.client(context.secret(site.token_env)) as client:
                info = client.call("core_webservice_get_site_info")
        except MoodleAPIError as exc:
            return Check(name, False, str(exc), ERROR_HINTS.get(exc.errorcode, "check the site's web services"))
        except ConfigError as exc:
            token = entry.get("token_env") or "the token variable"
            return Check(
                name,
                False,
                str(exc),
                f"export {token}=... (or put it in the secrets file), or fix the [[sources]] entry",
            )
        except LmsBridgeError as exc:
            return Check(name, False, str(exc), f"check that {entry.get('url')} is up and is the site's address")
        about = f"{info.get('sitename')} (Moodle {info.get('release')}), token user {info.get('username')}"
        # The site's settings may need more functions (course_customfields: core_course_get_courses_by_field).
        missing = missing_functions(info, site)
        if missing:
            return Check(
                name,
                False,
                f"{about}; the service lacks: {', '.join(missing)}",
                "add them to the token's external service (Site administration > Server > "
                "Web services > External services > Functions)",
            )
        # Call what sync calls first: a teacher's token reads its site info but not the catalogue.
        try:
            with site.client(context.secret(site.token_env)) as client:
                client.call("core_course_get_courses")
                if site.cop_forums.course_tags:
                    # Course tags need the site's tags on (usetags): tagsaredisabled otherwise.
                    client.call("core_tag_get_tag_areas")
        except MoodleAPIError as exc:
            # Not allowed into a course (a user enrolled nowhere) is the same gap as a teacher's token.
            code = "nopermissions" if exc.errorcode == "errorcoursecontextnotvalid" else exc.errorcode
            return Check(name, False, f"{about}; {exc}", ERROR_HINTS.get(code, "check the site's web services"))
        except LmsBridgeError as exc:
            return Check(name, False, f"{about}; {exc}", f"check that {entry.get('url')} is up")
        available = {str(f.get("name")) for f in info.get("functions") or []}
        note = "" if WEBINARS_FUNCTION in available else f"; no {WEBINARS_FUNCTION}: webinars will be skipped"
        return Check(name, True, f"{about}; all {len(required_functions(site))} functions available{note}")

    def describe_position(self, position: Any) -> str | None:
        """A watermark stream's range (``12 courses, oldest ..., newest ...``)."""
        if isinstance(position, dict):
            for key in ("courses", "forums"):
                marks = position.get(key)
                if isinstance(marks, dict) and "default" in position:
                    values = [int(v) for v in marks.values() if isinstance(v, int | float)]
                    if not values:
                        return f"0 {key}, from {_when(int(position.get('default') or 0))}"
                    low, high = min(values), max(values)
                    return f"{len(values)} {key}, oldest {_when(low)}, newest {_when(high)}"
        return None

    def reset_position(self, site: str, stream: str, before: Any, to: datetime) -> tuple[Any, bool]:
        """Every watermark of the stream set to ``to``; keys not seen yet keep their floor."""
        if stream not in self.stream_names:
            raise ConfigError(self.unknown_stream(site, stream))
        if stream not in WATERMARKS:
            raise ConfigError(
                f"stream {stream} is read whole on every sync: it has no date to reset "
                f"(date cursors: {', '.join(WATERMARKS)})"
            )
        after = since_position(stream, before, to)
        if isinstance(before, dict) and "default" in before:
            # Keys (courses, forums) not seen yet keep their floor: a reset never skips a new forum.
            after["default"] = before["default"]
        epoch = int(to.timestamp())
        return after, any(value < epoch for value in _epochs(before))

    def unknown_stream(self, site: str, stream: str) -> str:
        """The sentence refusing a stream a Moodle site does not have."""
        return f"unknown stream {stream!r} of Moodle site {site} (streams: {', '.join(self.stream_names)})"

    def request_slots(self, entry: Mapping[str, Any]) -> int | None:
        """``max_in_flight``: each request holds a connection while it holds (or waits for) a slot."""
        return int(entry.get("max_in_flight", 4))


CONNECTOR = MoodleConnector()

__all__ = ["CONNECTOR", "WATERMARKS", "MoodleConnector", "MoodleReader", "since_position"]
