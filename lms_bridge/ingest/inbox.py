"""Inbox folders (``[[inboxes]]``): community exports dropped in a folder are imported by ``inbox run`` or ``serve``.

Each file in an inbox folder (not hidden, not named as a partial upload, not in ``done/`` or
``failed/``) is imported exactly as ``lms-bridge import`` would
(:func:`lms_bridge.ingest.files.read_import_file` then :func:`lms_bridge.ingest.files.store_import`)
once it has settled: it was last modified ``settle_seconds`` ago or more and the pass before saw
the same size, modification time and inode (remembered in the state store, table ``inbox_files``),
so an upload that pauses is not imported in part. Only after the import has committed is the file moved:

- imported: deleted (``keep_raw = false``, the default), leaving a receipt
  ``done/<name>.json`` (counts, time, SHA-256; no personal data), or moved to ``done/``;
- not understood (:class:`~lms_bridge.errors.InputError` or
  :class:`~lms_bridge.errors.ConfigError`): moved to ``failed/`` with
  ``failed/<name>.reason.txt`` holding the one-sentence error.

- an unexpected error (a bug, ``RecursionError``, ``MemoryError``): left in place and tried again
  by the next pass, at most :data:`MAX_ATTEMPTS` times in all (an attempt is counted before the
  import starts, so a process killed while importing counts too); then moved to ``failed/``.

A crash between the commit and the move leaves the file where it was; the next pass
imports it again, which adds nothing (the file's cursor and the statement ids make an
import idempotent). Regular files directly in ``done/`` and ``failed/`` older than
``retention_days`` are deleted. A missing pseudonym key stops the pass before any file is touched.

Links are never followed (people who may drop files in an inbox must not reach anything else):
an inbox folder, ``done/`` or ``failed/`` that is a symbolic link (or not a folder) stops that
inbox with one sentence (``doctor`` says it too); everything is opened relative to the inbox's
own descriptor with ``O_NOFOLLOW``; a link or other non-regular file dropped in the inbox is
moved, as itself, to ``failed/`` with its reason, never read. Receipts, reasons and files moved
to ``failed/`` are owner-only (0600, folders 0700).

This module is imported by :mod:`lms_bridge.config.settings`: keep its top-level imports light.

Usage (``lms-bridge.toml``)::

    [[inboxes]]
    path = "inbox/cop-wi-7"      # relative to this file
    community = "cop-wi-7"
    keep_raw = false
    retention_days = 30
    settle_seconds = 10              # unchanged this long, and over two passes, before a file is read
    whatsapp_date_order = "refuse"   # or "day-first" / "month-first" for dates that read both ways
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
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
    from lms_bridge.store.inbox_files import Sighting

#: Files modified more recently than this many seconds may still be being written: left for the next pass.
SETTLE_SECONDS = 10.0
#: Imports of one file that may end in an unexpected error (or a killed process) before it goes to failed/.
MAX_ATTEMPTS = 3
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
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
    settle_seconds: float | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> InboxReport:
    """Import every settled file of every inbox, move or delete it, and apply retention.

    Args:
        engine: the state store.
        settings: the configuration (``inboxes``, pseudonym key).
        now: the current Unix time (tests).
        settle_seconds: overrides each inbox's ``settle_seconds`` (tests).
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
        problem = folder_problem(folder)
        if problem is not None:
            report.files.append(FileResult(str(inbox.path), "-", "error", detail=problem))
            log.error("inbox %s: %s", inbox.path, problem, extra={"inbox": str(inbox.path), "status": "error"})
            continue
        try:
            with _Folder(folder) as handle:
                _run_one(engine, settings, inbox, handle, report, now, settle_seconds, checkpoint)
        except _Unsafe as exc:
            report.files.append(FileResult(str(inbox.path), "-", "error", detail=str(exc)))
            log.error("inbox %s: %s", inbox.path, exc, extra={"inbox": str(inbox.path), "status": "error"})
    return report


def folder_problem(folder: Path) -> str | None:
    """Why an inbox folder cannot be used safely, with the fix (one sentence), or None."""
    found = check_folder(folder)
    return None if found is None else f"{found[0]}; {found[1]}"


