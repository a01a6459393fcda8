"""Tombstones of forgotten people (``lms-bridge forget``): keyed digests only, never a NIP.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lms_bridge.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:  # noqa: D103
    op.create_table(
        "forgotten_people",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("forgotten_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:  # noqa: D103
    op.drop_table("forgotten_people")
