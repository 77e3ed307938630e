"""Profiles and avatars: each user's website, the profile picture shown (media_svc's avatar media and
the public URLs of its 150 and 320 px squares) and the one being processed.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "graph"


def upgrade() -> None:
    op.add_column("users", sa.Column("website", sa.Text, nullable=False, server_default=""), schema=SCHEMA)
    op.add_column("users", sa.Column("avatar_media_id", sa.BigInteger), schema=SCHEMA)
    op.add_column("users", sa.Column("avatar_url", sa.Text), schema=SCHEMA)
    op.add_column("users", sa.Column("avatar_large_url", sa.Text), schema=SCHEMA)
    op.add_column("users", sa.Column("pending_avatar_media_id", sa.BigInteger), schema=SCHEMA)
    op.create_check_constraint(
        "avatar_complete",
        "users",
        "(avatar_media_id IS NULL) = (avatar_url IS NULL) AND (avatar_url IS NULL) = (avatar_large_url IS NULL)",
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_constraint("avatar_complete", "users", schema=SCHEMA, type_="check")
    for column in ("pending_avatar_media_id", "avatar_large_url", "avatar_url", "avatar_media_id", "website"):
        op.drop_column("users", column, schema=SCHEMA)
