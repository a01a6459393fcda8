"""Statement equality by the xAPI 1.0.3 comparison rules (xapi.compare; issue 24, item 2)."""

from __future__ import annotations

import copy
import json

import pytest

from xapi.compare import digest, first_difference, same_statement

SENT = {
    "id": "a01e534a-3bd9-4c6f-bb50-cd8102cd448e",
    "actor": {"objectType": "Agent", "account": {"homePage": "https://siasn.bkn.go.id", "name": "199001012015031001"}},
    "verb": {"id": "http://id.tincanapi.com/verb/earned", "display": {"en-US": "earned"}},
    "object": {
        "objectType": "Activity",
        "id": "https://lms-bridge.id/xapi/jp/r1/2026-03-12/day",
        "definition": {"type": "https://lms-bridge.id/xapi/activitytype/jp-credit"},
    },
    "result": {"duration": "PT1H30M", "extensions": {"https://lms-bridge.id/xapi/extensions/jp": 2}},
    "context": {
        "platform": "lms-bridge",
        "statement": {"objectType": "StatementRef", "id": "11111111-1111-4111-8111-111111111111"},
        "contextActivities": {"parent": [{"objectType": "Activity", "id": "https://lms.example/course/1"}]},
    },
    "timestamp": "2026-03-12T02:15:00.123456Z",
}

# What ADL's LRS (efa045e) answers to GET statementId= for SENT: its own key order, the
# timestamp as +00:00, stored, authority and "version": "1.0.0" added.
ADL_STORED = json.loads(
    '{"id": "a01e534a-3bd9-4c6f-bb50-cd8102cd448e", "verb": {"id": "http://id.tincanapi.com/verb/earned", '
    '"display": {"en-US": "earned"}}, "actor": {"account": {"name": "199001012015031001", "homePage": '
    '"https://siasn.bkn.go.id"}, "objectType": "Agent"}, "object": {"id": '
    '"https://lms-bridge.id/xapi/jp/r1/2026-03-12/day", "definition": {"type": '
    '"https://lms-bridge.id/xapi/activitytype/jp-credit"}, "objectType": "Activity"}, "result": {"duration": '
    '"PT1H30M", "extensions": {"https://lms-bridge.id/xapi/extensions/jp": 2}}, "stored": '
    '"2026-12-07T11:14:24.377499+00:00", "context": {"platform": "lms-bridge", "statement": {"id": '
    '"11111111-1111-4111-8111-111111111111", "objectType": "StatementRef"}, "contextActivities": {"parent": '
    '[{"id": "https://lms.example/course/1", "objectType": "Activity"}]}}, "version": "1.0.0", "authority": '
    '{"mbox": "mailto:lms-bridge@example.invalid", "name": "lms-bridge", "objectType": "Agent"}, "timestamp": '
    '"2026-03-12T02:15:00.123456+00:00"}'
)


def _changed(change) -> dict:
    statement = copy.deepcopy(ADL_STORED)
    change(statement)
    return statement


def test_what_adl_stores_is_what_we_sent():
    assert same_statement(SENT, ADL_STORED)
    assert digest(SENT) == digest(ADL_STORED)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(timestamp="2026-03-12T09:15:00.123+07:00"),  # another zone, milliseconds kept
        lambda s: s.update(id=s["id"].upper()),
        lambda s: s["context"]["statement"].update(id=s["context"]["statement"]["id"].upper()),
        lambda s: s["verb"].update(display={"id-ID": "memperoleh"}),  # display is not part of the statement
        lambda s: s["object"].update(definition={"name": {"en-US": "a newer definition"}}),
        lambda s: s["context"]["contextActivities"]["parent"][0].pop("objectType"),  # the default
        lambda s: s["actor"].pop("objectType"),
        lambda s: s["result"]["extensions"].update({"https://lms-bridge.id/xapi/extensions/jp": 2.0}),
        lambda s: s.pop("authority"),
    ],
)
def test_differences_the_lrs_may_make_are_ignored(change):
    assert first_difference(SENT, _changed(change)) is None


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda s: s.update(timestamp="2026-03-12T02:15:01.123456+00:00"), "timestamp"),
        (lambda s: s["result"].update(duration="PT90M"), "result.duration"),  # a string by the rules
        (lambda s: s["result"]["extensions"].update({"https://lms-bridge.id/xapi/extensions/jp": 3}), "result"),
        (lambda s: s["actor"]["account"].update(name="199001012015031002"), "actor.account.name"),
        (lambda s: s["context"].pop("platform"), "context.platform"),
        (lambda s: s["context"]["contextActivities"]["parent"].append({"id": "https://x.example/2"}), "context"),
        (lambda s: s["result"]["extensions"].update({"https://lms-bridge.id/xapi/extensions/jp": True}), "result"),
    ],
)
def test_real_differences_are_found_and_named_by_path(change, where):
    found = first_difference(SENT, _changed(change))
    assert found is not None and found.startswith(where)
    assert digest(SENT) != digest(_changed(change))


def test_group_members_compare_in_any_order():
    one = {"objectType": "Agent", "account": {"homePage": "https://x.example", "name": "a"}}
    two = {"objectType": "Agent", "account": {"homePage": "https://x.example", "name": "b"}}
    sent = dict(SENT, actor={"objectType": "Group", "member": [one, two]})
    stored = dict(ADL_STORED, actor={"objectType": "Group", "member": [two, one]})
    assert same_statement(sent, stored)
