"""Indexes of a user's own likes and comments (their data export, erasing them).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "engagement"


def upgrade() -> None:
    op.create_index(
        "likes_by_user", "likes", ["user_id", sa.text("created_at DESC"), sa.text("post_id DESC")], schema=SCHEMA
    )
    op.create_index("comments_by_author", "comments", ["author_id", "id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("comments_by_author", table_name="comments", schema=SCHEMA)
    op.drop_index("likes_by_user", table_name="likes", schema=SCHEMA)
