"""Activity files: normalised Activity records as JSON Lines.

For systems that can already write lms-bridge's normalised records, for the
bundled demo data, and for tests. One JSON object per line, in the shape of
``lms_bridge.activity.activity_to_dict``. Blank lines and lines starting with
``#`` are ignored.

The whole file is checked before anything is yielded: a malformed file imports
nothing. The position of an activity is its line number.

Personal identifiers (issue 20): the file is a connector's output, so the actor of a chat or
attendance activity (``source`` one of :data:`PSEUDONYMOUS_SOURCES`) is normally the keyed
pseudonym lms-bridge's own parsers make (32 hex characters). A system that writes such records
itself cannot make those pseudonyms without the deployment's key, so any other actor there is
read as the raw identifier it is (a phone number, Telegram user id, e-mail or display name),
normalised as the chat and attendance parsers do and pseudonymised at once with the key: the
raw value is never stored, and the same person gets the same pseudonym as from the chat export.
Other sources' actors are account ids (a Moodle user id) that reach the LRS as account names: an
e-mail address or a phone number written with ``+`` or a leading ``0`` is refused there, naming
the line and never the value, and so is an e-mail address among a line's ``extras``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from connectors.file_format import (
    JSON_SHAPE,
    NO,
    OWN_EXTENSION,
    FileContents,
    FileFormat,
    ReadRequest,
    Sample,
    deeper_than,
    read_capped,
    too_deep,
)
from lms_bridge.activity import Activity, activity_from_dict
from lms_bridge.errors import InputError
from lms_bridge.identifiers import classify_identifier, email_identifier, phone_identifier, telegram_identifier

SOURCE = "jsonl"
#: The source id of activity-file imports that name no site.
DEFAULT_SITE = "import"

#: How deeply an activity line may nest: an activity is an object of objects (its extras), 4 levels.
MAX_DEPTH = 16

# An activity line is a few hundred bytes: a million activities fit far below this.
_MAX_BYTES = 256 * 1024 * 1024

#: Sources whose actors are keyed pseudonyms: ``lms_bridge.identity.resolver.PSEUDONYMOUS_SOURCES``
#: (connectors may not import it; tests/connectors/test_jsonl_identifiers.py checks they match).
PSEUDONYMOUS_SOURCES = frozenset({"whatsapp", "telegram", "zoom", "meet", "teams", "lms_csv", "google_classroom"})
#: A pseudonym as :func:`lms_bridge.identity.pseudonym.make_pseudonymizer` makes it.
_PSEUDONYM = re.compile(r"[0-9a-f]{32}")


def _lines(path: Path) -> list[tuple[int, str]]:
    label = f"activity file {path}"
    data = read_capped(path, label, limit=_MAX_BYTES, refusal="not an activity file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{label} is not UTF-8 text") from exc
    # Lines as a text file gives them (universal newlines), numbered from 1.
    return [
        (number, line)
        for number, line in enumerate(io.StringIO(text, newline=None), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _parse(path: Path, number: int, line: str) -> Activity:
    try:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        if deeper_than(data, MAX_DEPTH):
            raise too_deep(f"activity file {path} line {number}", MAX_DEPTH)
        return activity_from_dict(data)
    except json.JSONDecodeError as exc:
        raise InputError(f"activity file {path} line {number}: not valid JSON ({exc.msg})") from exc
    except RecursionError as exc:  # deeper than the parser itself goes: no activity nests so
        raise too_deep(f"activity file {path} line {number}", MAX_DEPTH) from exc
    except KeyError as exc:
        raise InputError(f"activity file {path} line {number}: missing field {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise InputError(f"activity file {path} line {number}: {exc}") from exc


def _read(path: Path) -> list[tuple[Activity, int]]:
    items = [(_parse(path, number, line), number) for number, line in _lines(path)]
    if not items:
        raise InputError(f"activity file {path} holds no activities")
    return items


def raw_identifier(activity: Activity) -> str | None:
    """The canonical identifier (``phone:+62...``) of a chat or attendance actor that is no pseudonym, else None."""
    if activity.source not in PSEUDONYMOUS_SOURCES or _PSEUDONYM.fullmatch(activity.actor):
        return None
    if activity.source == "telegram":
        identifier = telegram_identifier(activity.actor.strip())
        if identifier is not None:
            return identifier
    found = classify_identifier(activity.actor)
    return found[1] if found is not None else ""


def _contact_data(activity: Activity) -> str | None:
    """What raw contact data an activity of a non-pseudonymous source carries (never the value), or None."""
    if activity.source not in PSEUDONYMOUS_SOURCES:
        actor = activity.actor.strip()
        if "@" in actor and email_identifier(actor) is not None:
            return f"the actor of a {activity.source} activity is an e-mail address"
        if actor.startswith(("+", "0")) and phone_identifier(actor) is not None:
            return f"the actor of a {activity.source} activity is a phone number"
    for key, value in activity.extras.items():
        if isinstance(value, str) and "@" in value and email_identifier(value) is not None:
            return f"extras.{key} is an e-mail address"
    return None


def pseudonymise(
    path: Path, items: list[tuple[Activity, int]], pseudonymizer: Callable[[], Callable[[str], str]]
) -> tuple[list[tuple[Activity, int]], int]:
    """Pseudonymise raw chat and attendance actors; refuse raw contact data elsewhere; return the count.

    Raises:
        InputError: naming the file and line (never the value) of raw contact data that cannot be
            pseudonymised, or of an actor that is empty.
        ConfigError: a raw identifier needs the pseudonym key, and it is not set.
    """
    pseudonymize: Callable[[str], str] | None = None
    done: list[tuple[Activity, int]] = []
    changed = 0
    for activity, number in items:
        problem = _contact_data(activity)
        if problem is not None:
            raise InputError(
                f"activity file {path} line {number}: {problem}; activity files carry account ids, NIPs "
                "(extras.nip) or pseudonyms, never raw contact data"
            )
        identifier = raw_identifier(activity)
        if identifier == "":
            raise InputError(f"activity file {path} line {number}: the actor is empty")
        if identifier is not None:
            pseudonymize = pseudonymize or pseudonymizer()
            activity = replace(activity, actor=pseudonymize(identifier))
            changed += 1
        done.append((activity, number))
    return done, changed


def read_activities(path: Path, *, after_line: int = 0) -> Iterator[tuple[Activity, int]]:
    """Yield ``(activity, line number)`` for each record after ``after_line``.

    Raises:
        InputError: naming the file and line, before anything is yielded.
    """
    yield from ((activity, number) for activity, number in _read(path) if number > after_line)


def is_activity_line(line: str) -> bool:
    """A line of an activity file (a normalised Activity as JSON), not the start of another JSON file."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: a deeply nested first line is no activity
        return False
    return isinstance(data, dict) and {"kind", "native_id", "actor"} <= set(data)


class ActivityFileFormat(FileFormat):
    """JSON Lines of normalised activities (``import --source jsonl``)."""

    name = "jsonl"
    description = "activity file"
    unit = "activities"
    community = "refused"
    people_by_pseudonym = False
    shows_invalid = True

    def detect(self, sample: Sample) -> float:
        """A ``.jsonl`` file, or JSON whose first line is a normalised activity."""
        if sample.is_zip:
            return NO
        if sample.suffix == ".jsonl":
            return OWN_EXTENSION
        if sample.is_json and is_activity_line(sample.first_line):
            return JSON_SHAPE
        return NO

    def read(self, path: Path, request: ReadRequest) -> FileContents:
        """Read every activity; its position is its line. Raw chat and attendance actors are pseudonymised."""
        items, _ = pseudonymise(path, _read(path), request.pseudonymizer)
        contents = FileContents(site=request.site or DEFAULT_SITE, items=items)
        contents.stats.records = len(items)
        return contents


FORMAT = ActivityFileFormat()
