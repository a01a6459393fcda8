"""Tests of the fake Moodle web service (lms_bridge/demo/moodle) over real HTTP.

The contract test replays every request of tests/data/moodle/_manifest.json against the
fake (ids mapped to the fake's equivalents, see ID_MAP) and checks that the answer has the same shape
as the captured response, in JSON and in XML; error responses must be byte-identical.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import requests

from lms_bridge.demo.moodle import Dataset, FakeMoodle
from lms_bridge.demo.moodle.generator import NOW0
from lms_bridge.demo.moodle.wsformat import encode_xml, parse_php_form, php_json
from tests.fixtures.data import MOODLE_RESPONSES

FIXTURES = MOODLE_RESPONSES
MANIFEST = json.loads((FIXTURES / "_manifest.json").read_text())
assert MANIFEST["requests"], "the Moodle fixture manifest lists no requests"
REPO = Path(__file__).resolve().parents[2]
ADMIN, LIMITED = "tok-admin", "tok-limited"

# Functions captured in the fixtures that the fake deliberately does not serve: it answers them with
# the "function does not exist" error (error_function_does_not_exist.json).
NOT_SERVED = {
    "gradereport_user_get_grade_items",
    "core_grades_get_gradeitems",
    "core_reportbuilder_list_reports",
    "core_reportbuilder_retrieve_report",
}

# (parameter name, fixture value) -> key of FakeMoodle.data.notable holding the equivalent id.
ID_MAP = {
    ("courseid", 77): "cop_course",  # COP-TDP
    ("courseid", 66): "leadership_course",  # PKP-2026-01
    ("courseid", 75): "big_course",  # DIKLAT-L-LATSAR
    ("courseid", 3): "nocriteria_course",  # PT-02-I: completion enabled, no criteria
    ("courseids", 77): "cop_course",
    ("ids", 77): "cop_course",
    ("ids", 66): "leadership_course",
    ("userid", 30): "completed_user",  # completed PKP, not enrolled in the no-criteria course
    ("userid", 6): "incomplete_user",  # partial progress in PKP
    ("userid", 6620): "cop_member",  # CoP member who completed through forum posts
    ("userid", 3): "nocriteria_student",  # enrolled in the no-criteria course
    ("values", 30): "completed_user",
    ("values", 6620): "cop_member",
    ("forumid", 80): "cop_general_forum",  # Forum Diskusi Umum
    ("forumid", 83): "cop_groups_forum",  # Diskusi Kelompok Regional (separate groups)
    ("discussionid", 817): "long_discussion",
    ("discussionid", 784): "deleted_author_discussion",
    ("cmid", 2659): "cop_general_cmid",
    ("value", 5): "leadership_category",
}
# Per-file parameter (or option) changes where the small preset is smaller than the fixture site.
PARAM_OVERRIDES = {
    "core_enrol_get_enrolled_users__latsar_userfields_page.json": {"limitfrom": 5, "limitnumber": 10},
    "mod_forum_get_forum_discussions__page2.json": {"perpage": 3},
}


# ------------------------------------------------------------------------------------------ helpers
def php_pairs(params: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Encode nested params the PHP way: a[0][name]=x."""
    pairs: list[tuple[str, str]] = []
    items = params.items() if isinstance(params, dict) else enumerate(params)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict | list):
            pairs += php_pairs(value, name)
        else:
            pairs.append((name, str(int(value)) if isinstance(value, bool) else str(value)))
    return pairs


def ws_call(
    fake: FakeMoodle, function: str, params: Any = None, fmt: str = "json", token: str = ADMIN, **kwargs: Any
) -> requests.Response:
    """POST like the fixtures were captured: token/function in the query, parameters in the body."""
    query = {"wstoken": token, "wsfunction": function}
    if fmt == "json":
        query["moodlewsrestformat"] = "json"
    return requests.post(fake.endpoint, params=query, data=php_pairs(params or {}), timeout=30, **kwargs)


def ws_json(fake: FakeMoodle, function: str, params: Any = None, token: str = ADMIN) -> Any:
    response = ws_call(fake, function, params, token=token)
    assert response.status_code == 200
    return response.json()