def check_folder(folder: Path) -> tuple[str, str] | None:
    """``(problem, fix)`` when an inbox folder cannot be used safely, else None (``doctor`` too).

    The folder, its ``done/`` and its ``failed/`` must be real folders: a symbolic link would
    let whoever drops files there have receipts written and old files deleted elsewhere.
    """
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return f"inbox folder {folder} does not exist", f"mkdir -m 700 {folder}"
    except OSError as exc:
        return f"inbox folder {folder} cannot be read ({exc.strerror})", "give lms-bridge's user access to it"
    if stat.S_ISLNK(info.st_mode):
        return (
            f"inbox folder {folder} is a symbolic link, which lms-bridge does not follow",
            f"set the [[inboxes]] path to the real folder ({os.path.realpath(folder)})",
        )
    if not stat.S_ISDIR(info.st_mode):
        return f"inbox folder {folder} is not a folder", "set the [[inboxes]] path to a folder"
    for sub in (DONE, FAILED):
        try:
            info = os.lstat(folder / sub)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f"{folder / sub} cannot be read ({exc.strerror})", "give lms-bridge's user access to it"
        if stat.S_ISLNK(info.st_mode):
            return (
                f"{folder / sub} is a symbolic link, which lms-bridge does not follow",
                f"remove the link (rm {folder / sub}; lms-bridge makes {sub}/ itself) and check where it pointed",
            )
        if not stat.S_ISDIR(info.st_mode):
            return f"{folder / sub} is not a folder", f"move it away (lms-bridge makes {sub}/ itself)"
    return None


class _Unsafe(Exception):
    """An inbox folder turned out not to be a real folder while the pass ran (one sentence)."""


class _Folder:
    """An inbox folder opened with ``O_NOFOLLOW``; ``done/`` and ``failed/`` opened (made 0700) on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1
        self._subs: dict[str, int] = {}

    def __enter__(self) -> _Folder:
        try:
            self.fd = os.open(self.path, _DIR_FLAGS)
        except OSError as exc:
            raise _Unsafe(folder_problem(self.path) or f"inbox folder {self.path} cannot be opened") from exc
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._subs.values():
            os.close(fd)
        os.close(self.fd)

    def sub(self, name: str) -> int:
        """The descriptor of ``done/`` or ``failed/``, made (0700) when missing."""
        fd = self.existing_sub(name, create=True)
        if fd is None:  # pragma: no cover - made above
            raise _Unsafe(f"{self.path / name} cannot be made")
        return fd

    def existing_sub(self, name: str, *, create: bool = False) -> int | None:
        """The descriptor of ``done/`` or ``failed/``, or None when it does not exist."""
        if name in self._subs:
            return self._subs[name]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            if not create:
                return None
            try:
                os.mkdir(name, 0o700, dir_fd=self.fd)
            except FileExistsError:
                pass
            fd = self._open_sub(name)
        except OSError as exc:
            raise _Unsafe(folder_problem(self.path) or f"{self.path / name} is not a real folder") from exc
        self._subs[name] = fd
        return fd

    def _open_sub(self, name: str) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise _Unsafe(folder_problem(self.path) or f"{self.path / name} is not a real folder") from exc


@dataclass
class _Entry:
    """A file of the inbox as listed: its name and what ``lstat`` said."""

    name: str
    info: os.stat_result

    @property
    def sighting(self) -> Sighting:
        """What the listing saw, to compare with the next pass."""
        from lms_bridge.store.inbox_files import Sighting

        return Sighting(self.info.st_size, self.info.st_mtime_ns, self.info.st_ino)


def _run_one(
    engine: Engine,
    settings: Settings,
    inbox: InboxSettings,
    folder: _Folder,
    report: InboxReport,
    now: float,
    settle_override: float | None,
    checkpoint: Callable[[], None] | None,
) -> None:
    from lms_bridge.store.inbox_files import file_key, seen_before

    settle = inbox.settle_seconds if settle_override is None else settle_override
    report.purged += _purge(folder, inbox.retention_days, now)
    regular, refused = _list(folder)
    if regular:
        _check_key(settings)  # before anything is moved
    for entry, reason in refused:
        report.files.append(_refuse(folder, inbox, entry, reason, now))
    when = datetime.fromtimestamp(now, UTC)
    folder_id = str(folder.path.resolve())
    for entry in regular:
        if now - entry.info.st_mtime < settle:
            report.waiting += 1
            continue
        if settle > 0 and not seen_before(engine, file_key(folder_id, entry.name), entry.sighting, when):
            report.waiting += 1  # seen for the first time, or changed since: the next pass decides
            continue
        if checkpoint is not None:
            checkpoint()
        report.files.append(_handle(engine, settings, inbox, folder, entry, now))


def _check_key(settings: Settings) -> None:
    """A missing pseudonym key is the deployment's fault, not the file's: fail before moving anything."""
    from lms_bridge.identity.pseudonym import pseudonymizer_from_settings

    pseudonymizer_from_settings(settings)


def _list(folder: _Folder) -> tuple[list[_Entry], list[tuple[_Entry, str]]]:
    """The inbox's regular files, and the entries refused (links, pipes, devices) with why."""
    regular: list[_Entry] = []
    refused: list[tuple[_Entry, str]] = []
    with os.scandir(folder.fd) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        if name.startswith((".", "~")) or name.lower().endswith(_PARTIAL_SUFFIXES):
            continue
        try:
            info = os.stat(name, dir_fd=folder.fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone since the listing
        if stat.S_ISDIR(info.st_mode):
            continue  # done/, failed/ and other folders
        entry = _Entry(name, info)
        if stat.S_ISREG(info.st_mode):
            regular.append(entry)
        elif stat.S_ISLNK(info.st_mode):
            refused.append(
                (entry, "is a symbolic link, which lms-bridge does not follow; put the file itself in the inbox")
            )
        else:
            refused.append((entry, "is not a regular file (a pipe, socket or device); put an export file in the inbox"))
    return regular, refused


def _refuse(folder: _Folder, inbox: InboxSettings, entry: _Entry, reason: str, now: float) -> FileResult:
    """Move a link or special file, as itself and unread, to failed/ with its reason."""
    where = str(inbox.path)
    sentence = f"{entry.name} {reason}"
    failed = folder.sub(FAILED)
    target = _move(folder, entry.name, failed, (".reason.txt",), now, fd=None)
    _write_atomic(failed, f"{target}.reason.txt", sentence + "\n")
    log.warning(
        "inbox %s: %s moved to failed/: %s",
        where,
        entry.name,
        reason,
        extra={"inbox": where, "file": entry.name, "status": "failed"},
    )
    return FileResult(where, entry.name, "failed", detail=sentence)


def _open_file(folder: _Folder, entry: _Entry) -> int | None:
    """Open the listed file without following a link; None when it was replaced since the listing."""
    try:
        fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder.fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENXIO, errno.EMLINK):
            return None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != (entry.info.st_dev, entry.info.st_ino):
        os.close(fd)
        return None
    return fd


