"""Opening an input file the operator named: only a regular file, and never more of it than a cap.

A named pipe blocks a reader for ever, ``/dev/zero`` never ends and a folder is no file: each
is refused at once, from ``stat`` before anything is opened (a FIFO's ``open`` would block) and
again from ``fstat`` on the open descriptor (the path could have been swapped meanwhile).
Every importer of files (``import``, the inbox, ``people import``, ``people link-names``)
reads through here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from lms_bridge.errors import InputError


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _unreadable(label: str, exc: OSError) -> InputError:
    return InputError(f"{label}: cannot be read ({exc.strerror or exc.__class__.__name__})")


def not_regular(label: str, mode: int) -> InputError:
    """The one-sentence refusal of something that is not a regular file."""
    return InputError(f"{label}: {_kind(mode)}, not a regular file; nothing was read")


def check_regular(path: Path, label: str) -> os.stat_result:
    """``stat`` the path (following a link) and refuse anything but a regular file.

    Raises:
        InputError: the path does not exist, cannot be examined, or is not a regular file.
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise _unreadable(label, exc) from exc
    if not stat.S_ISREG(info.st_mode):
        raise not_regular(label, info.st_mode)
    return info


def open_regular(path: Path, label: str) -> BinaryIO:
    """Open a regular file for reading in binary; anything else is refused without blocking.

    Raises:
        InputError: as :func:`check_regular`, or the file cannot be opened.
    """
    check_regular(path, label)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _unreadable(label, exc) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise not_regular(label, info.st_mode)
    return os.fdopen(fd, "rb")


def read_regular(path: Path, label: str, *, limit: int, refusal: str) -> bytes:
    """Read a whole regular file, refusing one larger than ``limit`` bytes (stated size, then bytes read).

    Args:
        path: the file.
        label: what the file is and its name, the start of every error.
        limit: the largest size accepted, in bytes (the error states it in MB).
        refusal: what the error calls a file that large ("not a chat export").

    Raises:
        InputError: not a regular file, unreadable, or larger than ``limit``.
    """
    too_large = InputError(f"{label}: larger than {max(limit >> 20, 1)} MB, {refusal}")
    handle = open_regular(path, label)
    try:
        with handle:
            if os.fstat(handle.fileno()).st_size > limit:
                raise too_large
            data = handle.read(limit + 1)
    except OSError as exc:
        raise _unreadable(label, exc) from exc
    if len(data) > limit:
        raise too_large
    return data
