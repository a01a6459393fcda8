"""Read a Telegram Desktop "Machine-readable JSON" export (``result.json``) into activities.

Layout: docs/domain.md §2b (tdesktop ``export_output_json.cpp``). Two roots are
accepted: a single-chat export (the chat object itself) and a whole-account
export, whose group chats in ``chats.list`` and ``left_chats.list`` are read
one by one.

What counts as participation:

* a ``"message"`` from a user account (``from_id`` = ``user<digits>``):
  ``MESSAGE_POSTED``, or ``MESSAGE_REPLIED`` with ``parent`` = the replied
  message when ``reply_to_message_id`` points into the same chat. A message
  from a deleted account (``from: null``) still has its ``from_id``, which is
  the identity used here (never the display name), so it counts and carries
  ``extras["deleted_account"] = True``. Messages posted as a channel or as the
  group itself (anonymous admins: ``from_id`` = ``channel...``/``chat...``)
  belong to no person and are skipped.
* a ``group_call`` service message with a ``duration`` > 0: ``MEETING_ATTENDED``
  for the member who started the call (``actor_id``). The export says who
  started the call and how long it lasted, not who else joined or how long the
  starter stayed, so ``duration`` is None and the call's length is given as
  ``extras["call_duration_seconds"]``. Invites to a call, joins, adds and every
  other service message are not participation.

Personal, bot and saved-messages chats are not communities: an account export
skips them (and one that holds nothing else is refused, saying so), and a
single-chat export of one is refused. Dates come from ``date_unixtime`` (UTC
epoch seconds), never from ``date`` (the exporting PC's local time without an
offset). No name or message text is put in an Activity.

Older layouts (tdesktop ``export_output_json.cpp`` before late 2021) are read too:

* no ``date_unixtime`` anywhere in the file (added late 2021): ``date`` is read as
  local time in the deployment's time zone, the only reading the file allows. A file
  where some messages have it and others do not is damaged and refused.
* ``from_id``/``actor_id`` as a bare integer user id (before 2021 only users had
  one; "user<digits>" strings came with anonymous admins): the same identifier,
  so the same pseudonym, as the newer form.
* no ``from_id`` but a ``from`` display name (a sender the exporting account could
  not resolve): the display name is the identity (``name:...``, linkable with
  ``lms-bridge people link-names``); no ``from_id`` and no name: no person.
* ``text`` as a string or an array of strings and entity objects, with no
  ``text_entities``; ``actor``/``actor_id`` on service messages in the same forms.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from connectors.base import Pseudonymizer, ReadStats, gc_paused
from connectors.file_format import (
    JSON_SHAPE,
    NO,
    FileContents,
    FileFormat,
    ReadRequest,
    Sample,
    deeper_than,
    numbered,
    read_capped,
    too_deep,
)
from connectors.jsonl import is_activity_line
from lms_bridge.activity import REPLY_TO, Activity, Kind, ObjectRef
from lms_bridge.errors import InputError
from lms_bridge.identifiers import name_identifier, telegram_identifier

SOURCE = "telegram"

# A 40,000-message export is about 10 MB (measured on a generated one); refuse what is far larger. The
# export is one JSON document parsed whole (not streamed), which takes several times its size in memory:
# 64 MB (about 250,000 messages, six times the largest group export) keeps one file from exhausting it.
_MAX_BYTES = 64 * 1024 * 1024

# Chat types (docs/domain.md §2b) between two people, with a bot or with oneself: private
# life, not a CoP, so not imported. Every other type (groups, supergroups, channels) is read.
_PRIVATE_TYPES = frozenset({"personal_chat", "bot_chat", "saved_messages", "replies", "verification_codes"})
_MEDIA_KEYS = (
    "photo",
    "file",
    "media_type",
    "sticker_emoji",
    "poll",
    "contact_information",
    "location_information",
)
_UNIXTIME = re.compile(r"[0-9]{1,12}", re.ASCII)
# 2001-09-09 .. 2286: anything outside is not a Telegram message date.
_MIN_UNIXTIME = 1_000_000_000
_MAX_UNIXTIME = 9_999_999_999
# ``date`` of the layouts without date_unixtime: local time, no offset (tdesktop SerializeDate).
_LOCAL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)


def read_telegram(
    path: Path, *, site: str, pseudonymize: Pseudonymizer, stats: ReadStats | None = None, tz: tzinfo | None = None
) -> Iterator[Activity]:
    """Yield the participation activities of a Telegram Desktop JSON export.

    The whole file is parsed and validated before the first activity is yielded:
    a malformed file raises :class:`InputError` and yields nothing.

    Keys: ``native_id`` = ``"{chat id}:{message id}"``, the ids Telegram itself
    gives, so any later export of the same chat gives the same keys.

    Args:
        path: the ``result.json`` file.
        site: the configured source id, put in every Activity's ``site``.
        pseudonymize: turns a normalised identifier (``telegram:user123``) into an
            opaque pseudonym.
        stats: when given, set once the file parsed: messages read in the chats read
            (service messages included), the ones that are not participation, and
            each chat read (id -> name and messages).
        tz: the zone the exporting PC's local ``date`` is read in when the export has no
            ``date_unixtime`` (older layouts); without it such an export is refused.

    Yields:
        Activities, chat by chat, in message order.

    Raises:
        InputError: the file cannot be read, is not JSON (e.g. truncated), or is not
            a Telegram export; the message names the file and the JSON path.
    """
    yield from _parse_file(path, site=site, pseudonymize=pseudonymize, stats=stats, tz=tz)


def _parse_file(
    path: Path,
    *,
    site: str,
    pseudonymize: Pseudonymizer,
    stats: ReadStats | None = None,
    tz: tzinfo | None = None,
    max_depth: int = 64,
) -> list[Activity]:
    label = f"telegram export {path.name}"
    with gc_paused():
        reader = _Reader(label, site=site, pseudonymize=pseudonymize, tz=tz)
        activities = _read_root(_load(path, label, max_depth), label, reader)
    if not reader.chats:
        raise InputError(_no_group_chat(label, reader.private_chats))
    if stats is not None:
        stats.records = sum(count for _, count in reader.chats.values())
        stats.skipped = stats.records - len(activities)
        stats.groups = dict(reader.chats)
    return activities


def _read_root(root: Any, label: str, reader: _Reader) -> list[Activity]:
    if not isinstance(root, dict):
        raise InputError(f"{label}: not a Telegram export (the top level is not a JSON object)")
    if "messages" in root:
        chat_type = _chat_type(root, "", label)
        if chat_type in _PRIVATE_TYPES:
            raise InputError(f"{label}: a {chat_type} is not a community chat; export the group instead")
        reader.read_chat(root, "")
    elif isinstance(root.get("chats"), dict) or isinstance(root.get("left_chats"), dict):
        seen: set[int] = set()
        for section in ("chats", "left_chats"):
            container = root.get(section)
            if container is None:
                continue
            chats = container.get("list") if isinstance(container, dict) else None
            if not isinstance(chats, list):
                raise InputError(f"{label}: {section}.list is missing or not a list")
            for index, chat in enumerate(chats):
                where = f"{section}.list[{index}]"
                if not isinstance(chat, dict):
                    raise InputError(f"{label}: {where} is not a chat object")
                if _chat_type(chat, where + ".", label) in _PRIVATE_TYPES:
                    reader.private_chats += 1
                    continue
                chat_id = _chat_id(chat, where + ".", label)
                if chat_id in seen:
                    continue  # a chat left and rejoined can be listed twice: read it once
                seen.add(chat_id)
                reader.read_chat(chat, where + ".")
    else:
        raise InputError(f"{label}: not a Telegram export (no 'messages' and no 'chats' at the top level)")
    return reader.activities


def _no_group_chat(label: str, private_chats: int) -> str:
    """The refusal of an account export without a group chat (nothing to import is not 'already imported')."""
    if private_chats:
        chats = "chat" if private_chats == 1 else "chats"
        return (
            f"{label} holds no group chat, only {private_chats} personal, bot or saved-messages {chats}, which "
            "are not communities: export the group itself (its chat menu, Export chat history, JSON)"
        )
    return f"{label} holds no chat at all: export the group itself (its chat menu, Export chat history, JSON)"


def _chat_type(chat: dict[str, Any], prefix: str, label: str) -> str | None:
    chat_type = chat.get("type")
    if chat_type is not None and not isinstance(chat_type, str):
        raise InputError(f"{label}: {prefix}type is not a string")
    return chat_type


def _chat_id(chat: dict[str, Any], prefix: str, label: str) -> int:
    chat_id = chat.get("id")
    if isinstance(chat_id, bool) or not isinstance(chat_id, int):
        raise InputError(f"{label}: {prefix}id is missing or not an integer chat id")
    return chat_id


def _load(path: Path, label: str, max_depth: int = 64) -> Any:
    data = read_capped(path, label, limit=_MAX_BYTES, refusal="not a chat export")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{label}: not UTF-8 JSON (invalid byte at offset {exc.start})") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{label} line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg}; truncated?)"
        ) from exc
    except RecursionError as exc:  # deeper than the parser itself goes (about 1,000 levels)
        raise too_deep(label, max_depth) from exc
    except ValueError as exc:  # an over-long integer
        raise InputError(f"{label}: not a Telegram export ({exc.__class__.__name__} in JSON)") from exc
    if deeper_than(value, max_depth):
        raise too_deep(label, max_depth)
    return value


class _Reader:
    """Turns validated chat objects into activities, pseudonymising each user once."""

    def __init__(self, label: str, *, site: str, pseudonymize: Pseudonymizer, tz: tzinfo | None = None) -> None:
        self.label = label
        self.site = site
        self.pseudonymize = pseudonymize
        self.tz = tz
        self.activities: list[Activity] = []
        self.chats: dict[str, tuple[str | None, int]] = {}  # chat id -> (name, messages)
        self.private_chats = 0  # personal, bot and saved-messages chats of an account export, skipped
        #: Whether the file's messages carry date_unixtime (None until the first message is read).
        self.unixtime: bool | None = None
        self._actors: dict[str, tuple[str, str]] = {}

    def error(self, where: str, what: str) -> InputError:
        return InputError(f"{self.label}: {where} {what}")

    def read_chat(self, chat: dict[str, Any], prefix: str) -> None:
        chat_id = _chat_id(chat, prefix, self.label)
        messages = chat.get("messages")
        if not isinstance(messages, list):
            raise self.error(prefix + "messages", "is missing or not a list")
        name = chat.get("name")
        title = name if isinstance(name, str) and name.strip() else None
        grouping = ObjectRef(type="community", native_id=str(chat_id), title=title)
        self.chats[str(chat_id)] = (title, len(messages))
        seen_ids: set[int] = set()
        for index, message in enumerate(messages):
            where = f"{prefix}messages[{index}]"
            if not isinstance(message, dict):
                raise self.error(where, "is not a message object")
            message_id = message.get("id")
            if isinstance(message_id, bool) or not isinstance(message_id, int):
                raise self.error(where + ".id", "is missing or not an integer")
            if message_id in seen_ids:
                raise self.error(where + ".id", f"repeats message id {message_id} (a damaged export)")
            seen_ids.add(message_id)
            kind = message.get("type")
            if kind == "message":
                self._message(message, where, chat_id, message_id, title, grouping)
            elif kind == "service":
                self._service(message, where, chat_id, message_id, title, grouping)
            elif not isinstance(kind, str):
                raise self.error(where + ".type", "is missing or not a string")
            # "unsupported" and future types carry nothing we can attribute.

    def _occurred_at(self, message: dict[str, Any], where: str) -> datetime:
        raw = message.get("date_unixtime")
        if self.unixtime is None:
            self.unixtime = raw is not None  # the first message tells the layout of the whole file
        if not self.unixtime:
            if raw is not None:
                raise self.error(where + ".date_unixtime", "is set but the first message has none (a damaged export)")
            return self._local_date(message, where)
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str) or not _UNIXTIME.fullmatch(raw):
            damaged = " (the first message has one: a damaged export)" if raw is None else ""
            raise self.error(where + ".date_unixtime", f"is missing or not epoch seconds{damaged}")
        seconds = int(raw)
        if not _MIN_UNIXTIME <= seconds <= _MAX_UNIXTIME:
            raise self.error(where + ".date_unixtime", f"{seconds} is out of range")
        return datetime.fromtimestamp(seconds, tz=UTC)

    def _local_date(self, message: dict[str, Any], where: str) -> datetime:
        """``date`` of an export older than date_unixtime: the exporting PC's local time, read in ``tz``."""
        raw = message.get("date")
        if not isinstance(raw, str) or not _LOCAL_DATE.fullmatch(raw):
            raise self.error(
                where + ".date", "is missing or not a date (YYYY-MM-DDTHH:MM:SS) and there is no date_unixtime"
            )
        if self.tz is None:
            raise self.error(where, "has no date_unixtime (an older export): its local date needs the time zone")
        try:
            local = datetime.fromisoformat(raw)
        except ValueError:
            raise self.error(where + ".date", f"{raw} is not a calendar date") from None
        if not 2001 <= local.year <= 2286:
            raise self.error(where + ".date", f"{raw} is out of range")
        moment = local.replace(tzinfo=self.tz).astimezone(UTC)
        if not _MIN_UNIXTIME <= moment.timestamp() <= _MAX_UNIXTIME:
            raise self.error(where + ".date", f"{raw} is out of range")
        return moment

    def _actor(self, from_id: object, name: object, where: str) -> tuple[str, str] | None:
        """``(pseudonym, identifier kind)`` of a sender, or None when it is no person.

        ``from_id`` is ``"user<digits>"`` (since 2021), a bare integer user id (older
        exports) or ``"channel..."``/``"chat..."`` (posted as a channel or the group: no
        person). Without a ``from_id``, an older export's ``from`` display name is the identity.
        """
        if from_id is None:
            if not isinstance(name, str):
                return None
            identifier = name_identifier(name)
            if identifier is None:
                return None
            key, kind = identifier, "name"
        elif isinstance(from_id, int) and not isinstance(from_id, bool):
            if from_id <= 0:
                raise self.error(where, f"{from_id} is not a user id")
            key, kind = f"user{from_id}", "telegram"
        elif isinstance(from_id, str):
            if not from_id.startswith("user"):
                return None  # "channel..."/"chat...": not a person
            key, kind = from_id, "telegram"
        else:
            raise self.error(where, "is not a user id (a string or an integer)")
        cached = self._actors.get(key)
        if cached is None:
            identifier = key if kind == "name" else telegram_identifier(key)
            if identifier is None:
                raise self.error(where, f"{key!r} is not a user id")
            cached = (self.pseudonymize(identifier), kind)
            self._actors[key] = cached
        return cached

    def _message(
        self,
        message: dict[str, Any],
        where: str,
        chat_id: int,
        message_id: int,
        title: str | None,
        grouping: ObjectRef,
    ) -> None:
        occurred_at = self._occurred_at(message, where)
        found = self._actor(message.get("from_id"), message.get("from"), where + ".from_id")
        reply_to = message.get("reply_to_message_id")
        if reply_to is not None and (isinstance(reply_to, bool) or not isinstance(reply_to, int)):
            raise self.error(where + ".reply_to_message_id", "is not an integer")
        if found is None:
            return
        actor, identifier_kind = found
        # A reply to a message of another chat (reply_to_peer_id) has no parent in this chat.
        parent = None
        if reply_to is not None and message.get("reply_to_peer_id") in (None, chat_id, str(chat_id)):
            parent = ObjectRef(type="message", native_id=f"{chat_id}:{reply_to}", title=title)
        native_id = f"{chat_id}:{message_id}"
        extras: dict[str, object] = {
            "identifier_kind": identifier_kind,
            "text_length": _text_length(message.get("text")),
            "media": any(key in message for key in _MEDIA_KEYS),
            "edited": _edited(message),
        }
        if message.get("from", "") is None:
            extras["deleted_account"] = True
        if parent is not None:
            extras[REPLY_TO] = f"message:{parent.native_id}"  # the export's own reply link
        self.activities.append(
            Activity(
                source=SOURCE,
                site=self.site,
                kind=Kind.MESSAGE_REPLIED if parent is not None else Kind.MESSAGE_POSTED,
                native_id=native_id,
                actor=actor,
                object=ObjectRef(type="message", native_id=native_id, title=title),
                occurred_at=occurred_at,
                parent=parent,
                grouping=grouping,
                extras=extras,
            )
        )

    def _service(
        self,
        message: dict[str, Any],
        where: str,
        chat_id: int,
        message_id: int,
        title: str | None,
        grouping: ObjectRef,
    ) -> None:
        occurred_at = self._occurred_at(message, where)  # validated for every message
        if message.get("action") != "group_call":
            return  # joins, invites (also to a call), pins...: not participation
        duration = message.get("duration")
        if duration is None:
            return  # a call still running at export time: no finished session yet
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise self.error(where + ".duration", "is not a number of seconds")
        found = self._actor(message.get("actor_id"), message.get("actor"), where + ".actor_id")
        if found is None or duration == 0:
            return
        actor, identifier_kind = found
        native_id = f"{chat_id}:{message_id}"
        self.activities.append(
            Activity(
                source=SOURCE,
                site=self.site,
                kind=Kind.MEETING_ATTENDED,
                native_id=native_id,
                actor=actor,
                object=ObjectRef(type="meeting", native_id=native_id, title=title),
                occurred_at=occurred_at,
                duration=None,
                grouping=grouping,
                extras={
                    "identifier_kind": identifier_kind,
                    "role": "initiator",
                    "call_duration_seconds": duration,
                },
            )
        )


