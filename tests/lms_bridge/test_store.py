"""The state store on SQLite and PostgreSQL: migrations, the cursor rule, idempotent enqueue."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from lms_bridge import store
from lms_bridge.errors import ConfigError
from xapi.statements import BuiltStatement


def _statements(count: int, prefix: str = "a") -> list[BuiltStatement]:
    return [
        BuiltStatement(id=f"00000000-0000-4000-8000-{index:012d}", body=f'{{"n":"{prefix}{index}"}}')
        for index in range(count)
    ]


def test_migration_creates_every_table_and_is_idempotent(state_url: str):
    engine = store.make_engine(state_url)
    assert store.current_revision(engine) is None
    before, after = store.upgrade(engine)
    assert (before, after) == (None, store.head_revision())
    assert store.upgrade(engine) == (after, after)
    tables = set(inspect(engine).get_table_names())
    assert {"sites", "cursors", "persons", "identity_links", "outbox", "runs", "locks"} <= tables


def test_commit_batch_stores_rows_and_cursor_together(state_url: str):
    engine = store.open_engine(state_url)
    result = store.commit_batch(engine, site_id="s1", stream="posts", statements=_statements(5), position={"t": 10})
    assert (result.new, result.unchanged, result.changed) == (5, 0, 0)
    assert store.get_cursor(engine, "s1", "posts") == {"t": 10}
    assert store.outbox_counts(engine).pending == 5


def test_rerun_of_a_batch_adds_nothing_and_reports_changes(state_url: str):
    engine = store.open_engine(state_url)
    store.commit_batch(engine, site_id="s1", stream="posts", statements=_statements(4), position=1)
    again = store.commit_batch(engine, site_id="s1", stream="posts", statements=_statements(4), position=2)
    assert (again.new, again.unchanged, again.changed) == (0, 4, 0)
    edited = store.commit_batch(engine, site_id="s1", stream="posts", statements=_statements(4, "b"), position=3)
    assert (edited.new, edited.unchanged, edited.changed) == (0, 0, 4)
    assert store.outbox_counts(engine).pending == 4


def test_failed_transaction_moves_neither_cursor_nor_outbox(state_url: str):
    engine = store.open_engine(state_url)
    store.commit_batch(engine, site_id="s1", stream="posts", statements=_statements(2), position="p1")
    # The cursor write fails after the rows were inserted: the whole transaction rolls back.
    with pytest.raises(TypeError):
        store.commit_batch(engine, site_id="s1", stream="posts", statements=_statements(6), position=object())
    assert store.get_cursor(engine, "s1", "posts") == "p1"
    assert store.outbox_counts(engine).pending == 2


def test_duplicate_ids_in_one_batch_collapse_to_one_row(state_url: str):
    engine = store.open_engine(state_url)
    twice = [BuiltStatement(id="x" * 36, body="{}"), BuiltStatement(id="x" * 36, body="{}")]
    # Ralph refuses a batch holding one id twice (docs/lrs.md §3), so the outbox never holds two.
    assert store.commit_batch(engine, site_id="s1", stream="posts", statements=twice, position="p").new == 1


def test_position_none_leaves_the_cursor_alone(state_url: str):
    engine = store.open_engine(state_url)
    store.commit_batch(engine, site_id="s1", stream="posts", statements=_statements(1), position="live")
    store.commit_batch(engine, site_id="s1", stream="posts", statements=_statements(3), position=None)
    assert store.get_cursor(engine, "s1", "posts") == "live"
    assert store.outbox_counts(engine).pending == 3


def test_runs_are_recorded(state_url: str):
    engine = store.open_engine(state_url)
    run_id = store.start_run(engine, "import", "s1")
    store.finish_run(engine, run_id, status="ok", counts={"posts": {"new": 3}})
    assert run_id >= 1


def test_unreachable_postgres_is_a_config_error():
    engine = store.make_engine("postgresql://nobody:pw-should-not-show@127.0.0.1:1/none")
    with pytest.raises(ConfigError) as info:
        store.current_revision(engine)
    assert "pw-should-not-show" not in str(info.value)
    assert "cannot be opened" in str(info.value)


def test_unsupported_database_is_refused():
    with pytest.raises(ConfigError, match="not supported"):
        store.make_engine("mysql://root@127.0.0.1/test")
