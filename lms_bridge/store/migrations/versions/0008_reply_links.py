"""Reply links of community posts (``evidence.reply_to``) and the web user's role.

``reply_to`` holds the source's own reply link as the replied item's object key within the same
site (``post:<id>``, ``discussion:<id>``, ``message:<chat>:<id>``): a Moodle post's parent, a
Telegram ``reply_to_message_id``. Sources without reply links (WhatsApp exports) leave it NULL;
nothing is inferred. The CoP health report (``report cop``) joins it to the replied item's author.
Telegram replies stored before this revision already name their parent in ``facts``; they are
copied over so the report sees them too.

``web_users.role``: ``hr`` (every page) or ``organiser`` (the *Komunitas Belajar* page only:
aggregates, never persons).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:  # noqa: D103
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("reply_to", sa.Text(), nullable=True))
    op.create_index("ix_evidence_site_reply_to", "evidence", ["site_id", "reply_to"])
    op.create_index("ix_evidence_site_object", "evidence", ["site_id", "object_key"])
    with op.batch_alter_table("web_users") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="hr"))
    # Telegram replies already stored: the parent the connector read is in facts ("parent": "message:...").
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT statement_id, facts FROM evidence WHERE kind = 'message_replied' AND source = 'telegram'")
    ).fetchall()
    for statement_id, facts in rows:
        parent = json.loads(facts or "{}").get("parent")
        if isinstance(parent, str) and parent.startswith("message:"):
            bind.execute(
                sa.text("UPDATE evidence SET reply_to = :parent WHERE statement_id = :id"),
                {"parent": parent, "id": statement_id},
            )


def downgrade() -> None:  # noqa: D103
    with op.batch_alter_table("web_users") as batch:
        batch.drop_column("role")
    op.drop_index("ix_evidence_site_object", table_name="evidence")
    op.drop_index("ix_evidence_site_reply_to", table_name="evidence")
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("reply_to")
