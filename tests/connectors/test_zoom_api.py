"""Zoom Reports API pulls: the fake Zoom over real HTTP, real SQLite, the real CLI into real Ralph.

Nothing is mocked: the fake (fakes/zoom.py) answers in Zoom's documented shapes, with the
faults injected per test (expired token, 429 with Retry-After, 502).
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fakes.zoom import TEST_CLIENT_SECRET, TOKEN_PREFIX, FakeZoom
from lms_bridge import store
from lms_bridge.config.settings import Settings, load_settings
from lms_bridge.ingest import runner as sync_core
from lms_bridge.store.db import make_engine, upgrade
from lms_bridge.store.models import OutboxRow
from tests.fixtures.data import COMMUNITY_EXPORTS
from tests.fixtures.lrs import lrs_statements
from tests.proof.support import CAPTURED

PSEUDONYM_KEY = "zoom-test-pseudonym-key-0b5e9a27c4"
SOURCE_KEY = "https://lms-bridge.id/xapi/extensions/source"
WIB = ZoneInfo("Asia/Jakarta")
#: A day of the first pull's window but outside the next pull's overlap (2 days).
DAY = datetime.now(UTC).date() - timedelta(days=4)
HOST = "host@example.org"


@pytest.fixture
def zoom() -> Iterator[FakeZoom]:
    with FakeZoom(account_id="acc-1", client_id="cid-1", client_secret=TEST_CLIENT_SECRET) as fake:
        yield fake


def _at(day: date, clock: str) -> str:
    """A WIB wall-clock time on ``day`` as Zoom's UTC ``2024-03-12T01:55:10Z``."""
    local = datetime.fromisoformat(f"{day.isoformat()}T{clock}").replace(tzinfo=WIB)
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _participant(email: str, name: str, day: date, join: str, leave: str, **extra: object) -> dict:
    seconds = int(
        (datetime.fromisoformat(f"2000-01-01T{leave}") - datetime.fromisoformat(f"2000-01-01T{join}")).total_seconds()
    )
    return {
        "user_email": email,
        "name": name,
        "join_time": _at(day, join),
        "leave_time": _at(day, leave),
        "duration": seconds,
        **extra,
    }


def add_fixture_meeting(fake: FakeZoom, day: date, uuid: str = "4a/Zk+9QyW2m//bA1x==") -> None:
    """The session of the sample export zoom_participants_with_meeting.csv, on ``day`` (a UUID with ``/``)."""
    fake.add_meeting(
        HOST,
        meeting_id=81200000001,
        uuid=uuid,
        topic="Webinar Evaluasi Pembelajaran",
        start=_at(day, "08:55:10"),
        end=_at(day, "11:02:40"),
        participants=[
            _participant("budi.s@example.org", "Budi Santoso", day, "08:58:01", "10:01:30"),
            _participant("budi.s@example.org", "Budi Santoso", day, "10:05:12", "11:02:40"),
            _participant("siti.r@example.org", "WI Siti", day, "09:10:00", "10:40:00"),
            _participant("", "Tamu Umum", day, "09:10:00", "09:12:00", status="in_waiting_room"),
        ],
    )


def fixture_csv(day: date, path: Path) -> Path:
    """The sample export's participants CSV with its dates moved to ``day`` (US layout, as exported)."""
    text = (COMMUNITY_EXPORTS / "zoom_participants_with_meeting.csv").read_text(encoding="utf-8")
    path.write_text(text.replace("03/12/2024", day.strftime("%m/%d/%Y")), encoding="utf-8")
    return path


def source_toml(fake: FakeZoom, *, extra: str = "", site: str = "zoom-bkd") -> str:
    return textwrap.dedent(f"""
        [[sources]]
        id = "{site}"
        type = "zoom_api"
        account_id = "acc-1"
        client_id = "cid-1"
        client_secret_env = "ZOOM_CLIENT_SECRET"
        api_url = "{fake.url}/v2"
        oauth_url = "{fake.url}"
        backoff_base = 0.05
        users = [{{ user = "{HOST}", community = "cop-x" }}]
        """) + textwrap.dedent(extra)


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, secret: str = TEST_CLIENT_SECRET) -> Settings:
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", secret)
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", PSEUDONYM_KEY)
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n' + toml)
    return load_settings(config, environ={})


