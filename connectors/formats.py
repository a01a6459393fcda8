"""The file formats ``lms-bridge import`` and the inboxes read, and how a file's format is told.

``FORMATS`` is the one registry: a format's name (the value of ``import --source`` and of
an inbox's ``source``) -> its :class:`~connectors.file_format.FileFormat`. Explicit on
purpose: a new format is one line here and one module. The contract and the bounded
reader every format uses are in :mod:`connectors.file_format`.
"""

from __future__ import annotations

from pathlib import Path

from connectors import attendance, jsonl, lms_csv, telegram, whatsapp
from connectors.file_format import NAMED_ONLY, NO, FileFormat, Sample, read_head
from lms_bridge.errors import InputError

#: Format name -> implementation. On equal confidence, the format listed first is taken.
FORMATS: dict[str, FileFormat] = {
    "whatsapp": whatsapp.FORMAT,
    "telegram": telegram.FORMAT,
    "zoom": attendance.ZOOM,
    "meet": attendance.MEET,
    "teams": attendance.TEAMS,
    "csv": lms_csv.FORMAT,
    "jsonl": jsonl.FORMAT,
}


def detect(path: Path, *, mapping: bool = False) -> FileFormat:
    """Tell a file's format from its name and first bytes: the most confident format wins.

    Args:
        path: the file.
        mapping: a column mapping was given (an unrecognised report is then an LMS completion report).

    Returns:
        The format; reading the file checks it whole.

    Raises:
        InputError: the file is missing or a folder, or no format claims it (one sentence naming it).
    """
    sample = Sample(path=path, head=read_head(path), mapping=mapping)
    best, confidence = None, NO
    for file_format in FORMATS.values():
        claim = file_format.detect(sample)
        if claim > confidence:
            best, confidence = file_format, claim
    if best is None:
        raise InputError(
            f"cannot tell what {path} is: it is not a WhatsApp export (.txt/.zip), a Telegram result.json, a Zoom, "
            "Meet or Teams attendance report or an activity file (.jsonl); name the format with --source "
            "(and give --mapping for an LMS completion report)"
        )
    if confidence == NAMED_ONLY:
        # Only its name says what the file is, and its first bytes are not readable: the format
        # says what is wrong (file and line) now, before any option is checked against it.
        best.check_declared(path)
    return best
