"""Statement validation before anything enters the outbox.

Ralph's server stores statements with an invalid verb IRI, a timestamp like
``yesterday`` or ``score.scaled = 7`` (docs/lrs.md §3), so the project checks
them itself. The checks are the xAPI 1.0.3 rules the project's statements can
break; they are deliberately stricter than Ralph.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any

from lms_bridge.errors import StatementValidationError

_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_DURATION = re.compile(
    r"^P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$"
)
_TOP_LEVEL = {
    "id",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "stored",
    "authority",
    "version",
    "attachments",
}
_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")


def is_iri(value: Any) -> bool:
    """Return True when ``value`` is an absolute IRI (a scheme, no spaces)."""
    return isinstance(value, str) and _is_iri_text(value)


@lru_cache(maxsize=65_536)
def _is_iri_text(value: str) -> bool:
    # Cached: a sync checks the same few verb, type, platform and extension IRIs (and the same
    # course and module ids) on every statement; the regex on each was ~1/4 of validation's CPU.
    return bool(_IRI.match(value))


#: The form every id this project writes has; anything else goes to ``uuid.UUID`` (which accepts more).
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(value: Any, where: str, problems: list[str]) -> None:
    if isinstance(value, str) and _UUID_TEXT.fullmatch(value):
        return
    try:
        uuid.UUID(str(value))
    except ValueError:
        problems.append(f"{where} is not a UUID")


def _agent(agent: Any, where: str, problems: list[str]) -> None:
    if not isinstance(agent, dict):
        problems.append(f"{where} is not an object")
        return
    if agent.get("objectType", "Agent") not in ("Agent", "Group"):
        problems.append(f"{where}.objectType must be Agent or Group")
    ifis = [key for key in _IFIS if key in agent]
    if agent.get("objectType") != "Group" and len(ifis) != 1:
        problems.append(f"{where} must have exactly one identifier (mbox, mbox_sha1sum, openid or account)")
        return
    if "mbox" in agent and not str(agent["mbox"]).startswith("mailto:"):
        problems.append(f"{where}.mbox must start with mailto:")
    if "account" in agent:
        account = agent["account"]
        if not isinstance(account, dict) or not is_iri(account.get("homePage")) or not account.get("name"):
            problems.append(f"{where}.account needs an IRI homePage and a name")


def _language_map(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        problems.append(f"{where} must be a language map")


def _extensions(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, dict) or not all(is_iri(key) for key in value):
        problems.append(f"{where} keys must be IRIs")


def _activity(obj: dict[str, Any], where: str, problems: list[str]) -> None:
    if not is_iri(obj.get("id")):
        problems.append(f"{where}.id is not an IRI")
    definition = obj.get("definition")
    if definition is not None:
        if "type" in definition and not is_iri(definition["type"]):
            problems.append(f"{where}.definition.type is not an IRI")
        for key in ("name", "description"):
            if key in definition:
                _language_map(definition[key], f"{where}.definition.{key}", problems)
        if "extensions" in definition:
            _extensions(definition["extensions"], f"{where}.definition.extensions", problems)


def _result(result: Any, problems: list[str]) -> None:
    if not isinstance(result, dict):
        problems.append("result is not an object")
        return
    score = result.get("score")
    if score is not None:
        scaled = score.get("scaled")
        if scaled is not None and not (isinstance(scaled, int | float) and -1 <= scaled <= 1):
            problems.append("result.score.scaled must be a number in [-1, 1]")
        raw, low, high = score.get("raw"), score.get("min"), score.get("max")
        if raw is not None and ((low is not None and raw < low) or (high is not None and raw > high)):
            problems.append("result.score.raw must lie between min and max")
    for key in ("success", "completion"):
        if key in result and not isinstance(result[key], bool):
            problems.append(f"result.{key} must be true or false")
    if "duration" in result and not (isinstance(result["duration"], str) and _DURATION.match(result["duration"])):
        problems.append("result.duration is not an ISO 8601 duration")
    if "extensions" in result:
        _extensions(result["extensions"], "result.extensions", problems)


def _context(context: Any, object_type: Any, problems: list[str]) -> None:
    if not isinstance(context, dict):
        problems.append("context is not an object")
        return
    if object_type != "Activity":
        # xAPI 1.0.3 Data 2.4.6: "revision" and "platform" MUST only be used when the object is an
        # Activity. Ralph stores them anyway; ADL's LRS refuses the statement with a 400.
        for key in ("revision", "platform"):
            if key in context:
                problems.append(f"context.{key} is not allowed when the object is not an Activity")
    if "registration" in context:
        _uuid(context["registration"], "context.registration", problems)
    activities = context.get("contextActivities", {})
    for kind, items in activities.items():
        if kind not in ("parent", "grouping", "category", "other"):
            problems.append(f"context.contextActivities.{kind} is not allowed")
            continue
        for index, item in enumerate(items if isinstance(items, list) else [items]):
            _activity(item, f"context.contextActivities.{kind}[{index}]", problems)
    if "statement" in context:
        ref = context["statement"]
        if not isinstance(ref, dict) or ref.get("objectType") != "StatementRef":
            problems.append("context.statement must be a StatementRef")
        else:
            _uuid(ref.get("id"), "context.statement.id", problems)
    if "extensions" in context:
        _extensions(context["extensions"], "context.extensions", problems)
    # xAPI 2.0 (IEEE 9274.1.1-2023 9.4.6): each entry names its objectType, an identified Agent or
    # Group, and a non-empty list of relevant types (ADL's LRS refuses an entry without them).
    for key, entry_type, member in (
        ("contextAgents", "contextAgent", "agent"),
        ("contextGroups", "contextGroup", "group"),
    ):
        if key not in context:
            continue
        entries = context[key]
        for index, entry in enumerate(entries if isinstance(entries, list) else [entries]):
            where = f"context.{key}[{index}]"
            if not isinstance(entry, dict) or entry.get("objectType") != entry_type:
                problems.append(f"{where}.objectType must be {entry_type}")
                continue
            _agent(entry.get(member), f"{where}.{member}", problems)
            types = entry.get("relevantTypes")
            if not isinstance(types, list) or not types or not all(is_iri(item) for item in types):
                problems.append(f"{where}.relevantTypes must be a non-empty list of IRIs")


def statement_problems(statement: dict[str, Any]) -> list[str]:
    """Return every problem found in ``statement`` (empty when it is valid)."""
    problems: list[str] = []
    unknown = set(statement) - _TOP_LEVEL
    if unknown:
        problems.append(f"unknown top-level properties: {', '.join(sorted(unknown))}")
    _uuid(statement.get("id"), "id", problems)
    if "actor" not in statement:
        problems.append("actor is missing")
    else:
        _agent(statement["actor"], "actor", problems)
    verb = statement.get("verb")
    if not isinstance(verb, dict) or not is_iri(verb.get("id")):
        problems.append("verb.id is not an IRI")
    elif "display" in verb:
        _language_map(verb["display"], "verb.display", problems)
    obj = statement.get("object")
    if not isinstance(obj, dict):
        problems.append("object is missing")
    elif obj.get("objectType", "Activity") == "Activity":
        _activity(obj, "object", problems)
    elif obj["objectType"] == "StatementRef":
        _uuid(obj.get("id"), "object.id", problems)
    elif obj["objectType"] in ("Agent", "Group"):
        _agent(obj, "object", problems)
    else:
        problems.append(f"object.objectType {obj['objectType']!r} is not supported")
    timestamp = statement.get("timestamp")
    if timestamp is not None:
        if not isinstance(timestamp, str) or not _TIMESTAMP.match(timestamp):
            problems.append("timestamp is not a tz-aware ISO 8601 time")
        else:
            try:
                datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
            except ValueError:
                problems.append("timestamp is not a real date and time")
    if "result" in statement:
        _result(statement["result"], problems)
    if "context" in statement:
        object_type = obj.get("objectType", "Activity") if isinstance(obj, dict) else None
        _context(statement["context"], object_type, problems)
    return problems


def validate_statement(statement: dict[str, Any]) -> None:
    """Raise when ``statement`` is not valid xAPI 1.0.3.

    Raises:
        StatementValidationError: naming the statement id and its first problems.
    """
    problems = statement_problems(statement)
    if problems:
        raise StatementValidationError(f"statement {statement.get('id')} is not valid xAPI: {'; '.join(problems[:3])}")
