"""Statement equality by the xAPI rules: is the statement an LRS holds the one we sent?

An LRS that already holds a statement id may answer a re-post with 204 (Ralph) or
409 (ADL's LRS, for any id it holds, equal body or not): xAPI 1.0.3 allows both. So
a 409 says nothing until the stored statement is read back and compared with what
was sent, by the specification's comparison rules (xAPI 1.0.3 Data 2.3.1, "Statement
Immutability" and "Statement Comparison Requirements"). Differences the LRS may make
are ignored:

- ``stored``, ``authority``, ``version`` and ``attachments`` (assigned by the LRS, or not
  part of the statement);
- the serialisation of ``timestamp`` (the same moment; an LRS may keep milliseconds only);
- activity definitions and verb ``display`` (not part of the statement itself);
- the order of a Group's members;
- the case of UUIDs (statement id, StatementRef ids, registration);
- ``objectType`` left out where its default applies (an LRS may write the default).

Anything else, ``result.duration`` included (compared as a string by the rules), is a
difference.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lms_bridge.timeparse import parse_iso_time

_LRS_ASSIGNED = ("stored", "authority", "version", "attachments")


def _instant(value: Any) -> Any:
    """A timestamp as a UTC instant to the millisecond; anything unparsable as itself."""
    moment = parse_iso_time(value, naive_is_utc=False, bounded=False)
    if moment is None:
        return value
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000).isoformat()


def _agent(agent: Any) -> Any:
    if not isinstance(agent, dict):
        return agent
    result = dict(agent)
    result.setdefault("objectType", "Agent")
    if isinstance(result.get("member"), list):
        members = [_agent(member) for member in result["member"]]
        result["member"] = sorted(members, key=lambda m: json.dumps(m, sort_keys=True))
    return result


def _activity(activity: Any) -> Any:
    if not isinstance(activity, dict):
        return activity
    result = {key: value for key, value in activity.items() if key != "definition"}
    result.setdefault("objectType", "Activity")
    return result


def _statement_ref(ref: Any) -> Any:
    if not isinstance(ref, dict):
        return ref
    result = dict(ref)
    if isinstance(result.get("id"), str):
        result["id"] = result["id"].lower()
    return result


def _object(obj: Any) -> Any:
    if not isinstance(obj, dict):
        return obj
    kind = obj.get("objectType", "Activity")
    if kind == "Activity":
        return _activity(obj)
    if kind in ("Agent", "Group"):
        return _agent(obj)
    if kind == "StatementRef":
        return _statement_ref(obj)
    if kind == "SubStatement":
        return _core(obj)
    return obj


def _context(context: Any) -> Any:
    if not isinstance(context, dict):
        return context
    result = dict(context)
    if isinstance(result.get("registration"), str):
        result["registration"] = result["registration"].lower()
    for key in ("instructor", "team"):
        if key in result:
            result[key] = _agent(result[key])
    if "statement" in result:
        result["statement"] = _statement_ref(result["statement"])
    activities = result.get("contextActivities")
    if isinstance(activities, dict):
        result["contextActivities"] = {
            kind: [_activity(item) for item in (items if isinstance(items, list) else [items])]
            for kind, items in activities.items()
        }
    return result


def _core(statement: dict[str, Any]) -> dict[str, Any]:
    """The parts of a statement (or sub-statement) the comparison rules keep, in one form."""
    result = {key: value for key, value in statement.items() if key not in _LRS_ASSIGNED}
    if isinstance(result.get("id"), str):
        result["id"] = result["id"].lower()
    if "actor" in result:
        result["actor"] = _agent(result["actor"])
    verb = result.get("verb")
    if isinstance(verb, dict):
        result["verb"] = {key: value for key, value in verb.items() if key != "display"}
    if "object" in result:
        result["object"] = _object(result["object"])
    if "context" in result:
        result["context"] = _context(result["context"])
    if "timestamp" in result:
        result["timestamp"] = _instant(result["timestamp"])
    return result


def comparable(statement: dict[str, Any]) -> dict[str, Any]:
    """``statement`` reduced to what the xAPI comparison rules compare."""
    return _core(statement)


def first_difference(sent: dict[str, Any], stored: dict[str, Any]) -> str | None:
    """The path of the first property where two statements differ by the xAPI rules, or None when they match.

    The path names properties only (``result.extensions``), never values, so it can go
    into an error message without personal data.
    """
    return _difference(comparable(sent), comparable(stored), "")


def _difference(left: Any, right: Any, path: str) -> str | None:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            where = f"{path}.{key}" if path else key
            if key not in left or key not in right:
                return where
            found = _difference(left[key], right[key], where)
            if found is not None:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return path
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            found = _difference(a, b, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    # JSON numbers compare by value (2 and 2.0 are the same number), booleans by identity.
    if isinstance(left, bool) or isinstance(right, bool):
        return None if left is right else path
    return None if left == right else (path or "statement")


def same_statement(sent: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Whether ``stored`` is ``sent`` by the xAPI comparison rules (see the module docstring)."""
    return first_difference(sent, stored) is None


def digest(statement: dict[str, Any]) -> str:
    """A short SHA-256 of a statement's comparable form, to tell two bodies apart in a message."""
    text = json.dumps(comparable(statement), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
