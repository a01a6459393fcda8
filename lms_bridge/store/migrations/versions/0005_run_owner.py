"""The lock owner of a run, so ``runs list`` tells a killed run from a live one.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:  # noqa: D103
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=True))


def downgrade() -> None:  # noqa: D103
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
