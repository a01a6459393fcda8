"""The migrations and the models describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from lms_bridge import store
from lms_bridge.store.db import _alembic_config
from lms_bridge.store.models import Base


def test_migrated_schema_matches_the_models(state_url):
    engine = store.open_engine(state_url, None)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diff = [d for d in compare_metadata(context, Base.metadata)
                if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")]
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
