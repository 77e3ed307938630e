"""An index of the captions that mentioned a user: what a user's erasure (engagement_svc.erasure)
reads by (the primary key starts with the post).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "engagement"


def upgrade() -> None:
    op.create_index("caption_mentions_by_user", "caption_mentions", ["user_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("caption_mentions_by_user", table_name="caption_mentions", schema=SCHEMA)
