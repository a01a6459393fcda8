"""The ledger (JP records and evidence mirrored from the LRS), roster unit history, web users.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lms_bridge.store.models import BigId, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:  # noqa: D103
    op.create_table(
        "person_units",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("nip", sa.String(18), nullable=False),
        sa.Column("unit_code", sa.String(64)),
        sa.Column("unit_name", sa.Text),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.UniqueConstraint("nip", "valid_from", name="uq_person_units_nip_from"),
    )
    op.create_index("ix_person_units_nip", "person_units", ["nip"])
    # Persons already on the roster start their history with the unit they have now.
    op.execute(
        "INSERT INTO person_units (nip, unit_code, unit_name, valid_from) "
        "SELECT nip, unit_code, unit_name, DATE('1970-01-01') FROM persons WHERE unit_code IS NOT NULL"
    )
    op.create_table(
        "ledger_records",
        sa.Column("statement_id", sa.String(36), primary_key=True),
        sa.Column("nip", sa.String(18), nullable=False),
        sa.Column("jp", sa.String(16), nullable=False),
        sa.Column("rule_id", sa.String(64)),
        sa.Column("rule_version", sa.Integer),
        sa.Column("rule_code", sa.String(16)),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("period_day", sa.Date, nullable=False),
        sa.Column("object_id", sa.Text, nullable=False),
        sa.Column("evidence_ids", sa.Text, nullable=False),
        sa.Column("evidence_count", sa.Integer, nullable=False),
        sa.Column("timestamp", UTCDateTime, nullable=False),
        sa.Column("stored", UTCDateTime),
        sa.Column("voided", sa.Boolean, nullable=False),
    )
    op.create_index("ix_ledger_records_nip_day", "ledger_records", ["nip", "period_day", "voided", "jp"])
    op.create_index("ix_ledger_records_day", "ledger_records", ["period_day"])
    op.create_table(
        "ledger_evidence",
        sa.Column("statement_id", sa.String(36), primary_key=True),
        sa.Column("verb", sa.Text, nullable=False),
        sa.Column("object_id", sa.Text, nullable=False),
        sa.Column("object_type", sa.Text),
        sa.Column("object_name", sa.Text),
        sa.Column("platform", sa.Text),
        sa.Column("timestamp", UTCDateTime, nullable=False),
    )
    op.create_table(
        "web_users",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("units", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "ledger_voids",
        sa.Column("statement_id", sa.String(36), primary_key=True),
        sa.Column("voided_by", sa.String(36), nullable=False),
    )


def downgrade() -> None:  # noqa: D103
    op.drop_table("ledger_voids")
    op.drop_table("web_users")
    op.drop_table("ledger_evidence")
    op.drop_table("ledger_records")
    op.drop_table("person_units")
