"""`lms-bridge serve`: cron parsing, metrics text, and the scheduler under SIGTERM against fake Moodle and Ralph."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from lms_bridge import store
from lms_bridge.config.serve import ServeSettings, cron_trigger
from lms_bridge.config.settings import Settings, load_settings
from lms_bridge.demo.ralph import free_port
from lms_bridge.errors import ConfigError
from lms_bridge.runtime.metrics import Metric, render
from lms_bridge.runtime.scheduler import serve_settings
from lms_bridge.store.models import Lock, OutboxRow, Run
from tests.fixtures.deployment import ROOT
from tests.fixtures.lrs import lrs_statements
from tests.fixtures.moodle import ADMIN_TOKEN, moodle_source

JAKARTA = ZoneInfo("Asia/Jakarta")


def test_cron_weekdays_mean_what_crontab_means():
    # 2026-03-01 is a Sunday. Crontab's 0 is Sunday (APScheduler 3 would read Monday).
    start = datetime(2026, 2, 28, 12, 0, tzinfo=JAKARTA)
    assert cron_trigger("0 3 * * 0", JAKARTA).get_next_fire_time(None, start) == datetime(
        2026, 3, 1, 3, 0, tzinfo=JAKARTA
    )
    assert cron_trigger("0 3 * * 1-5", JAKARTA).get_next_fire_time(None, start).day == 2
    assert cron_trigger("30 */5 * * * *", JAKARTA).get_next_fire_time(None, start) == datetime(
        2026, 2, 28, 12, 0, 30, tzinfo=JAKARTA
    )
    assert cron_trigger("off", JAKARTA) is None
    for bad in ("* * *", "61 * * * *", "0 3 * * */2"):
        with pytest.raises(ValueError):
            cron_trigger(bad, JAKARTA)


def test_serve_settings_defaults_overrides_and_errors():
    config = serve_settings(Settings(), port=0, overrides=["flush=*/10 * * * *", "sync:kemenpan=off"])
    assert config.port == 0 and config.flush == "*/10 * * * *" and config.sites == {"kemenpan": "off"}
    assert ServeSettings().sync == "0 * * * *" and ServeSettings().flush == "*/5 * * * *"
    with pytest.raises(ConfigError, match="unknown job 'flsh'"):
        serve_settings(Settings(), overrides=["flsh=* * * * *"])
    with pytest.raises(ConfigError, match=r"\[serve\] jp: .*not a cron expression"):
        serve_settings(Settings(), overrides=["jp=every day"])
    with pytest.raises(ValueError):
        ServeSettings.model_validate({"flush": "* * * * *", "unknown": 1})


def test_serve_table_of_the_config_file(tmp_path):
    config = tmp_path / "lms-bridge.toml"
    config.write_text('[serve]\nport = 9999\nflush = "*/10 * * * *"\n[serve.sites]\ndemo = "off"\n')
    settings = serve_settings(load_settings(config, environ={"LMS_BRIDGE_SERVE__JP": "0 4 * * *"}))
    assert (settings.port, settings.flush, settings.jp, settings.sites) == (
        9999,
        "*/10 * * * *",
        "0 4 * * *",
        {"demo": "off"},
    )
    config.write_text('[serve]\nflush = "every five minutes"\n')
    with pytest.raises(ConfigError, match=r"\[serve\] flush: .*not a cron expression"):
        load_settings(config)


def test_metrics_text_parses_as_prometheus():
    text = render(
        [
            Metric("lms_bridge_outbox_statements", "gauge", "Outbox rows by status.").add(3, status="pending"),
            Metric("lms_bridge_statements_sent_total", "counter", "Sent.").add(12),
            Metric("lms_bridge_last_success_timestamp_seconds", "gauge", "Last ok.").add(
                1767225600.5, command="sync", site='we"ird\\site', stream="forum_posts"
            ),
        ]
    )
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["lms_bridge_outbox_statements"].samples[0].value == 3
    assert families["lms_bridge_statements_sent"].samples[0].value == 12  # the parser drops _total
    labels = families["lms_bridge_last_success_timestamp_seconds"].samples[0].labels
    assert labels["site"] == 'we"ird\\site'


def _count(state_url: str, query) -> int:
    try:
        with Session(store.make_engine(state_url)) as session:
            return session.scalar(query) or 0
    except OperationalError:  # the tables are not there yet
        return 0


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _serve(deployment, port: int, log_path) -> subprocess.Popen:
    args = [
        "serve",
        "--port",
        str(port),
        "--schedule",
        "sync=*/2 * * * * *",
        "--schedule",
        "flush=*/1 * * * * *",
        "--schedule",
        "jp=*/3 * * * * *",
        "--schedule",
        "ledger=*/3 * * * * *",
    ]
    log = open(log_path, "a")  # noqa: SIM115 - closed with the process below
    return subprocess.Popen(
        [sys.executable, "-m", "lms_bridge.cli", "--config", str(deployment.config), *args],
        env=deployment.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )


def _stop(process: subprocess.Popen, timeout: float = 90) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def test_serve_stops_on_sigterm_mid_sync_and_a_restart_sends_each_statement_once(
    tmp_path, fresh_ralph, fake_moodle, make_deployment
):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    deployment = make_deployment(
        state_url, fresh_ralph.url, fresh_ralph.password, extra_toml=moodle_source(fake_moodle)
    )
    deployment.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    log_path = tmp_path / "serve.log"
    port = free_port()
    fake_moodle.set_latency("core_completion_get_activities_completion_status", 0.05)
    first = _serve(deployment, port, log_path)
    try:
        running_sync = select(func.count()).select_from(Run).where(Run.command == "sync", Run.status == "running")
        _wait(
            lambda: (
                _count(state_url, running_sync) == 1
                and _count(state_url, select(func.count()).select_from(OutboxRow)) >= 10
            ),
            90,
            "a sync in flight",
        )
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200 and "sync:demo" in health.json()["jobs"]
        started = time.monotonic()
        assert _stop(first) == 0
        assert time.monotonic() - started < 30
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    output = log_path.read_text()
    assert "SIGTERM received" in output and "serve: stopped" in output, output[-3000:]
    with Session(store.make_engine(state_url)) as session:
        runs = session.scalars(select(Run).where(Run.command == "sync")).all()
        assert [r.status for r in runs] == ["failed"] and "serve is stopping" in (runs[0].error or "")
        assert session.scalars(select(Lock)).all() == []  # released on the way out
        partial = session.scalar(select(func.count()).select_from(OutboxRow))
    assert partial >= 10

    fake_moodle.set_latency("core_completion_get_activities_completion_status", 0)
    second = _serve(deployment, port, log_path)
    try:
        ok_sync = select(func.count()).select_from(Run).where(Run.command == "sync", Run.status == "ok")
        pending = select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "pending")
        ok_flush = select(func.max(Run.id)).where(Run.command == "flush", Run.status == "ok")
        ok_sync_id = select(func.max(Run.id)).where(Run.command == "sync", Run.status == "ok")
        _wait(
            lambda: (
                _count(state_url, ok_sync) >= 1
                and _count(state_url, pending) == 0
                and _count(state_url, ok_flush) > _count(state_url, ok_sync_id)
            ),
            120,
            "a full sync, flushed",
        )
        scraped = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert scraped.status_code == 200 and scraped.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
        depth = {s.labels["status"]: s.value for s in families["lms_bridge_outbox_statements"].samples}
        assert depth["pending"] == 0 and depth["sent"] > 100 and depth["dead"] == 0
        last = {
            (s.labels["command"], s.labels["site"], s.labels["stream"])
            for s in families["lms_bridge_last_success_timestamp_seconds"].samples
        }
        assert ("sync", "demo", "forum_posts") in last and ("flush", "", "") in last
        assert families["lms_bridge_statements_sent"].samples[0].value == depth["sent"]

        # Each job runs on its own schedule: under load the ledger or JP job may not have run yet at the
        # moment the sync was flushed, so wait for every job to show up in the metrics.
        def jobs_seen() -> set[str]:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            families = {f.name: f for f in text_string_to_metric_families(text)}
            return {s.labels["job"] for s in families["lms_bridge_job_runs"].samples}

        _wait(lambda: {"sync:demo", "flush", "jp", "ledger"} <= jobs_seen(), 60, "every job to have run once")
        assert {"sync:demo", "flush", "jp", "ledger"} <= jobs_seen()
        assert json.loads(requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text)["status"] == "ok"
        assert _stop(second) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()

    # JP computed just before the stop may still be queued: one more flush sends it.
    deployment.run("outbox", "flush", check=True)
    with Session(store.make_engine(state_url)) as session:
        outbox = dict(session.execute(select(OutboxRow.statement_id, OutboxRow.status)).all())
        moodle_ids = set(session.scalars(select(OutboxRow.statement_id).where(OutboxRow.site_id == "demo")))
    held = [s["id"] for s in lrs_statements(fresh_ralph)]
    assert len(held) == len(set(held))
    assert set(held) == {sid for sid, status in outbox.items() if status == "sent"} == set(outbox)

    # Nothing was lost to the interrupted run: the same statements as one clean sync.
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    reference = make_deployment(
        reference_url, fresh_ralph.url, fresh_ralph.password, extra_toml=moodle_source(fake_moodle)
    )
    reference.env["MOODLE_TOKEN_DEMO"] = ADMIN_TOKEN
    reference.run("sync", check=True)
    with Session(store.make_engine(reference_url)) as session:
        assert set(session.scalars(select(OutboxRow.statement_id))) == moodle_ids
