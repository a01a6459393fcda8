"""Completions Moodle writes long after a visit (issue 17, item 2): the sync or serve's re-check reads them.

A teacher grades an assignment after the student's last visit, and BigBlueButton's end-of-meeting
callback writes an attendance after the participant left: neither moves ``lastcourseaccess``, so an
incremental sync whose re-check of that access has settled would never ask again. A late grade is
found by every sync (assignment grades written since its last run); anything else by the rolling
re-check ``serve`` runs daily (``recheck:<site>``: the completion streams from ``recheck_days`` ago).
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.settings import load_settings
from lms_bridge.runtime.scheduler import RECHECK_STREAMS, Service, serve_settings
from lms_bridge.store.models import Cursor, OutboxRow, Run
from tests.fixtures.moodle import ADMIN_TOKEN, moodle_source

SOURCE_KEY = "https://lms-bridge.id/xapi/extensions/source"


def _native_ids(state_url: str) -> set[str]:
    with Session(store.make_engine(state_url)) as session:
        bodies = session.scalars(select(OutboxRow.body)).all()
    return {json.loads(b)["context"]["extensions"][SOURCE_KEY]["native_id"] for b in bodies}


def test_a_late_grade_and_a_late_attendance_are_read_by_the_recheck_not_lost(
    tmp_path, ralph, fake_moodle, make_deployment, monkeypatch
):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    # The fake's site clock is some days behind the machine's: a window that reaches it.
    toml = moodle_source(fake_moodle) + "\n[serve]\nrecheck_days = 60\n"
    deployment = make_deployment(state_url, ralph.url, ralph.password, extra_toml=toml)
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    monkeypatch.setenv("MOODLE_TOKEN_DEMO", ADMIN_TOKEN)
    data = fake_moodle.data

    # A student hands in (visits the course) and a participant attends a webinar; both are synced.
    course = next(
        c for c in data.courses.values() if c.criteria and any(m.rule == "completionusegrade" for m in c.modules)
    )
    assignment = next(m for m in course.modules if m.rule == "completionusegrade")
    student = next(
        uid for uid in course.enrol if data.is_tracked(course, uid) and not data.activity_state(assignment, uid)[0]
    )
    cop = data.courses[data.notable["cop_course"]]
    webinar = next(m for m in cop.modules if m.modname == "bigbluebuttonbn" and m.opening < data.clock)
    member = next(uid for uid in cop.enrol if data.is_tracked(cop, uid) and not data.activity_state(webinar, uid)[0])
    data._touch(course, student)
    data._touch(cop, member)
    first = deployment.run("sync", check=True).stdout
    # The table counts what every stream read (issue 17 item 6), and has a changed column.
    header = next(line for line in first.splitlines() if "stream" in line and "read" in line)
    assert [c.strip() for c in header.split("┃")[1:-1]][-1] == "changed", first
    rows = {
        cells[1]: cells
        for cells in ([c.strip() for c in line.split("│")[1:-1]] for line in first.splitlines())
        if len(cells) > 2
    }
    assert int(rows["courses"][2]) == len(data.courses), first
    assert int(rows["enrolled_users"][2]) > len(data.courses), first
    assert int(rows["webinars"][2]) > 0 and rows["forum_posts"][7] == "0"

    # Two hours later others visit: the two accesses are settled by the next sync (asked once more, then never).
    data.advance(2 * 3600)
    for other_course in (course, cop):
        other = next(u for u in other_course.enrol if data.is_tracked(other_course, u) and u not in (student, member))
        data._touch(other_course, other)
    deployment.run("sync", check=True)

    # Then the teacher grades and the meeting's end callback arrives: no visit of theirs moves.
    data.grade(assignment.id, student, passed=True)
    data.record_attendance(webinar.id, member)
    graded, attended = f"cm={assignment.id}|user={student}", f"cm={webinar.id}|user={member}"
    per_user = "core_completion_get_activities_completion_status"
    before = fake_moodle.call_count(per_user), fake_moodle.call_count("mod_assign_get_grades")
    deployment.run("sync", check=True)
    # The hourly sync reads the late grade (assignment grades since its last run: one call for the
    # site) and asks only that student again; the attendance has no such signal and waits.
    assert graded in _native_ids(state_url) and attended not in _native_ids(state_url)
    # Asked: the graded student only; the two visitors of the last hour were asked when their visit was read
    # and wait, unasked, for the sync an hour after that (a sync asks nobody who has nothing new).
    assert fake_moodle.call_count(per_user) - before[0] == 1
    assert fake_moodle.call_count("mod_assign_get_grades") - before[1] == 1

    # serve's re-check job reads them, without moving any cursor.
    settings = load_settings(deployment.config, environ=deployment.env)
    engine = store.make_engine(state_url)
    with Session(engine) as session:
        cursors_before = {(c.site_id, c.stream): c.position for c in session.scalars(select(Cursor))}
    service = Service(engine, settings, serve_settings(settings))
    [spec] = [s for s in service.specs() if s.id == "recheck:demo"]
    assert spec.cron == "0 2 * * *"  # daily by default
    before = fake_moodle.call_count("core_completion_get_activities_completion_status")
    service.run_job(spec)
    assert service.jobs["recheck:demo"].last_error is None
    assert attended in _native_ids(state_url)
    with Session(engine) as session:
        cursors_after = {(c.site_id, c.stream): c.position for c in session.scalars(select(Cursor))}
        last = session.scalars(select(Run).order_by(Run.id.desc()).limit(1)).one()
    assert cursors_after == cursors_before
    assert set(json.loads(last.counts)) >= set(RECHECK_STREAMS)
    # It asks each participant with a visit in the window once per course, not everyone on the site.
    asked = fake_moodle.call_count("core_completion_get_activities_completion_status") - before
    assert 0 < asked < sum(len(c.enrol) for c in data.courses.values())


def test_a_post_a_moderator_deletes_is_voided_by_the_next_sync(tmp_path, ralph, fake_moodle, make_deployment):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    deployment = make_deployment(state_url, ralph.url, ralph.password, extra_toml=moodle_source(fake_moodle))
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    deployment.run("sync", check=True)
    new = fake_moodle.data.add_posts(4, new_discussion_ratio=0.0)
    deployment.run("sync", check=True)
    posts = fake_moodle.data.posts
    reply = next(p for p in new if posts[p].parent and not any(q.parent == p for q in posts.values()))
    fake_moodle.data.delete_post(reply)
    deployment.run("sync", check=True)
    with Session(store.make_engine(state_url)) as session:
        bodies = [json.loads(b) for b in session.scalars(select(OutboxRow.body))]
        evidence = {e for e in session.scalars(select(store.models.Evidence.statement_id))}
    [target] = [
        b["id"]
        for b in bodies
        if b.get("context", {}).get("extensions", {}).get(SOURCE_KEY, {}).get("native_id") == str(reply)
    ]
    voids = [b for b in bodies if b["verb"]["id"].endswith("/voided")]
    assert [v["object"]["id"] for v in voids] == [target]
    assert target not in evidence  # its CoP day no longer counts it at the next jp compute
