"""Stories, their views, create idempotency keys and the stories outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from mesh.migrate import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "stories"


def upgrade() -> None:
    op.create_table(
        "stories",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("author_id", sa.BigInteger, nullable=False),
        sa.Column("media_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("stories_by_author", "stories", ["author_id", "expire_at"], schema=SCHEMA)
    op.create_index("stories_by_expiry", "stories", ["expire_at"], schema=SCHEMA)
    op.create_table(
        "story_views",
        sa.Column("story_id", sa.BigInteger, sa.ForeignKey(f"{SCHEMA}.stories.id", ondelete="CASCADE"), nullable=False),
        sa.Column("viewer_id", sa.BigInteger, nullable=False),
        sa.Column("viewed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("story_id", "viewer_id"),
        schema=SCHEMA,
    )
    op.create_index(
        "story_views_newest",
        "story_views",
        ["story_id", sa.text("viewed_at DESC"), sa.text("viewer_id DESC")],
        schema=SCHEMA,
    )
    op.create_table(
        "story_requests",
        sa.Column("author_id", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("story_id", sa.BigInteger, nullable=False),
        sa.Column("media_id", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("author_id", "request_id"),
        schema=SCHEMA,
    )
    op.create_index("story_requests_by_story", "story_requests", ["story_id"], schema=SCHEMA)
    create_outbox_table(SCHEMA)


def downgrade() -> None:
    for table in ("outbox", "story_requests", "story_views", "stories"):
        op.drop_table(table, schema=SCHEMA)
