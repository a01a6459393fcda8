"""Inbox folders (issues 6 and 8): ``lms-bridge inbox run`` as a real subprocess, and the ``serve`` job.

Sample community exports (tests/data/community_exports) are copied into an inbox under ``tmp_path``; the
state store is real SQLite (PostgreSQL too for the main path); no LRS is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.inbox import INBOX_FORMATS
from lms_bridge.config.serve import ServeSettings
from lms_bridge.config.settings import Settings, load_settings
from lms_bridge.errors import ConfigError
from lms_bridge.ingest import files as imports
from lms_bridge.runtime.scheduler import Service
from lms_bridge.store.models import Evidence, OutboxRow
from tests.fixtures.data import COMMUNITY_EXPORTS
from tests.fixtures.deployment import Deployment

KEY_ENV = "LMS_BRIDGE_PSEUDONYM_KEY"
KEY = "inbox-test-key-0123456789abcdef"
NO_LRS = "http://127.0.0.1:9/xAPI/"
WHATSAPP = "whatsapp_android_id_24h.txt"
TELEGRAM = "telegram_single_chat.json"
DAY = 86400


def inbox_toml(path: str = "inbox", **options: object) -> str:
    """An inbox entry; ``settle_seconds = 0`` (import at first sight) unless given: the two-pass wait is
    tested in tests/proof/test_inbox_hardening.py."""
    options.setdefault("settle_seconds", 0)
    lines = ["", "[[inboxes]]", f'path = "{path}"', 'community = "cop-wi-7"']
    for key, value in options.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def deploy(make_deployment: Callable[..., Deployment], tmp_path: Path) -> Callable[..., Deployment]:
    """``deploy(state_url, extra_toml, key=KEY)``: a deployment with inboxes and the pseudonym key."""

    def build(state_url: str, extra_toml: str, *, key: str | None = KEY) -> Deployment:
        deployment = make_deployment(state_url, NO_LRS, "unused", extra_toml=extra_toml)
        if key is not None:
            deployment.env[KEY_ENV] = key
        return deployment

    return build


def drop(folder: Path, name: str, *, target: str | None = None, age: float = 60) -> Path:
    """Copy a sample export into the inbox, last modified ``age`` seconds ago."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (target or name)
    shutil.copyfile(COMMUNITY_EXPORTS / name, path)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def outbox_rows(state_url: str) -> int:
    with Session(store.open_engine(state_url, None)) as session:
        return session.scalar(select(func.count()).select_from(OutboxRow)) or 0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_chat_exports_are_imported_deleted_with_receipts_and_a_second_run_does_nothing(tmp_path, state_url, deploy):
    deployment = deploy(state_url, inbox_toml())
    inbox = tmp_path / "inbox"
    digests = {name: sha256(drop(inbox, name)) for name in (WHATSAPP, TELEGRAM)}

    result = deployment.run("inbox", "run", check=True)
    assert "imported" in result.stdout and WHATSAPP in result.stdout and TELEGRAM in result.stdout
    assert sorted(p.name for p in inbox.iterdir()) == ["done"]  # the raw exports are gone
    receipts = {p.name: json.loads(p.read_text()) for p in (inbox / "done").iterdir()}
    assert set(receipts) == {f"{WHATSAPP}.json", f"{TELEGRAM}.json"}
    total = 0
    for name, digest in digests.items():
        receipt = receipts[f"{name}.json"]
        assert receipt["sha256"] == digest and receipt["raw"] == "deleted" and receipt["community"] == "cop-wi-7"
        assert receipt["counts"]["new"] > 0 and receipt["imported_at"]
        total += receipt["counts"]["new"]
    assert outbox_rows(state_url) == total
    text = " ".join((inbox / "done" / name).read_text() for name in receipts)
    assert "+62" not in text and "0811" not in text  # no phone numbers (nor message text: only counts)

    again = deployment.run("inbox", "run", check=True)
    assert "0 files handled, 0 new statements" in again.stdout
    assert outbox_rows(state_url) == total
    assert sorted(p.name for p in (inbox / "done").iterdir()) == sorted(receipts)

    # The same file through `lms-bridge import`: the inbox import was the same import.
    manual = drop(tmp_path / "elsewhere", WHATSAPP)
    repeat = deployment.run("import", str(manual), "--community", "cop-wi-7", check=True)
    assert "nothing new (already imported)" in repeat.stdout


