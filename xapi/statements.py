"""Building byte-stable xAPI statements from activities, as plain dicts in the ``tincan`` shape.

A statement's JSON is a pure function of its source data (docs/xapi.md): no
"now", no random, no ``version`` property (tincan writes ``"version": "1.0.3"``),
one timestamp format (``2026-03-12T02:15:00Z``), one duration format
(``PT1H5M``), sorted keys and no spaces. Ralph answers 409 to a resent statement
whose timestamp is merely written differently, so this is what makes reruns safe.

Why dicts and not ``tincan`` objects on this path: building each statement as
``tincan`` objects and serialising them back to JSON took ~59% of a 40,000-message
import (every attribute goes through ``Base.__setattr__``, then ``to_json`` and
``as_version``; BENCHMARKS.md, section 5), for the same JSON we then normalise
anyway. The dicts written here are exactly what ``tincan``'s ``Statement.to_json``
gives for these objects (``objectType`` on agents and activities, ``definition``
only when it has a type or a name, ``contextActivities`` only when used);
``tests/xapi/test_statements.py`` keeps ``tincan`` as the reference and checks that
both give the same statement, and :func:`xapi.validate.validate_statement` still
checks every statement before the outbox.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from lms_bridge.activity import Activity, Kind, ObjectRef
from lms_bridge.errors import StatementValidationError
from xapi.ids import statement_id
from xapi.validate import validate_statement
from xapi.vocabulary import Vocabulary

LANGUAGE = "en-US"


@dataclass(frozen=True)
class BuiltStatement:
    """A validated statement ready for the outbox.

    Attributes:
        id: the deterministic statement id.
        body: the canonical JSON text; posted as is, never re-serialised.
    """

    id: str
    body: str


@dataclass(frozen=True)
class StatementSettings:
    """Deployment facts every builder needs.

    Attributes:
        namespace: statement-id namespace (see :mod:`xapi.ids`).
        base_iri: ``{base}`` of docs/xapi.md, without a trailing slash.
        vocabulary: verbs and activity types.
        xapi_version: ``1.0.3`` (the default) or ``2.0.0``: in 2.0 a community also goes into
            ``context.contextGroups`` and a meeting's host into ``context.contextAgents``
            (:func:`_context_2_0`). Everything else is the same bytes in both.
    """

    namespace: Any
    base_iri: str
    vocabulary: Vocabulary
    xapi_version: str = "1.0.3"


def format_timestamp(moment: datetime) -> str:
    """The one timestamp format: UTC, seconds, ``Z`` (microseconds kept only when present)."""
    if moment.tzinfo is None:
        raise StatementValidationError("a statement time must be timezone-aware")
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(span: timedelta) -> str:
    """The one duration format: ``PT#H#M#S`` with zero parts left out (``PT0S`` for zero)."""
    total = int(span.total_seconds())
    if total < 0:
        raise StatementValidationError("a duration cannot be negative")
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}H" if hours else "", f"{minutes}M" if minutes else "", f"{seconds}S" if seconds else ""]
    return "PT" + ("".join(parts) or "0S")


#: One encoder for every statement: ``json.dumps`` with options builds a new ``JSONEncoder`` per call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(data: dict[str, Any]) -> str:
    """Serialise with sorted keys and no spaces, so equal data gives equal bytes."""
    return _CANONICAL.encode(data)


#: What ``quote(value, safe="")`` leaves as is: most ids need no quoting, and the regex is much cheaper.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.\-~]*")


def _segment(value: str) -> str:
    if _UNRESERVED.fullmatch(value):
        return value
    return quote(value, safe="")


