"""The run loop holds a source's lock itself: a second run of the same source is refused, or waits.

Two runs of the fake Zoom source through :func:`lms_bridge.ingest.runner.sync_source` in one process, on
SQLite (lock rows) and PostgreSQL (advisory locks). The first run is held after its first committed page
by its progress callback (events, no sleeps to order the runs), so the second finds the source busy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fakes.zoom import TEST_CLIENT_SECRET, FakeZoom
from lms_bridge import store
from lms_bridge.config.settings import load_settings
from lms_bridge.ingest import runner as sync_core
from lms_bridge.store.locks import LockBusy
from lms_bridge.store.models import Lock, Run
from tests.connectors.test_zoom_api import DAY, PSEUDONYM_KEY, add_fixture_meeting, source_toml


@pytest.fixture
def zoom() -> Iterator[FakeZoom]:
    with FakeZoom(account_id="acc-1", client_id="cid-1", client_secret=TEST_CLIENT_SECRET) as fake:
        yield fake


def _sync_statuses(engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(Run.status).where(Run.command == "sync").order_by(Run.id)))


def test_a_second_run_of_a_source_is_refused_or_waits_for_the_first(tmp_path: Path, state_url: str, monkeypatch, zoom):
    add_fixture_meeting(zoom, DAY)
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", TEST_CLIENT_SECRET)
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", PSEUDONYM_KEY)
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "{state_url}"\n' + source_toml(zoom))
    settings = load_settings(config, environ={})
    engine = store.open_engine(state_url, None)
    ((source, _),) = sync_core.sync_sources(settings)

    inside, release = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def hold(_stream: str, _read: int) -> None:
        inside.set()
        assert release.wait(60), "the test never released the first run"

    def run(name: str, **options: object) -> None:
        try:
            results[name] = sync_core.sync_source(engine, settings, source, **options)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            results[name] = exc

    first = threading.Thread(target=run, args=("first",), kwargs={"on_progress": hold})
    first.start()
    try:
        assert inside.wait(60), f"the first run never committed a page: {results}"

        # Refused at once, before anything is read or recorded: the same LockBusy the callers print.
        with pytest.raises(LockBusy) as busy:
            sync_core.sync_source(engine, settings, source)
        assert busy.value.name == "sync:zoom-bkd"
        assert "is held by another run" in str(busy.value)
        assert _sync_statuses(engine) == ["running"]

        # Waits while the first run holds the source, then runs.
        waiting = threading.Thread(target=run, args=("waiting",), kwargs={"wait": True})
        waiting.start()
        time.sleep(1.5)
        assert waiting.is_alive() and "waiting" not in results
        assert _sync_statuses(engine) == ["running"]
    finally:
        release.set()
        first.join(60)
    waiting.join(60)
    first_report, waited_report = results["first"], results["waiting"]
    assert isinstance(first_report, sync_core.SiteReport) and first_report.error is None, first_report
    assert isinstance(waited_report, sync_core.SiteReport) and waited_report.error is None, waited_report
    assert sum(r.new for r in first_report.streams.values()) > 0
    assert sum(r.new for r in waited_report.streams.values()) == 0  # it ran after the first, not beside it
    assert _sync_statuses(engine) == ["ok", "ok"]
    with Session(engine) as session:
        assert session.scalars(select(Lock)).all() == []  # both released their lock
    engine.dispose()


def test_a_run_that_holds_one_stream_names_exactly_one(tmp_path: Path, monkeypatch, zoom):
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", TEST_CLIENT_SECRET)
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", PSEUDONYM_KEY)
    config = tmp_path / "lms-bridge.toml"
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config.write_text(f'[state]\nurl = "{state_url}"\n' + source_toml(zoom))
    settings = load_settings(config, environ={})
    engine = store.open_engine(state_url, None)
    ((source, _),) = sync_core.sync_sources(settings)
    with pytest.raises(sync_core.ConfigError, match="exactly one stream"):
        sync_core.sync_source(engine, settings, source, per_stream=True)
    assert _sync_statuses(engine) == []
    engine.dispose()
