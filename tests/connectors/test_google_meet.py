"""The Google Meet connector against its fake Reports API on 127.0.0.1 (connectors/google_meet.py)."""

from __future__ import annotations

import json
import logging
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors import CONNECTORS
from connectors.attendance import MEET
from connectors.base import Page
from connectors.file_format import ReadRequest
from fakes.classroom import private_key_lines, shared_service_account
from fakes.meet_reports import FakeMeetReports
from lms_bridge.activity import Activity
from lms_bridge.config.settings import Settings, load_settings
from lms_bridge.errors import FatalSourceError
from lms_bridge.identity.resolver import actor_for
from lms_bridge.ingest import runner as sync_core
from lms_bridge.ingest.runner import connector_context, source_settings
from lms_bridge.store.db import make_engine, upgrade
from lms_bridge.store.models import OutboxRow
from xapi.statements import StatementSettings, build_statement
from xapi.vocabulary import load_vocabulary

PSEUDONYM_KEY = "meet-test-pseudonym-key-41c9e0"
ADMIN = "admin@bkpsdm.example.org"
COMMUNITY = "cop-wi"
CODE = "abc-defg-hij"
#: A recent day (Google keeps Meet audit events 180 days; the first pull reads initial_days back).
DAY = datetime.now(UTC).date() - timedelta(days=3)
BASE = "https://lms-bridge.id/xapi"


def utc_of_local(day: date, hour: int, minute: int, second: int = 0) -> str:
    """``HH:MM:SS`` Jakarta time (UTC+7, no DST) on ``day`` as the API's UTC event time."""
    moment = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC) - timedelta(hours=7)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def add_fixture_meeting(fake: FakeMeetReports, day: date = DAY) -> None:
    """The meeting of the sheet in :func:`write_sheet`: Budi joins twice, Siti once, a dial-in without a name."""
    fake.add_call_ended(
        CODE, "conf-1", "budi.s@example.org", "Budi Santoso", ended=utc_of_local(day, 9, 20), seconds=1200
    )
    fake.add_call_ended(
        CODE, "conf-1", "budi.s@example.org", "Budi Santoso", ended=utc_of_local(day, 10, 2, 30), seconds=2430
    )
    fake.add_call_ended(
        CODE, "conf-1", "siti.r@example.org", "Siti Rahmawati", ended=utc_of_local(day, 10, 0), seconds=2700
    )


def write_sheet(folder: Path, day: date = DAY) -> Path:
    """The same meeting as Meet's attendance sheet shows it: one row per person, minutes."""
    path = folder / f"{CODE} attendance {day.isoformat()}.csv"
    path.write_text(
        "First name,Last name,Email,Duration,Time joined,Time exited\n"
        "Budi,Santoso,budi.s@example.org,1 hr 1 min,09:00,10:02\n"
        "Siti,Rahmawati,siti.r@example.org,45 min,09:15,10:00\n"
    )
    return path


def key_file(folder: Path, fake: FakeMeetReports) -> Path:
    path = folder / "service-account.json"
    path.write_text(json.dumps({**shared_service_account()[0], "token_uri": fake.token_uri}))
    path.chmod(0o600)
    return path


def source_toml(fake: FakeMeetReports, extra: str = "") -> str:
    return textwrap.dedent(f"""
        [[sources]]
        id = "meet-bkpsdm"
        type = "google_meet"
        key_file = "service-account.json"
        subject = "{ADMIN}"
        api_url = "{fake.url}"
        community = "{COMMUNITY}"
        backoff_base = 0.05
        """) + textwrap.dedent(extra)


@pytest.fixture
def meet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMeetReports]:
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", PSEUDONYM_KEY)
    key, public_pem = shared_service_account()
    with FakeMeetReports(public_pem=public_pem, client_email=key["client_email"], subject=ADMIN) as fake:
        add_fixture_meeting(fake)
        key_file(tmp_path, fake)
        yield fake


def _settings(tmp_path: Path, toml: str) -> Settings:
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n' + toml)
    return load_settings(config, environ={})


def _pull(settings: Settings, start: Any = None) -> list[Page]:
    connector = CONNECTORS["google_meet"]
    source = source_settings(settings.source("meet-bkpsdm"))
    with connector.open(source, connector_context(settings)) as reader:
        return list(reader.read("attendance", start))


def _activities(pages: list[Page]) -> list[Activity]:
    return [activity for page in pages for activity in page.activities]


def _statements(activities: list[Activity]) -> dict[str, str]:
    settings = StatementSettings(
        namespace=uuid.uuid5(uuid.NAMESPACE_URL, BASE), base_iri=BASE, vocabulary=load_vocabulary()
    )
    built = [
        build_statement(settings, a, actor_for(a, authority="https://siasn.bkn.go.id", base_iri=BASE, site_url=None))
        for a in activities
    ]
    return {statement.id: statement.body for statement in built}