def object_iri(settings: StatementSettings, activity: Activity, ref: ObjectRef) -> str:
    """The IRI of an object: its own URL when the source has one, else one under ``{base}``.

    Chat messages live under ``{base}/chat/{source}/{group}/{key}``, meetings under
    ``{base}/meeting/{source}/{meeting id}/{start date}`` (docs/xapi.md) and communities
    under ``{base}/community/{id}``.
    """
    if ref.url:
        return ref.url
    base, source = settings.base_iri, _segment(activity.source)
    if ref.type == "message":
        return f"{base}/chat/{source}/{_segment(activity.site)}/{_segment(ref.native_id)}"
    if ref.type == "meeting":
        # A meeting id is global on its platform; "/" separates meeting and start date.
        return f"{base}/meeting/{source}/{quote(ref.native_id, safe='/')}"
    if ref.type == "community":
        # One CoP across all its platforms (forum, WhatsApp, Zoom...): no source segment.
        return f"{base}/community/{_segment(ref.native_id)}"
    return f"{base}/activity/{source}/{_segment(activity.site)}/{_segment(ref.type)}/{_segment(ref.native_id)}"


def _activity_object(
    settings: StatementSettings, activity: Activity, ref: ObjectRef, type_iri: str | None = None
) -> dict[str, Any]:
    """An activity object: ``definition`` only when it has a type or a name (as tincan writes it)."""
    result: dict[str, Any] = {"objectType": "Activity", "id": object_iri(settings, activity, ref)}
    definition: dict[str, Any] = {}
    type_iri = type_iri or settings.vocabulary.activity_type(ref.type)
    if type_iri:
        definition["type"] = type_iri
    if ref.title:
        definition["name"] = {LANGUAGE: ref.title}
    if definition:
        result["definition"] = definition
    return result


def _result(activity: Activity) -> dict[str, Any] | None:
    """``completion`` (and ``success``) for completions, the duration when known; None when neither."""
    result: dict[str, Any] = {}
    used = False
    if activity.kind in (Kind.COURSE_COMPLETED, Kind.MODULE_COMPLETED):
        result["completion"] = True
        used = True
        if isinstance(activity.extras.get("success"), bool):
            result["success"] = activity.extras["success"]
    if activity.duration is not None:
        result["duration"] = format_duration(activity.duration)
        used = True
    return result if used else None


def _source_extension(settings: StatementSettings, activity: Activity) -> dict[str, Any]:
    return {
        f"{settings.base_iri}/extensions/source": {
            "source": activity.source,
            "site": activity.site,
            "native_id": activity.native_id,
        }
    }


#: Roles a meeting report names that make the person the session's host (connectors/attendance.py).
HOST_ROLES = frozenset({"host", "co-host", "cohost", "organizer", "presenter"})


def _group_name(native_id: str) -> str:
    """A community's id as a Group account name: at most 50 characters (ADL's LRS column), hashed beyond."""
    if len(native_id) <= 50:
        return native_id
    return "sha1:" + hashlib.sha1(native_id.encode("utf-8")).hexdigest()  # noqa: S324 - a name, not security


def _context_2_0(
    settings: StatementSettings, activity: Activity, actor: dict[str, Any], context: dict[str, Any]
) -> None:
    """In xAPI 2.0 mode only: the community as a ``contextGroup``, the host as a ``contextAgent``.

    The community stays in ``contextActivities.grouping`` too (reports and the ledger read it
    there in both versions); the Group is identified by an account under ``{base}/community``.
    The host is the statement's own actor when the meeting report names them host: a report
    lists each person's role on their own row only, so the host of other attendees' rows is
    not known to the builder.
    """
    base = settings.base_iri
    communities = [ref for ref in (activity.grouping, activity.parent) if ref is not None and ref.type == "community"]
    if communities:
        community = communities[0]
        group: dict[str, Any] = {
            "objectType": "Group",
            "account": {"homePage": f"{base}/community", "name": _group_name(community.native_id)},
        }
        if community.title:
            group["name"] = community.title
        relevant = settings.vocabulary.activity_type("community") or f"{base}/activitytype/community"
        context["contextGroups"] = [{"objectType": "contextGroup", "group": group, "relevantTypes": [relevant]}]
    role = activity.extras.get("role")
    if activity.kind is Kind.MEETING_ATTENDED and isinstance(role, str) and role.casefold() in HOST_ROLES:
        context["contextAgents"] = [
            {"objectType": "contextAgent", "agent": actor, "relevantTypes": [f"{base}/role/host"]}
        ]


