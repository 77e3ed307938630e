"""Uploads for profile pictures: each media's purpose (PHOTO or AVATAR); an avatar is attached to no
post, so the check that attached media have their post applies to photos only.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "media"


def upgrade() -> None:
    # Every media before this revision is a post's or a story's photo.
    op.add_column("media", sa.Column("purpose", sa.Text, nullable=False, server_default="PHOTO"), schema=SCHEMA)
    op.create_check_constraint("known_purpose", "media", "purpose IN ('PHOTO', 'AVATAR')", schema=SCHEMA)
    op.drop_constraint("attached_iff_not_pending", "media", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "attached_iff_not_pending",
        "media",
        "purpose = 'AVATAR' OR (status = 'PENDING') = (post_id IS NULL)",
        schema=SCHEMA,
    )
    op.create_check_constraint("avatars_on_no_post", "media", "purpose = 'PHOTO' OR post_id IS NULL", schema=SCHEMA)


def downgrade() -> None:
    op.execute(f"DELETE FROM {SCHEMA}.media WHERE purpose = 'AVATAR'")
    op.drop_constraint("avatars_on_no_post", "media", schema=SCHEMA, type_="check")
    op.drop_constraint("attached_iff_not_pending", "media", schema=SCHEMA, type_="check")
    op.create_check_constraint(
        "attached_iff_not_pending", "media", "(status = 'PENDING') = (post_id IS NULL)", schema=SCHEMA
    )
    op.drop_constraint("known_purpose", "media", schema=SCHEMA, type_="check")
    op.drop_column("media", "purpose", schema=SCHEMA)
