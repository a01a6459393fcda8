"""The migrations and the models describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from lms_bridge import store
from lms_bridge.store.db import _alembic_config
from lms_bridge.store.models import Base, include_name


def test_migrated_schema_matches_the_models(state_url):
    engine = store.open_engine(state_url, None)
    with engine.connect() as connection:
        # include_name: the yearly partitions of ledger_records (PostgreSQL, 0011) are not models.
        context = MigrationContext.configure(connection, opts={"compare_type": False, "include_name": include_name})
        diff = [
            d
            for d in compare_metadata(context, Base.metadata)
            if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")
        ]
    assert diff == []


def test_downgrade_to_base_and_up_again(state_url):
    engine = store.open_engine(state_url, None)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert store.current_revision(engine) is None
    store.upgrade(engine)
    assert store.current_revision(engine) == store.head_revision()


def test_0004_adds_the_forgotten_people_tombstones_and_takes_them_away(state_url):
    engine = store.open_engine(state_url, None)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
    assert store.current_revision(engine) == "0003"
    assert "forgotten_people" not in inspect(engine).get_table_names()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    assert store.current_revision(engine) == "0004"
    columns = {column["name"]: column["nullable"] for column in inspect(engine).get_columns("forgotten_people")}
    assert columns == {"digest": False, "forgotten_at": False}  # a keyed digest and a date: nothing else
    assert inspect(engine).get_pk_constraint("forgotten_people")["constrained_columns"] == ["digest"]


def test_0005_adds_the_run_owner_and_takes_it_away(state_url):
    """``runs.owner`` (the lock owner of a run, which tells a killed run from a live one) comes and goes
    without touching the runs already recorded."""
    engine = store.open_engine(state_url, None)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    assert "owner" not in {column["name"] for column in inspect(engine).get_columns("runs")}
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO runs (command, site_id, started_at, status, counts) "
                "VALUES ('sync', 'lms', :at, 'running', '{}')"
            ),
            {"at": datetime(2026, 1, 2, tzinfo=UTC)},
        )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
    columns = {column["name"]: column["nullable"] for column in inspect(engine).get_columns("runs")}
    assert columns["owner"] is True
    with engine.connect() as connection:
        assert connection.execute(text("SELECT command, status, owner FROM runs")).all() == [("sync", "running", None)]


def test_a_migration_killed_before_its_commit_leaves_a_database_the_next_run_migrates(tmp_path):
    """SQLite runs DDL outside a transaction unless told otherwise: a first migration SIGKILLed before its
    commit used to leave half the tables and no alembic_version, and every later run failed ("table sites
    already exists"). A real SIGKILL of a real process (tests/proof/crashing_cli.py) before the first commit."""
    import os
    import subprocess
    import sys

    config = tmp_path / "lms-bridge.toml"
    config.write_text(f'[state]\nurl = "sqlite:///{tmp_path / "state.db"}"\n', encoding="utf-8")
    env = {**os.environ, "PROOF_KILL": "commit:1:before"}
    command = [sys.executable, "-m", "tests.proof.crashing_cli", "--config", str(config), "db", "upgrade"]
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    engine = store.make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    assert inspect(engine).get_table_names() == []  # the killed migration left nothing behind
    store.upgrade(engine)
    assert store.current_revision(engine) == store.head_revision()
    engine.dispose()


def test_0008_adds_reply_links_and_the_web_role_and_copies_telegram_parents(state_url):
    """``evidence.reply_to`` is filled from the parent a Telegram reply already stored in ``facts``
    (a WhatsApp message has none and stays NULL); web users become ``hr``; all of it goes away again."""
    engine = store.open_engine(state_url, None)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    assert "reply_to" not in {column["name"] for column in inspect(engine).get_columns("evidence")}
    insert = text(
        "INSERT INTO evidence (statement_id, source, site_id, local_actor, kind, occurred_at, object_key, "
        "community, facts) VALUES (:id, :source, 'cop', 'p1', :kind, :at, :key, 'community:cop', :facts)"
    )
    with engine.begin() as connection:
        at = datetime(2026, 1, 2, tzinfo=UTC)
        connection.execute(
            insert,
            [
                {"id": "r", "source": "telegram", "kind": "message_replied", "at": at, "key": "message:1:2",
                 "facts": '{"parent":"message:1:1"}'},
                {"id": "w", "source": "whatsapp", "kind": "message_posted", "at": at, "key": "message:x",
                 "facts": "{}"},
            ],
        )  # fmt: skip
        connection.execute(
            text("INSERT INTO web_users (username, password_hash, units, active, created_at) VALUES ('s', 'h', '', "
                 + ("true" if engine.dialect.name == "postgresql" else "1") + ", :at)"),
            {"at": at},
        )  # fmt: skip
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0008")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT statement_id, reply_to FROM evidence ORDER BY statement_id")).all()
        assert rows == [("r", "message:1:1"), ("w", None)]
        assert connection.execute(text("SELECT role FROM web_users")).scalar_one() == "hr"
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    assert "reply_to" not in {column["name"] for column in inspect(engine).get_columns("evidence")}
    assert "role" not in {column["name"] for column in inspect(engine).get_columns("web_users")}