def build_statement(settings: StatementSettings, activity: Activity, actor: dict[str, Any]) -> BuiltStatement:
    """Build, normalise and validate the statement for one activity.

    Args:
        settings: deployment facts (namespace, base IRI, vocabulary).
        activity: the normalised activity.
        actor: the resolved xAPI actor (an ``account`` agent; see ``lms_bridge.identity.resolver``).

    Returns:
        The statement with its deterministic id and canonical JSON.

    Raises:
        StatementValidationError: when the statement would not be valid xAPI, or the
            kind has no entry in the vocabulary.
    """
    mapping = settings.vocabulary.kinds.get(activity.kind.value)
    if mapping is None:
        raise StatementValidationError(f"activity kind {activity.kind.value!r} has no entry in the vocabulary [kinds]")
    sid = statement_id(settings.namespace, activity.natural_key)
    account = actor["account"]
    context: dict[str, Any] = {
        "platform": settings.vocabulary.platforms.get(activity.source, activity.source),
        "extensions": _source_extension(settings, activity),
    }
    context_activities: dict[str, Any] = {}
    if activity.parent is not None:
        context_activities["parent"] = [_activity_object(settings, activity, activity.parent)]
    if activity.grouping is not None:
        context_activities["grouping"] = [_activity_object(settings, activity, activity.grouping)]
    if context_activities:
        context["contextActivities"] = context_activities
    agent = {"objectType": "Agent", "account": {"homePage": account["homePage"], "name": account["name"]}}
    if settings.xapi_version == "2.0.0":
        _context_2_0(settings, activity, agent, context)
    data: dict[str, Any] = {
        "id": sid,
        "actor": agent,
        "verb": {"id": mapping.verb.id, "display": {LANGUAGE: mapping.verb.display}},
        "object": _activity_object(settings, activity, activity.object, mapping.object_type),
        "context": context,
        "timestamp": format_timestamp(activity.occurred_at),
    }
    result = _result(activity)
    if result is not None:
        data["result"] = result
    text_length = activity.extras.get("text_length")
    if isinstance(text_length, int):
        # Privacy: a length at most, never a body (docs/xapi.md).
        data.setdefault("result", {}).setdefault("extensions", {})[f"{settings.base_iri}/extensions/text-length"] = (
            text_length
        )
    validate_statement(data)
    return BuiltStatement(id=sid, body=canonical_json(data))


def finish_statement(data: dict[str, Any]) -> BuiltStatement:
    """Validate a hand-built statement dict and freeze it to canonical JSON."""
    data.pop("version", None)
    validate_statement(data)
    return BuiltStatement(id=str(data["id"]), body=canonical_json(data))


# --- JP records (docs/xapi.md, "The JP record") ----------------------------------------------

#: Evidence statement ids listed in a JP record at most (the count is always complete).
EVIDENCE_LIST_CAP = 50


@dataclass(frozen=True)
class JPCreditIn:
    """What a JP record statement says.

    Attributes:
        nip: the person (18 digits).
        rule_id, rule_version, rule_code: the rule that gave the JP.
        period: the ISO date (or range) the record covers.
        activity_key: what the record is about within the period (a course, a session, ``day``).
        revision: 1, then +1 each time the record is superseded.
        jp: the JP credited (> 0).
        evidence_ids: ids of the statements that earned it, sorted.
        occurred_at: the statement's timestamp: the time of its latest evidence.
    """

    nip: str
    rule_id: str
    rule_version: int
    rule_code: str
    period: str
    activity_key: str
    revision: int
    jp: Decimal
    evidence_ids: tuple[str, ...]
    occurred_at: datetime


