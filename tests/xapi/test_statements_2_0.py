"""xAPI 2.0 mode (``[lrs] version = "2.0.0"``): the community as a contextGroup, the host as a contextAgent.

Every golden activity is built in 2.0 mode and compared with its reviewed statement in
``golden_2_0/``; the 1.0.3 goldens (``golden/``) are untouched by this mode, and the two
forms differ only in ``context.contextAgents`` and ``context.contextGroups``.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from lms_bridge.activity import activity_from_dict
from lms_bridge.errors import StatementValidationError
from lms_bridge.identity.resolver import actor_for
from xapi.ids import namespace_for
from xapi.statements import StatementSettings, build_statement
from xapi.validate import validate_statement
from xapi.vocabulary import load_vocabulary

GOLDEN_1_0 = Path(__file__).with_name("golden")
GOLDEN_2_0 = Path(__file__).with_name("golden_2_0")
BASE = "https://lms-bridge.id/xapi"
V1 = StatementSettings(namespace=namespace_for(BASE), base_iri=BASE, vocabulary=load_vocabulary())
V2 = replace(V1, xapi_version="2.0.0")
AUTHORITY = "https://siasn.bkn.go.id"


def _inputs() -> list[Path]:
    return sorted(GOLDEN_1_0.glob("*.activity.json")) + sorted(GOLDEN_2_0.glob("*.activity.json"))


def _build(path: Path, settings: StatementSettings) -> dict:
    data = json.loads(path.read_text())
    site_url = data.pop("_site_url", None)
    activity = activity_from_dict(data)
    actor = actor_for(activity, authority=AUTHORITY, base_iri=BASE, site_url=site_url)
    return json.loads(build_statement(settings, activity, actor).body)


@pytest.mark.parametrize("path", _inputs(), ids=lambda p: p.name.split(".")[0])
def test_2_0_statement_matches_its_golden_and_differs_from_1_0_3_only_in_context_agents_and_groups(path: Path):
    built = _build(path, V2)
    expected = GOLDEN_2_0 / path.name.replace(".activity.json", ".statement.json")
    if os.environ.get("LMS_BRIDGE_UPDATE_GOLDEN"):
        expected.write_text(json.dumps(built, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    assert expected.exists(), f"missing {expected.name}; write it (LMS_BRIDGE_UPDATE_GOLDEN=1) and review it"
    assert built == json.loads(expected.read_text())
    old = _build(path, V1)
    for key in ("contextAgents", "contextGroups"):
        built["context"].pop(key, None)
    assert built == old


def test_the_community_is_a_context_group_and_the_host_a_context_agent():
    host = _build(GOLDEN_2_0 / "zoom_host.activity.json", V2)["context"]
    assert host["contextGroups"] == [
        {
            "objectType": "contextGroup",
            "group": {
                "objectType": "Group",
                "name": "CoP Widyaiswara Angkatan 7",
                "account": {"homePage": f"{BASE}/community", "name": "cop-wi-7"},
            },
            "relevantTypes": ["http://id.tincanapi.com/activitytype/community-site"],
        }
    ]
    assert [entry["relevantTypes"] for entry in host["contextAgents"]] == [[f"{BASE}/role/host"]]
    attendee = _build(GOLDEN_1_0 / "zoom_attended.activity.json", V2)["context"]
    assert "contextAgents" not in attendee and "contextGroups" in attendee  # no role: not the host
    course = _build(GOLDEN_1_0 / "course_completed.activity.json", V2)["context"]
    assert "contextAgents" not in course and "contextGroups" not in course  # no community


def test_a_context_agent_without_relevant_types_is_refused():
    statement = _build(GOLDEN_2_0 / "zoom_host.activity.json", V2)
    statement["context"]["contextAgents"][0]["relevantTypes"] = []
    with pytest.raises(StatementValidationError, match="relevantTypes must be a non-empty list"):
        validate_statement(statement)