def test_keep_raw_moves_the_export_to_done(tmp_path, deploy):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    deployment = deploy(state_url, inbox_toml(keep_raw=True))
    inbox = tmp_path / "inbox"
    original = drop(inbox, TELEGRAM).read_bytes()

    deployment.run("inbox", "run", check=True)
    done = inbox / "done"
    assert not (inbox / TELEGRAM).exists()
    assert (done / TELEGRAM).read_bytes() == original
    assert json.loads((done / f"{TELEGRAM}.json").read_text())["raw"] == "kept"
    assert time.time() - (done / TELEGRAM).stat().st_mtime < 60  # retention counts from the move

    # A later export of the same name does not overwrite the kept one.
    drop(inbox, TELEGRAM)
    deployment.run("inbox", "run", check=True)
    assert sorted(p.name for p in done.iterdir()) == sorted(
        [TELEGRAM, f"{TELEGRAM}.json", "telegram_single_chat-2.json", "telegram_single_chat-2.json.json"]
    )


def test_a_malformed_file_goes_to_failed_with_its_reason_and_a_fresh_file_waits(tmp_path, deploy):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    deployment = deploy(state_url, inbox_toml(settle_seconds=10))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    bad = inbox / "chat.txt"
    bad.write_text("this is not a chat\nat all\n", encoding="utf-8")
    os.utime(bad, (time.time() - 60, time.time() - 60))
    drop(inbox, WHATSAPP, age=0)  # still being written
    (inbox / ".hidden.txt").write_text("ignored")

    deployment.run("inbox", "run", check=True)  # the first pass sees chat.txt; the second imports it
    result = deployment.run("inbox", "run", check=True)
    assert "failed" in result.stdout and "1 waiting to settle" in result.stdout
    failed = inbox / "failed"
    assert (failed / "chat.txt").read_text() == "this is not a chat\nat all\n"
    reason = (failed / "chat.txt.reason.txt").read_text().strip().splitlines()
    assert len(reason) == 1 and "not a WhatsApp chat export" in reason[0]
    assert outbox_rows(state_url) == 0
    assert (inbox / WHATSAPP).exists() and (inbox / ".hidden.txt").exists()


def test_dates_that_read_both_ways_fail_by_default_and_the_inbox_setting_decides(tmp_path, deploy):
    # A dropped file cannot pass --day-first/--month-first: by default it is refused, the reason naming
    # the inbox's setting; an inbox that sets whatsapp_date_order reads it that way.
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    name = "whatsapp_ambiguous_dates.txt"  # 01/02/24 08.00 then 02/03/24 09.00: in time order both ways
    second = inbox_toml("inbox-md", whatsapp_date_order="month-first").replace("cop-wi-7", "cop-md")
    deployment = deploy(state_url, inbox_toml() + second)
    drop(tmp_path / "inbox", name)
    drop(tmp_path / "inbox-md", name)

    result = deployment.run("inbox", "run", check=True)
    assert "failed" in result.stdout and "imported" in result.stdout
    failed = tmp_path / "inbox" / "failed"
    assert sorted(p.name for p in failed.iterdir()) == [name, f"{name}.reason.txt"]
    assert (failed / f"{name}.reason.txt").read_text() == (
        f"whatsapp export {name}: every date reads both as day/month and as month/day and the order of the "
        "messages does not tell which (line 1: 01/02/24 could be 1 February or 2 January); "
        'set whatsapp_date_order = "day-first" or "month-first" in the [[inboxes]] entry inbox and move the file '
        "from failed/ back into the inbox, or import it with lms-bridge import --day-first or --month-first\n"
    )
    assert json.loads((tmp_path / "inbox-md" / "done" / f"{name}.json").read_text())["counts"]["new"] == 2
    assert outbox_rows(state_url) == 2  # only the month-first inbox's two messages
    with Session(store.open_engine(state_url, None)) as session:
        times = sorted(session.scalars(select(Evidence.occurred_at).where(Evidence.site_id == "cop-md")))
        assert session.scalar(select(func.count()).select_from(Evidence).where(Evidence.site_id == "cop-wi-7")) == 0
    wib = timedelta(hours=7)
    assert times == [datetime(2024, 1, 2, 8, tzinfo=UTC) - wib, datetime(2024, 2, 3, 9, tzinfo=UTC) - wib]


