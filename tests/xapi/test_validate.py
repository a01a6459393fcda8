"""The project's own xAPI validation: what Ralph would store, we refuse (docs/lrs.md §3, §4)."""

from __future__ import annotations

import copy

import pytest

from lms_bridge.errors import StatementValidationError
from xapi.validate import statement_problems, validate_statement

GOOD = {
    "id": "2639d84f-2fa2-548d-be96-f4512c499d09",
    "actor": {"objectType": "Agent", "account": {"homePage": "https://siasn.bkn.go.id", "name": "199001012015031001"}},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
    "object": {
        "objectType": "Activity",
        "id": "https://lms.example.go.id/course/view.php?id=75",
        "definition": {"type": "https://w3id.org/xapi/cmi5/activitytype/course", "name": {"en-US": "Latsar"}},
    },
    "result": {"completion": True, "duration": "PT1H5M", "score": {"scaled": 0.8, "raw": 80, "min": 0, "max": 100}},
    "context": {
        "platform": "Moodle",
        "extensions": {"https://lms-bridge.id/xapi/extensions/source": {"a": 1}},
        "contextActivities": {"parent": [{"id": "https://lms.example.go.id/course/view.php?id=1"}]},
    },
    "timestamp": "2026-05-04T03:10:00Z",
}


def _broken(path: str, value: object) -> dict:
    statement = copy.deepcopy(GOOD)
    target = statement
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return statement


def test_good_statement_has_no_problems():
    assert statement_problems(GOOD) == []
    validate_statement(GOOD)


# Each of these is stored as sent by Ralph 5.1.0 or refused only with a 422 (docs/lrs.md §3).
@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("actor", KeyError, "actor is missing"),
        ("actor.account", KeyError, "exactly one identifier"),
        ("actor.mbox", "mailto:x@example.org", "exactly one identifier"),
        ("actor.account.homePage", "not a url", "homePage"),
        ("verb.id", "not a valid iri", "verb.id is not an IRI"),
        ("object.id", "course 75", "object.id is not an IRI"),
        ("timestamp", "yesterday", "timestamp is not a tz-aware"),
        ("timestamp", "2026-05-04T03:10:00", "timestamp is not a tz-aware"),
        ("timestamp", "2026-02-30T03:10:00Z", "not a real date"),
        ("result.score.scaled", 7, "scaled must be a number in [-1, 1]"),
        ("result.score.scaled", -1.5, "scaled must be a number in [-1, 1]"),
        ("result.score.raw", 101, "raw must lie between"),
        ("result.duration", "90 minutes", "ISO 8601 duration"),
        ("result.completion", "yes", "completion must be true or false"),
        ("id", "not-a-uuid", "id is not a UUID"),
        ("context.extensions", {"source": 1}, "keys must be IRIs"),
        ("verb.display", {"en-US": 3}, "language map"),
    ],
)
def test_broken_statement_is_refused(path: str, value: object, problem: str):
    problems = statement_problems(_broken(path, value))
    assert any(problem in p for p in problems), problems
    with pytest.raises(StatementValidationError, match="is not valid xAPI"):
        validate_statement(_broken(path, value))


def test_unknown_top_level_key_is_refused():
    statement = dict(GOOD, banana=1)
    assert statement_problems(statement) == ["unknown top-level properties: banana"]


@pytest.mark.parametrize("key", ["platform", "revision"])
def test_platform_and_revision_are_refused_when_the_object_is_a_statement_ref(key: str):
    """xAPI 1.0.3 Data 2.4.6; Ralph stores such a void, ADL's LRS answers 400 (issue 24)."""
    void = {
        "id": "0b8f5d0e-3f11-5c45-9a40-6f6c1b7b2a11",
        "actor": GOOD["actor"],
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-US": "voided"}},
        "object": {"objectType": "StatementRef", "id": GOOD["id"]},
        "context": {key: "lms-bridge"},
        "timestamp": "2026-05-04T03:10:00Z",
    }
    assert statement_problems(void) == [f"context.{key} is not allowed when the object is not an Activity"]
    del void["context"][key]
    assert statement_problems(void) == []


def test_the_iri_cache_keeps_refusing_a_malformed_iri_it_has_seen():
    # is_iri remembers its answers (a sync checks the same IRIs on every statement): a remembered
    # "no" must stay a refusal, and a good IRI seen first must not open the door to a bad one.
    for _ in range(3):
        assert "object.id is not an IRI" in statement_problems(_broken("object.id", "course 75"))
        assert statement_problems(_broken("object.id", "https://lms.example.go.id/course/75")) == []


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("8f3a0b7e-2c4d-4e5f-9a1b-0c2d3e4f5a6b", True),  # the form this project writes (the fast path)
        ("8F3A0B7E-2C4D-4E5F-9A1B-0C2D3E4F5A6B", True),  # other forms go to uuid.UUID, as before
        ("8f3a0b7e2c4d4e5f9a1b0c2d3e4f5a6b", True),
        ("8f3a0b7e-2c4d-4e5f-9a1b-0c2d3e4f5a6", False),
        ("8f3a0b7e-2c4d-4e5f-9a1b-0c2d3e4f5a6bb", False),
        ("8f3a0b7e-2c4d-4e5f-9a1b-0c2d3e4f5a6g", False),
    ],
)
def test_statement_ids_are_checked_as_uuids(value: str, valid: bool):
    assert ("id is not a UUID" not in statement_problems(_broken("id", value))) is valid