def _same_file(folder: _Folder, name: str, fd: int) -> bool:
    """Whether ``name`` in the inbox is still the file open as ``fd`` (not replaced, not a link now)."""
    try:
        info = os.stat(name, dir_fd=folder.fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) == (held.st_dev, held.st_ino)


def _handle(
    engine: Engine, settings: Settings, inbox: InboxSettings, folder: _Folder, entry: _Entry, now: float
) -> FileResult:
    fd = _open_file(folder, entry)
    if fd is None:
        return FileResult(
            str(inbox.path), entry.name, "error", detail="replaced while the pass ran; left for the next pass"
        )
    try:
        return _import(engine, settings, inbox, folder, entry, fd, now)
    finally:
        os.close(fd)


def _import(
    engine: Engine, settings: Settings, inbox: InboxSettings, folder: _Folder, entry: _Entry, fd: int, now: float
) -> FileResult:
    from lms_bridge.errors import ConfigError, DateOrderError, InputError
    from lms_bridge.ingest.files import read_import_file, store_import
    from lms_bridge.store.inbox_files import attempt_failed, file_key, finished, last_error, start_attempt

    where = str(inbox.path)
    path = folder.path / entry.name
    key = file_key(str(folder.path.resolve()), entry.name)
    attempts = start_attempt(engine, key, entry.sighting, datetime.fromtimestamp(now, UTC))
    if attempts > MAX_ATTEMPTS:
        error = last_error(engine, key) or "the process ended while importing it"
        reason = (
            f"{entry.name} could not be imported: {MAX_ATTEMPTS} attempts ended in an unexpected error "
            f"({error}); it was set aside so that it does not hold up the other work; "
            "import it by hand with lms-bridge import --debug to see why"
        )
        _fail(folder, entry.name, fd, reason, now)
        finished(engine, key)
        log.error(
            "inbox %s: %s moved to failed/ after %d unexpected failures",
            where,
            entry.name,
            MAX_ATTEMPTS,
            extra={"inbox": where, "file": entry.name, "status": "failed"},
        )
        return FileResult(where, entry.name, "failed", detail=reason)
    try:
        if not _same_file(folder, entry.name, fd):
            finished(engine, key)
            return FileResult(where, entry.name, "error", detail="replaced while the pass ran; left for the next pass")
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
        _fail(folder, entry.name, fd, reason, now)
        finished(engine, key)
        log.warning(
            "inbox %s: %s moved to failed/: %s",
            where,
            entry.name,
            reason,
            extra={"inbox": where, "file": entry.name, "status": "failed"},
        )
        return FileResult(where, entry.name, "failed", detail=reason)
    except Exception as exc:  # noqa: BLE001 - one file's trouble must not stop the others; it stays for the next pass
        attempt_failed(engine, key, exc.__class__.__name__)
        log.exception(
            "inbox %s: %s left in place (attempt %d of %d): %s",
            where,
            entry.name,
            attempts,
            MAX_ATTEMPTS,
            exc.__class__.__name__,
            extra={"inbox": where, "file": entry.name, "status": "error"},
        )
        return FileResult(
            where,
            entry.name,
            "error",
            detail=f"unexpected {exc.__class__.__name__} (attempt {attempts} of {MAX_ATTEMPTS}): {exc}",
        )
    # The import has committed: from here on a crash only means the file is imported again (adding nothing).
    counts = summary.report.as_dict()
    receipt: dict[str, Any] = {
        "file": entry.name,
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
    done = folder.sub(DONE)
    name = _free_name(done, entry.name, (".json",))
    receipt_name = f"{name}.json"
    _write_atomic(done, receipt_name, json.dumps(receipt, indent=2, sort_keys=True) + "\n")
    if inbox.keep_raw:
        _move(folder, entry.name, done, (".json",), now, fd=fd, target_name=name)
        detail = f"moved to {DONE}/{name}"
    else:
        if _same_file(folder, entry.name, fd):
            os.unlink(entry.name, dir_fd=folder.fd)
        detail = f"deleted; receipt {DONE}/{receipt_name}"
    finished(engine, key)
    log.info(
        "inbox %s: %s imported (%d new): %s",
        where,
        entry.name,
        summary.report.new,
        detail,
        extra={"inbox": where, "file": entry.name, "counts": counts, "status": "ok"},
    )
    return FileResult(where, entry.name, "imported", new=summary.report.new, detail=detail)


def _fail(folder: _Folder, name: str, fd: int, reason: str, now: float) -> None:
    failed = folder.sub(FAILED)
    target = _move(folder, name, failed, (".reason.txt",), now, fd=fd)
    _write_atomic(failed, f"{target}.reason.txt", reason.rstrip() + "\n")


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _free_name(dir_fd: int, name: str, companions: tuple[str, ...]) -> str:
    """``name``, or ``stem-2.ext``... when it or one of its companion files is taken in the folder."""
    stem, dot, suffix = name.partition(".") if not name.startswith(".") else (name, "", "")
    candidate, number = name, 1
    while _exists(dir_fd, candidate) or any(_exists(dir_fd, f"{candidate}{c}") for c in companions):
        number += 1
        candidate = f"{stem}-{number}{dot}{suffix}"
    return candidate


def _move(
    folder: _Folder,
    name: str,
    target_fd: int,
    companions: tuple[str, ...],
    now: float,
    *,
    fd: int | None,
    target_name: str | None = None,
) -> str:
    """Move ``name`` (the entry itself, never what a link points to) into the folder of ``target_fd``.

    Its mtime becomes now (retention counts from the move); a regular file (open as ``fd``) becomes 0600.
    """
    target = target_name or _free_name(target_fd, name, companions)
    os.replace(name, target, src_dir_fd=folder.fd, dst_dir_fd=target_fd)
    if fd is not None:
        os.fchmod(fd, 0o600)
        os.utime(fd, (now, now))
    return target


def _write_atomic(dir_fd: int, name: str, text: str) -> None:
    """Write ``name`` in the folder of ``dir_fd``, owner-only, through a fresh file (never through a link)."""
    partial = f".{name}.partial"
    try:
        os.unlink(partial, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _purge(folder: _Folder, retention_days: float, now: float) -> int:
    """Delete the regular files directly in done/ and failed/ last modified more than ``retention_days`` ago.

    Links, folders and anything else there are left alone: never deleted, never followed.
    """
    limit = now - retention_days * 86400
    purged = 0
    for sub in (DONE, FAILED):
        dir_fd = folder.existing_sub(sub)
        if dir_fd is None:
            continue
        with os.scandir(dir_fd) as entries:
            names = [entry.name for entry in entries]
        for name in names:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_mtime < limit:
                os.unlink(name, dir_fd=dir_fd)
                purged += 1
    return purged