def jp_natural_key(credit: JPCreditIn) -> str:
    """``jp|{person}|{rule id}|{rule version}|{period}|{activity key}|r{revision}`` (docs/xapi.md).

    Guard: changing this recipe changes the id of every JP record already in the LRS.
    """
    return (
        f"jp|{credit.nip}|{credit.rule_id}|{credit.rule_version}|{credit.period}|{credit.activity_key}"
        f"|r{credit.revision}"
    )


def _json_number(value: Decimal) -> int | float:
    """A decimal as a JSON number: ``2`` for whole numbers, ``1.5`` otherwise (same value, same bytes)."""
    normal = value.normalize()
    return int(normal) if normal == normal.to_integral_value() else float(str(normal))


def build_jp_statement(settings: StatementSettings, credit: JPCreditIn, *, authority: str) -> BuiltStatement:
    """Build the ``earned`` statement of one JP record.

    Args:
        settings: deployment facts (namespace, base IRI, vocabulary).
        credit: the record.
        authority: ``account.homePage`` of NIP actors.
    """
    base = settings.base_iri
    earned = settings.vocabulary.verbs["earned"]
    sid = statement_id(settings.namespace, jp_natural_key(credit))
    minutes = int(credit.jp * 45)
    data: dict[str, Any] = {
        "id": sid,
        "actor": {"objectType": "Agent", "account": {"homePage": authority, "name": credit.nip}},
        "verb": {"id": earned.id, "display": {LANGUAGE: earned.display}},
        "object": {
            "objectType": "Activity",
            "id": f"{base}/jp/{_segment(credit.rule_id)}/{_segment(credit.period)}/{_segment(credit.activity_key)}",
            "definition": {"type": f"{base}/activitytype/jp-credit"},
        },
        "result": {
            "duration": format_duration(timedelta(minutes=minutes)),
            "extensions": {f"{base}/extensions/jp": _json_number(credit.jp)},
        },
        "context": {
            "platform": "lms-bridge",
            "extensions": {
                f"{base}/extensions/rule": {
                    "id": credit.rule_id,
                    "version": credit.rule_version,
                    "code": credit.rule_code,
                },
                f"{base}/extensions/period": credit.period,
                f"{base}/extensions/evidence": {
                    "ids": list(credit.evidence_ids[:EVIDENCE_LIST_CAP]),
                    "count": len(credit.evidence_ids),
                },
            },
        },
        "timestamp": format_timestamp(credit.occurred_at),
    }
    if credit.evidence_ids:
        data["context"]["statement"] = {"objectType": "StatementRef", "id": credit.evidence_ids[0]}
    validate_statement(data)
    return BuiltStatement(id=sid, body=canonical_json(data))


def build_void_statement(
    settings: StatementSettings, target_id: str, *, nip: str, authority: str, occurred_at: datetime
) -> BuiltStatement:
    """Build the statement voiding ``target_id`` (a superseded JP record).

    Its id is ``uuid5(ns, "void|{target id}")`` and its timestamp the target's, so a
    rerun rebuilds the same bytes. It has no ``context``: xAPI forbids ``context.platform``
    when the object is not an Activity, and a strict LRS (ADL's) refuses it with a 400.
    """
    voided = settings.vocabulary.verbs["voided"]
    sid = statement_id(settings.namespace, f"void|{target_id}")
    data: dict[str, Any] = {
        "id": sid,
        "actor": {"objectType": "Agent", "account": {"homePage": authority, "name": nip}},
        "verb": {"id": voided.id, "display": {LANGUAGE: voided.display}},
        "object": {"objectType": "StatementRef", "id": target_id},
        "timestamp": format_timestamp(occurred_at),
    }
    validate_statement(data)
    return BuiltStatement(id=sid, body=canonical_json(data))
