"""What Moodle records mean (issue 17, items 4 and 7), read from the fake Moodle over HTTP.

The streams run in this process against the fake (a real HTTP server) so each case can
change the site between reads, as a teacher or BigBlueButton's callback would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from connectors.base import Context
from connectors.moodle import streams as moodle_streams
from connectors.moodle.client import MoodleAPIError, MoodleClient
from connectors.moodle.connector import CONNECTOR, since_position
from connectors.moodle.settings import MoodleSettings, make_streams, required_functions
from lms_bridge.activity import Activity, Kind
from lms_bridge.demo.moodle import FakeMoodle
from tests.fixtures.moodle import ADMIN_TOKEN, LIMITED_TOKEN


@pytest.fixture
def fake() -> Iterator[FakeMoodle]:
    with FakeMoodle(preset="small", seed=1, token=ADMIN_TOKEN, limited_token=LIMITED_TOKEN) as site:
        yield site


def _read(fake: FakeMoodle, stream: Any, start: Any = None) -> tuple[list[Activity], Any]:
    """One pass of a stream with a fresh run context; returns its activities and last position."""
    found: list[Activity] = []
    position = start
    with MoodleClient("demo", fake.url, SecretStr(ADMIN_TOKEN)) as client:
        ctx = moodle_streams.SiteContext(site="demo", client=client, wwwroot=fake.url)
        ctx.load_catalogue()
        for _batch in moodle_streams.WebinarsStream().read(ctx, None):
            pass
        for batch in stream.read(ctx, start):
            found.extend(batch.activities)
            if batch.position is not None:
                position = batch.position
    return found, position


def _webinars(fake: FakeMoodle) -> list[Any]:
    cop = fake.data.courses[fake.data.notable["cop_course"]]
    return [m for m in cop.modules if m.modname == "bigbluebuttonbn"]


def test_bigbluebutton_attendance_states_no_invented_minutes_but_the_schedule(fake: FakeMoodle) -> None:
    activities, _ = _read(fake, moodle_streams.ActivityCompletionsStream())
    meetings = [a for a in activities if a.kind == Kind.MEETING_ATTENDED]
    assert meetings, "the fake site has webinar attendances"
    assert all(a.duration is None for a in meetings)  # never PT30M made up from the rule's minimum
    assert {a.extras["session_seconds"] for a in meetings} == {90 * 60}
    assert {a.extras["attended_minutes_at_least"] for a in meetings} == {30}
    # The schedule is read once per activity, not once per person.
    assert fake.call_count("mod_bigbluebuttonbn_meeting_info") == len({a.object.native_id for a in meetings})


def test_a_schedule_moodle_cannot_give_leaves_the_length_unknown(fake: FakeMoodle) -> None:
    for module in _webinars(fake):
        module.closing = 0  # no closing time set on the activity: meeting_info leaves closingtime out
    activities, _ = _read(fake, moodle_streams.ActivityCompletionsStream())
    meetings = [a for a in activities if a.kind == Kind.MEETING_ATTENDED]
    assert meetings and all("session_seconds" not in a.extras and a.duration is None for a in meetings)


def test_a_meeting_completed_by_view_is_viewed_not_attended(fake: FakeMoodle) -> None:
    webinar = next(m for m in _webinars(fake) if m.opening < fake.data.clock)
    with fake.data.lock:
        webinar.rule, webinar.rulevalue = "completionview", 0
    activities, _ = _read(fake, moodle_streams.ActivityCompletionsStream())
    of_webinar = [a for a in activities if a.object.native_id == str(webinar.id)]
    assert of_webinar, "someone viewed the webinar page"
    assert {a.kind for a in of_webinar} == {Kind.MODULE_VIEWED}
    assert all(a.duration is None for a in of_webinar)


def test_a_failed_graded_module_is_completed_with_success_false(fake: FakeMoodle) -> None:
    course = next(c for c in fake.data.courses.values() if any(m.rule == "completionusegrade" for m in c.modules))
    module = next(m for m in course.modules if m.rule == "completionusegrade")
    student = next(uid for uid in course.enrol if fake.data.is_tracked(course, uid))
    fake.data.grade(module.id, student, passed=False)
    fake.data._touch(course, student)  # the student opened the course since: a first sync asks them
    activities, _ = _read(fake, moodle_streams.ActivityCompletionsStream())
    [failed] = [a for a in activities if a.native_id == f"cm={module.id}|user={student}"]
    assert failed.kind == Kind.MODULE_COMPLETED and failed.extras["success"] is False


def test_news_forums_are_not_community_of_practice_by_default(fake: FakeMoodle) -> None:
    activities, position = _read(fake, moodle_streams.ForumPostsStream())
    forums = {a.parent.native_id for a in activities if a.parent is not None and a.parent.type == "forum"}
    types = {f.type for f in fake.data.forums.values() if str(f.cmid) in forums}
    assert activities and "news" not in types
    news = {str(f.id) for f in fake.data.forums.values() if f.type == "news"}
    assert news and not news & set(position["forums"])  # never read, so no watermark either
    every, _ = _read(fake, moodle_streams.ForumPostsStream(cop=moodle_streams.CopForums(news=True)))
    assert len(every) > len(activities)


def test_cop_forums_by_course_category_or_idnumber(fake: FakeMoodle) -> None:
    cop = fake.data.courses[fake.data.notable["cop_course"]]
    by_category, _ = _read(
        fake, moodle_streams.ForumPostsStream(cop=moodle_streams.CopForums(categories=(cop.category,)))
    )
    courses = {a.grouping.native_id for a in by_category if a.grouping is not None}
    in_category = {str(c.id) for c in fake.data.courses.values() if c.category == cop.category}
    assert str(cop.id) in courses and courses <= in_category
    by_idnumber, _ = _read(
        fake, moodle_streams.ForumPostsStream(cop=moodle_streams.CopForums(course_idnumbers=(cop.idnumber,)))
    )
    assert by_idnumber and {a.grouping.native_id for a in by_idnumber if a.grouping} == {str(cop.id)}
    nothing, _ = _read(
        fake, moodle_streams.ForumPostsStream(cop=moodle_streams.CopForums(course_idnumbers=("NO-SUCH-COURSE",)))
    )
    assert nothing == []


def test_cop_forums_by_course_tag(fake: FakeMoodle) -> None:
    # The admin tags the CoP course "CoP" (and it and a PT course "Diklat"): the tag, any case, picks its forums.
    cop = fake.data.courses[fake.data.notable["cop_course"]]
    tagged = {c.id for c in fake.data.courses.values() if "Diklat" in c.tags}
    assert cop.tags == ["CoP", "Diklat"] and len(tagged) == 2
    entry = {"id": "demo", "url": fake.url, "token_env": "T", "cop_forums": {"course_tags": [" cop ", "NO-SUCH"]}}
    settings = MoodleSettings.model_validate(entry)
    assert settings.cop_forums.course_tags == ("cop", "no-such")
    assert {"core_tag_get_tagindex", "core_course_search_courses"} <= set(required_functions(settings))
    streams = make_streams(settings)
    with MoodleClient("demo", fake.url, SecretStr(ADMIN_TOKEN)) as client:
        ctx = moodle_streams.SiteContext(site="demo", client=client, wwwroot=fake.url)
        list(streams["courses"].read(ctx, None))
        assert {c.id: c.tags for c in ctx.courses.values() if c.tags} == {cop.id: frozenset({"cop"})}
        activities = [a for batch in streams["forum_posts"].read(ctx, None) for a in batch.activities]
        # One call for the tag areas, one tag index per name (the unknown one answers invalidrecord), one search.
        calls = {k: v for k, v in client.calls.items() if "tag" in k or "search" in k}
    assert calls == {"core_tag_get_tag_areas": 1, "core_tag_get_tagindex": 2, "core_course_search_courses": 1}
    assert activities and {a.grouping.native_id for a in activities if a.grouping} == {str(cop.id)}


def _no_pseudonyms() -> Any:
    raise AssertionError("a Moodle check pseudonymises nothing")


def test_cop_forums_by_course_tag_on_a_site_with_tags_off_stops_with_the_setting_to_turn_on(fake: FakeMoodle) -> None:
    fake.data.usetags = False
    settings = MoodleSettings.model_validate(
        {"id": "demo", "url": fake.url, "token_env": "T", "cop_forums": {"course_tags": ["cop"]}}
    )
    with MoodleClient("demo", fake.url, SecretStr(ADMIN_TOKEN)) as client:
        ctx = moodle_streams.SiteContext(site="demo", client=client, wwwroot=fake.url)
        with pytest.raises(MoodleAPIError, match="Enable tags functionality") as caught:
            list(make_streams(settings)["courses"].read(ctx, None))
    assert caught.value.errorcode == "tagsaredisabled"
    # sites test and doctor call it too, and say which setting to turn on.
    check = CONNECTOR.check(
        {"id": "demo", "type": "moodle", "url": fake.url, "token_env": "T", "cop_forums": {"course_tags": ["cop"]}},
        Context(secret=lambda name: SecretStr(ADMIN_TOKEN), timezone=ZoneInfo("UTC"), pseudonymizer=_no_pseudonyms),
    )
    assert not check.ok and "tagsaredisabled" in check.detail and "Enable tags functionality" in check.fix, check


def test_cop_forums_are_site_configuration() -> None:
    entry = {
        "id": "demo",
        "url": "https://lms.example.org",
        "token_env": "T",
        "cop_forums": {"categories": [7], "course_idnumbers": ["KOM-1"], "news": True},
    }
    settings = MoodleSettings.model_validate(entry)
    assert settings.cop_forums == moodle_streams.CopForums(categories=(7,), course_idnumbers=("KOM-1",), news=True)
    with pytest.raises(ValueError, match="tags"):
        MoodleSettings.model_validate({**entry, "cop_forums": {"tags": ["cop"]}})


def _sync_forums(fake: FakeMoodle, cursor: Any) -> tuple[list[Activity], list[str], Any, int]:
    """One forum pass as the CLI runs it; returns activities, voided keys, the new cursor, records read."""
    activities: list[Activity] = []
    voids: list[str] = []
    read = 0
    with MoodleClient("demo", fake.url, SecretStr(ADMIN_TOKEN)) as client:
        ctx = moodle_streams.SiteContext(site="demo", client=client, wwwroot=fake.url)
        ctx.load_catalogue()
        for batch in moodle_streams.ForumPostsStream().read(ctx, cursor):
            activities.extend(batch.activities)
            voids.extend(batch.voids)
            read += batch.read or 0
            if batch.position is not None:
                cursor = json.loads(json.dumps(batch.position))
    return activities, voids, cursor, read


def test_a_post_deleted_by_a_moderator_is_voided_and_an_edit_is_stated_once(fake: FakeMoodle) -> None:
    first, voids, cursor, read = _sync_forums(fake, None)
    assert first and not voids and read >= len(first)
    # New activity: a thread with two replies (one answering the other).
    new = fake.data.add_posts(12, new_discussion_ratio=0.0)
    posts = fake.data.posts
    reply = next(p for p in new if posts[p].parent and not any(q.parent == p for q in posts.values()))
    _, voids, cursor, _ = _sync_forums(fake, cursor)
    assert not voids
    calls = fake.call_count("mod_forum_get_discussion_posts")

    # Nothing new: the listing only, no thread read again.
    again, voids, cursor, _ = _sync_forums(fake, cursor)
    assert again == [] and voids == []
    assert fake.call_count("mod_forum_get_discussion_posts") == calls

    # A moderator deletes a reply (Moodle removes the row; the thread's time may move back).
    fake.data.advance(600)
    gone = fake.data.delete_post(reply)
    after, voids, cursor, _ = _sync_forums(fake, cursor)
    assert after == []
    assert voids == [f"moodle|demo|reply_created|{pid}" for pid in sorted(gone)]

    # An edit (forum_update_post) leaves the thread's timemodified alone, as on the real Moodle: an
    # incremental sync does not see it; a backfill over the thread's window re-reads the thread and
    # states what was created or edited in the window (docs/moodle-setup.md, "What a sync reads again").
    disc = fake.data.discussions[posts[new[-1]].discussion]
    edited = disc.posts[0].id if len(disc.posts) > 1 else new[-1]
    window = since_position("forum_posts", cursor, datetime.fromtimestamp(fake.data.clock - 3600, UTC))
    fake.data.edit_post(edited, "<p>Ralat: tautan materi diperbarui.</p>")
    unseen, _, cursor, _ = _sync_forums(fake, cursor)
    assert unseen == []
    rechecked, _, _, _ = _sync_forums(fake, window)
    lengths = {a.native_id: a.extras["text_length"] for a in rechecked}
    key = f"discussion={disc.id}" if edited == disc.posts[0].id else str(edited)
    assert lengths[key] == len("Ralat: tautan materi diperbarui."), lengths
    fake.data.add_posts(1, new_discussion_ratio=0.0)
    later, _, cursor, _ = _sync_forums(fake, cursor)
    assert all(a.native_id != key for a in later)


def test_a_discussion_deleted_by_a_moderator_voids_all_its_posts(fake: FakeMoodle) -> None:
    _, _, cursor, _ = _sync_forums(fake, None)
    new = fake.data.add_posts(6, new_discussion_ratio=1.0)
    _, _, cursor, _ = _sync_forums(fake, cursor)
    target = fake.data.discussions[fake.data.posts[new[0]].discussion]
    fake.add_posts(0)
    replies = [p.id for p in target.posts[1:]]
    fake.data.delete_post(target.posts[0].id)
    _, voids, cursor, _ = _sync_forums(fake, cursor)
    expected = [f"moodle|demo|discussion_created|discussion={target.id}"]
    expected += [f"moodle|demo|reply_created|{pid}" for pid in sorted(replies)]
    assert voids == expected
    # Said once: the next sync finds nothing more to void.
    assert _sync_forums(fake, cursor)[1] == []


def test_a_reply_names_the_post_it_answers_by_moodles_own_parent_link(fake: FakeMoodle) -> None:
    """``reply_to`` (the CoP report's reply edges): the parent post, or the discussion when it answers the
    thread's first post (stated as the discussion); a started discussion answers nothing."""
    _, _, cursor, _ = _sync_forums(fake, None)
    fake.data.add_posts(12, new_discussion_ratio=0.3)
    found, _, _, _ = _sync_forums(fake, cursor)
    posts, checked = fake.data.posts, 0
    for activity in found:
        if activity.kind != "reply_created":
            assert "reply_to" not in activity.extras
            continue
        post = posts[int(activity.native_id)]
        root = fake.data.discussions[post.discussion].posts[0].id
        expected = f"discussion:{post.discussion}" if post.parent == root else f"post:{post.parent}"
        assert activity.extras["reply_to"] == expected
        checked += 1
    assert checked >= 3
