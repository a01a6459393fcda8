"""Held JP credits (a course whose program JP is unknown) and the roster's SIASN person id.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lms_bridge.store.models import BigId, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:  # noqa: D103
    op.create_table(
        "jp_pending",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("nip", sa.String(18), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("period_day", sa.Date(), nullable=False),
        sa.Column("activity_key", sa.Text(), nullable=False),
        sa.Column("site_id", sa.String(64), nullable=False),
        sa.Column("course", sa.Text(), nullable=False),
        sa.Column("evidence_ids", sa.Text(), nullable=False),
        sa.Column("evidence_count", sa.Integer(), nullable=False),
        sa.Column("computed_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("nip", "rule_id", "period", "activity_key", name="uq_jp_pending_key"),
    )
    op.create_index("ix_jp_pending_nip_day", "jp_pending", ["nip", "period_day"])
    with op.batch_alter_table("persons") as batch:
        batch.add_column(sa.Column("siasn_id", sa.String(64), nullable=True))


def downgrade() -> None:  # noqa: D103
    with op.batch_alter_table("persons") as batch:
        batch.drop_column("siasn_id")
    op.drop_index("ix_jp_pending_nip_day", table_name="jp_pending")
    op.drop_table("jp_pending")
