"""Every registered connector keeps the promises of the connector contract (connectors/base.py).

Each runs against its fake server on 127.0.0.1 (a source LRS: a real Ralph), opened and read
through the contract only, as the run loop does: pages of activities with JSON positions, a read
from the final position that adds nothing and does not move it back, a self-check, positions it
can describe and reset (or refuses to, in one sentence), and the stream order it declares.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors import CONNECTORS
from connectors.base import Check, Connector, Page
from fakes.classroom import FakeClassroom, shared_service_account
from fakes.meet_reports import FakeMeetReports
from fakes.telegram_bot import FakeTelegramBot
from fakes.zoom import TEST_CLIENT_SECRET, FakeZoom
from lms_bridge.activity import Activity
from lms_bridge.config.settings import Settings, load_settings
from lms_bridge.demo.moodle import FakeMoodle
from lms_bridge.demo.ralph import RalphLRS
from lms_bridge.errors import ConfigError
from lms_bridge.ingest.runner import connector_context, source_settings
from tests.connectors import test_google_classroom as classroom_tests
from tests.connectors import test_google_meet as meet_tests
from tests.connectors import test_telegram_bot as telegram_tests
from tests.connectors import test_zoom_api as zoom_tests
from tests.fixtures.moodle import ADMIN_TOKEN, LIMITED_TOKEN, moodle_source
from xapi.vocabulary import load_vocabulary

PSEUDONYM_KEY = "contract-test-pseudonym-key-7d21c4"


@dataclass
class Live:
    """One configured source of a connector, its fake running."""

    settings: Settings
    source_id: str

    @property
    def connector(self) -> Connector[Any]:
        return CONNECTORS[self.settings.source(self.source_id).type]


def _settings(tmp_path: Path, toml: str) -> Settings:
    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n' + textwrap.dedent(toml))
    return load_settings(config, environ={})


@pytest.fixture(params=list(CONNECTORS))
def live(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    """Every registered connector's source, with some activity in its fake."""
    monkeypatch.setenv("LMS_BRIDGE_PSEUDONYM_KEY", PSEUDONYM_KEY)
    kind = request.param
    if kind == "moodle":
        monkeypatch.setenv("MOODLE_TOKEN_DEMO", ADMIN_TOKEN)
        with FakeMoodle(preset="small", seed=1, token=ADMIN_TOKEN, limited_token=LIMITED_TOKEN) as fake:
            yield Live(_settings(tmp_path, moodle_source(fake)), "demo")
    elif kind == "lrs":
        from tests.test_lrs_source import SOURCE_PASSWORD, _first_batch, _post

        monkeypatch.setenv("SOURCE_LRS_PASSWORD", SOURCE_PASSWORD)
        with RalphLRS(username="lms-reader", password=SOURCE_PASSWORD) as lrs:
            _post(lrs, _first_batch())
            toml = (
                f'\n[[sources]]\nid = "src"\ntype = "lrs"\nurl = "{lrs.url}"\nusername = "{lrs.username}"\n'
                'password_env = "SOURCE_LRS_PASSWORD"\npage_size = 3\nbackoff_base = 0.05\n'
            )
            yield Live(_settings(tmp_path, toml), "src")
    elif kind == "zoom_api":
        monkeypatch.setenv("ZOOM_CLIENT_SECRET", TEST_CLIENT_SECRET)
        with FakeZoom(account_id="acc-1", client_id="cid-1", client_secret=TEST_CLIENT_SECRET) as fake:
            zoom_tests.add_fixture_meeting(fake, zoom_tests.DAY)
            yield Live(_settings(tmp_path, zoom_tests.source_toml(fake)), "zoom-bkd")
    elif kind == "telegram_bot":
        monkeypatch.setenv(telegram_tests.TOKEN_ENV, telegram_tests.TOKEN)
        with FakeTelegramBot(telegram_tests.TOKEN, max_poll_seconds=0.5) as fake:
            telegram_tests._first_batch(fake)
            toml = (
                f'\n[[sources]]\nid = "tg"\ntype = "telegram_bot"\ntoken_env = "{telegram_tests.TOKEN_ENV}"\n'
                f'api_url = "{fake.url}"\ntimeout = 1\nbackoff_base = 0.05\n'
                f'chats = {{ "-1001000000001" = "{telegram_tests.COMMUNITY}" }}\n'
            )
            yield Live(_settings(tmp_path, toml), "tg")
    elif kind == "google_classroom":
        key, public_pem = shared_service_account()
        admin = classroom_tests.ADMIN
        with FakeClassroom(public_pem=public_pem, client_email=key["client_email"], subject=admin) as fake:
            fake.add_course("c1", "Pelatihan Dasar CPNS")
            fake.add_student("c1", "u1", "budi.s@example.org", "Budi Santoso")
            fake.add_submission("c1", "w1", "u1", "Tugas 1", turned_in="2024-03-12T02:00:00Z")
            fake.add_course("c2", "Komunitas Widyaiswara")
            fake.add_profile("t1", "dewi.l@example.org", "Dewi Lestari")
            fake.add_announcement("c2", "a1", "t1", "Selamat datang", "2024-03-12T01:00:00Z")
            classroom_tests.key_file(tmp_path, fake)
            yield Live(_settings(tmp_path, classroom_tests.source_toml(fake)), "kelas-bkpsdm")
    elif kind == "google_meet":
        key, public_pem = shared_service_account()
        with FakeMeetReports(public_pem=public_pem, client_email=key["client_email"], subject=meet_tests.ADMIN) as fake:
            meet_tests.add_fixture_meeting(fake)
            meet_tests.key_file(tmp_path, fake)
            yield Live(_settings(tmp_path, meet_tests.source_toml(fake)), "meet-bkpsdm")
    else:  # pragma: no cover - a new connector needs its fake here
        pytest.fail(f"connector {kind} has no fake in the contract test: add one")


