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

The file is streamed (``ijson``), never parsed whole, so memory does not grow with its size:
a first pass checks every message and settles every refusal, counting, and keeps the
activities when they are few (:data:`KEEP_ACTIVITIES`); a file with more is read again, one
message at a time, while they are handed out. A single-chat export whose ``name``, ``type``
and ``id`` come before its messages (as tdesktop writes them) has its messages built by
ijson in C; any other layout is walked event by event (an account export), and a chat
whose header keys come after its messages is read in two passes (header keys first). The
activities, counts and refusals are those of the former whole-file reading (``json.loads``),
checked on every fixture and on mutated ones, except: a JSON syntax error names the line the
parser had reached, not the exact column; a key given twice in the structure (JSON's "last
one wins") is refused as a damaged export; an account export listing ``left_chats`` before
``chats`` is read in file order; the message cap refuses at the first message over it.

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

import itertools
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, BinaryIO

import ijson

from connectors.base import Pseudonymizer, ReadStats, gc_paused
from connectors.file_format import (
    JSON_SHAPE,
    NO,
    FileContents,
    FileFormat,
    ReadRequest,
    Sample,
    StreamedItems,
    numbered,
    too_deep,
)
from connectors.jsonl import is_activity_line
from lms_bridge.activity import REPLY_TO, Activity, Kind, ObjectRef
from lms_bridge.errors import InputError
from lms_bridge.identifiers import name_identifier, telegram_identifier
from lms_bridge.input_files import open_regular

SOURCE = "telegram"

# The file is streamed (ijson: one message built at a time) and checked whole before anything is
# handed out, so memory does not grow with its size; the message cap ([limits] max_messages) bounds
# the time. This cap only keeps a file that is no chat export (a disk image, a log) from being
# parsed for minutes: a 40,000-message export is about 10-17 MB, a million messages about 400 MB.
_MAX_BYTES = 4 * 1024 * 1024 * 1024
#: Activities of a checked file kept in memory and handed out from there (about 1 KB each); a file
#: with more is read a second time instead, one message at a time.
KEEP_ACTIVITIES = 60_000

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
#: The keys of a chat object read before its messages (tdesktop writes them first).
_HEADER_KEYS = ("name", "type", "id")
_SECTIONS = ("chats", "left_chats")
_STARTS = frozenset({"start_map", "start_array"})
_ENDS = frozenset({"end_map", "end_array"})
# ijson's backend (the C one, yajl2_c, when its wheel is installed): builds each message in C.
_BACKEND = ijson.get_backend(ijson.backend_name)


def read_telegram(
    path: Path,
    *,
    site: str,
    pseudonymize: Pseudonymizer,
    stats: ReadStats | None = None,
    tz: tzinfo | None = None,
    max_messages: int | None = None,
) -> Iterator[Activity]:
    """Yield the participation activities of a Telegram Desktop JSON export.

    The whole file is read and checked before the first activity is yielded:
    a malformed file raises :class:`InputError` and yields nothing. A file with more
    than :data:`KEEP_ACTIVITIES` activities is read a second time while they are yielded.

    Keys: ``native_id`` = ``"{chat id}:{message id}"``, the ids Telegram itself
    gives, so any later export of the same chat gives the same keys.

    Args:
        path: the ``result.json`` file.
        site: the configured source id, put in every Activity's ``site``.
        pseudonymize: turns a normalised identifier (``telegram:user123``) into an
            opaque pseudonym.
        stats: when given, set once the file is checked: messages read in the chats read
            (service messages included), the ones that are not participation, and
            each chat read (id -> name and messages).
        tz: the zone the exporting PC's local ``date`` is read in when the export has no
            ``date_unixtime`` (older layouts); without it such an export is refused.
        max_messages: the most messages one chat may hold (None: no cap).

    Yields:
        Activities, chat by chat, in message order.

    Raises:
        InputError: the file cannot be read, is not JSON (e.g. truncated), or is not
            a Telegram export; the message names the file and the JSON path.
    """
    checked = _check_file(path, site=site, pseudonymize=pseudonymize, tz=tz, max_messages=max_messages)
    if stats is not None:
        _fill_stats(stats, checked.reader, checked.activities)
    yield from checked.produce(None)


def _check_file(
    path: Path,
    *,
    site: str,
    pseudonymize: Pseudonymizer,
    tz: tzinfo | None = None,
    max_depth: int = 64,
    max_messages: int | None = None,
    chat: str | None = None,
) -> _Checked:
    """Read the whole file once: every refusal is settled here, before anything is handed out."""
    label = f"telegram export {path.name}"
    wanted = chat.strip().casefold() if chat is not None else None
    options = _Options(site=site, pseudonymize=pseudonymize, tz=tz, max_depth=max_depth, cap=max_messages)
    with gc_paused():
        try:
            checked = _Checked(path, label, options, wanted, headers=None)
            checked.run()
        except _Reordered:
            # A chat whose name, type or id comes after its messages (tdesktop writes them first): read
            # those keys in a pass of their own, then the messages in a second pass.
            checked = _Checked(path, label, options, wanted, headers=_read_headers(path, label, max_depth))
            checked.run()
    if not checked.reader.chats:
        raise InputError(_no_group_chat(label, checked.reader.private_chats))
    return checked


def _fill_stats(stats: ReadStats, reader: _Reader, activities: int) -> None:
    stats.records = sum(count for _, count in reader.chats.values())
    stats.skipped = stats.records - activities
    stats.groups = dict(reader.chats)


@dataclass(frozen=True)
class _Options:
    site: str
    pseudonymize: Pseudonymizer
    tz: tzinfo | None
    max_depth: int
    cap: int | None


class _OverCap(InputError):
    """More messages in one chat than the cap: refused at once, the rest of the file not read."""


class _Reordered(Exception):
    """A chat's messages came before its name, type or id: the file is read again, keys first."""


@dataclass
class _Header:
    """What a chat object says besides its messages (read before them, or in a pass of their own)."""

    values: dict[str, Any] = field(default_factory=dict)
    messages: str | None = None  # the first event of the messages value, None when there is none


class _Checked:
    """One pass over an export: checks every message, counts, and keeps the activities while they are few."""

    def __init__(
        self, path: Path, label: str, options: _Options, wanted: str | None, headers: dict[str, _Header] | None
    ) -> None:
        self.path = path
        self.label = label
        self.options = options
        self.wanted = wanted
        self.headers = headers
        self.reader = _Reader(label, site=options.site, pseudonymize=options.pseudonymize, tz=options.tz)
        self.kept: list[Activity] | None = []
        self.activities = 0
        self.identity: tuple[int, int] = (0, 0)

    def run(self) -> None:
        def keep(activity: Activity) -> None:
            self.activities += 1
            if self.kept is not None:
                self.kept.append(activity)
                if len(self.kept) > KEEP_ACTIVITIES:
                    self.kept = None  # too many to hold: the second pass yields them

        with _open(self.path, self.label) as (source, info):
            self.identity = (info.st_size, info.st_mtime_ns)
            _Walk(source, self.label, self.reader, self.options, self.wanted, self.headers, keep, self.path).run()

    def produce(self, chat_id: str | None) -> Iterator[Activity]:
        """The activities (of one chat when ``chat_id`` is given), kept or read again from the file."""
        if self.kept is not None:
            for activity in self.kept:
                if chat_id is None or _chat_of(activity) == chat_id:
                    yield activity
            return
        found: list[Activity] = []
        reader = _Reader(self.label, site=self.options.site, pseudonymize=self.options.pseudonymize, tz=self.options.tz)
        with _open(self.path, self.label) as (source, info):
            if (info.st_size, info.st_mtime_ns) != self.identity:
                raise InputError(f"{self.label}: the file changed while it was read; import it again once complete")
            walk = _Walk(source, self.label, reader, self.options, self.wanted, self.headers, found.append, self.path)
            for _ in itertools.chain(walk.steps(), [None]):  # and once more at the end, for the last ones
                for activity in found:
                    if chat_id is None or _chat_of(activity) == chat_id:
                        yield activity
                found.clear()


def _chat_of(activity: Activity) -> str | None:
    return activity.grouping.native_id if activity.grouping else None


@contextmanager
def _open(path: Path, label: str) -> Iterator[tuple[_Source, os.stat_result]]:
    handle = open_regular(path, label)
    with handle:
        info = os.fstat(handle.fileno())
        if info.st_size > _MAX_BYTES:
            raise InputError(f"{label}: larger than {_MAX_BYTES >> 20} MB, not a chat export")
        yield _Source(handle, label), info


class _Source:
    """The file's bytes as ijson reads them: a UTF-8 BOM dropped, the lines handed over counted for errors.

    It reads any binary stream (a file, or a zip member opened with ``ZipFile.open``).
    """

    def __init__(self, handle: BinaryIO, label: str) -> None:
        self.handle = handle
        self.label = label
        self.lines = 1
        self.consumed = 0
        self.started = False

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.handle.read(size)
        except OSError as exc:
            raise InputError(f"{self.label}: cannot be read ({exc.strerror or exc.__class__.__name__})") from exc
        if not self.started:
            self.started = True
            data = data.removeprefix(b"\xef\xbb\xbf")
        self.consumed += len(data)
        if self.consumed > _MAX_BYTES:
            raise InputError(f"{self.label}: larger than {_MAX_BYTES >> 20} MB, not a chat export")
        self.lines += data.count(b"\n")
        return data


def _read_headers(path: Path, label: str, max_depth: int) -> dict[str, _Header]:
    """Every chat object's name, type and id, by its place (``""``, ``chats.list[3].``), messages skipped."""
    headers: dict[str, _Header] = {}
    options = _Options(site="", pseudonymize=str, tz=None, max_depth=max_depth, cap=None)
    with _open(path, label) as (source, _):
        walk = _Walk(source, label, _Reader(label, site="", pseudonymize=str), options, None, None, lambda _: None)
        walk.collect = headers
        walk.run()
    return headers


class _Walk:
    """Walks ijson's events of one export: the structure in Python, each message built by ijson in C.

    A structural refusal (a key of the wrong type...) is raised only after the rest of the file
    parsed, so a file that is also not valid JSON or too deep is refused for that, as before.
    """

    def __init__(
        self,
        source: _Source,
        label: str,
        reader: _Reader,
        options: _Options,
        wanted: str | None,
        headers: dict[str, _Header] | None,
        emit: Callable[[Activity], None],
        path: Path | None = None,
    ) -> None:
        self.source = source
        self.path = path  # set: the root chat's messages may be read by a second reading in C (_fast_messages)
        self.label = label
        self.reader = reader
        self.options = options
        self.wanted = wanted
        self.headers = headers
        self.emit = emit
        self.events = _BACKEND.parse(source, use_float=True)
        self.depth = 0
        self.seen_chats: set[int] = set()
        #: When set, the walk only records each chat's header keys (messages skipped).
        self.collect: dict[str, _Header] | None = None
        self.root_single: bool | None = None
        self.finished = False  # the second reading parsed the file to its end

    # --- events -----------------------------------------------------------------------------------

    def run(self) -> None:
        for _ in self.steps():
            pass

    def steps(self) -> Iterator[None]:
        """Walk the file; yields after each batch of messages (a reader of a second pass takes them then)."""
        try:
            try:
                yield from self._root()
                if not self.finished:
                    for _ in self.events:  # trailing content is a JSON error
                        pass
            except _OverCap:
                raise
            except InputError:
                self._drain()  # a JSON error further on is the refusal, as when the file was parsed whole
                raise
        except ijson.JSONError as exc:
            reason = _json_error(exc)
            if "UTF8" in reason:
                raise InputError(
                    f"{self.label}: not UTF-8 JSON (an invalid byte by line {self.source.lines})"
                ) from None
            raise InputError(
                f"{self.label}: not valid JSON by line {self.source.lines} ({reason}; truncated?)"
            ) from None
        except UnicodeDecodeError:
            raise InputError(f"{self.label}: not UTF-8 JSON (an invalid byte by line {self.source.lines})") from None
        except ValueError as exc:  # an over-long integer
            raise InputError(f"{self.label}: not a Telegram export ({exc.__class__.__name__} in JSON)") from None

    def _drain(self) -> None:
        for _, event, _ in self.events:
            if event in _STARTS:
                self.depth += 1
                if self.depth > self.options.max_depth:
                    raise too_deep(self.label, self.options.max_depth)
            elif event in _ENDS:
                self.depth -= 1

    def _next(self) -> tuple[str, str, Any]:
        try:
            prefix, event, value = next(self.events)
        except StopIteration:
            raise InputError(f"{self.label}: not valid JSON (the file is empty)") from None
        if event in _STARTS:
            self.depth += 1
            if self.depth > self.options.max_depth:
                raise too_deep(self.label, self.options.max_depth)
        elif event in _ENDS:
            self.depth -= 1
        return prefix, event, value

    def _keys(self) -> Iterator[str]:
        """The keys of the object just started; the caller reads each one's value before the next."""
        while True:
            _, event, value = self._next()
            if event == "end_map":
                return
            yield value

    def _rest_of_value(self, event: str) -> Iterator[tuple[str, Any]]:
        """The events of the value that ``event`` opened, up to its closing event (none for a scalar)."""
        if event not in _STARTS:
            return
        level = 1
        while level:
            _, inner, inner_value = self._next()
            if inner in _STARTS:
                level += 1
            elif inner in _ENDS:
                level -= 1
            yield inner, inner_value

    def _skip(self, event: str) -> None:
        for _ in self._rest_of_value(event):
            pass

    def _build(self, event: str, value: Any) -> Any:
        if event not in _STARTS:
            return value
        builder = ijson.ObjectBuilder()
        builder.event(event, value)
        for inner, inner_value in self._rest_of_value(event):
            builder.event(inner, inner_value)
        return builder.value

    # --- structure --------------------------------------------------------------------------------

    def _root(self) -> Iterator[None]:
        _, event, _ = self._next()
        if event != "start_map":
            raise InputError(f"{self.label}: not a Telegram export (the top level is not a JSON object)")
        if self.headers is not None:
            self.root_single = self.headers[""].messages is not None
        sections: dict[str, bool] = {}
        header = _Header()
        account = False
        for key in self._keys():
            _, event, value = self._next()
            if key == "messages":
                if account and self.collect is None:
                    raise _Reordered  # chats first, then the root's own messages: the file is not what it seemed
                self.root_single = True
                yield from self._chat_messages("", header, event, single=True)
                if self.finished:
                    return
            elif key in _SECTIONS and not self.root_single and event != "null":  # null: no such section
                if key in sections:
                    raise InputError(f"{self.label}: {key} is given twice (a damaged export)")
                sections[key] = event == "start_map"
                account = True
                if event == "start_map":
                    yield from self._section(key)
                else:
                    self._skip(event)
            elif key in _HEADER_KEYS:
                self._header_key(header, key, event, value, "")
            else:
                self._skip(event)
        if self.collect is not None:
            self.collect[""] = header
            return
        if self.root_single:
            return
        if not any(sections.values()):
            raise InputError(f"{self.label}: not a Telegram export (no 'messages' and no 'chats' at the top level)")
        for section in _SECTIONS:
            if sections.get(section) is False:
                raise InputError(f"{self.label}: {section}.list is missing or not a list")

    def _header_key(self, header: _Header, key: str, event: str, value: Any, prefix: str) -> None:
        if key in header.values:
            raise InputError(f"{self.label}: {prefix}{key} is given twice (a damaged export)")
        if header.messages is not None and self.collect is None and self.headers is None:
            raise _Reordered
        header.values[key] = self._build(event, value)

    def _section(self, section: str) -> Iterator[None]:
        listed = False
        for key in self._keys():
            _, event, _ = self._next()
            if key != "list":
                self._skip(event)
                continue
            if listed:
                raise InputError(f"{self.label}: {section}.list is given twice (a damaged export)")
            listed = True
            if event != "start_array":
                raise InputError(f"{self.label}: {section}.list is missing or not a list")
            index = 0
            while True:
                _, event, value = self._next()
                if event == "end_array":
                    break
                where = f"{section}.list[{index}]"
                if event != "start_map":
                    raise InputError(f"{self.label}: {where} is not a chat object")
                yield from self._chat(where + ".")
                index += 1
        if not listed:
            raise InputError(f"{self.label}: {section}.list is missing or not a list")

    def _chat(self, prefix: str) -> Iterator[None]:
        header = _Header()
        for key in self._keys():
            _, event, value = self._next()
            if key == "messages":
                if header.messages is not None:
                    raise InputError(f"{self.label}: {prefix}messages is given twice (a damaged export)")
                yield from self._chat_messages(prefix, header, event, single=False)
            elif key in _HEADER_KEYS:
                self._header_key(header, key, event, value, prefix)
            else:
                self._skip(event)
        if self.collect is not None:
            self.collect[prefix] = header
        elif header.messages is None:
            self._begin(prefix, self._known(prefix, header), single=False)  # refuses: no messages

    def _known(self, prefix: str, header: _Header) -> _Header:
        """The chat's header: from the pass that read them first, else as read so far."""
        return self.headers.get(prefix, header) if self.headers is not None else header

    def _chat_messages(self, prefix: str, header: _Header, event: str, *, single: bool) -> Iterator[None]:
        header.messages = event
        if self.collect is not None:
            self._skip(event)
            return
        known = self._known(prefix, header)
        chat_type = header.values.get("type")
        private = isinstance(chat_type, str) and chat_type in _PRIVATE_TYPES
        if self.headers is None and not private and any(key not in header.values for key in _HEADER_KEYS):
            raise _Reordered  # a later key could still make it a personal chat or change its id
        read = self._begin(prefix, known, single=single)
        if read is None:
            self._skip(event)
            return
        chat_id, title, capped = read
        if single and self.path is not None and self.headers is None:
            yield from self._fast_messages(chat_id, title, capped)
        else:
            yield from self._messages(prefix, chat_id, title, capped)

    def _begin(self, prefix: str, header: _Header, *, single: bool) -> tuple[int, str | None, bool] | None:
        """Check a chat's header as the whole-file reader did; None for a chat that is not read."""
        chat_type = header.values.get("type")
        if chat_type is not None and not isinstance(chat_type, str):
            raise InputError(f"{self.label}: {prefix}type is not a string")
        if chat_type in _PRIVATE_TYPES:
            if single:
                raise InputError(f"{self.label}: a {chat_type} is not a community chat; export the group instead")
            self.reader.private_chats += 1
            return None
        chat_id = header.values.get("id")
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise InputError(f"{self.label}: {prefix}id is missing or not an integer chat id")
        if not single:
            if chat_id in self.seen_chats:
                return None  # a chat left and rejoined can be listed twice: read it once
            self.seen_chats.add(chat_id)
        if header.messages != "start_array":
            raise InputError(f"{self.label}: {prefix}messages is missing or not a list")
        name = header.values.get("name")
        title = name if isinstance(name, str) and name.strip() else None
        capped = self.wanted is None or self.wanted in (str(chat_id).casefold(), (title or "").strip().casefold())
        return chat_id, title, capped

    def _messages(self, prefix: str, chat_id: int, title: str | None, capped: bool) -> Iterator[None]:
        """Each message of the array just started, built by ijson and read at once; depth checked per event."""
        chat = self.reader.begin_chat(chat_id, title)
        built: list[Any] = ijson.sendable_list()
        send = _BACKEND.items_basecoro(built, f"{self._prefix(prefix)}messages.item").send
        cap = self.options.cap if capped else None
        limit = self.options.max_depth
        bottom = depth = self.depth
        index = 0
        for event_tuple in self.events:
            event = event_tuple[1]
            if event in _STARTS:
                depth += 1
                if depth > limit:
                    raise too_deep(self.label, limit)
            elif event in _ENDS:
                if depth == bottom:
                    break  # the end of the messages array
                depth -= 1
            send(event_tuple)
            if built:
                for message in built:
                    self._take(chat, message, prefix, index, cap)
                    index += 1
                built.clear()
                yield
        self.depth = bottom - 1
        self.reader.end_chat(chat, index)

    def _fast_messages(self, chat_id: int, title: str | None, capped: bool) -> Iterator[None]:
        """The messages of a single-chat export whose name, type and id come first (as tdesktop writes).

        Read by a second reading of the file in which ijson builds each message in C, with no Python
        for each parser event (a third of the time of :meth:`_messages`); the nesting cap is checked
        on each message built. That reading goes on to the end of the file, so JSON errors anywhere
        are found; keys of the top level after the messages are parsed but not looked at (tdesktop
        writes none).
        """
        path = self.path
        if path is None:  # never: called only with a path
            raise InputError(f"{self.label}: cannot be read a second time")
        chat = self.reader.begin_chat(chat_id, title)
        cap = self.options.cap if capped else None
        room = self.options.max_depth - 2  # a message is at level 3: the top object, the array, the message
        index = 0
        with _open(path, self.label) as (source, _):
            self.source = source  # errors name its lines now
            messages = _BACKEND.items(source, "messages.item", use_float=True)
            try:
                for message in messages:
                    if (type(message) is dict or type(message) is list) and _nested(message, room):
                        raise too_deep(self.label, self.options.max_depth)
                    self._take(chat, message, "", index, cap)
                    index += 1
                    if not index & 255:
                        yield  # every 256 messages: a second pass hands out what they gave
            except _OverCap:
                raise
            except InputError:
                for message in messages:  # a JSON error or a deeper message further on is the refusal
                    if (type(message) is dict or type(message) is list) and _nested(message, room):
                        raise too_deep(self.label, self.options.max_depth) from None
                raise
        self.finished = True
        self.reader.end_chat(chat, index)

    def _take(self, chat: _ChatReader, message: Any, prefix: str, index: int, cap: int | None) -> None:
        if cap is not None and index >= cap:
            raise _OverCap(
                f"{self.label}: more than {cap:,} messages in one chat ({prefix}messages[{index}] is "
                f"message {index + 1:,}); split the export or raise --max-messages or [limits] max_messages"
            )
        activity = chat.read(message, f"{prefix}messages[{index}]")
        if activity is not None:
            chat.activities += 1
            self.emit(activity)

    @staticmethod
    def _prefix(prefix: str) -> str:
        """The prefix ijson gives a chat's place: ``chats.list[3].`` -> ``chats.list.item.``."""
        return re.sub(r"\[[0-9]+\]", ".item", prefix)


def _nested(value: dict[str, Any] | list[Any], room: int) -> bool:
    """Whether ``value`` nests more than ``room`` levels (itself one); recursion is bounded by ``room``."""
    if room <= 0:
        return True
    for child in value.values() if type(value) is dict else value:
        if (type(child) is dict or type(child) is list) and (room <= 1 or _nested(child, room - 1)):
            return True
    return False


def _json_error(exc: Exception) -> str:
    """The parser's reason, its first line only: yajl's next lines quote the file, which is never shown."""
    reason = exc.args[0] if exc.args else ""
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", errors="replace")
    return str(reason).split("\n", 1)[0].strip()


def _no_group_chat(label: str, private_chats: int) -> str:
    """The refusal of an account export without a group chat (nothing to import is not 'already imported')."""
    if private_chats:
        chats = "chat" if private_chats == 1 else "chats"
        return (
            f"{label} holds no group chat, only {private_chats} personal, bot or saved-messages {chats}, which "
            "are not communities: export the group itself (its chat menu, Export chat history, JSON)"
        )
    return f"{label} holds no chat at all: export the group itself (its chat menu, Export chat history, JSON)"


class _Reader:
    """Turns validated chat objects into activities, pseudonymising each user once."""

    def __init__(self, label: str, *, site: str, pseudonymize: Pseudonymizer, tz: tzinfo | None = None) -> None:
        self.label = label
        self.site = site
        self.pseudonymize = pseudonymize
        self.tz = tz
        self.chats: dict[str, tuple[str | None, int]] = {}  # chat id -> (name, messages)
        self.activities: dict[str, int] = {}  # chat id -> its activities
        self.private_chats = 0  # personal, bot and saved-messages chats of an account export, skipped
        #: Whether the file's messages carry date_unixtime (None until the first message is read).
        self.unixtime: bool | None = None
        self._actors: dict[str, tuple[str, str]] = {}

    def error(self, where: str, what: str) -> InputError:
        return InputError(f"{self.label}: {where} {what}")

    def begin_chat(self, chat_id: int, title: str | None) -> _ChatReader:
        """Start reading a chat's messages (it is listed in :attr:`chats` from now, in file order)."""
        self.chats[str(chat_id)] = (title, 0)
        return _ChatReader(self, chat_id, title)

    def end_chat(self, chat: _ChatReader, messages: int) -> None:
        self.chats[str(chat.chat_id)] = (chat.title, messages)
        self.activities[str(chat.chat_id)] = self.activities.get(str(chat.chat_id), 0) + chat.activities

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
    ) -> Activity | None:
        occurred_at = self._occurred_at(message, where)
        found = self._actor(message.get("from_id"), message.get("from"), where + ".from_id")
        reply_to = message.get("reply_to_message_id")
        if reply_to is not None and (isinstance(reply_to, bool) or not isinstance(reply_to, int)):
            raise self.error(where + ".reply_to_message_id", "is not an integer")
        if found is None:
            return None
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
        return Activity(
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

    def _service(
        self,
        message: dict[str, Any],
        where: str,
        chat_id: int,
        message_id: int,
        title: str | None,
        grouping: ObjectRef,
    ) -> Activity | None:
        occurred_at = self._occurred_at(message, where)  # validated for every message
        if message.get("action") != "group_call":
            return None  # joins, invites (also to a call), pins...: not participation
        duration = message.get("duration")
        if duration is None:
            return None  # a call still running at export time: no finished session yet
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise self.error(where + ".duration", "is not a number of seconds")
        found = self._actor(message.get("actor_id"), message.get("actor"), where + ".actor_id")
        if found is None or duration == 0:
            return None
        actor, identifier_kind = found
        native_id = f"{chat_id}:{message_id}"
        return Activity(
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


class _ChatReader:
    """Reads one chat's messages one at a time: each checked, each participation turned into an Activity."""

    def __init__(self, reader: _Reader, chat_id: int, title: str | None) -> None:
        self.reader = reader
        self.chat_id = chat_id
        self.title = title
        self.grouping = ObjectRef(type="community", native_id=str(chat_id), title=title)
        self.seen_ids: set[int] = set()
        self.activities = 0

    def read(self, message: Any, where: str) -> Activity | None:
        reader = self.reader
        if not isinstance(message, dict):
            raise reader.error(where, "is not a message object")
        message_id = message.get("id")
        if isinstance(message_id, bool) or not isinstance(message_id, int):
            raise reader.error(where + ".id", "is missing or not an integer")
        if message_id in self.seen_ids:
            raise reader.error(where + ".id", f"repeats message id {message_id} (a damaged export)")
        self.seen_ids.add(message_id)
        kind = message.get("type")
        if kind == "message":
            return reader._message(message, where, self.chat_id, message_id, self.title, self.grouping)
        if kind == "service":
            return reader._service(message, where, self.chat_id, message_id, self.title, self.grouping)
        if not isinstance(kind, str):
            raise reader.error(where + ".type", "is missing or not a string")
        return None  # "unsupported" and future types carry nothing we can attribute.


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
        """Read the export (one chat of an account export: ``request.chat``), grouped under the community.

        The file is checked whole first (every refusal, the message cap of each chat read); a file
        with many activities is read again, one message at a time, while they are stored.
        """
        site = request.site or request.community or self.name
        pseudonymize = request.pseudonymizer()  # before the file is read: no key, nothing read or stored
        checked = _check_file(
            path,
            site=site,
            pseudonymize=pseudonymize,
            tz=request.tz,
            max_depth=request.max_json_depth,
            max_messages=request.max_messages,
            chat=request.chat,
        )
        stats = ReadStats()
        _fill_stats(stats, checked.reader, checked.activities)
        chat_id = _one_chat(path, stats, request.chat)
        if chat_id is not None:
            stats.records = checked.reader.chats[chat_id][1]
            stats.skipped = stats.records - checked.reader.activities.get(chat_id, 0)
        community = request.community

        def activities() -> Iterator[Activity]:
            for activity in checked.produce(chat_id):
                if community is None:
                    yield activity
                else:
                    # One CoP across its platforms: the grouping is the community, titled with the chat's own name.
                    title = activity.grouping.title if activity.grouping else None
                    yield replace(activity, grouping=ObjectRef(type="community", native_id=community, title=title))

        if checked.kept is not None:
            return FileContents(site=site, items=numbered(list(activities())), stats=stats)
        return FileContents(site=site, items=StreamedItems(activities), stats=stats)


def _one_chat(path: Path, stats: ReadStats, chat: str | None) -> str | None:
    """The chat to keep of a Telegram account export (None: every chat of a single-chat export)."""
    groups = stats.groups
    if chat is None:
        if len(groups) <= 1:
            return None
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
    return chosen[0]


FORMAT = TelegramFormat()
