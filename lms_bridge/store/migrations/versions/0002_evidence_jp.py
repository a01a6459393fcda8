"""Roster fields on persons, the evidence table, JP records.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lms_bridge.store.models import BigId, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:  # noqa: D103
    with op.batch_alter_table("persons") as batch:
        batch.add_column(sa.Column("name", sa.Text))
        batch.add_column(sa.Column("unit_code", sa.String(64)))
        batch.add_column(sa.Column("unit_name", sa.Text))
        batch.add_column(sa.Column("position", sa.Text))
        batch.add_column(sa.Column("roster_updated_at", UTCDateTime))
    op.create_table(
        "evidence",
        sa.Column("statement_id", sa.String(36), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("local_actor", sa.String(128), nullable=False),
        sa.Column("nip", sa.String(18)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("duration_seconds", sa.Integer),
        sa.Column("object_key", sa.Text, nullable=False),
        sa.Column("community", sa.Text),
        sa.Column("facts", sa.Text, nullable=False),
    )
    op.create_index("ix_evidence_actor", "evidence", ["source", "site_id", "local_actor"])
    op.create_index("ix_evidence_nip", "evidence", ["nip"])
    op.create_index("ix_evidence_occurred_at", "evidence", ["occurred_at"])
    op.create_table(
        "jp_records",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("nip", sa.String(18), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("rule_version", sa.Integer, nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("activity_key", sa.Text, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("jp", sa.String(16), nullable=False),
        sa.Column("evidence_hash", sa.String(64), nullable=False),
        sa.Column("statement_id", sa.String(36), nullable=False, unique=True),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("nip", "rule_id", "period", "activity_key", "revision", name="uq_jp_records_key"),
    )
    op.create_index("ix_jp_records_nip_status", "jp_records", ["nip", "status"])


def downgrade() -> None:  # noqa: D103
    op.drop_table("jp_records")
    op.drop_table("evidence")
    with op.batch_alter_table("persons") as batch:
        for column in ("roster_updated_at", "position", "unit_name", "unit_code", "name"):
            batch.drop_column(column)
