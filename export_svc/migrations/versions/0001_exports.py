"""Export jobs and the exports outbox.

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

SCHEMA = "exports"


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failure_reason", sa.Text),
        sa.Column("object_key", sa.Text),
        sa.Column("upload_id", sa.Text),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expire_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('PENDING', 'RUNNING', 'READY', 'FAILED', 'EXPIRED')", name="exports_state_known"),
        sa.UniqueConstraint("user_id", "request_id", name="exports_request_once"),
        schema=SCHEMA,
    )
    op.create_index("exports_by_user", "exports", ["user_id", sa.text("created_at DESC")], schema=SCHEMA)
    op.create_index(
        "exports_one_in_progress",
        "exports",
        ["user_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("state IN ('PENDING', 'RUNNING')"),
    )
    op.create_index(
        "exports_by_expiry", "exports", ["expire_at"], schema=SCHEMA, postgresql_where=sa.text("state != 'EXPIRED'")
    )
    create_outbox_table(SCHEMA)


def downgrade() -> None:
    for table in ("outbox", "exports"):
        op.drop_table(table, schema=SCHEMA)