def test_retention_purges_old_files_of_done_and_failed(tmp_path, deploy):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    deployment = deploy(state_url, inbox_toml(retention_days=7))
    inbox = tmp_path / "inbox"
    for sub in ("done", "failed"):
        (inbox / sub).mkdir(parents=True)
        old, fresh = inbox / sub / "old.txt", inbox / sub / "fresh.txt"
        old.write_text("x")
        fresh.write_text("x")
        os.utime(old, (time.time() - 8 * DAY, time.time() - 8 * DAY))
        os.utime(fresh, (time.time() - 6 * DAY, time.time() - 6 * DAY))

    result = deployment.run("inbox", "run", check=True)
    assert "2 purged by retention" in result.stdout
    for sub in ("done", "failed"):
        assert [p.name for p in (inbox / sub).iterdir()] == ["fresh.txt"]


def test_without_the_pseudonym_key_nothing_moves(tmp_path, deploy):
    deployment = deploy(f"sqlite:///{tmp_path / 'state.db'}", inbox_toml(), key=None)
    inbox = tmp_path / "inbox"
    drop(inbox, WHATSAPP)
    result = deployment.run("inbox", "run")
    assert result.returncode == 2 and KEY_ENV in result.stderr
    assert sorted(p.name for p in inbox.iterdir()) == [WHATSAPP]


def test_inbox_settings_are_checked(tmp_path):
    config = tmp_path / "lms-bridge.toml"
    config.write_text('[[inboxes]]\npath = "in"\nsource = "whatsapp"\n')
    with pytest.raises(ConfigError, match=r"\[\[inboxes\]\] #1: .*needs community"):
        load_settings(config)
    config.write_text('[[inboxes]]\npath = "in"\nsource = "csv"\ncommunity = "cop-a"\n')
    with pytest.raises(ConfigError, match=r"\[\[inboxes\]\] #1 source"):
        load_settings(config)
    config.write_text('[[inboxes]]\npath = "in"\nwhatsapp_date_order = "guess"\n')
    with pytest.raises(ConfigError, match=r"\[\[inboxes\]\] #1 whatsapp_date_order.*'refuse', 'day-first' or"):
        load_settings(config)
    config.write_text('[[inboxes]]\npath = "in"\n')
    assert load_settings(config).inboxes[0].whatsapp_date_order == "refuse"
    assert set(INBOX_FORMATS) <= set(imports.FORMATS)


def test_serve_runs_the_inbox_job(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "{state_url}"\n' + inbox_toml())
    settings = load_settings(config)
    engine = store.open_engine(state_url, None)
    service = Service(engine, settings, ServeSettings(inbox="*/5 * * * *"))
    spec = next(spec for spec in service.specs() if spec.id == "inbox")
    assert spec.cron == "*/5 * * * *"
    assert "inbox" not in {s.id for s in Service(engine, Settings(), ServeSettings()).specs()}

    drop(tmp_path / "inbox", WHATSAPP)
    service.run_job(spec)
    assert service.jobs["inbox"].runs == {"ok": 1} and service.jobs["inbox"].last_error is None
    assert not (tmp_path / "inbox" / WHATSAPP).exists() and outbox_rows(state_url) > 0
