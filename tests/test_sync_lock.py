"""Overlapping ``sync --all`` runs from two processes: the second says so and exits 0, or waits with --wait."""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.store.models import Lock, OutboxRow, Run
from tests.fixtures.moodle import ADMIN_TOKEN, moodle_source


def _running_syncs(state_url: str) -> int:
    try:
        with Session(store.make_engine(state_url)) as session:
            return (
                session.scalar(
                    select(func.count()).select_from(Run).where(Run.command == "sync", Run.status == "running")
                )
                or 0
            )
    except DBAPIError:  # the subprocess has not created the tables yet
        return 0


def test_overlapping_sync_all_second_run_says_so_and_exits_0(state_url, ralph, fake_moodle, make_deployment):
    deployment = make_deployment(state_url, ralph.url, ralph.password, extra_toml=moodle_source(fake_moodle))
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    fake_moodle.set_latency("core_completion_get_activities_completion_status", 0.05)
    first = deployment.popen("sync", "--all")
    try:
        deadline = time.monotonic() + 60
        while _running_syncs(state_url) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        second = deployment.run("sync", "--all")
        assert second.returncode == 0, second.stderr
        assert "demo: skipped: another run is syncing it" in second.stdout
        waiting = deployment.popen("sync", "--all", "--wait")
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        out, err = waiting.communicate(timeout=120)
        assert waiting.returncode == 0, err
        assert "skipped" not in out and "forum_posts" in out  # it waited, then synced (nothing new)
    finally:
        for process in (first,):
            if process.poll() is None:
                process.kill()
                process.communicate()
    with Session(store.make_engine(state_url)) as session:
        assert session.scalars(select(Lock)).all() == []
        statuses = session.scalars(select(Run.status).where(Run.command == "sync")).all()
        assert statuses == ["ok", "ok"]  # the skipped run did not sync at all
        assert session.scalar(select(func.count()).select_from(OutboxRow)) > 100


def test_a_sigkilled_sync_shows_abandoned_and_the_rerun_ok(state_url, fake_moodle, make_deployment):
    """A real ``lms-bridge sync`` SIGKILLed mid-run never records its end. While it runs, ``runs list`` says
    ``running`` (its lock is held); once it is dead its lock is gone, so ``runs list`` / ``runs show`` say
    ``abandoned``, and the rerun's own row says ``ok``."""
    from lms_bridge.store import runs as runs_core

    deployment = make_deployment(state_url, "http://127.0.0.1:9/xAPI/", "pw-x", extra_toml=moodle_source(fake_moodle))
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    fake_moodle.set_latency("core_completion_get_activities_completion_status", 0.05)
    first = deployment.popen("sync", "--all")
    try:
        deadline = time.monotonic() + 60
        while _running_syncs(state_url) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        engine = store.make_engine(state_url)
        [live] = runs_core.list_runs(engine)
        assert live.status == "running"  # alive: its lock is held, so it is not taken for abandoned
        first.kill()  # SIGKILL: no finally, no finish_run
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    fake_moodle.set_latency("core_completion_get_activities_completion_status", 0)
    deployment.run("sync", "--all", check=True)
    listed = deployment.run("runs", "list", check=True).stdout
    shown = deployment.run("runs", "show", str(live.id), check=True).stdout
    assert f"run {live.id}: sync demo, abandoned" in shown and "killed?" in shown
    assert "abandoned" in listed and "ok" in listed
    assert [(run.status, run.finished_at is None) for run in runs_core.list_runs(engine)] == [
        ("ok", False),
        ("abandoned", True),
    ]
    engine.dispose()
