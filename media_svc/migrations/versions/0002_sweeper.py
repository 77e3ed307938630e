"""What the sweeper needs: each upload grant's expiry, when a raw upload was deleted, and indexes
over the rows each of its queries looks for.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "media"


def upgrade() -> None:
    op.add_column("media", sa.Column("upload_expires_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    # Grants made before this revision: their real lifetime is unknown, so assume the longest one
    # the settings allow (7 days); the sweeper then never deletes one early.
    op.execute(
        f"UPDATE {SCHEMA}.media SET upload_expires_at = created_at + interval '7 days' WHERE upload_expires_at IS NULL"
    )
    op.alter_column("media", "upload_expires_at", nullable=False, schema=SCHEMA)
    op.add_column("media", sa.Column("raw_deleted_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_index(
        "media_pending_by_expiry",
        "media",
        ["upload_expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "media_processing_by_update",
        "media",
        ["updated_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'PROCESSING'"),
    )
    op.create_index(
        "media_raw_kept_by_update",
        "media",
        ["updated_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('READY', 'FAILED') AND raw_deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("media_raw_kept_by_update", "media", schema=SCHEMA)
    op.drop_index("media_processing_by_update", "media", schema=SCHEMA)
    op.drop_index("media_pending_by_expiry", "media", schema=SCHEMA)
    op.drop_column("media", "raw_deleted_at", schema=SCHEMA)
    op.drop_column("media", "upload_expires_at", schema=SCHEMA)
