"""Server-side web sessions and the login throttle (issue 20).

``web_sessions`` keeps the SHA-256 of each login's random token, so logout and ``users disable``
revoke a session (a copied cookie stops working) and a session has an absolute lifetime beside
its idle one. ``web_login_throttle`` counts login attempts per client address and per (address,
name) across processes, raised atomically by one conditional UPDATE.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lms_bridge.store.models import BigId, UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:  # noqa: D103
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", BigId, sa.ForeignKey("web_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("seen_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "web_login_throttle",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("window_start", UTCDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_index("ix_web_login_throttle_window_start", "web_login_throttle", ["window_start"])


def downgrade() -> None:  # noqa: D103
    op.drop_index("ix_web_login_throttle_window_start", table_name="web_login_throttle")
    op.drop_table("web_login_throttle")
    op.drop_index("ix_web_sessions_user_id", table_name="web_sessions")
    op.drop_table("web_sessions")
