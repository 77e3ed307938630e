"""Accounts, follows and the graph outbox.

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

SCHEMA = "graph"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("username", sa.Text(collation="C"), nullable=False, unique=True),
        sa.Column("email", sa.Text, nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False, server_default=""),
        sa.Column("bio", sa.Text, nullable=False, server_default=""),
        sa.Column("follower_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("following_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("follower_count >= 0 AND following_count >= 0", name="counts_not_negative"),
        schema=SCHEMA,
    )
    op.create_table(
        "follows",
        sa.Column("follower_id", sa.BigInteger, primary_key=True),
        sa.Column("followee_id", sa.BigInteger, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("follower_id <> followee_id", name="no_self_follow"),
        schema=SCHEMA,
    )
    op.create_index("follows_by_followee", "follows", ["followee_id", "follower_id"], schema=SCHEMA)
    op.create_index(
        "follows_followers_recent",
        "follows",
        ["followee_id", sa.text("created_at DESC"), sa.text("follower_id DESC")],
        schema=SCHEMA,
    )
    op.create_index(
        "follows_following_recent",
        "follows",
        ["follower_id", sa.text("created_at DESC"), sa.text("followee_id DESC")],
        schema=SCHEMA,
    )
    create_outbox_table(SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("follows", schema=SCHEMA)
    op.drop_table("users", schema=SCHEMA)