def test_a_pulled_meeting_gives_the_same_statements_as_its_imported_sheet(
    tmp_path: Path, meet: FakeMeetReports
) -> None:
    settings = _settings(tmp_path, source_toml(meet))
    pulled = _activities(_pull(settings))
    context = connector_context(settings)
    request = ReadRequest(tz=context.timezone, pseudonymizer=context.pseudonymizer, community=COMMUNITY)
    imported = [activity for activity, _ in MEET.read(write_sheet(tmp_path), request).items]
    assert len(pulled) == 2
    assert sorted(pulled, key=lambda a: a.natural_key) == sorted(imported, key=lambda a: a.natural_key)
    assert _statements(pulled) == _statements(imported)
    budi = min(pulled, key=lambda a: a.occurred_at)
    assert budi.duration == timedelta(minutes=61) and budi.object.native_id == f"{CODE}:{DAY.isoformat()}"
    assert budi.site == COMMUNITY and budi.source == "meet"


def test_pulls_are_incremental_by_event_time_and_reread_the_overlap_as_the_same(
    tmp_path: Path, meet: FakeMeetReports
) -> None:
    settings = _settings(tmp_path, source_toml(meet, "page_size = 1\n"))
    first = _pull(settings)
    assert meet.calls["activities.list"] == 3  # page_size 1: one event a page
    position = first[-1].position
    assert position == {"event_time": utc_of_local(DAY, 10, 2, 30)}
    assert all(page.position is None for page in first[:-1])
    keys = {a.natural_key for a in _activities(first)}

    # From the position: the overlap is read again and gives the same keys; the position stays.
    again = _pull(settings, position)
    assert {a.natural_key for a in _activities(again)} <= keys
    assert all(page.position is None for page in again)

    # A later meeting: only it is new, and the position moves to its last event.
    later = DAY + timedelta(days=1)
    meet.add_call_ended(
        "xyz-abcd-efg", "conf-2", "siti.r@example.org", "Siti Rahmawati", ended=utc_of_local(later, 14, 0), seconds=600
    )
    third = _pull(settings, position)
    new = {a.natural_key for a in _activities(third)} - keys
    assert len(new) == 1 and all("xyz-abcd-efg" in key for key in new)
    assert third[-1].position == {"event_time": utc_of_local(later, 14, 0)}


def test_a_subject_without_delegation_a_403_and_a_404_are_one_sentence_without_secrets(
    tmp_path: Path, meet: FakeMeetReports, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _settings(tmp_path, source_toml(meet).replace(ADMIN, "someone@bkpsdm.example.org"))
    with pytest.raises(FatalSourceError) as refused:
        _pull(settings)
    message = str(refused.value)
    assert message.startswith("source meet-bkpsdm: Google refused the service account's token request")
    assert "admin.reports.audit.readonly" in message and "\n" not in message

    meet.forbidden = True
    with pytest.raises(FatalSourceError) as forbidden:
        _pull(_settings(tmp_path, source_toml(meet)))
    message = str(forbidden.value)
    assert "HTTP 403, PERMISSION_DENIED" in message and f"{ADMIN} must be a Workspace admin" in message

    meet.forbidden = False
    with pytest.raises(FatalSourceError) as missing:
        _pull(_settings(tmp_path, source_toml(meet).replace(f'api_url = "{meet.url}"', f'api_url = "{meet.url}/nope"')))
    assert "HTTP 404" in str(missing.value) and str(missing.value).endswith("check api_url)")

    for text in (str(refused.value), message, str(missing.value), caplog.text):
        assert not any(line in text for line in private_key_lines()) and "ya29." not in text


def test_meetings_of_no_configured_community_are_skipped_and_counted(tmp_path: Path, meet: FakeMeetReports) -> None:
    toml = source_toml(meet).replace(f'community = "{COMMUNITY}"', 'meetings = { "zzz-zzzz-zzz" = "cop-x" }')
    pages = _pull(_settings(tmp_path, toml))
    assert _activities(pages) == []
    assert sum(page.skipped["meeting of no configured community"] for page in pages) == 3


def test_the_run_loop_stores_a_pull_once_and_a_second_sync_adds_nothing(tmp_path: Path, meet: FakeMeetReports) -> None:
    settings = _settings(tmp_path, source_toml(meet))
    engine = make_engine(settings.state.url)
    upgrade(engine)
    ((source, streams),) = sync_core.sync_sources(settings)
    first = sync_core.sync_source(engine, settings, source, streams=streams)
    assert first.error is None and first.streams["attendance"].new == 2
    second = sync_core.sync_source(engine, settings, source, streams=streams)
    assert second.error is None and second.streams["attendance"].new == 0
    with Session(engine) as session:
        assert len(session.scalars(select(OutboxRow.id)).all()) == 2
