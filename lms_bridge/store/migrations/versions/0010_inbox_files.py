"""Inbox files seen but not finished: the two-pass size check and the count of unexpected failures.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lms_bridge.store.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:  # noqa: D103
    op.create_table(
        "inbox_files",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", UTCDateTime, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(200)),
    )


def downgrade() -> None:  # noqa: D103
    op.drop_table("inbox_files")
