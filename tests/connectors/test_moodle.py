"""The Moodle client on its own: PHP array parameters, XML parsing, errors by errorcode, retries.

Errors and shapes come from the captured fixtures (tests/data/moodle), served by the
fake Moodle over real HTTP; nothing patches requests.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.moodle import MoodleAPIError, MoodleClient, MoodleRecordError
from connectors.moodle.client import encode_params, form_body, parse_xml
from lms_bridge.errors import RetryableError
from tests.fixtures.data import MOODLE_RESPONSES
from tests.fixtures.moodle import ADMIN_TOKEN

FIXTURES = MOODLE_RESPONSES


def _client(fake, fmt="json", **kwargs) -> MoodleClient:
    return MoodleClient("demo", fake.url, SecretStr(ADMIN_TOKEN), fmt=fmt, backoff_base=0.01, **kwargs)


def test_encode_params_uses_php_array_syntax():
    pairs = encode_params(
        {"courseid": 75, "options": [{"name": "limitfrom", "value": 100}], "values": ["a", "b"], "flag": True}
    )
    assert pairs == [
        ("courseid", "75"),
        ("options[0][name]", "limitfrom"),
        ("options[0][value]", "100"),
        ("values[0]", "a"),
        ("values[1]", "b"),
        ("flag", "1"),
    ]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=20), st.one_of(st.text(max_size=30), st.integers().map(str))), max_size=6))
def test_form_body_is_what_urlencode_and_so_requests_make(pairs):
    assert form_body(pairs) == urlencode(pairs).encode("ascii")
    assert form_body(pairs) == form_body(pairs)  # the remembered keys give the same


def test_form_body_examples():
    pairs = [("options[0][name]", "limit from"), ("values[0]", "Ujian ke-2 / 2026 & lulus? ⅠⅠ"), ("id", "75")]
    assert form_body(pairs) == (
        b"options%5B0%5D%5Bname%5D=limit+from&values%5B0%5D=Ujian+ke-2+%2F+2026+%26+lulus%3F+%E2%85%A0%E2%85%A0&id=75"
    )


@pytest.mark.parametrize(
    "name",
    [
        "core_course_get_courses",
        "core_completion_get_course_completion_status",
        "mod_forum_get_discussion_posts",
        "core_webservice_get_site_info",
    ],
)
def test_xml_fixture_parses_to_the_json_fixture_structure(name):
    from_xml = parse_xml((FIXTURES / f"{name}.xml").read_bytes())
    from_json = json.loads((FIXTURES / f"{name}.json").read_text())

    def same(x, j):
        if isinstance(j, dict):
            # XML also lists optional keys JSON leaves out, always empty: parsers treat both the same.
            assert isinstance(x, dict) and set(j) <= set(x)
            assert all(x[key] in (None, "", [], {}) for key in set(x) - set(j)), set(x) - set(j)
            for key in j:
                same(x[key], j[key])
        elif isinstance(j, list):
            assert isinstance(x, list) and len(x) == len(j)
            for a, b in zip(x, j, strict=True):
                same(a, b)
        elif j is None:
            assert x is None
        elif isinstance(j, bool):
            assert x == ("1" if j else "0")
        else:
            assert x == str(j) if not isinstance(j, float) else float(x) == j

    same(from_xml, from_json)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_errors_are_typed_by_errorcode_and_never_show_the_token(fake_moodle, fmt):
    with MoodleClient("demo", fake_moodle.url, SecretStr("bad-token-x81"), fmt=fmt) as client:
        with pytest.raises(MoodleAPIError) as info:
            client.call("core_webservice_get_site_info")
    assert info.value.errorcode == "invalidtoken"
    assert "bad-token-x81" not in str(info.value) and "Invalid token - token not found" in str(info.value)
    with _client(fake_moodle, fmt) as client:
        with pytest.raises(MoodleAPIError) as info:
            client.call("mod_forum_get_forum_discussions_paginated", forumid=1)
        assert info.value.errorcode == "invalidrecord"
        data = fake_moodle.data
        course = next(c for c in data.courses.values() if not c.criteria and c.id != 1 and c.enrol)
        user = next(uid for uid in course.enrol if data.is_tracked(course, uid))
        with pytest.raises(MoodleRecordError) as record:
            client.call("core_completion_get_course_completion_status", courseid=course.id, userid=user)
        assert record.value.errorcode == "nocriteriaset"


@pytest.mark.parametrize("kind", ["http502", "reset", "truncate"])
def test_transient_faults_are_retried(fake_moodle, kind):
    fake_moodle.inject_fault("core_course_get_courses", kind=kind, times=2)
    with _client(fake_moodle) as client:
        courses = client.call("core_course_get_courses")
    assert any(c["id"] == 1 for c in courses)
    assert fake_moodle.call_count("core_course_get_courses") == 3


def test_retries_give_up_with_a_retryable_error(fake_moodle):
    fake_moodle.inject_fault("core_course_get_courses", kind="http502", times=10)
    with _client(fake_moodle, max_retries=2) as client, pytest.raises(RetryableError, match="HTTP 502"):
        client.call("core_course_get_courses")
    assert fake_moodle.call_count("core_course_get_courses") == 3


def test_token_travels_in_the_body_not_the_url(fake_moodle):
    with _client(fake_moodle) as client:
        client.call("core_webservice_get_site_info")
        assert client.endpoint.endswith("/webservice/rest/server.php") and ADMIN_TOKEN not in client.endpoint
