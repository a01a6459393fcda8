"""Issue 17 on the fake Moodle (agreeing with the real one, tests/real_moodle): never-accessed participants,
module names, and posters who left the course."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from connectors.moodle import MoodleAPIError
from connectors.moodle.connector import MoodleReader
from connectors.moodle.settings import MoodleSettings
from lms_bridge.activity import Kind
from tests.fixtures.moodle import ADMIN_TOKEN

ROLE_STUDENT = 5


def _reader(fake) -> MoodleReader:
    settings = MoodleSettings(id="demo", url=fake.url, token_env="T", backoff_base=0.01)
    return MoodleReader(settings, SecretStr(ADMIN_TOKEN))


def _read(reader: MoodleReader, stream: str, start=None):
    return list(reader.read(stream, start))


def test_an_override_for_a_participant_who_never_opened_the_course_is_read_with_the_module_name(fake_moodle):
    data = fake_moodle.data
    course, uid = next(
        (c, u)
        for c in data.courses.values()
        if c.criteria
        for u, e in sorted(c.enrol.items())
        if e.lastaccess == 0 and e.roleid == ROLE_STUDENT and e.status == 0
    )
    cmid = course.criteria[0]
    when = data.override_completion(uid, cmid)
    assert course.enrol[uid].lastaccess == 0  # an override is no course access (as on the real Moodle)
    with _reader(fake_moodle) as reader:
        for stream in ("courses", "webinars", "enrolled_users"):
            _read(reader, stream)
        pages = _read(reader, "activity_completions")
        found = {a.native_id: a for page in pages for a in page.activities}
        done = found[f"cm={cmid}|user={uid}"]
        assert int(done.occurred_at.timestamp()) == when
        assert done.kind == Kind.MODULE_COMPLETED and done.object.title == data.modules[cmid].name
        assert reader.calls["core_course_get_contents"] <= len(data.courses)  # once per course at most
        # Asked once: the next sync does not ask him again about the same (absent) access.
        position = pages[-1].position
        assert position["rechecked"][str(course.id)][str(uid)] == 0
        before = reader.calls["core_completion_get_activities_completion_status"]
        _read(reader, "activity_completions", position)
        again = reader.calls["core_completion_get_activities_completion_status"] - before
        assert again < before


def test_a_poster_who_is_no_participant_is_linked_to_his_nip(fake_moodle):
    data = fake_moodle.data
    with _reader(fake_moodle) as reader:
        for stream in ("courses", "webinars"):
            _read(reader, stream)
        # No participants pass in this run: every author is looked up by id, in one call per forum batch.
        pages = _read(reader, "forum_posts")
    authors = {a.actor for page in pages for a in page.activities}
    linked = {uid: nip for page in pages for uid, nip in page.accounts.items()}
    assert authors and authors <= set(linked) | {str(u) for u, user in data.users.items() if user.deleted}
    some = next(iter(authors & set(linked)))
    assert linked[some] == data.users[int(some)].idnumber
    assert reader.calls["core_user_get_users_by_field"] <= len(pages)


def test_web_services_off_is_one_sentence_naming_the_settings(fake_moodle):
    fake_moodle.web_services = False  # the real Moodle's empty 403 (tests/real_moodle)
    with _reader(fake_moodle) as reader, pytest.raises(MoodleAPIError) as caught:
        reader.client.call("core_webservice_get_site_info")
    assert caught.value.errorcode == "http403"
    assert "Enable web services" in str(caught.value) and "REST" in str(caught.value)
    assert ADMIN_TOKEN not in str(caught.value)
