"""Inboxes (change sequence, read marker, types switched off), notifications, their actors, deleted
posts and the notifications outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

from mesh.migrate import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "notifications"
# NotificationType FOLLOW and LIKE: the grouped kinds (notification_svc.models.GROUPED).
GROUPED_KINDS = "kind IN (1, 4)"


def upgrade() -> None:
    op.create_table(
        "inboxes",
        sa.Column("recipient_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("read_up_to", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("disabled_kinds", sa.Integer, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("recipient_id", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("natural_key", sa.Text, nullable=False),
        sa.Column("post_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("comment_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("comment_preview", sa.Text, nullable=False, server_default=""),
        sa.Column("actor_count", sa.Integer, nullable=False),
        sa.Column("recent_actor_ids", ARRAY(sa.BigInteger), nullable=False),
        sa.Column("latest_id", sa.BigInteger, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("recipient_id", "natural_key", name="notifications_natural_key"),
        schema=SCHEMA,
    )
    op.create_index(
        "notifications_inbox",
        "notifications",
        ["recipient_id", sa.text("latest_id DESC")],
        schema=SCHEMA,
        postgresql_where=sa.text("actor_count > 0"),
    )
    op.create_index("notifications_changes", "notifications", ["recipient_id", "sequence"], schema=SCHEMA)
    op.create_index(
        "notifications_groups",
        "notifications",
        ["recipient_id", "kind", "post_id", sa.text("window_start DESC")],
        schema=SCHEMA,
        postgresql_where=sa.text(GROUPED_KINDS),
    )
    op.create_index(
        "notifications_by_post", "notifications", ["post_id"], schema=SCHEMA, postgresql_where=sa.text("post_id != 0")
    )
    op.create_index(
        "notifications_by_comment",
        "notifications",
        ["comment_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("comment_id != 0"),
    )
    op.create_table(
        "notification_actors",
        sa.Column("notification_id", sa.BigInteger, nullable=False),
        sa.Column("actor_id", sa.BigInteger, nullable=False),
        sa.Column("activity_id", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("live", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("notification_id", "actor_id"),
        schema=SCHEMA,
    )
    op.create_index("notification_actors_by_actor", "notification_actors", ["actor_id"], schema=SCHEMA)
    op.create_table(
        "deleted_posts",
        sa.Column("post_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    create_outbox_table(SCHEMA)


def downgrade() -> None:
    for table in ("outbox", "deleted_posts", "notification_actors", "notifications", "inboxes"):
        op.drop_table(table, schema=SCHEMA)