def _read(live: Live, starts: dict[str, Any]) -> dict[str, list[Page]]:
    """Every stream's pages from ``starts``, through the contract (one reader, streams in run order)."""
    connector = live.connector
    source = source_settings(live.settings.source(live.source_id))
    context = connector_context(live.settings, vocabulary=load_vocabulary())
    pages: dict[str, list[Page]] = {}
    with connector.open(source, context) as reader:
        for name in connector.to_run(None):
            pages[name] = list(reader.read(name, starts.get(name)))
        assert all(isinstance(count, int) and count >= 0 for count in reader.calls.values())
        assert sum(reader.calls.values()) > 0
    return pages


def _final(pages: list[Page], start: Any) -> Any:
    """The position a run leaves: the last page's that carries one (the start when none does)."""
    positions = [page.position for page in pages if page.position is not None]
    return positions[-1] if positions else start


def test_a_stream_gives_pages_of_activities_with_positions_a_reread_keeps(live: Live) -> None:
    connector = live.connector
    first = _read(live, {})
    assert list(first) == list(connector.stream_names)
    keys: dict[str, set[str]] = {}
    for name, pages in first.items():
        for page in pages:
            assert all(isinstance(activity, Activity) for activity in page.activities)
            assert all(isinstance(local, str) and local for local in page.accounts)
            assert all(nip is None or isinstance(nip, str) for nip in page.accounts.values())
            assert page.read >= 0 and all(count > 0 for count in page.skipped.values())
            json.dumps(page.position)  # a position is stored as JSON
        keys[name] = {activity.natural_key for page in pages for activity in page.activities}
    assert any(keys.values()), f"{connector.type}: the fake's activity gave no activity"
    finals = {name: _final(pages, None) for name, pages in first.items()}
    assert any(position is not None for position in finals.values())

    # From the final positions: nothing that was not read already, and no position moves back.
    again = _read(live, finals)
    for name, pages in again.items():
        found = {activity.natural_key for page in pages for activity in page.activities}
        assert found <= keys[name], f"{connector.type}/{name}: a reread from its position found new activity"
        after = _final(pages, finals[name])
        described = connector.describe_position(finals[name])
        if described is None:
            assert after == finals[name], f"{connector.type}/{name}: the position moved"
        else:
            # A position may keep bookkeeping besides its watermarks (Moodle's rechecked users):
            # what it says about where the stream is must not change.
            assert isinstance(described, str) and described
            assert connector.describe_position(after) == described, f"{connector.type}/{name}: the position moved"


def test_check_reset_and_stream_order_keep_their_promises(live: Live) -> None:
    connector = live.connector
    entry = live.settings.source(live.source_id).model_dump(exclude_none=True)
    check = connector.check(entry, connector_context(live.settings))
    assert check is None or (isinstance(check, Check) and check.ok and check.detail), check
    assert connector.settings(entry).id == live.source_id
    with pytest.raises(ConfigError, match=live.source_id):
        connector.settings({**entry, "no_such_key": 1})

    positions = {name: _final(pages, None) for name, pages in _read(live, {}).items()}
    later = datetime.now(UTC) + timedelta(days=1)
    resettable = 0
    for name, position in positions.items():
        try:
            after, forward = connector.reset_position(live.source_id, name, position, later)
        except ConfigError as exc:
            assert live.source_id in str(exc) or name in str(exc)  # one sentence naming what it refuses
            continue
        resettable += 1
        json.dumps(after)
        assert forward is bool(forward)
    with pytest.raises(ConfigError):
        connector.reset_position(live.source_id, "no-such-stream", None, later)

    in_order, side_by_side = connector.distributed_plan(None)
    assert set(in_order) | set(side_by_side) <= set(connector.stream_names)
    assert not set(in_order) & set(side_by_side)
    if connector.type == "moodle":
        assert in_order == ["enrolled_users"] and "enrolled_users" not in side_by_side
        assert side_by_side == ["course_completions", "activity_completions", "forum_posts"]
        assert resettable == 3 and check is not None
    else:
        assert in_order == list(connector.stream_names) and side_by_side == []