def xml_tree(raw: bytes) -> Any:
    """<RESPONSE> body as dict (SINGLE) / list (MULTIPLE) / str (VALUE) / None (null VALUE)."""

    def convert(el: ET.Element) -> Any:
        if el.tag == "VALUE":
            return None if el.get("null") == "null" else (el.text or "")
        if el.tag == "MULTIPLE":
            return [convert(child) for child in el]
        return {key.get("name"): convert(key[0]) for key in el}

    root = ET.fromstring(raw)
    assert root.tag == "RESPONSE", raw[:200]
    return convert(root[0]) if len(root) else None


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"  # PHP floats that happen to be whole print as ints (progress)
    return {str: "string", list: "array", dict: "object"}[type(value)]


class Shape:
    """Union of the shapes of every value seen at one place of a response."""

    def __init__(self) -> None:
        self.types: set[str] = set()
        self.objects = 0
        self.keys: dict[str, list[Any]] = {}  # key -> [Shape, times present]
        self.order: list[str] | None = None  # key order of the first object (XML: always complete)
        self.items: Shape | None = None

    def add(self, value: Any) -> Shape:
        kind = type_name(value)
        self.types.add(kind)
        if kind == "object":
            self.objects += 1
            if self.order is None:
                self.order = list(value)
            for key, sub in value.items():
                entry = self.keys.setdefault(key, [Shape(), 0])
                entry[0].add(sub)
                entry[1] += 1
        elif kind == "array":
            for item in value:
                self.items = (self.items or Shape()).add(item)
        return self


def compare(fake: Shape, fixture: Shape, union: Shape, path: str = "$", xml: bool = False) -> list[str]:
    """Problems where the fake's shape is not the fixture's.

    The fake's types and keys must be within the fixture file's; keys present in every object of
    ``union`` (all fixtures of the same function and format) must be present in every fake object.
    """
    problems = []
    if fake.types - fixture.types:
        problems.append(f"{path}: types {sorted(fake.types)} vs fixture {sorted(fixture.types)}")
    if "object" in fake.types and "object" in fixture.types:
        extra = sorted(set(fake.keys) - set(fixture.keys))
        if extra:
            problems.append(f"{path}: keys not in the fixture {extra}")
        required = [k for k, (_, seen) in union.keys.items() if seen == union.objects and k in fixture.keys]
        missing = [k for k in required if fake.keys.get(k, [None, 0])[1] != fake.objects]
        if missing:
            problems.append(f"{path}: keys always present in the fixtures but missing {missing}")
        if xml and fake.order != fixture.order:
            problems.append(f"{path}: XML key order {fake.order} vs fixture {fixture.order}")
        for key in set(fake.keys) & set(fixture.keys):
            sub = (fake.keys[key][0], fixture.keys[key][0], union.keys[key][0])
            problems += compare(*sub, f"{path}.{key}", xml)
    if "array" in fake.types and "array" in fixture.types:
        if fixture.items is not None and fake.items is None:
            problems.append(f"{path}: always empty in the fake, the fixture has items (nothing compared)")
        elif fixture.items is None and fake.items is not None:
            problems.append(f"{path}: the fake has items, the fixture never showed any")
        elif fake.items is not None and fixture.items is not None and union.items is not None:
            problems += compare(fake.items, fixture.items, union.items, f"{path}[]", xml)
    return problems


def parse_body(raw: bytes, fmt: str) -> Any:
    return json.loads(raw) if fmt == "json" else xml_tree(raw)


def function_union(function: str, fmt: str) -> Shape:
    """Shape of every successful fixture of one function and format together."""
    union = Shape()
    for entry in MANIFEST["requests"]:
        same = entry["function"] == function and entry["format"] == fmt
        if same and not entry["file"].startswith("error_"):
            union.add(parse_body((FIXTURES / entry["file"]).read_bytes(), fmt))
    return union


