"""Inspecting the outbox and moving dead letters in and out as JSON Lines files.

``outbox export FILE`` writes one JSON object per dead letter: the statement's exact
body (as a string, so its bytes survive), its id, where it came from and why the LRS
refused it. ``outbox import FILE`` reads such a file back, on this deployment or
another: every line is checked before anything is stored, and nothing is stored
when one line is bad. An edited body (a repaired statement) is accepted once its
``body_sha256`` key is dropped; it replaces a dead letter with the same id, never a
statement that is pending or was sent.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from lms_bridge.errors import InputError, StatementValidationError
from lms_bridge.store import _enqueue
from lms_bridge.store.models import OutboxRow, OutboxStatus, utcnow
from xapi.statements import BuiltStatement, finish_statement

#: The ``format`` of each exported line.
EXPORT_FORMAT = "lms-bridge/dead-letter/1"
#: Statuses ``outbox list`` shows (``forgotten``: scrubbed by ``forget``, never sent again).
LIST_STATUSES = ("pending", "dead", "sent", "forgotten")


@dataclass(frozen=True)
class OutboxLine:
    """One outbox row as ``outbox list`` shows it (no body: it may name a person)."""

    id: int
    statement_id: str
    site_id: str | None
    stream: str | None
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None


def list_rows(engine: Engine, status: str, *, limit: int = 50, site: str | None = None) -> tuple[list[OutboxLine], int]:
    """Outbox rows of one status, oldest first, and how many there are in all.

    Args:
        engine: the state store.
        status: ``pending``, ``dead``, ``sent`` or ``forgotten``.
        limit: at most this many rows.
        site: only rows of this site.
    """
    where = [OutboxRow.status == status]
    if site is not None:
        where.append(OutboxRow.site_id == site)
    with Session(engine) as session:
        total = session.scalar(select(func.count()).select_from(OutboxRow).where(*where)) or 0
        rows = session.scalars(select(OutboxRow).where(*where).order_by(OutboxRow.id).limit(limit))
        lines = [
            OutboxLine(
                r.id,
                r.statement_id,
                r.site_id,
                r.stream,
                r.status,
                r.attempts,
                r.created_at,
                r.next_attempt_at,
                r.last_error,
            )
            for r in rows
        ]
    return lines, total


def _sha256(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def export_dead(engine: Engine, path: Path) -> int:
    """Write every dead letter to ``path`` as JSON Lines (replaced atomically); return how many.

    The file holds statement bodies: treat it like the state store (it may name people).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out, Session(engine) as session:
            query = select(OutboxRow).where(OutboxRow.status == OutboxStatus.DEAD.value).order_by(OutboxRow.id)
            for row in session.scalars(query.execution_options(yield_per=500)):
                line = {
                    "format": EXPORT_FORMAT,
                    "statement_id": row.statement_id,
                    "site_id": row.site_id,
                    "stream": row.stream,
                    "attempts": row.attempts,
                    "last_error": row.last_error,
                    "created_at": row.created_at.isoformat(),
                    "body_sha256": row.body_sha256,
                    "body": row.body,
                }
                out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
        os.chmod(temp, 0o600)  # statements name people: owner-only, like the secrets file
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return count


@dataclass(frozen=True)
class _Letter:
    line: int
    statement: BuiltStatement
    site_id: str | None
    stream: str | None


@dataclass
class ImportReport:
    """What ``outbox import`` did.

    Attributes:
        read: lines read.
        added: statements new to this outbox, queued.
        requeued: dead letters with the same body put back in the queue.
        replaced: dead letters whose body the file repaired, queued with the new body.
        already: statements pending or sent here with the same body (nothing to do).
        conflicts: statements pending or sent here with another body (kept as they are).
    """

    read: int = 0
    added: int = 0
    requeued: int = 0
    replaced: int = 0
    already: int = 0
    conflicts: int = 0


def _parse_line(number: int, text: str, path: Path) -> _Letter:
    where = f"{path} line {number}"
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not JSON ({exc.msg})") from None
    except RecursionError:
        raise InputError(f"{where}: not a dead letter (JSON nested too deeply)") from None
    if not isinstance(data, dict) or not isinstance(data.get("body"), str):
        raise InputError(f'{where}: expected an object with the statement in "body" (see lms-bridge outbox export)')
    if data.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
        raise InputError(f"{where}: unknown format {data.get('format')!r} (expected {EXPORT_FORMAT})")
    body = data["body"]
    digest = data.get("body_sha256")
    if digest is not None and digest != _sha256(body):
        raise InputError(
            f"{where}: body_sha256 does not match the body; if you repaired the statement, remove the body_sha256 key"
        )
    try:
        statement = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: body is not JSON ({exc.msg})") from None
    if not isinstance(statement, dict):
        raise InputError(f"{where}: body is not a statement object")
    if data.get("statement_id") not in (None, statement.get("id")):
        raise InputError(f"{where}: statement_id {data.get('statement_id')} is not the body's id")
    try:
        built = finish_statement(dict(statement))
    except StatementValidationError as exc:
        raise InputError(f"{where}: {exc}") from None
    site, stream = data.get("site_id"), data.get("stream")
    return _Letter(number, built, site if isinstance(site, str) else None, stream if isinstance(stream, str) else None)


def import_dead(engine: Engine, path: Path) -> ImportReport:
    """Queue the statements of an exported dead-letter file (see the module docstring).

    Idempotent: importing a file twice changes nothing the second time.

    Raises:
        InputError: the file cannot be read or a line is bad (names the line; nothing stored).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path} is not a dead-letter export: not UTF-8 text (byte {exc.start}); "
            "give the file lms-bridge outbox export wrote"
        ) from exc
    letters = [_parse_line(number, text, path) for number, text in enumerate(lines, start=1) if text.strip()]
    report = ImportReport(read=len(letters))
    now = utcnow()
    with Session(engine) as session, session.begin():
        for letter in letters:
            statement = letter.statement
            row = session.scalars(select(OutboxRow).where(OutboxRow.statement_id == statement.id)).first()
            if row is None:
                _enqueue(session, [statement], letter.site_id, letter.stream)
                report.added += 1
                continue
            same = row.body_sha256 == _sha256(statement.body)
            if row.status == OutboxStatus.DEAD.value:
                values: dict[str, Any] = {"status": OutboxStatus.PENDING.value, "attempts": 0, "next_attempt_at": now}
                if not same:
                    values.update(body=statement.body, body_sha256=_sha256(statement.body))
                session.execute(update(OutboxRow).where(OutboxRow.id == row.id).values(**values))
                if same:
                    report.requeued += 1
                else:
                    report.replaced += 1
            elif same:
                report.already += 1
            else:
                report.conflicts += 1
    return report
