"""Likes, comments and replies, comment idempotency keys, saves, sharded post counters, deleted
posts, caption mentions and the engagement outbox.

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

SCHEMA = "engagement"


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "likes",
        sa.Column("post_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("post_id", "user_id"),
        schema=SCHEMA,
    )
    op.create_index(
        "likes_newest", "likes", ["post_id", sa.text("created_at DESC"), sa.text("user_id DESC")], schema=SCHEMA
    )
    op.create_table(
        "comments",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("post_id", sa.BigInteger, nullable=False),
        sa.Column("author_id", sa.BigInteger, nullable=False),
        sa.Column("parent_id", sa.BigInteger),
        sa.Column("reply_to_id", sa.BigInteger),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("reply_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("state", sa.SmallInteger, nullable=False, server_default="1"),
        _created_at(),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_index(
        "comments_top_level",
        "comments",
        ["post_id", "created_at", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("parent_id IS NULL AND state = 1"),
    )
    op.create_index(
        "comments_replies",
        "comments",
        ["parent_id", "created_at", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("parent_id IS NOT NULL AND state = 1"),
    )
    op.create_index("comments_by_post", "comments", ["post_id"], schema=SCHEMA)
    op.create_table(
        "comment_requests",
        sa.Column("author_id", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("comment_id", sa.BigInteger, nullable=False),
        sa.Column("post_id", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.LargeBinary, nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("author_id", "request_id"),
        schema=SCHEMA,
    )
    op.create_index("comment_requests_by_post", "comment_requests", ["post_id"], schema=SCHEMA)
    op.create_table(
        "saves",
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("post_id", sa.BigInteger, nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("user_id", "post_id"),
        schema=SCHEMA,
    )
    op.create_index(
        "saves_newest", "saves", ["user_id", sa.text("created_at DESC"), sa.text("post_id DESC")], schema=SCHEMA
    )
    op.create_index("saves_by_post", "saves", ["post_id"], schema=SCHEMA)
    op.create_table(
        "post_counters",
        sa.Column("post_id", sa.BigInteger, nullable=False),
        sa.Column("shard", sa.SmallInteger, nullable=False),
        sa.Column("likes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("comments", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("post_id", "shard"),
        schema=SCHEMA,
    )
    op.create_table(
        "deleted_posts",
        sa.Column("post_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_table(
        "caption_mentions",
        sa.Column("post_id", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("post_id", "user_id"),
        schema=SCHEMA,
    )
    create_outbox_table(SCHEMA)


def downgrade() -> None:
    for table in ("outbox", "caption_mentions", "deleted_posts", "post_counters", "saves", "comment_requests"):
        op.drop_table(table, schema=SCHEMA)
    op.drop_table("comments", schema=SCHEMA)
    op.drop_table("likes", schema=SCHEMA)
