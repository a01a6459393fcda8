"""Display-name links (``lms-bridge people link-names``) resolve chat evidence by community and actor.

A name link is an ``identity_links`` row with ``source = "name"``, ``site_id`` = the community
and ``local_id`` = the keyed pseudonym of the normalised display name (the one the chat parser
already gives the sender). Resolving a person's evidence through it looks evidence up by
``(community, local_actor)``: this index keeps that a lookup, not a scan.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:  # noqa: D103
    op.create_index("ix_evidence_community_actor", "evidence", ["community", "local_actor"])


def downgrade() -> None:  # noqa: D103
    op.drop_index("ix_evidence_community_actor", table_name="evidence")
