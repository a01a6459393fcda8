"""Issue 20, the inbox: no file outside its folder is read, written or deleted; no upload keeps ``serve`` busy.

Each test is a finding of the issue that failed on the code before the fix (noted per test). The passes
run in this process (:func:`lms_bridge.ingest.inbox.run_inboxes`, what ``inbox run`` and the ``serve``
job call) on a real SQLite state store and real folders; ``now`` is moved instead of sleeping.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.settings import Settings, load_settings
from lms_bridge.ingest import files as imports
from lms_bridge.ingest import inbox as inbox_core
from lms_bridge.ingest.inbox import InboxReport, run_inboxes
from lms_bridge.operator.doctor import run_checks
from lms_bridge.store.models import OutboxRow
from tests.fixtures.data import COMMUNITY_EXPORTS

pytestmark = pytest.mark.proof

KEY = "inbox-proof-key-0123456789abcdef"
WHATSAPP = "whatsapp_android_id_24h.txt"
DAY = 86400.0
#: Imports of one file that may end unexpectedly before it is set aside (README, "Inbox folders").
MAX_ATTEMPTS = 3


class Inbox:
    """A deployment with one inbox ``inbox/`` and its state store; passes use ``settle`` seconds."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, *, settle: float = 0) -> None:
        self.settle = settle
        monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", KEY)
        self.root = root
        self.folder = root / "inbox"
        self.folder.mkdir()
        config = root / "lms-bridge.toml"
        config.write_text(
            f'[state]\nurl = "sqlite:///{root / "state.db"}"\n'
            '[[inboxes]]\npath = "inbox"\ncommunity = "cop-wi-7"\nretention_days = 7\n'
        )
        self.settings: Settings = load_settings(config)
        self.engine: Engine = store.open_engine(self.settings.state.url, root)
        self.now = time.time() + 60  # every file dropped below is older than the settle time

    def drop(self, name: str = WHATSAPP, *, target: str | None = None) -> Path:
        path = self.folder / (target or name)
        shutil.copyfile(COMMUNITY_EXPORTS / name, path)
        return path

    def run(self) -> InboxReport:
        report = run_inboxes(self.engine, self.settings, now=self.now, settle_seconds=self.settle)
        self.now += 600  # the next pass, ten minutes later (the serve schedule)
        return report

    def outbox(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(OutboxRow)) or 0


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Inbox]:
    return lambda **options: Inbox(tmp_path, monkeypatch, **options)


def _old(path: Path, days: float = 30) -> None:
    then = time.time() - days * DAY
    os.utime(path, (then, then), follow_symlinks=False)


def _victim(root: Path) -> Path:
    """A folder outside the inbox with an old file: what a link in an inbox must never reach."""
    victim = root / "elsewhere"
    victim.mkdir()
    (victim / "payroll.xlsx").write_text("not the inbox's")
    _old(victim / "payroll.xlsx")
    return victim


@pytest.mark.parametrize("sub", ["done", "failed"])
def test_a_linked_done_or_failed_folder_stops_the_inbox_and_nothing_outside_is_touched(inbox, tmp_path, sub):
    # Before: every pass deleted the victim's files older than retention_days and wrote receipts there.
    box = inbox()
    victim = _victim(tmp_path)
    (box.folder / sub).symlink_to(victim)
    box.drop()
    before = sorted(p.name for p in victim.iterdir())

    report = box.run()

    assert sorted(p.name for p in victim.iterdir()) == before == ["payroll.xlsx"]
    assert [r.result for r in report.files] == ["error"]
    assert "symbolic link" in report.files[0].detail and f"rm {box.folder / sub}" in report.files[0].detail
    assert (box.folder / WHATSAPP).exists() and box.outbox() == 0  # nothing imported, nothing moved
    check = next(c for c in run_checks(box.settings, tmp_path) if c.name == "inbox inbox")
    assert not check.ok and "symbolic link" in check.detail and check.fix.startswith("remove the link")


def test_a_linked_inbox_folder_is_refused(inbox, tmp_path):
    box = inbox()
    real = tmp_path / "real-inbox"
    box.folder.rename(real)
    box.folder.symlink_to(real)
    shutil.copyfile(COMMUNITY_EXPORTS / WHATSAPP, real / WHATSAPP)

    report = box.run()

    assert [r.result for r in report.files] == ["error"] and "symbolic link" in report.files[0].detail
    assert (real / WHATSAPP).exists() and box.outbox() == 0
    check = next(c for c in run_checks(box.settings, tmp_path) if c.name == "inbox inbox")
    assert not check.ok and str(real) in check.fix


def test_a_dropped_link_or_pipe_is_set_aside_unread(inbox, tmp_path):
    # Before: links were skipped in silence, on every pass; a named pipe was opened and hung the pass.
    box = inbox()
    secret = tmp_path / "secrets.env"
    secret.write_text("LMS_BRIDGE_LRS_PASSWORD=hunter2\n")
    (box.folder / "chat.txt").symlink_to(secret)
    os.mkfifo(box.folder / "pipe.txt")
    box.drop()

    report = box.run()

    by_file = {r.file: r for r in report.files}
    assert by_file["chat.txt"].result == by_file["pipe.txt"].result == "failed"
    assert by_file[WHATSAPP].result == "imported"
    failed = box.folder / "failed"
    assert (failed / "chat.txt").is_symlink() and secret.read_text() == "LMS_BRIDGE_LRS_PASSWORD=hunter2\n"
    assert "symbolic link" in (failed / "chat.txt.reason.txt").read_text()
    assert "not a regular file" in (failed / "pipe.txt.reason.txt").read_text()
    assert not (box.folder / "chat.txt").exists()