def _edited(message: dict[str, Any]) -> bool:
    """Whether a message was edited.

    Since late 2021 ``edited`` is written only for an edited message. Before, tdesktop wrote it for
    every message, an unedited one getting the epoch in the PC's local time (``1970-01-01T07:00:00``).
    """
    if "edited_unixtime" in message:
        return True
    edited = message.get("edited")
    return edited is not None and not (isinstance(edited, str) and edited.startswith("1970-01-01"))


def _text_length(text: object) -> int:
    """Length of a message's text: a plain string, or an array of strings and entity objects."""
    if isinstance(text, str):
        return len(text)
    if isinstance(text, list):
        total = 0
        for part in text:
            if isinstance(part, str):
                total += len(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                total += len(part["text"])
        return total
    return 0


class TelegramFormat(FileFormat):
    """Telegram Desktop ``result.json`` exports of a group or a whole account (``import --source telegram``)."""

    name = "telegram"
    description = "Telegram chat"
    unit = "messages"
    skip_reason = "service messages and posts of no person"
    community = "required"
    options = frozenset({"chat"})

    def detect(self, sample: Sample) -> float:
        """JSON (by its name or first character) whose first line is not a normalised activity."""
        if sample.is_json and not is_activity_line(sample.first_line):
            return JSON_SHAPE
        return NO

    def read(self, path: Path, request: ReadRequest) -> FileContents:
        """Read the export (one chat of an account export: ``request.chat``), grouped under the community."""
        site = request.site or request.community or self.name
        pseudonymize = request.pseudonymizer()  # before the file is read: no key, nothing read or stored
        stats = ReadStats()
        activities = _parse_file(
            path, site=site, pseudonymize=pseudonymize, stats=stats, tz=request.tz, max_depth=request.max_json_depth
        )
        activities = _one_chat(path, activities, stats, request.chat)
        if request.community is not None:
            # One CoP across its platforms: the grouping is the community, titled with the chat's own name.
            activities = [
                replace(
                    activity,
                    grouping=ObjectRef(
                        type="community",
                        native_id=request.community,
                        title=activity.grouping.title if activity.grouping else None,
                    ),
                )
                for activity in activities
            ]
        return FileContents(site=site, items=numbered(activities), stats=stats)


def _one_chat(path: Path, activities: list[Activity], stats: ReadStats, chat: str | None) -> list[Activity]:
    """Keep the activities of one chat of a Telegram account export (every chat of a single-chat export)."""
    groups = stats.groups
    if chat is None:
        if len(groups) <= 1:
            return activities
        listed = ", ".join(f"{name or 'unnamed'} (id {chat_id})" for chat_id, (name, _) in groups.items())
        raise InputError(
            f"telegram export {path.name} holds {len(groups)} group chats: {listed}; import one at a "
            "time with --chat ID (each under its own --community)"
        )
    wanted = chat.strip().casefold()
    chosen = [
        chat_id
        for chat_id, (name, _) in groups.items()
        if wanted in (chat_id.casefold(), (name or "").strip().casefold())
    ]
    if len(chosen) != 1:
        problem = "no chat" if not chosen else f"{len(chosen)} chats"
        raise InputError(f"telegram export {path.name} has {problem} with the id or name {chat!r}")
    chat_id = chosen[0]
    kept = [activity for activity in activities if activity.grouping and activity.grouping.native_id == chat_id]
    stats.records = groups[chat_id][1]
    stats.skipped = stats.records - len(kept)
    return kept


FORMAT = TelegramFormat()
