"""Posts, idempotency reservations and the posts outbox.

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

SCHEMA = "posts"


def upgrade() -> None:
    op.create_table(
        "posts",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("author_id", sa.BigInteger, nullable=False),
        sa.Column("caption", sa.Text, nullable=False, server_default=""),
        sa.Column("hashtags", sa.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("location_name", sa.Text),
        sa.Column("latitude", sa.Float),
        sa.Column("longitude", sa.Float),
        sa.Column("media_ids", sa.ARRAY(sa.BigInteger), nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_index(
        "posts_by_author",
        "posts",
        ["author_id", sa.text("id DESC")],
        schema=SCHEMA,
        postgresql_where=sa.text("state = 1"),
    )
    op.create_table(
        "post_requests",
        sa.Column("author_id", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("post_id", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("author_id", "request_id"),
        schema=SCHEMA,
    )
    create_outbox_table(SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("post_requests", schema=SCHEMA)
    op.drop_table("posts", schema=SCHEMA)
