"""Inbox folders (``[[inboxes]]``): community exports dropped in a folder are imported by ``inbox run`` or ``serve``.

Each file in an inbox folder (not hidden, not in ``done/`` or ``failed/``, not modified in
the last :data:`SETTLE_SECONDS`) is imported exactly as ``lms-bridge import`` would
(:func:`lms_bridge.ingest.files.read_import_file` then :func:`lms_bridge.ingest.files.store_import`).
Only after the import has committed is the file moved:

- imported: deleted (``keep_raw = false``, the default), leaving a receipt
  ``done/<name>.json`` (counts, time, SHA-256; no personal data), or moved to ``done/``;
- not understood (:class:`~lms_bridge.errors.InputError` or
  :class:`~lms_bridge.errors.ConfigError`): moved to ``failed/`` with
  ``failed/<name>.reason.txt`` holding the one-sentence error.

A crash between the commit and the move leaves the file where it was; the next pass
imports it again, which adds nothing (the file's cursor and the statement ids make an
import idempotent). Files in ``done/`` and ``failed/`` older than ``retention_days`` are
deleted. A missing pseudonym key stops the pass before any file is touched.

This module is imported by :mod:`lms_bridge.config.settings`: keep its top-level imports light.

Usage (``lms-bridge.toml``)::

    [[inboxes]]
    path = "inbox/cop-wi-7"      # relative to this file
    community = "cop-wi-7"
    keep_raw = false
    retention_days = 30
    whatsapp_date_order = "refuse"   # or "day-first" / "month-first" for dates that read both ways
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lms_bridge.config.inbox import InboxSettings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from lms_bridge.config.settings import Settings

#: Files modified more recently than this many seconds may still be being written: left for the next pass.
SETTLE_SECONDS = 10.0
DONE, FAILED = "done", "failed"
#: The lock ``inbox run`` and the ``serve`` job take, so two passes never move the same file.
INBOX_LOCK = "inbox"
# Names browsers and copy tools give files they are still writing.
_PARTIAL_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".swp")

log = logging.getLogger(__name__)


@dataclass
class FileResult:
    """What a pass did with one file.

    Attributes:
        inbox: the inbox folder as configured.
        file: the file's name.
        result: ``imported``, ``failed`` (moved to failed/) or ``error`` (left in place).
        new: statements added to the outbox.
        detail: the error sentence, or where the file went.
    """

    inbox: str
    file: str
    result: str
    new: int = 0
    detail: str = ""


@dataclass
class InboxReport:
    """What one pass over the inboxes did.

    Attributes:
        files: one result per file handled.
        purged: files deleted from done/ and failed/ by retention.
        waiting: files left for the next pass because they were modified too recently.
    """

    files: list[FileResult] = field(default_factory=list)
    purged: int = 0
    waiting: int = 0

    @property
    def new(self) -> int:
        """Statements added to the outbox in this pass."""
        return sum(result.new for result in self.files)

    @property
    def errors(self) -> list[FileResult]:
        """Files that could not be handled and were left in place."""
        return [result for result in self.files if result.result == "error"]


def inbox_folder(settings: Settings, inbox: InboxSettings) -> Path:
    """The inbox's folder, relative paths taken from the config file's folder."""
    return settings.resolve_path(inbox.path)


def run_inboxes(
    engine: Engine,
    settings: Settings,
    *,
    now: float | None = None,
    settle_seconds: float = SETTLE_SECONDS,
    checkpoint: Callable[[], None] | None = None,
) -> InboxReport:
    """Import every settled file of every inbox, move or delete it, and apply retention.

    Args:
        engine: the state store.
        settings: the configuration (``inboxes``, pseudonym key).
        now: the current Unix time (tests).
        settle_seconds: files modified more recently are left for the next pass.
        checkpoint: called before each file; may raise to stop the pass (``serve`` shutdown).

    Returns:
        What was done, file by file.

    Raises:
        ConfigError: two inboxes share a folder, or the pseudonym key is not set while files wait.
    """
    from lms_bridge.errors import ConfigError

    now = time.time() if now is None else now
    report = InboxReport()
    folders: dict[Path, InboxSettings] = {}
    for inbox in settings.inboxes:
        folder = inbox_folder(settings, inbox)
        key = folder.resolve()
        if key in folders:
            raise ConfigError(f"[[inboxes]] {inbox.path} and {folders[key].path} are the same folder")
        folders[key] = inbox
    for inbox in settings.inboxes:
        folder = inbox_folder(settings, inbox)
        if not folder.is_dir():
            report.files.append(
                FileResult(str(inbox.path), "-", "error", detail=f"inbox folder {folder} does not exist")
            )
            continue
        report.purged += _purge(folder, inbox.retention_days, now)
        ready, waiting = _ready_files(folder, now, settle_seconds)
        report.waiting += waiting
        if ready:
            _check_key(settings)
        for path in ready:
            if checkpoint is not None:
                checkpoint()
            report.files.append(_handle(engine, settings, inbox, path, now))
    return report


def _check_key(settings: Settings) -> None:
    """A missing pseudonym key is the deployment's fault, not the file's: fail before moving anything."""
    from lms_bridge.identity.pseudonym import pseudonymizer_from_settings

    pseudonymizer_from_settings(settings)


def _ready_files(folder: Path, now: float, settle_seconds: float) -> tuple[list[Path], int]:
    ready: list[Path] = []
    waiting = 0
    for path in sorted(folder.iterdir()):
        if path.name.startswith((".", "~")) or path.name.lower().endswith(_PARTIAL_SUFFIXES):
            continue
        if path.is_symlink() or not path.is_file():
            continue  # done/, failed/ and other folders; links are not ours to move
        if now - path.stat().st_mtime < settle_seconds:
            waiting += 1
            continue
        ready.append(path)
    return ready, waiting


def _handle(engine: Engine, settings: Settings, inbox: InboxSettings, path: Path, now: float) -> FileResult:
    from lms_bridge.errors import ConfigError, DateOrderError, InputError
    from lms_bridge.ingest.files import read_import_file, store_import

    where = str(inbox.path)
    try:
        parsed = read_import_file(
            settings,
            path,
            source=inbox.source,
            community=inbox.community,
            site=inbox.site,
            day_first=inbox.whatsapp_date_order == "day-first",
            month_first=inbox.whatsapp_date_order == "month-first",
        )
        summary = store_import(engine, settings, parsed)
    except (InputError, ConfigError) as exc:
        reason = str(exc)
        if isinstance(exc, DateOrderError):  # a dropped file cannot pass --day-first: name the inbox's remedy
            reason = (
                f'{exc.what}; set whatsapp_date_order = "day-first" or "month-first" in the [[inboxes]] entry '
                f"{where} and move the file from failed/ back into the inbox, or import it with "
                "lms-bridge import --day-first or --month-first"
            )
        target = _move(path, path.parent / FAILED, (".reason.txt",), now)
        _write_atomic(target.parent / f"{target.name}.reason.txt", reason.rstrip() + "\n")
        log.warning(
            "inbox %s: %s moved to failed/: %s",
            where,
            path.name,
            reason,
            extra={"inbox": where, "file": path.name, "status": "failed"},
        )
        return FileResult(where, path.name, "failed", detail=reason)
    except Exception as exc:  # noqa: BLE001 - one file's trouble must not stop the others; it stays for the next pass
        log.exception(
            "inbox %s: %s left in place: %s",
            where,
            path.name,
            exc.__class__.__name__,
            extra={"inbox": where, "file": path.name, "status": "error"},
        )
        return FileResult(where, path.name, "error", detail=f"unexpected {exc.__class__.__name__}: {exc}")
    # The import has committed: from here on a crash only means the file is imported again (adding nothing).
    counts = summary.report.as_dict()
    receipt: dict[str, Any] = {
        "file": path.name,
        "sha256": parsed.stream.removeprefix("file:"),
        "format": parsed.format,
        "site": parsed.site,
        "community": parsed.community,
        "imported_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "records": parsed.records,
        "skipped": parsed.skipped,
        "activities": len(parsed.items),
        "pending": summary.pending,
        "counts": counts,
        "people": summary.people,
        "matched": summary.matched,
        "raw": "kept" if inbox.keep_raw else "deleted",
    }
    done = path.parent / DONE
    name = _free_name(done, path.name, (".json",))
    receipt_path = done / f"{name}.json"
    _write_atomic(receipt_path, json.dumps(receipt, indent=2, sort_keys=True) + "\n")
    if inbox.keep_raw:
        _move(path, done, (".json",), now, name=name)
        detail = f"moved to {DONE}/{name}"
    else:
        path.unlink()
        detail = f"deleted; receipt {DONE}/{receipt_path.name}"
    log.info(
        "inbox %s: %s imported (%d new): %s",
        where,
        path.name,
        summary.report.new,
        detail,
        extra={"inbox": where, "file": path.name, "counts": counts, "status": "ok"},
    )
    return FileResult(where, path.name, "imported", new=summary.report.new, detail=detail)


def _free_name(folder: Path, name: str, companions: tuple[str, ...]) -> str:
    """``name``, or ``stem-2.ext``... when it or one of its companion files is taken in ``folder``."""
    stem, dot, suffix = name.partition(".") if not name.startswith(".") else (name, "", "")
    candidate, number = name, 1
    while (folder / candidate).exists() or any((folder / f"{candidate}{c}").exists() for c in companions):
        number += 1
        candidate = f"{stem}-{number}{dot}{suffix}"
    return candidate


def _move(path: Path, folder: Path, companions: tuple[str, ...], now: float, *, name: str | None = None) -> Path:
    """Move ``path`` into ``folder`` under a free name; its mtime becomes now (retention counts from the move)."""
    folder.mkdir(exist_ok=True)
    target = folder / (name or _free_name(folder, path.name, companions))
    os.replace(path, target)
    os.utime(target, (now, now))
    return target


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _purge(folder: Path, retention_days: float, now: float) -> int:
    """Delete files in done/ and failed/ last modified more than ``retention_days`` ago."""
    limit = now - retention_days * 86400
    purged = 0
    for sub in (DONE, FAILED):
        kept = folder / sub
        if not kept.is_dir():
            continue
        for path in kept.iterdir():
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < limit:
                path.unlink()
                purged += 1
    return purged