def map_params(fake: FakeMoodle, entry: dict[str, Any]) -> Any:
    """Fixture parameters -> the same request against the fake's data (ID_MAP, NIPs, since)."""
    notable = fake.data.notable
    users = fake.data.users
    nips = {
        "197704252025042386": users[notable["nip_users"][0]].idnumber,
        "198001102007041747": users[notable["nip_users"][1]].idnumber,
        "198610262008012895": notable["shared_nip"],  # two users
        "19960401 201803 2 312": notable["spaced_nip"],
        "199604012018032312": notable["spaced_nip"].replace(" ", ""),  # normalised: no match
    }
    overrides = PARAM_OVERRIDES.get(entry["file"], {})

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            if set(value) == {"name", "value"} and value["name"] in overrides:
                return {"name": value["name"], "value": overrides[value["name"]]}
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if key in overrides:
            return overrides[key]
        if (key, value) in ID_MAP:
            return notable[ID_MAP[(key, value)]]
        if key == "since":
            return fake.data.clock - 7 * 86400  # the fixture used now - 7 days
        return nips.get(value, value) if isinstance(value, str) else value

    return walk(entry["params"], "")


def token_for(entry: dict[str, Any]) -> str:
    return {"REDACTED (admin)": ADMIN, "REDACTED (limited user)": LIMITED}.get(entry["token"], "not-a-token")


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def fake() -> Any:
    with FakeMoodle(preset="small", seed=1, token=ADMIN, limited_token=LIMITED) as server:
        yield server


# ---------------------------------------------------------------------------------- contract tests


@pytest.mark.parametrize("entry", MANIFEST["requests"], ids=[e["file"] for e in MANIFEST["requests"]])
def test_contract(fake: FakeMoodle, entry: dict[str, Any]) -> None:
    """Every captured request: same shape (success), same bytes (errors) or explicitly not served."""
    raw = (FIXTURES / entry["file"]).read_bytes()
    fmt = entry["format"]
    fake.debug = "__debug" in entry["file"]
    try:
        response = ws_call(fake, entry["function"], map_params(fake, entry), fmt, token_for(entry))
    finally:
        fake.debug = False
    assert response.status_code == entry["http_status"] == 200
    assert response.headers["Content-Type"] == entry["content_type"]

    if entry["function"] in NOT_SERVED:
        expected = (FIXTURES / f"error_function_does_not_exist.{fmt}").read_bytes()
        assert response.content == expected, f"{entry['function']} is listed as not served"
        return
    if entry["file"].startswith("error_"):
        # the limited-user message names the course id: the fake's CoP course is not 77
        expected = raw.replace(b"course id:77)", f"course id:{fake.data.notable['cop_course']})".encode())
        assert response.content == expected
        return
    fixture_shape = Shape().add(parse_body(raw, fmt))
    problems = compare(
        Shape().add(parse_body(response.content, fmt)),
        fixture_shape,
        function_union(entry["function"], fmt),
        xml=fmt == "xml",
    )
    assert not problems, "\n".join(problems)


def test_every_fixture_function_is_served_or_listed(fake: FakeMoodle) -> None:
    """Nothing is skipped silently: each captured function is either served or in NOT_SERVED."""
    site = ws_json(fake, "core_webservice_get_site_info")
    served = {f["name"] for f in site["functions"]}
    captured = {e["function"] for e in MANIFEST["requests"] if not e["file"].startswith("error_")}
    assert captured - served == NOT_SERVED
    assert not NOT_SERVED & served


def test_writers_reproduce_the_fixture_bytes() -> None:
    """The JSON encoder and the XML writer give back every fixture byte for byte (layout included)."""
    for path in sorted(FIXTURES.glob("*.json")):
        if path.name != "_manifest.json":
            assert php_json(json.loads(path.read_bytes())) == path.read_bytes(), path.name
    for path in sorted(FIXTURES.glob("*.xml")):
        if not path.name.startswith("error_"):
            raw = path.read_bytes()
            assert encode_xml(xml_tree(raw), _merged_schema(ET.fromstring(raw)[0])) == raw, path.name


def _merged_schema(el: ET.Element) -> Any:
    """Return description behind an XML response (items of a list merged: some lack nested items)."""
    if el.tag == "VALUE":
        return None
    if el.tag == "MULTIPLE":
        merged = None
        for child in el:
            merged = _merge(merged, _merged_schema(child))
        return [merged]
    return {key.get("name"): _merged_schema(key[0]) for key in el}


