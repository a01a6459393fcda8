"""What inbox passes remember about files they saw but did not finish (table ``inbox_files``).

Used by :mod:`lms_bridge.ingest.inbox`: a file is imported only when two passes saw the same
size, modification time and inode; an import started and not
finished (an unexpected error, or the process killed while importing) counts as an attempt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from lms_bridge.store.models import InboxFile


@dataclass(frozen=True)
class Sighting:
    """One file as a pass saw it."""

    size: int
    mtime_ns: int
    inode: int


def file_key(folder: str, name: str) -> str:
    """The row key of a file of an inbox: a digest, so no file name (it may name a person) is stored."""
    raw = f"{folder}\0{name}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(raw).hexdigest()


def seen_before(engine: Engine, key: str, sighting: Sighting, now: datetime) -> bool:
    """Whether an earlier pass saw the file exactly so; record this sighting.

    A file seen with another size, time or inode starts over (its attempts too: it is another upload).
    """
    with Session(engine) as session, session.begin():
        row = session.get(InboxFile, key)
        if row is not None and (row.size, row.mtime_ns, row.inode) == (
            sighting.size,
            sighting.mtime_ns,
            sighting.inode,
        ):
            return True
        if row is None:
            row = InboxFile(key=key, attempts=0)
            session.add(row)
        row.size, row.mtime_ns, row.inode, row.seen_at, row.attempts = (
            sighting.size,
            sighting.mtime_ns,
            sighting.inode,
            now,
            0,
        )
        return False


def start_attempt(engine: Engine, key: str, sighting: Sighting, now: datetime) -> int:
    """Count one import of the file as started (committed before it starts); return the attempts so far."""
    with Session(engine) as session, session.begin():
        row = session.get(InboxFile, key)
        if row is None or (row.size, row.mtime_ns, row.inode) != (sighting.size, sighting.mtime_ns, sighting.inode):
            if row is None:
                row = InboxFile(key=key)
                session.add(row)
            row.size, row.mtime_ns, row.inode, row.seen_at, row.attempts = (
                sighting.size,
                sighting.mtime_ns,
                sighting.inode,
                now,
                0,
            )
        row.attempts += 1
        return row.attempts


def attempt_failed(engine: Engine, key: str, error: str) -> None:
    """Keep the class of the unexpected error the attempt ended with."""
    with Session(engine) as session, session.begin():
        row = session.get(InboxFile, key)
        if row is not None:
            row.last_error = error[:200]


def last_error(engine: Engine, key: str) -> str | None:
    """The class of the last unexpected error of the file, if any."""
    with Session(engine) as session:
        row = session.get(InboxFile, key)
        return None if row is None else row.last_error


def finished(engine: Engine, key: str) -> None:
    """The file was imported or moved: forget it."""
    with Session(engine) as session, session.begin():
        session.execute(delete(InboxFile).where(InboxFile.key == key))
