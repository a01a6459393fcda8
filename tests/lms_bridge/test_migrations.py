"""The migrations and the models describe the same schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

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