def _sync(settings: Settings) -> sync_core.SiteReport:
    engine = make_engine(settings.state.url)
    upgrade(engine)
    ((source, streams),) = sync_core.sync_sources(settings)
    return sync_core.sync_source(engine, settings, source, streams=streams)


def _bodies(settings: Settings) -> list[dict]:
    with Session(make_engine(settings.state.url)) as session:
        return [json.loads(body) for body in session.scalars(select(OutboxRow.body))]


def test_first_pull_pages_and_merges_rejoins_then_the_next_pull_reads_only_the_overlap(tmp_path, monkeypatch, zoom):
    add_fixture_meeting(zoom, DAY)
    zoom.add_meeting(
        HOST,
        meeting_id=93100000002,
        uuid="wEbInAr0000000000001==",
        topic="Webinar ASN",
        meeting_type=5,
        start=_at(DAY, "13:00:00"),
        end=_at(DAY, "14:00:00"),
        participants=[
            _participant("dewi.l@example.org", "Dewi Lestari", DAY, "13:00:00", "13:50:00"),
            _participant("", "Peserta Tamu", DAY, "13:05:00", "13:40:00"),
        ],
    )
    settings = _settings(
        tmp_path,
        monkeypatch,
        source_toml(
            zoom,
            extra="""
        page_size = 1
        meetings = { "93100000002" = "cop-y" }
        """,
        ),
    )

    first = _sync(settings)
    assert first.error is None
    assert first.streams["meetings"].new == 4  # Budi (2 rows merged), Siti, Dewi, the guest by name
    assert first.skipped == {"waiting room or no identity": 1}
    # page_size = 1: every list was paged; the webinar went to the webinar report; the UUID with "/"
    # arrived double-encoded (the fake 404s a single-encoded one, which would give no participants).
    assert first.calls["report/meetings/participants"] == 4 and first.calls["report/webinars/participants"] == 2
    assert any("/4a%2FZk%2B9QyW2m%2F%2FbA1x%3D%3D/" in path for path in zoom.requests)  # as decoded once
    bodies = {
        b["context"]["extensions"][SOURCE_KEY]["native_id"].split(":")[0] + "/" + b["result"]["duration"]: b
        for b in _bodies(settings)
    }
    assert set(bodies) == {"81200000001/PT2H2M", "81200000001/PT1H30M", "93100000002/PT50M", "93100000002/PT35M"}
    budi = bodies["81200000001/PT2H2M"]
    assert budi["timestamp"] == _at(DAY, "08:58:01")
    assert budi["object"]["id"].endswith(f"/meeting/zoom/81200000001%3A{DAY.isoformat()}")  # as for the CSV
    assert budi["context"]["contextActivities"]["grouping"][0]["id"].endswith("/community/cop-x")
    assert bodies["93100000002/PT50M"]["context"]["contextActivities"]["grouping"][0]["id"].endswith("/community/cop-y")
    text = json.dumps(list(bodies.values()))
    assert "Budi" not in text and "example.org" not in text and "Tamu" not in text  # pseudonyms only
    assert store.get_cursor(make_engine(settings.state.url), "zoom-bkd", "meetings") == {
        "through": datetime.now(UTC).date().isoformat()
    }

    # Nothing new: one token, one list call for the overlap window, no statement.
    again = _sync(settings)
    assert again.error is None and again.streams["meetings"].new == 0
    assert again.calls == {"oauth/token": 1, "report/users/meetings": 1}

    # A new meeting yesterday: only its attendee is added.
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    zoom.add_meeting(
        HOST,
        meeting_id=81200000003,
        uuid="n3wMeeting==",
        topic="Diskusi",
        start=_at(yesterday, "09:00:00"),
        end=_at(yesterday, "10:00:00"),
        participants=[_participant("budi.s@example.org", "Budi Santoso", yesterday, "09:00:00", "09:45:00")],
    )
    third = _sync(settings)
    assert third.error is None and third.streams["meetings"].new == 1 and len(_bodies(settings)) == 5

    # A backfill re-reads an older window (whole months, several list calls): everything is already there.
    engine = make_engine(settings.state.url)
    ((source, _),) = sync_core.sync_sources(settings)
    since = datetime.combine(DAY - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    backfill = sync_core.sync_source(engine, settings, source, since=since)
    assert backfill.error is None and backfill.streams["meetings"].new == 0
    assert backfill.streams["meetings"].unchanged == 5


def test_expired_token_429_and_502_are_retried_and_the_pull_completes(tmp_path, monkeypatch, zoom):
    add_fixture_meeting(zoom, DAY)
    settings = _settings(tmp_path, monkeypatch, source_toml(zoom))
    zoom.inject_fault("expired", path="/meetings")
    zoom.inject_fault("429", path="participants")
    zoom.inject_fault("502", path="participants")
    started = time.monotonic()
    report = _sync(settings)
    assert report.error is None and report.streams["meetings"].new == 2
    assert zoom.tokens_issued == 2  # the 401 (code 124) fetched a new token once
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert report.calls["report/meetings/participants"] == 3  # 429, 502, then the answer


def test_zoom_failures_stop_the_source_in_one_sentence_and_keep_the_cursor(tmp_path, monkeypatch, zoom):
    add_fixture_meeting(zoom, DAY)
    wrong = _settings(tmp_path, monkeypatch, source_toml(zoom), secret="not-the-secret-1234")
    report = _sync(wrong)
    assert report.error is not None and "refused the OAuth app's credentials (HTTP 401, invalid_client)" in report.error
    assert "not-the-secret-1234" not in report.error
    settings = _settings(tmp_path, monkeypatch, source_toml(zoom, extra="max_attempts = 2\n"))
    zoom.inject_fault("502", path="participants", times=5)
    report = _sync(settings)
    assert report.error == (
        "source zoom-bkd: Zoom kept failing on report/meetings/participants (HTTP 502) after 2 "
        "tries; the cursor keeps its place"
    )
    assert store.get_cursor(make_engine(settings.state.url), "zoom-bkd", "meetings") is None
    assert _bodies(settings) == []
    # A user the account does not have is a configuration mistake, named as such (not an empty pull).
    unknown = _settings(tmp_path, monkeypatch, source_toml(zoom).replace(HOST, "nobody@example.org"))
    assert _sync(unknown).error == (
        "source zoom-bkd: Zoom refused report/users/meetings (HTTP 404, code 1001: "
        "User does not exist: nobody@example.org.)"
    )


def test_cli_pull_then_the_same_sessions_csv_import_gives_each_statement_once(
    tmp_path, fresh_ralph, make_deployment, zoom
):
    add_fixture_meeting(zoom, DAY)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    deployment = make_deployment(state_url, fresh_ralph.url, fresh_ralph.password, extra_toml=source_toml(zoom))
    deployment.env.update({"ZOOM_CLIENT_SECRET": TEST_CLIENT_SECRET, "LMS_BRIDGE_PSEUDONYM_KEY": PSEUDONYM_KEY})
    zoom.inject_fault("expired", path="/meetings")
    outputs = []
    for args in (
        ("people", "import", str(COMMUNITY_EXPORTS / "roster.csv")),
        ("--debug", "sync"),
        ("import", str(fixture_csv(DAY, tmp_path / "participants.csv")), "--community", "cop-x"),
        ("outbox", "flush"),
        ("sync", "--site", "zoom-bkd"),
        ("runs", "list"),
    ):
        result = deployment.run(*args)
        outputs.append(result.stdout + result.stderr)
        CAPTURED.output(f"lms-bridge {' '.join(args)}", result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr
    CAPTURED.databases.append(tmp_path / "state.db")
    # The CSV of the session already pulled adds nothing: same keys and same content.
    assert "added 0 statements to the outbox, 2 already there" in outputs[2] and "changed since" not in outputs[2]
    held = lrs_statements(fresh_ralph)
    assert len(held) == 2 and "sent 2 statements" in outputs[3]
    actors = {s["actor"]["account"]["name"] for s in held}
    assert actors == {"198005122005011002", "199203152019022001"}  # matched by e-mail through the roster
    assert "zoom-bkd" in outputs[5]
    everything = "\n".join(outputs) + (tmp_path / "state.db").read_bytes().decode("latin-1")
    for secret in (TEST_CLIENT_SECRET, TOKEN_PREFIX, PSEUDONYM_KEY):
        assert secret not in everything
