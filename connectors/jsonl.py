"""Activity files: normalised Activity records as JSON Lines.

For systems that can already write lms-bridge's normalised records, for the
bundled demo data, and for tests. One JSON object per line, in the shape of
``lms_bridge.activity.activity_to_dict``. Blank lines and lines starting with
``#`` are ignored.

The whole file is checked before anything is yielded: a malformed file imports
nothing. The position of an activity is its line number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from lms_bridge.activity import Activity, activity_from_dict
from lms_bridge.errors import InputError

SOURCE = "jsonl"


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes: the cursor key of one import."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open("r", encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip() and not line.lstrip().startswith("#"):
                    yield number, line
    except UnicodeDecodeError as exc:
        raise InputError(f"activity file {path} is not UTF-8 text") from exc
    except OSError as exc:
        raise InputError(f"activity file {path} cannot be read ({exc.strerror})") from exc


def _parse(path: Path, number: int, line: str) -> Activity:
    try:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return activity_from_dict(data)
    except json.JSONDecodeError as exc:
        raise InputError(f"activity file {path} line {number}: not valid JSON ({exc.msg})") from exc
    except KeyError as exc:
        raise InputError(f"activity file {path} line {number}: missing field {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise InputError(f"activity file {path} line {number}: {exc}") from exc


def read_activities(path: Path, *, after_line: int = 0) -> Iterator[tuple[Activity, int]]:
    """Yield ``(activity, line number)`` for each record after ``after_line``.

    Raises:
        InputError: naming the file and line, before anything is yielded.
    """
    count = 0
    for number, line in _lines(path):
        _parse(path, number, line)
        count += 1
    if count == 0:
        raise InputError(f"activity file {path} holds no activities")
    for number, line in _lines(path):
        if number > after_line:
            yield _parse(path, number, line), number
