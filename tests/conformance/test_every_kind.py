"""One statement of every kind lms-bridge emits, stored by ADL's LRS and by Ralph alike (issue 24).

Every activity kind (from the golden activities, and each kind they do not cover), a JP
record, its revision, the void of the superseded record, an operator void and a
``forget`` void: each is posted alone, must be stored (200), and must read back equal
by the xAPI comparison rules. Ralph stores what the specification forbids (a void with
``context.platform``); ADL's LRS does not, which is why both are asked.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.lrs_source import StatementMapper
from lms_bridge.activity import Activity, Kind, ObjectRef, activity_from_dict
from lms_bridge.demo.ralph import RalphLRS
from lms_bridge.identity.resolver import actor_for
from lms_bridge.outbox.voids import FORGET_REASON, build_operator_void
from tests.conformance.conftest import AdlLRS
from xapi.ids import namespace_for
from xapi.lrs_client import LRSClient
from xapi.statements import (
    BuiltStatement,
    JPCreditIn,
    StatementSettings,
    build_jp_statement,
    build_statement,
    build_void_statement,
)
from xapi.vocabulary import load_vocabulary

pytestmark = pytest.mark.conformance

GOLDEN = Path(__file__).resolve().parents[1] / "xapi" / "golden"
GOLDEN_2_0 = GOLDEN.with_name("golden_2_0")
AUTHORITY = "https://siasn.bkn.go.id"
NIP = "199001012015031001"
#: Other kinds' objects, for the kinds no golden activity shows.
_OBJECTS = {
    Kind.POST_CREATED: ObjectRef("post", "77", "Re: Latsar"),
    Kind.MESSAGE_REPLIED: ObjectRef("message", "m-78"),
    Kind.COACHING_ATTENDED: ObjectRef("meeting", "coach-1/2024-03-14", "Coaching"),
}

#: Foreign actors of a source LRS whose local ids are long: an account (``<homePage>|<name>``) and an e-mail.
_SOURCE_LRS_ACTORS = {
    "source-LRS account": {
        "objectType": "Agent",
        "account": {"homePage": "https://lms.kementerian-contoh.example.go.id/user", "name": "budi.santoso.1990"},
    },
    "source-LRS mbox": {"objectType": "Agent", "mbox": "mailto:budi.santoso@example.go.id"},
}


def _every_statement(version: str = "1.0.3") -> list[tuple[str, BuiltStatement]]:
    """Each kind of statement once, under a namespace of its own (fresh ids every run).

    In 2.0.0 mode the golden inputs of ``golden_2_0`` come too (a meeting host: a contextAgent).
    """
    base = f"https://lms-bridge.id/conformance/{uuid.uuid4().hex[:8]}"
    settings = StatementSettings(
        namespace=namespace_for(base), base_iri=base, vocabulary=load_vocabulary(), xapi_version=version
    )
    activities: dict[str, tuple[Activity, str | None]] = {}
    inputs = sorted(GOLDEN.glob("*.activity.json"))
    if version == "2.0.0":
        inputs += sorted(GOLDEN_2_0.glob("*.activity.json"))
    for path in inputs:
        data = json.loads(path.read_text())
        site_url = data.pop("_site_url", None)
        activity = activity_from_dict(data)
        activities.setdefault(activity.kind.value if path.parent == GOLDEN else path.stem, (activity, site_url))
    template, site_url = next(iter(activities.values()))
    for kind, obj in _OBJECTS.items():
        activities.setdefault(kind.value, (replace(template, kind=kind, object=obj, native_id=f"x-{kind}"), site_url))
    assert {kind.value for kind in Kind} <= set(activities), "a kind has no statement here"
    # A source LRS's people without a NIP, as its connector names them (53-82 characters: ADL keeps 50).
    mirrored, mirrored_url = activities[Kind.COACHING_ATTENDED.value]
    mapper = StatementMapper("src", load_vocabulary(), base)
    for label, foreign in _SOURCE_LRS_ACTORS.items():
        person = mapper.actor(foreign)
        assert person is not None and len(person.local_id) > 50
        activity = replace(mirrored, source="lrs", actor=person.local_id, extras={}, native_id=f"x-{label}")
        activities[label] = (activity, mirrored_url)
    built = [
        (
            kind,
            build_statement(settings, activity, actor_for(activity, authority=AUTHORITY, base_iri=base, site_url=url)),
        )
        for kind, (activity, url) in sorted(activities.items())
    ]
    when = datetime(2024, 3, 12, 2, 15, tzinfo=UTC)
    evidence = tuple(sorted(b.id for _, b in built[:3]))
    credit = JPCreditIn(NIP, "cop-day", 1, "COP", "2024-03-12", "day", 1, Decimal("1.5"), evidence, when)
    first = build_jp_statement(settings, credit, authority=AUTHORITY)
    revised = build_jp_statement(settings, replace(credit, revision=2, jp=Decimal(2)), authority=AUTHORITY)
    built += [
        ("jp record", first),
        ("jp revision", revised),
        ("jp void", build_void_statement(settings, first.id, nip=NIP, authority=AUTHORITY, occurred_at=when)),
        ("operator void", build_operator_void(settings, built[0][1].id, occurred_at=when, reason="duplicate")),
        ("forget void", build_operator_void(settings, built[1][1].id, occurred_at=when, reason=FORGET_REASON)),
    ]
    return built


def _post_each(url: str, username: str, password: str, version: str = "1.0.3") -> dict[str, str]:
    """Post every statement alone; return what went wrong per kind (empty when all were stored)."""
    problems: dict[str, str] = {}
    with LRSClient(url, username, password, version=version) as client:
        for kind, statement in _every_statement(version):
            try:
                answer = client.post_statements([statement.body])
            except Exception as exc:  # noqa: BLE001 - every kind's outcome is collected, then asserted
                problems[kind] = f"{exc.__class__.__name__}: {exc}"
                continue
            held = client.compare_held(statement.body)
            if answer.status != 200 or held.outcome != "same":
                problems[kind] = f"HTTP {answer.status}, read back: {held.outcome} {held.detail}"
    return problems


def test_adl_stores_every_kind_of_statement(adl: AdlLRS) -> None:
    assert _post_each(adl.url, adl.username, adl.password) == {}


def test_ralph_stores_every_kind_of_statement(ralph: RalphLRS) -> None:
    assert _post_each(ralph.url, ralph.username, ralph.password) == {}


def test_adl_stores_every_kind_of_statement_in_xapi_2_0(adl: AdlLRS) -> None:
    statements = dict(_every_statement("2.0.0"))
    host = json.loads(statements["zoom_host.activity"].body)["context"]
    assert "contextAgents" in host and "contextGroups" in host  # what 2.0 mode adds is posted
    assert _post_each(adl.url, adl.username, adl.password, "2.0.0") == {}


def test_ralph_stores_every_kind_of_statement_in_xapi_2_0(ralph: RalphLRS) -> None:
    # Ralph 5.1.0 knows no 2.0 rules; it stores the 2.0 context properties and reads them back (docs/lrs.md).
    assert _post_each(ralph.url, ralph.username, ralph.password, "2.0.0") == {}


def test_auto_version_follows_about(adl: AdlLRS, ralph: RalphLRS) -> None:
    """``[lrs] version = "auto"``: 2.0.0 where ``/about`` lists it (ADL's LRS), 1.0.3 where there is none (Ralph)."""
    with LRSClient(adl.url, adl.username, adl.password, version="auto") as client:
        client.get_statements_page(params={"limit": 1})  # the first request negotiates
        assert client.version == "2.0.0"
    with LRSClient(ralph.url, ralph.username, ralph.password, version="auto") as client:
        assert client.version == "1.0.3"