def test_retention_deletes_only_regular_files_directly_in_done_and_failed(inbox, tmp_path):
    # A guard (main already skipped links inside failed/): links and sub-folders there are never touched.
    box = inbox()
    victim = _victim(tmp_path)
    failed = box.folder / "failed"
    failed.mkdir()
    (failed / "old.txt").write_text("x")
    _old(failed / "old.txt")
    (failed / "link.txt").symlink_to(victim / "payroll.xlsx")
    _old(failed / "link.txt")
    (failed / "nested").mkdir()
    (failed / "nested" / "old.txt").write_text("x")
    _old(failed / "nested" / "old.txt")

    report = box.run()

    assert report.purged == 1
    assert sorted(p.name for p in failed.iterdir()) == ["link.txt", "nested"]
    assert (victim / "payroll.xlsx").exists() and (failed / "nested" / "old.txt").exists()


def test_an_upload_that_pauses_is_not_imported_in_part(inbox):
    # Before: a file unchanged for 10 s was imported and deleted, even when its upload had only paused.
    box = inbox(settle=10)
    whole = (COMMUNITY_EXPORTS / WHATSAPP).read_bytes()
    cut = whole.rindex(b"\n", 0, len(whole) // 2) + 1
    path = box.folder / WHATSAPP
    path.write_bytes(whole[:cut])  # the upload pauses here, longer than the settle time

    first = box.run()
    assert first.waiting == 1 and not first.files and path.read_bytes() == whole[:cut] and box.outbox() == 0

    with path.open("ab") as handle:  # the upload goes on before the next pass
        handle.write(whole[cut:])
    second = box.run()
    assert second.waiting == 1 and not second.files and box.outbox() == 0  # changed since: seen once more

    third = box.run()
    assert [r.result for r in third.files] == ["imported"] and not path.exists()
    # Every message of the whole file, not just the first half's.
    expected = imports.read_import_file(box.settings, COMMUNITY_EXPORTS / WHATSAPP, community="cop-wi-7")
    assert box.outbox() == len(expected.items) > 0


def test_a_file_that_keeps_failing_unexpectedly_is_set_aside(inbox, monkeypatch):
    # Before: it stayed in the inbox and was tried again on every pass, for ever (a RecursionError every
    # ten minutes in the issue). Imports that never end (the process killed) count as attempts too.
    assert getattr(inbox_core, "MAX_ATTEMPTS", None) == MAX_ATTEMPTS
    box = inbox()
    box.drop(target="bomb.txt")
    box.drop()
    calls: list[str] = []
    real = imports.read_import_file

    class Killed(BaseException):
        """What the import sees of a kill -9 or an out-of-memory kill: it never returns."""

    def failing(settings, path, **options):  # type: ignore[no-untyped-def]
        calls.append(path.name)
        if path.name != "bomb.txt":
            return real(settings, path, **options)
        if len(calls) % 2:
            raise RecursionError("maximum recursion depth exceeded")
        raise Killed

    monkeypatch.setattr(imports, "read_import_file", failing)
    results = []
    for _ in range(MAX_ATTEMPTS):
        try:
            report = box.run()
            results.append(next(r for r in report.files if r.file == "bomb.txt").result)
        except Killed:
            results.append("killed")
    assert "error" in results and "killed" in results and (box.folder / "bomb.txt").exists()

    report = box.run()
    result = next(r for r in report.files if r.file == "bomb.txt")
    assert result.result == "failed" and f"{MAX_ATTEMPTS} attempts" in result.detail
    assert calls.count("bomb.txt") == MAX_ATTEMPTS  # the last pass did not try it again
    assert not (box.folder / "bomb.txt").exists()
    assert (box.folder / "failed" / "bomb.txt").exists()
    assert box.run().files == []  # the next pass has nothing left to do
    assert box.outbox() > 0 and not (box.folder / WHATSAPP).exists()  # the other file was imported meanwhile


def test_receipts_reasons_and_failed_files_are_owner_only(inbox):
    # Before: done/, failed/, receipts and the raw files moved to failed/ kept the umask's 0755/0644.
    old = os.umask(0o022)
    try:
        box = inbox()
        box.drop()
        bad = box.folder / "notes.txt"
        bad.write_text("not a chat\n")
        bad.chmod(0o644)
        box.run()
    finally:
        os.umask(old)
    done, failed = box.folder / "done", box.folder / "failed"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (done, failed, *done.iterdir(), *failed.iterdir())}
    assert modes == {
        "done": 0o700,
        "failed": 0o700,
        f"{WHATSAPP}.json": 0o600,
        "notes.txt": 0o600,
        "notes.txt.reason.txt": 0o600,
    }
