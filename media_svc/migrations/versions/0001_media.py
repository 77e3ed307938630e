"""Media records and the media outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from mesh.migrate import create_outbox_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "media"


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("owner_id", sa.BigInteger, nullable=False),
        sa.Column("object_key", sa.Text, nullable=False, unique=True),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("real_format", sa.Text),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("checksum", sa.Text),
        sa.Column("blurhash", sa.Text),
        sa.Column("renditions", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("status", sa.Text, nullable=False, server_default="PENDING"),
        sa.Column("failure_reason", sa.Text),
        sa.Column("post_id", sa.BigInteger),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('PENDING', 'PROCESSING', 'READY', 'FAILED')", name="known_status"),
        sa.CheckConstraint("size_bytes > 0", name="size_positive"),
        sa.CheckConstraint("(status = 'PENDING') = (post_id IS NULL)", name="attached_iff_not_pending"),
        schema=SCHEMA,
    )
    op.create_index(
        "media_by_post", "media", ["post_id"], schema=SCHEMA, postgresql_where=sa.text("post_id IS NOT NULL")
    )
    op.create_index("media_by_owner", "media", ["owner_id", sa.text("id DESC")], schema=SCHEMA)
    create_outbox_table(SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("media", schema=SCHEMA)
