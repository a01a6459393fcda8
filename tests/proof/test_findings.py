"""What the benchmarks found, as deterministic checks (see BENCHMARKS.md), now fixed: they guard the fixes.

They do not time anything: each checks the structural cause of a missed goal (a whole course in one batch,
a nothing-new sync that asks again, threads fetched one at a time), so they are stable on a noisy machine.
The cron test checks that the nothing-new fix still reads a completion that cron aggregates after a sync.
The completion tests run the streams in this process with a clock the test moves (``SiteContext.now``):
the re-check rule waits an hour of client time, and a subprocess cannot be given a clock.
"""

from __future__ import annotations

import json
import socket
import sqlite3

import pytest
import requests
from pydantic import SecretStr

from connectors.moodle import streams as moodle_streams
from connectors.moodle.client import MoodleClient
from lms_bridge.demo.moodle import FakeMoodle, Preset
from tests.proof.support import ADMIN_TOKEN, ProofMoodle, make_deployment

pytestmark = pytest.mark.proof

#: A site whose national course (every user enrolled) has 1,500 participants.
BIG_COURSE_SITE = Preset(
    users=1500,
    pt_courses=2,
    pkp_courses=1,
    pbj_sections=0,
    latsar_sections=3,
    pt_size=(8, 15),
    pkp_size=20,
    pbj_size=0,
    cop_size=40,
    cop_discussions=(8, 4, 3, 3, 2),
    cop_replies=5.0,
    other_discussions=2,
    other_replies=2.0,
    hidden_courses=1,
    shared_nips=1,
    unenrolled_posters=1,
)


def test_a_big_course_is_committed_in_bounded_batches():
    with ProofMoodle(preset=BIG_COURSE_SITE, seed=1, token=ADMIN_TOKEN) as fake:
        with MoodleClient("big", fake.url, SecretStr(ADMIN_TOKEN)) as client:
            ctx = moodle_streams.SiteContext(site="big", client=client, wwwroot="http://127.0.0.1:8080")
            ctx.load_catalogue()
            big = fake.data.notable["big_course"]
            ctx.courses = {big: ctx.courses[big]}
            stream = moodle_streams.ActivityCompletionsStream(1000, 4)
            batches = list(stream.read(ctx, None))
    sizes = [len(batch.activities) for batch in batches]
    assert sum(sizes) > 2000  # the course is big enough to need several batches
    assert max(sizes) <= 1000, f"batches of {sizes} activities"
    # Only the course's last batch moves the cursor: a crash before it reruns the whole course
    # (nothing skipped), and each activity is read once in a run (nothing doubled).
    assert [batch.position is None for batch in batches] == [True] * (len(batches) - 1) + [False]
    assert batches[-1].position["courses"][str(big)] > 0
    keys = [activity.natural_key for batch in batches for activity in batch.activities]
    assert len(keys) == len(set(keys))


PER_USER = ("core_completion_get_course_completion_status", "core_completion_get_activities_completion_status")
COMPLETION_STREAMS = {
    "course_completions": moodle_streams.CourseCompletionsStream,
    "activity_completions": moodle_streams.ActivityCompletionsStream,
}


class _Clock:
    """The client's clock for in-process syncs: the test moves it, nothing sleeps."""

    def __init__(self) -> None:
        self.value = 1_800_000_000.0

    def __call__(self) -> float:
        return self.value


def _per_user_calls(fake: FakeMoodle) -> int:
    return sum(fake.stats.get(name, {}).get("calls", 0) for name in PER_USER)


def _sync_completions(
    fake: FakeMoodle, clock: _Clock, cursors: dict[str, dict], names: tuple[str, ...] = ("course_completions",)
) -> tuple[set[str], int]:
    """One in-process sync of completion streams, as the CLI runs them: a fresh run context each time,
    the cursor carried through JSON as the state database keeps it. Returns (native ids read, per-user calls)."""
    before = _per_user_calls(fake)
    found: set[str] = set()
    with MoodleClient("clocked", fake.url, SecretStr(ADMIN_TOKEN)) as client:
        ctx = moodle_streams.SiteContext(site="clocked", client=client, wwwroot="http://127.0.0.1:8080", now=clock)
        ctx.load_catalogue()
        for name in names:
            for batch in COMPLETION_STREAMS[name](1000, 4).read(ctx, cursors.get(name)):
                found.update(activity.native_id for activity in batch.activities)
                if batch.position is not None:
                    cursors[name] = json.loads(json.dumps(batch.position))
    return found, _per_user_calls(fake) - before


def _cursors(db) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("select stream, position from cursors").fetchall()
    return {stream: json.loads(position) for stream, position in rows}


def test_a_repeated_sync_with_nothing_new_asks_no_user_and_no_thread_again(moodle):
    # Threads need no clock: the real CLI, whose second sync reads no thread again and asks nobody,
    # not even the accesses its cursor keeps waiting for their hour (they wait unasked).
    deployment = make_deployment("nothing-new", lrs_url="http://127.0.0.1:9/xAPI/", moodle_url=moodle.url)
    deployment.run("sync")
    waiting = sum(
        len(users) for name in COMPLETION_STREAMS for users in _cursors(deployment.db)[name].get("pending", {}).values()
    )
    before = {name: entry["calls"] for name, entry in moodle.stats.items()}
    deployment.run("sync")
    calls = {name: entry["calls"] - before.get(name, 0) for name, entry in moodle.stats.items()}
    per_user = sum(calls.get(name, 0) for name in PER_USER)
    assert waiting > 0 and (per_user, calls.get("mod_forum_get_discussion_posts", 0)) == (0, 0), calls
    # Per-user asks on the client's clock: once an hour has passed since the first ask, one sync asks
    # the waiting accesses a last time, and from then on a sync with nothing new asks nobody.
    clock, cursors = _Clock(), {}
    _, first = _sync_completions(moodle, clock, cursors, tuple(COMPLETION_STREAMS))
    clock.value += 60
    _, soon = _sync_completions(moodle, clock, cursors, tuple(COMPLETION_STREAMS))
    clock.value += moodle_streams.COMPLETION_SETTLE
    _, last = _sync_completions(moodle, clock, cursors, tuple(COMPLETION_STREAMS))
    assert not any(cursor.get("pending") for cursor in cursors.values()), cursors
    clock.value += 60
    _, after = _sync_completions(moodle, clock, cursors, tuple(COMPLETION_STREAMS))
    assert first > last > 0 and soon == 0 and after == 0, (first, soon, last, after)