def _merge(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return a if b is None else b
    if isinstance(a, dict):
        return {k: _merge(a[k], b.get(k)) for k in a}
    return [_merge(a[0], b[0])] if isinstance(a, list) else a


# ------------------------------------------------------------------------------ parameters, tokens
def test_php_array_parsing() -> None:
    parsed = parse_php_form(
        [
            ("courseids[0]", "77"),
            ("courseids[1]", "66"),
            ("options[0][name]", "limitfrom"),
            ("options[0][value]", "0"),
            ("options[1][name]", "limitnumber"),
            ("options[1][value]", "25"),
            ("criteria[0][key]", "idnumber"),
            ("criteria[0][value]", "19960401 201803 2 312"),
            ("options2[ids][0]", "5"),
            ("values[]", "a"),
            ("values[]", "b"),
            ("field", "x"),
            ("field", "y"),
            ("sparse[5]", "later"),
            ("sparse[2]", "earlier"),
        ]
    )
    assert parsed == {
        "courseids": ["77", "66"],
        "options": [{"name": "limitfrom", "value": "0"}, {"name": "limitnumber", "value": "25"}],
        "criteria": [{"key": "idnumber", "value": "19960401 201803 2 312"}],
        "options2": {"ids": ["5"]},
        "values": ["a", "b"],
        "field": "y",
        "sparse": ["later", "earlier"],  # PHP order is insertion order, not index order
    }


def test_control_parameters_from_query_or_body_and_get(fake: FakeMoodle) -> None:
    control = {"wstoken": ADMIN, "wsfunction": "core_webservice_get_site_info", "moodlewsrestformat": "json"}
    body_only = requests.post(fake.endpoint, data=control, timeout=10)
    get = requests.get(fake.endpoint, params=control, timeout=10)
    assert body_only.json()["username"] == get.json()["username"] == "admin"
    del control["moodlewsrestformat"]
    xml_default = requests.post(fake.endpoint, params=control, timeout=10)
    assert xml_default.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert xml_default.content.startswith(b'<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE>\n<SINGLE>\n')


def test_parameter_errors_and_debuginfo(fake: FakeMoodle) -> None:
    cop = fake.data.notable["cop_course"]
    fake.debug = True
    try:
        extra = ws_json(fake, "core_course_get_contents", {"courseid": cop, "bogus": 1})
        wrong = ws_json(
            fake, "core_enrol_get_enrolled_users", {"courseid": cop, "options": [{"name": "limitfrom", "value": "x"}]}
        )
    finally:
        fake.debug = False
    assert extra["errorcode"] == "invalidparameter"
    assert extra["debuginfo"] == "Unexpected keys (bogus) detected in parameter array."
    assert wrong["errorcode"] == "invalidparameter" and "limitfrom" in wrong["debuginfo"]
    assert "debuginfo" not in ws_json(fake, "core_course_get_contents", {"courseid": "abc"})
    unknown = ws_json(fake, "mod_forum_get_discussion_posts", {"discussionid": 999999})
    assert unknown["message"] == "Can't find data record in database table forum_discussions."


def test_limited_token_sees_less(fake: FakeMoodle) -> None:
    notable = fake.data.notable
    nip = fake.data.users[notable["completed_user"]].idnumber
    params = {"field": "idnumber", "values": [nip]}
    assert len(ws_json(fake, "core_user_get_users_by_field", params)) == 1
    assert ws_json(fake, "core_user_get_users_by_field", params, token=LIMITED) == []
    error = ws_json(fake, "core_enrol_get_enrolled_users", {"courseid": notable["cop_course"]}, token=LIMITED)
    assert error["errorcode"] == "errorcoursecontextnotvalid"
    site = ws_json(fake, "core_webservice_get_site_info", token=LIMITED)
    assert site["userissiteadmin"] is False and site["userid"] == notable["limited_user"]


def test_missing_functions_in_service() -> None:
    keep = ["core_webservice_get_site_info", "core_course_get_courses"]
    with FakeMoodle(functions=keep) as small:
        site = ws_json(small, "core_webservice_get_site_info")
        assert [f["name"] for f in site["functions"]] == keep
        denied = ws_json(small, "core_enrol_get_enrolled_users", {"courseid": 2})
        assert denied["errorcode"] == "accessexception"
        assert ws_json(small, "no_such_function")["errorcode"] == "invalidrecord"


# ----------------------------------------------------------------------------------- data behaviour
def test_enrolled_users_pagination_gives_everyone_once(fake: FakeMoodle) -> None:
    course = fake.data.notable["big_course"]
    lean = {"name": "userfields", "value": "id,username,idnumber,fullname,lastcourseaccess"}
    everyone = [
        u["id"] for u in ws_json(fake, "core_enrol_get_enrolled_users", {"courseid": course, "options": [lean]})
    ]
    paged: list[int] = []
    for start in range(0, len(everyone) + 7, 7):
        page = ws_json(
            fake,
            "core_enrol_get_enrolled_users",
            {
                "courseid": course,
                "options": [lean, {"name": "limitfrom", "value": start}, {"name": "limitnumber", "value": 7}],
            },
        )
        lean_keys = {"id", "username", "idnumber", "fullname", "lastcourseaccess"}
        assert all(set(user) <= lean_keys for user in page)
        paged += [u["id"] for u in page]
    assert paged == everyone == sorted(everyone)
    assert len(everyone) > 40
    full = ws_json(fake, "core_enrol_get_enrolled_users", {"courseid": course})
    assert any("idnumber" not in u for u in full) and any(" " in u.get("idnumber", "") for u in full)


def test_users_by_idnumber_is_exact(fake: FakeMoodle) -> None:
    notable = fake.data.notable
    by_nip = {"field": "idnumber", "values": [notable["shared_nip"]]}
    shared = ws_json(fake, "core_user_get_users_by_field", by_nip)
    assert len(shared) == 2 and shared[0]["id"] < shared[1]["id"]
    spaced = notable["spaced_nip"]
    assert len(ws_json(fake, "core_user_get_users_by_field", {"field": "idnumber", "values": [spaced]})) == 1
    normalised = spaced.replace(" ", "")
    assert ws_json(fake, "core_user_get_users_by_field", {"field": "idnumber", "values": [normalised]}) == []


def test_discussions_order_pinned_and_paging(fake: FakeMoodle) -> None:
    forum = fake.data.notable["cop_general_forum"]
    everything = ws_json(fake, "mod_forum_get_forum_discussions", {"forumid": forum})["discussions"]
    pinned = [d for d in everything if d["pinned"]]
    assert pinned and everything[: len(pinned)] == pinned
    rest = [d["timemodified"] for d in everything[len(pinned) :]]
    assert rest == sorted(rest, reverse=True)
    pages = []
    for page in range(0, 5):
        pages += ws_json(fake, "mod_forum_get_forum_discussions", {"forumid": forum, "page": page, "perpage": 3})[
            "discussions"
        ]
    assert [d["discussion"] for d in pages] == [d["discussion"] for d in everything]
    assert any(d["locked"] for d in everything)
    sample = everything[-1]
    thread = ws_json(
        fake,
        "mod_forum_get_discussion_posts",
        {"discussionid": sample["discussion"], "sortby": "created", "sortdirection": "ASC"},
    )
    posts = thread["posts"]
    assert sample["id"] == posts[0]["id"] and posts[0]["parentid"] is None
    assert sample["timemodified"] == max(p["timemodified"] for p in posts)
    assert [p["timecreated"] for p in posts] == sorted(p["timecreated"] for p in posts)
    default = ws_json(fake, "mod_forum_get_discussion_posts", {"discussionid": sample["discussion"]})["posts"]
    assert [p["id"] for p in default] == [p["id"] for p in reversed(posts)]  # default: created DESC


def test_forum_traps_exist(fake: FakeMoodle) -> None:
    notable = fake.data.notable
    discussion = {"discussionid": notable["deleted_author_discussion"]}
    thread = ws_json(fake, "mod_forum_get_discussion_posts", discussion)
    first = min(thread["posts"], key=lambda p: p["id"])
    assert first["author"]["fullname"] == "Deleted user" and first["author"]["isdeleted"] is True
    edited = fake.data.posts[notable["edited_post"]]
    assert edited.modified > edited.created
    emoji = ws_call(
        fake, "mod_forum_get_discussion_posts", {"discussionid": fake.data.posts[notable["emoji_post"]].discussion}
    )
    assert b"\\ud83d\\udc4d" in emoji.content and "&amp;" in emoji.text
    courses = {"courseids": [notable["cop_course"]]}
    bbb = ws_json(fake, "mod_bigbluebuttonbn_get_bigbluebuttonbns_by_courses", courses)
    assert len(bbb["bigbluebuttonbns"]) == 6
    assert fake.data.modules[notable["future_webinar_cmid"]].opening > fake.data.clock


def test_completion_rules(fake: FakeMoodle) -> None:
    notable = fake.data.notable
    done = ws_json(
        fake,
        "core_completion_get_course_completion_status",
        {"courseid": notable["leadership_course"], "userid": notable["completed_user"]},
    )
    status = done["completionstatus"]
    assert status["completed"] is True and all(c["complete"] for c in status["completions"])
    partial = ws_json(
        fake,
        "core_completion_get_course_completion_status",
        {"courseid": notable["leadership_course"], "userid": notable["incomplete_user"]},
    )
    times = [c["timecompleted"] for c in partial["completionstatus"]["completions"]]
    assert None in times and any(times)
    nocrit = ws_json(
        fake,
        "core_completion_get_course_completion_status",
        {"courseid": notable["nocriteria_course"], "userid": notable["nocriteria_student"]},
    )
    assert nocrit["errorcode"] == "nocriteriaset"
    course, user = notable["suspended_enrolment"]
    params = {"courseid": course, "userid": user}
    suspended = ws_json(fake, "core_completion_get_course_completion_status", params)
    assert suspended["errorcode"] == "usernotenroled"  # suspended enrolment = not tracked


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    calls = [
        ("core_course_get_courses", {}),
        ("core_enrol_get_enrolled_users", {"courseid": 8}),  # the small preset's CoP course
        ("mod_forum_get_forum_discussions", {"forumid": 7}),
        ("core_course_get_contents", {"courseid": 5}),
    ]
    bodies = []
    for seed in (7, 7, 8):
        with FakeMoodle(preset="small", seed=seed) as server:
            bodies.append([ws_call(server, f, p, fmt).content for f, p in calls for fmt in ("json", "xml")])
    assert bodies[0] == bodies[1]
    assert bodies[0] != bodies[2]


def test_append_api_makes_new_activity_visible_later() -> None:
    with FakeMoodle(preset="small", seed=3) as server:
        notable = server.data.notable
        before = server.data.clock
        last_post = max(server.data.posts)
        new_posts = server.add_posts(4)
        assert len(new_posts) == 4 and min(new_posts) > last_post
        for post_id in new_posts:
            disc = server.data.posts[post_id].discussion
            posts = ws_json(server, "mod_forum_get_discussion_posts", {"discussionid": disc})["posts"]
            mine = next(p for p in posts if p["id"] == post_id)
            assert mine["timecreated"] > before
        updates = ws_json(server, "core_course_get_updates_since", {"courseid": notable["cop_course"], "since": before})
        listed = {i for inst in updates["instances"] for u in inst["updates"] for i in u.get("itemids", [])}
        firsts = {server.data.discussions[server.data.posts[p].discussion].posts[0].id for p in new_posts}
        assert firsts <= listed

        mark = server.data.clock
        for courseid, userid in server.add_completions(2):
            status = ws_json(
                server, "core_completion_get_course_completion_status", {"courseid": courseid, "userid": userid}
            )["completionstatus"]
            assert status["completed"] is True
            assert max(c["timecompleted"] for c in status["completions"]) > mark

        mark = server.data.clock
        for cmid, userid in server.add_attendance(2):
            statuses = ws_json(
                server,
                "core_completion_get_activities_completion_status",
                {"courseid": notable["cop_course"], "userid": userid},
            )["statuses"]
            webinar = next(s for s in statuses if s["cmid"] == cmid)
            assert webinar["state"] == 1 and webinar["timecompleted"] > mark
        assert server.data.clock > mark


# ------------------------------------------------------------------------- faults, latency, counters
def test_faults(fake: FakeMoodle) -> None:
    posts = {"discussionid": fake.data.notable["long_discussion"]}
    fake.inject_fault("mod_forum_get_discussion_posts", kind="http502", times=1)
    bad = ws_call(fake, "mod_forum_get_discussion_posts", posts)
    assert bad.status_code == 502 and "502 Bad Gateway" in bad.text
    assert ws_call(fake, "mod_forum_get_discussion_posts", posts).status_code == 200  # only once

    fake.inject_fault("mod_forum_get_discussion_posts", kind="reset")
    with pytest.raises(requests.ConnectionError):
        ws_call(fake, "mod_forum_get_discussion_posts", posts)

    fake.inject_fault("mod_forum_get_discussion_posts", kind="truncate")
    cut = ws_call(fake, "mod_forum_get_discussion_posts", posts)
    assert cut.status_code == 200 and b"Maximum execution time" in cut.content
    with pytest.raises(ValueError):
        cut.json()

    fake.inject_fault("core_course_get_courses", kind="http502", after=1)
    assert ws_call(fake, "core_webservice_get_site_info").status_code == 200  # other functions unaffected
    assert ws_call(fake, "core_course_get_courses").status_code == 200  # the first one goes through
    assert ws_call(fake, "core_course_get_courses").status_code == 502

    fake.inject_fault(kind="slow", delay=0.3)
    started = time.monotonic()
    assert ws_call(fake, "core_webservice_get_site_info").status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(ValueError):
        fake.inject_fault(kind="meteor")


def _parallel(server: FakeMoodle, n: int) -> float:
    started = time.monotonic()
    args = (server, "core_webservice_get_site_info")
    threads = [threading.Thread(target=ws_call, args=args) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def test_latency_and_concurrency_limit_serialise_calls() -> None:
    latency = {"core_webservice_get_site_info": 0.25}
    with FakeMoodle(latency=latency) as free:
        assert _parallel(free, 4) < 0.9  # ~0.25 s: the calls overlap
    with FakeMoodle(latency=latency, max_concurrent=1) as single:
        assert _parallel(single, 4) >= 0.95  # ~1 s: one worker, calls wait their turn
    with FakeMoodle(latency=latency, max_concurrent=2) as two:
        assert _parallel(two, 4) >= 0.45  # two workers: two rounds


def test_counters(fake: FakeMoodle) -> None:
    fake.reset_stats()
    first = ws_call(fake, "core_course_get_categories")
    ws_call(fake, "core_course_get_categories", fmt="xml")
    ws_call(fake, "core_course_get_contents", {"courseid": "abc"})
    assert fake.call_count("core_course_get_categories") == 2
    assert fake.stats["core_course_get_contents"]["errors"] == 1
    assert fake.stats["core_course_get_categories"]["bytes"] > len(first.content)
    assert fake.bytes_served == sum(s["bytes"] for s in fake.stats.values())
    assert fake.calls[-1] == ("core_course_get_contents", {"courseid": "abc"})


# ------------------------------------------------------------------------------- server lifecycle
def test_binds_loopback_and_frees_the_port() -> None:
    with FakeMoodle() as server:
        port = server.port
        assert server._httpd is not None and server._httpd.server_address[0] == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{port}"
        session = requests.Session()  # keep a connection open across the shutdown
        control = {"wstoken": ADMIN, "wsfunction": "core_webservice_get_site_info"}
        assert session.post(server.endpoint, params=control, timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", port))
    probe.close()
    session.close()


def test_command_line_prints_url_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lms_bridge.demo.moodle", "--preset", "small", "--port", "0", "--token", "T"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        assert url.startswith("http://127.0.0.1:")
        control = {"wstoken": "T", "wsfunction": "core_webservice_get_site_info", "moodlewsrestformat": "json"}
        site = requests.post(f"{url}/webservice/rest/server.php", params=control, timeout=10)
        assert site.json()["siteurl"] == "http://127.0.0.1:8080"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_fixture_preset_scale() -> None:
    """The 'fixture' preset rebuilds the captured site's size quickly (README dataset table)."""
    started = time.monotonic()
    data = Dataset("fixture", seed=1)
    assert time.monotonic() - started < 5
    counts = data.counts()
    assert 9900 <= counts["users"] <= 10000
    assert counts["courses"] == 75 and counts["courses_with_criteria"] == 43 and counts["courses_hidden"] == 3
    assert 14000 <= counts["enrolments"] <= 16500
    assert 900 <= counts["discussions"] <= 1150 and 7000 <= counts["posts"] <= 9000
    assert 900 <= counts["users_nip_blank"] <= 1300 and 50 <= counts["users_nip_spaced"] <= 200
    assert data.notable["cop_course"] == 77 and data.notable["leadership_course"] == 66  # fixture ids
    assert data.clock == NOW0
