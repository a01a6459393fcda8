"""The report version counter: one row that every writer of the compliance report's tables bumps.

The web page keeps a computed compliance report per (year, as-of date) and computes it again
only when this counter moved (``lms_bridge.web.report_cache``).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lms_bridge.store.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:  # noqa: D103
    table = op.create_table(
        "report_version",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("changed_at", UTCDateTime),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0, "changed_at": None}])


def downgrade() -> None:  # noqa: D103
    op.drop_table("report_version")
