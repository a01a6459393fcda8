"""Overlapping ``sync --all`` runs from two processes: the second says so and exits 0, or waits with --wait.

The first sync is held mid-run by a gate in the fake Moodle (not by a latency), so however loaded the
machine is, the other runs start while it holds its lock.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.demo.moodle import FakeMoodle
from lms_bridge.store.models import Lock, OutboxRow, Run
from tests.fixtures.moodle import ADMIN_TOKEN, LIMITED_TOKEN, moodle_source

#: The call the gate holds: a per-user call, so the run has started (and holds its lock) when it comes.
GATED = "core_completion_get_activities_completion_status"


class GatedMoodle(FakeMoodle):
    """A fake Moodle that holds every :data:`GATED` call until :attr:`gate` is set."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.reached = threading.Event()

    def _serve(self, handler: object, pairs: list[tuple[str, str]]) -> None:
        if ("wsfunction", GATED) in pairs:
            self.reached.set()
            self.gate.wait(timeout=120)
        super()._serve(handler, pairs)  # type: ignore[arg-type]


@pytest.fixture
def gated_moodle() -> Iterator[GatedMoodle]:
    with GatedMoodle(preset="small", seed=1, token=ADMIN_TOKEN, limited_token=LIMITED_TOKEN) as fake:
        try:
            yield fake
        finally:
            fake.gate.set()  # never leave a request hanging at teardown


def _lines_until(process: subprocess.Popen[str], needle: str) -> tuple[threading.Event, list[str]]:
    """Read ``process``'s stderr in a thread; the event is set once a line holds ``needle``."""
    seen, lines = threading.Event(), []

    def read() -> None:
        assert process.stderr is not None  # noqa: S101 - popen pipes it
        for line in process.stderr:
            lines.append(line)
            if needle in line:
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    return seen, lines


def test_overlapping_sync_all_second_run_says_so_and_exits_0(state_url, ralph, gated_moodle, make_deployment):
    deployment = make_deployment(state_url, ralph.url, ralph.password, extra_toml=moodle_source(gated_moodle))
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    first = deployment.popen("sync", "--all")
    waiting = None
    try:
        assert gated_moodle.reached.wait(timeout=120), "the first sync never reached the gated call"
        second = deployment.run("sync", "--all")
        assert second.returncode == 0, second.stderr
        assert "demo: skipped: another run is syncing it" in second.stdout
        waiting = deployment.popen("sync", "--all", "--wait")
        said_waiting, _ = _lines_until(waiting, "sync:demo is held by")
        assert said_waiting.wait(timeout=120), "sync --wait never said it waits for the lock"
        gated_moodle.gate.set()
        out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        waiting.wait(timeout=120)
        assert waiting.returncode == 0
        out = waiting.stdout.read() if waiting.stdout else ""
        assert "skipped" not in out and "forum_posts" in out  # it waited, then synced (nothing new)
    finally:
        gated_moodle.gate.set()
        for process in (first, waiting):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    with Session(store.make_engine(state_url)) as session:
        assert session.scalars(select(Lock)).all() == []
        statuses = session.scalars(select(Run.status).where(Run.command == "sync")).all()
        assert statuses == ["ok", "ok"]  # the skipped run did not sync at all
        assert session.scalar(select(func.count()).select_from(OutboxRow)) > 100


def test_a_sigkilled_sync_shows_abandoned_and_the_rerun_ok(state_url, gated_moodle, make_deployment):
    """A real ``lms-bridge sync`` SIGKILLed mid-run never records its end. While it runs, ``runs list`` says
    ``running`` (its lock is held); once it is dead its lock is gone, so ``runs list`` / ``runs show`` say
    ``abandoned``, and the rerun's own row says ``ok``."""
    from lms_bridge.store import runs as runs_core

    deployment = make_deployment(state_url, "http://127.0.0.1:9/xAPI/", "pw-x", extra_toml=moodle_source(gated_moodle))
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    first = deployment.popen("sync", "--all")
    try:
        assert gated_moodle.reached.wait(timeout=120), "the sync never reached the gated call"
        engine = store.make_engine(state_url)
        [live] = runs_core.list_runs(engine)
        assert live.status == "running"  # alive: its lock is held, so it is not taken for abandoned
        first.kill()  # SIGKILL: no finally, no finish_run
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    gated_moodle.gate.set()
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
