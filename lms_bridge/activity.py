"""The normalised activity record every connector yields.

A leaf module: it imports nothing from the project. An ``Activity`` is a pure
function of its source data: the same source bytes give an equal record, so
the statement built from it (and its id) never changes on a rerun.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

#: The extra naming the item an activity answers, by the source's own reply link: its object key
#: within the same site (``post:<id>``, ``discussion:<id>``, ``message:<chat>:<id>``). Stored as
#: ``evidence.reply_to`` (the CoP report's reply edges); never inferred from order or text.
REPLY_TO = "reply_to"


class Kind(StrEnum):
    """What happened. Values key statement builders and rules: never rename one."""

    COURSE_COMPLETED = "course_completed"
    MODULE_COMPLETED = "module_completed"
    #: Opened an activity whose completion asks no more than that (a meeting page viewed, not attended).
    MODULE_VIEWED = "module_viewed"
    DISCUSSION_CREATED = "discussion_created"
    POST_CREATED = "post_created"
    REPLY_CREATED = "reply_created"
    MESSAGE_POSTED = "message_posted"
    MESSAGE_REPLIED = "message_replied"
    MEETING_ATTENDED = "meeting_attended"
    COACHING_ATTENDED = "coaching_attended"


@dataclass(frozen=True)
class ObjectRef:
    """The thing acted on: a course, module, discussion, post, message or meeting.

    Attributes:
        type: short object type (``course``, ``module``, ``discussion``, ``post``,
            ``message``, ``meeting``, ...).
        native_id: the source's own id for it, as text.
        title: a human title when the source has one (never a message body).
        url: the object's own URL when the source has one (e.g. a Moodle view URL).
    """

    type: str
    native_id: str
    title: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Activity:
    """One normalised learning or community activity.

    Attributes:
        source: the connector kind (``moodle``, ``whatsapp``, ``jsonl``, ...).
        site: the configured source id (e.g. ``kemenpan``).
        kind: what happened.
        native_id: the source's stable id for this event (post id, message key...).
        actor: a source-local person reference (Moodle user id, pseudonym, NIP...).
            Never a raw phone number: chat parsers pseudonymise before building this.
        object: what was acted on.
        occurred_at: when it happened, tz-aware, from the source (never "now").
        duration: time spent, when the source has it (attendance minutes).
        parent: the enclosing object (course of a module, discussion of a reply...).
        grouping: a wider context (the course or the Community of Practice).
        extras: small, JSON-able facts the rules may read (``nip``, ``program_jp``...).
    """

    source: str
    site: str
    kind: Kind
    native_id: str
    actor: str
    object: ObjectRef
    occurred_at: datetime
    duration: timedelta | None = None
    parent: ObjectRef | None = None
    grouping: ObjectRef | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise ValueError("Activity.occurred_at must be timezone-aware")
        # Store one canonical form so equal source data gives equal records.
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))
        object.__setattr__(self, "kind", Kind(self.kind))

    @property
    def natural_key(self) -> str:
        """The key statement ids derive from: ``source|site|kind|native_id``.

        Guard: changing this recipe changes every statement id already in the LRS.
        """
        return f"{self.source}|{self.site}|{self.kind.value}|{self.native_id}"

    def to_json(self) -> str:
        """Serialise to one canonical JSON line (sorted keys, UTC ``Z`` time)."""
        return json.dumps(activity_to_dict(self), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _ref_to_dict(ref: ObjectRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {k: v for k, v in vars(ref).items() if v is not None}


def _ref_from_dict(data: dict[str, Any] | None) -> ObjectRef | None:
    if data is None:
        return None
    return ObjectRef(
        type=str(data["type"]),
        native_id=str(data["native_id"]),
        title=data.get("title"),
        url=data.get("url"),
    )


def activity_to_dict(activity: Activity) -> dict[str, Any]:
    """Return the activity as JSON-able data (the inverse of :func:`activity_from_dict`)."""
    data: dict[str, Any] = {
        "source": activity.source,
        "site": activity.site,
        "kind": activity.kind.value,
        "native_id": activity.native_id,
        "actor": activity.actor,
        "object": _ref_to_dict(activity.object),
        "occurred_at": activity.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if activity.duration is not None:
        data["duration_seconds"] = int(activity.duration.total_seconds())
    if activity.parent is not None:
        data["parent"] = _ref_to_dict(activity.parent)
    if activity.grouping is not None:
        data["grouping"] = _ref_to_dict(activity.grouping)
    if activity.extras:
        data["extras"] = activity.extras
    return data


def activity_from_dict(data: dict[str, Any]) -> Activity:
    """Build an activity from :func:`activity_to_dict` data.

    Raises:
        KeyError, ValueError, TypeError: when a field is missing or malformed;
            callers turn these into an ``InputError`` naming the file and line.
    """
    occurred_at = datetime.fromisoformat(str(data["occurred_at"]).replace("Z", "+00:00"))
    duration = data.get("duration_seconds")
    obj = _ref_from_dict(data["object"])
    if obj is None:
        raise ValueError("object is required")
    extras = data.get("extras") or {}
    if not isinstance(extras, dict):
        raise TypeError("extras must be an object")
    return Activity(
        source=str(data["source"]),
        site=str(data["site"]),
        kind=Kind(data["kind"]),
        native_id=str(data["native_id"]),
        actor=str(data["actor"]),
        object=obj,
        occurred_at=occurred_at,
        duration=timedelta(seconds=int(duration)) if duration is not None else None,
        parent=_ref_from_dict(data.get("parent")),
        grouping=_ref_from_dict(data.get("grouping")),
        extras=extras,
    )
