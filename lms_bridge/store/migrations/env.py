"""Alembic environment: runs on the connection lms-bridge hands it (never a URL in a file)."""

from __future__ import annotations

from alembic import context

from lms_bridge.store.models import Base, include_name

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
