"""What the benchmarks found, as deterministic checks (see BENCHMARKS.md), now fixed: they guard the fixes.

They do not time anything: each checks the structural cause of a missed goal (a whole course in one batch,
a nothing-new sync that asks again, threads fetched one at a time), so they are stable on a noisy machine.
The cron test checks that the nothing-new fix still reads a completion that cron aggregates after a sync.
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
from scripts.fake_moodle import FakeMoodle, Preset
from tests.proof.support import ADMIN_TOKEN, ProofMoodle, make_deployment

pytestmark = pytest.mark.proof

#: A site whose national course (every user enrolled) has 1,500 participants.
BIG_COURSE_SITE = Preset(users=1500, pt_courses=2, pkp_courses=1, pbj_sections=0, latsar_sections=3, pt_size=(8, 15),
                         pkp_size=20, pbj_size=0, cop_size=40, cop_discussions=(8, 4, 3, 3, 2), cop_replies=5.0,
                         other_discussions=2, other_replies=2.0, hidden_courses=1, shared_nips=1,
                         unenrolled_posters=1)


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


def test_a_repeated_sync_with_nothing_new_asks_no_user_and_no_thread_again(moodle):
    deployment = make_deployment("nothing-new", lrs_url="http://127.0.0.1:9/xAPI/", moodle_url=moodle.url)
    deployment.run("sync")
    deployment.run("sync")
    before = {name: entry["calls"] for name, entry in moodle.stats.items()}
    deployment.run("sync")
    calls = {name: entry["calls"] - before.get(name, 0) for name, entry in moodle.stats.items()}
    per_user = calls.get("core_completion_get_course_completion_status", 0) + calls.get(
        "core_completion_get_activities_completion_status", 0)
    assert (per_user, calls.get("mod_forum_get_discussion_posts", 0)) == (0, 0), calls


def test_forum_threads_are_fetched_concurrently(moodle):
    moodle.hold["mod_forum_get_discussion_posts"] = 0.05
    deployment = make_deployment("threads", lrs_url="http://127.0.0.1:9/xAPI/", moodle_url=moodle.url)
    deployment.run("sync", "--stream", "forum_posts")
    assert moodle.max_in_flight["mod_forum_get_discussion_posts"] >= 2


def test_the_fake_moodle_sends_without_nagle_delay():
    with FakeMoodle(preset="small", seed=1, token=ADMIN_TOKEN) as fake:
        with requests.Session() as session:
            session.post(fake.endpoint, data={"wstoken": ADMIN_TOKEN, "wsfunction": "core_webservice_get_site_info",
                                              "moodlewsrestformat": "json"}, timeout=10)
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
    # lastcourseaccess: a sync that asked right after the visit saw "not complete". The next sync must ask
    # again (the overlap re-check), and the one after it, with nothing new, must ask nobody.
    stream = ("--stream", "course_completions")  # alone: the stream pages the participants itself
    with ProofMoodle(preset="small", seed=3, token=ADMIN_TOKEN) as fake:
        deployment = make_deployment("cron", lrs_url="http://127.0.0.1:9/xAPI/", moodle_url=fake.url)
        deployment.run("sync", *stream)
        data = fake.data
        with data.lock:
            course = next(c for c in data.courses.values() if c.criteria and c.startdate < data.clock)
            user = next(uid for uid in sorted(course.enrol)
                        if data.is_tracked(course, uid) and not data.course_completion(course, uid)[0])
            data.clock += 60
            data._touch(course, user)  # the user visits the course and meets its last criterion...
        deployment.run("sync", *stream)  # ...and is asked before cron aggregated the completion
        key = f"course={course.id}|user={user}"
        assert key not in _completion_statements(deployment.db)
        with data.lock:  # cron runs: the criteria are complete, lastcourseaccess unchanged
            for module, state, _ in data.course_completion(course, user)[1]:
                if not state:
                    data.overrides[(user, module.id)] = data.clock
        deployment.run("sync", *stream)
        assert key in _completion_statements(deployment.db)
        before = fake.stats.get("core_completion_get_course_completion_status", {}).get("calls", 0)
        deployment.run("sync", *stream)
        assert fake.stats["core_completion_get_course_completion_status"]["calls"] == before
