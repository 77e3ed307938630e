"""Sessions (rotated refresh tokens, revocable) and account deletion (username holds; a deleted
reporter's reports stay, without the reporter's id).

A session row stands for one login on one device. Its refresh token is never stored: the row keeps
the SHA-256 of the current one and a generation counter the token carries, so a token of an older
generation is recognised as reused (OAuth 2.0 Security BCP, section 4.14) and revokes the session.

A deleted user's username is held for a grace period in `username_holds`, which has no user id.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "graph"

# The vocabulary as of this revision (graph_svc.models.SESSION_REVOKE_REASONS spells the same list).
REVOKE_REASONS = ("logged_out", "revoked", "password_changed", "refresh_token_reused")


def _one_of(column: str, words: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(w) for w in words)})"


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("device_label", sa.Text, nullable=False, server_default=""),
        sa.Column("refresh_token_hash", sa.LargeBinary, nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoke_reason", sa.Text),
        sa.CheckConstraint("octet_length(refresh_token_hash) = 32", name="sha256_hash"),
        sa.CheckConstraint("char_length(device_label) <= 200", name="device_label_bounded"),
        sa.CheckConstraint("generation >= 1", name="generation_positive"),
        sa.CheckConstraint(_one_of("revoke_reason", REVOKE_REASONS), name="known_revoke_reason"),
        sa.CheckConstraint("(revoked_at IS NULL) = (revoke_reason IS NULL)", name="revoked_iff_reason"),
        schema=SCHEMA,
    )
    op.create_index("sessions_by_user", "sessions", ["user_id", sa.text("id DESC")], schema=SCHEMA)

    op.create_table(
        "username_holds",
        sa.Column("username", sa.Text(collation="C"), primary_key=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )

    op.alter_column("reports", "reporter_id", existing_type=sa.BigInteger, nullable=True, schema=SCHEMA)


def downgrade() -> None:
    op.execute("DELETE FROM graph.reports WHERE reporter_id IS NULL")
    op.alter_column("reports", "reporter_id", existing_type=sa.BigInteger, nullable=False, schema=SCHEMA)
    op.drop_table("username_holds", schema=SCHEMA)
    op.drop_table("sessions", schema=SCHEMA)