def test_forum_threads_are_fetched_concurrently(moodle):
    moodle.hold["mod_forum_get_discussion_posts"] = 0.05
    deployment = make_deployment("threads", lrs_url="http://127.0.0.1:9/xAPI/", moodle_url=moodle.url)
    deployment.run("sync", "--stream", "forum_posts")
    assert moodle.max_in_flight["mod_forum_get_discussion_posts"] >= 2


def test_the_fake_moodle_sends_without_nagle_delay():
    with FakeMoodle(preset="small", seed=1, token=ADMIN_TOKEN) as fake:
        with requests.Session() as session:
            session.post(
                fake.endpoint,
                data={
                    "wstoken": ADMIN_TOKEN,
                    "wsfunction": "core_webservice_get_site_info",
                    "moodlewsrestformat": "json",
                },
                timeout=10,
            )
            connections = list(fake._connections)
            assert connections
            assert all(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for conn in connections)


def _completion_statements(db) -> set[str]:  # type: ignore[no-untyped-def]
    """Native ids of the course-completion statements in a deployment's outbox."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        bodies = [row[0] for row in conn.execute("select body from outbox")]
    found = set()
    for body in bodies:
        statement = json.loads(body)
        source = statement["context"]["extensions"]["https://lms-bridge.id/xapi/extensions/source"]
        if source["native_id"].startswith("course="):
            found.add(source["native_id"])
    return found


def test_a_completion_aggregated_by_cron_after_a_sync_is_read_by_the_next_sync():
    # Moodle's cron aggregates course completion minutes after the last criterion, without touching
    # lastcourseaccess: the sync that asked right after the visit saw "not complete". The syncs of the
    # next hour do not ask again (their calls would grow with the people who visited); the first sync an
    # hour after the first ask (client clock) asks a last time and reads it; then nobody is asked.
    clock, cursors = _Clock(), {}
    with ProofMoodle(preset="small", seed=3, token=ADMIN_TOKEN) as fake:
        _sync_completions(fake, clock, cursors)
        data = fake.data
        with data.lock:
            course = next(c for c in data.courses.values() if c.criteria and c.startdate < data.clock)
            # Not one whose missing criterion is a graded assignment: a grade is its own signal (graded_since).
            user = next(
                uid
                for uid in sorted(course.enrol)
                if data.is_tracked(course, uid)
                and not data.course_completion(course, uid)[0]
                and not any(
                    m.rule == "completionusegrade"
                    for m, state, _ in data.course_completion(course, uid)[1]
                    if not state
                )
            )
            data.clock += 60
            data._touch(course, user)  # the user visits the course and meets its last criterion...
        key = f"course={course.id}|user={user}"
        clock.value += 60  # ...and a sync asks before cron aggregated the completion
        found, calls = _sync_completions(fake, clock, cursors)
        assert calls > 0 and key not in found
        clock.value += 60  # a minute later: not asked again (it waits for its hour)
        found, calls = _sync_completions(fake, clock, cursors)
        assert (found, calls) == (set(), 0)
        with data.lock:  # cron runs: the criteria are complete, lastcourseaccess unchanged
            for module, state, _ in data.course_completion(course, user)[1]:
                if not state:
                    data.overrides[(user, module.id)] = data.clock
        clock.value += 60
        found, calls = _sync_completions(fake, clock, cursors)
        assert (found, calls) == (set(), 0)
        clock.value += moodle_streams.COMPLETION_SETTLE  # an hour after the first ask: asked a last time
        found, calls = _sync_completions(fake, clock, cursors)
        assert key in found and calls > 0
        clock.value += 60
        found, calls = _sync_completions(fake, clock, cursors)
        assert (found, calls) == (set(), 0)


def test_a_cursor_without_first_ask_times_still_reads_and_settles_nobody_early():
    # A cursor written before ``pending`` existed, or with an entry of another shape: the accesses it left
    # unsettled are asked again and wait their hour from now (never settled on an unknown first ask).
    clock, cursors = _Clock(), {}
    with ProofMoodle(preset="small", seed=3, token=ADMIN_TOKEN) as fake:
        _sync_completions(fake, clock, cursors)
        pending = cursors["course_completions"]["pending"]
        waiting = {(course, user) for course, users in pending.items() for user in users}
        old = {key: value for key, value in cursors["course_completions"].items() if key != "pending"}
        odd = {**old, "pending": {course: dict.fromkeys(users, "?") for course, users in pending.items()}}
        for start in (old, odd):
            clock.value += 2 * moodle_streams.COMPLETION_SETTLE
            cursors = {"course_completions": start}
            _, calls = _sync_completions(fake, clock, cursors)
            restarted = cursors["course_completions"]["pending"]
            assert calls == len(waiting) > 0
            assert {(course, user) for course, users in restarted.items() for user in users} == waiting
            assert {first for users in restarted.values() for _, first in users.values()} == {int(clock.value)}
