"""Activity files: normalised Activity records as JSON Lines.

For systems that can already write lms-bridge's normalised records, for the
bundled demo data, and for tests. One JSON object per line, in the shape of
``lms_bridge.activity.activity_to_dict``. Blank lines and lines starting with
``#`` are ignored.

The whole file is checked before anything is yielded: a malformed file imports
nothing. The position of an activity is its line number.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
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

SOURCE = "jsonl"
#: The source id of activity-file imports that name no site.
DEFAULT_SITE = "import"

#: How deeply an activity line may nest: an activity is an object of objects (its extras), 4 levels.
MAX_DEPTH = 16

# An activity line is a few hundred bytes: a million activities fit far below this.
_MAX_BYTES = 256 * 1024 * 1024


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
    except (ValueError, RecursionError):
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
        """Read every activity; its position is its line. Nothing to pseudonymise: the file holds pseudonyms or NIPs."""
        items = _read(path)
        contents = FileContents(site=request.site or DEFAULT_SITE, items=items)
        contents.stats.records = len(items)
        return contents


FORMAT = ActivityFileFormat()
