"""``cursors reset`` on live sources: each connector says how its cursor maps to a date, or that it has none."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from lms_bridge import store
from lms_bridge.config.settings import load_settings
from lms_bridge.errors import ConfigError
from lms_bridge.operator.cursors import apply_reset, plan_reset

CONFIG = """
[state]
url = "sqlite:///{db}"
[[sources]]
id = "zoom-bkpsdm"
type = "zoom_api"
[[sources]]
id = "classroom"
type = "google_classroom"
[[sources]]
id = "bot"
type = "telegram_bot"
"""


@pytest.fixture
def setup(tmp_path: Path):
    config = tmp_path / "lms-bridge.toml"
    config.write_text(CONFIG.format(db=tmp_path / "state.db"))
    settings = load_settings(config, environ={})
    engine = store.make_engine(settings.state.url)
    store.upgrade(engine)
    yield settings, engine
    engine.dispose()


def test_zoom_cursor_resets_to_a_date_and_says_when_that_skips_ahead(setup):
    settings, engine = setup
    store.commit_batch(
        engine, site_id="zoom-bkpsdm", stream="meetings", statements=(), position={"through": "2026-03-10"}
    )
    back = plan_reset(engine, settings, "zoom-bkpsdm", "meetings", datetime(2026, 2, 1, tzinfo=UTC))
    assert back.after == {"through": "2026-02-01"} and not back.forward
    ahead = plan_reset(engine, settings, "zoom-bkpsdm", "meetings", datetime(2026, 4, 1, tzinfo=UTC))
    assert ahead.forward
    apply_reset(engine, back)
    assert store.get_cursor(engine, "zoom-bkpsdm", "meetings") == {"through": "2026-02-01"}
    with pytest.raises(ConfigError, match="unknown stream 'posts' of zoom_api source zoom-bkpsdm"):
        plan_reset(engine, settings, "zoom-bkpsdm", "posts", datetime(2026, 2, 1, tzinfo=UTC))


def test_classroom_reset_moves_every_known_course_watermark(setup):
    settings, engine = setup
    marks = {"courses": {"101": "2026-05-01T08:00:00.000000Z", "102": "2026-01-01T08:00:00.000000Z"}}
    store.commit_batch(engine, site_id="classroom", stream="submissions", statements=(), position=marks)
    plan = plan_reset(engine, settings, "classroom", "submissions", datetime(2026, 3, 1, tzinfo=UTC))
    assert plan.after == {"courses": {"101": "2026-03-01T00:00:00.000000Z", "102": "2026-03-01T00:00:00.000000Z"}}
    assert plan.forward  # course 102 was behind 1 March: its activity in between would be skipped


def test_telegram_offset_cannot_be_reset_to_a_date(setup):
    settings, engine = setup
    store.commit_batch(engine, site_id="bot", stream="updates", statements=(), position={"offset": 42})
    with pytest.raises(ConfigError, match="bot is of type telegram_bot: its cursor is not a date"):
        plan_reset(engine, settings, "bot", "updates", datetime(2026, 3, 1, tzinfo=UTC))
