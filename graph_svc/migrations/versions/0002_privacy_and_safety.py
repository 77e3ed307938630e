"""Privacy and safety: private accounts, follow requests, blocks, mutes and reports, with the indexes
the visibility queries read (each one index probe per pair of users, both directions).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "graph"

# The vocabularies as of this revision (graph_svc.models derives them from the wire enums;
# tests/graph_svc/test_reports.py checks that the migrated constraints still agree).
SUBJECT_TYPES = ("post", "comment", "user")
REASONS = (
    "spam",
    "nudity",
    "harassment",
    "violence",
    "hate_speech",
    "self_harm",
    "false_information",
    "intellectual_property",
    "other",
)
STATES = ("open", "resolved")
RESOLUTIONS = ("action_taken", "no_violation")


def _one_of(column: str, words: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(w) for w in words)})"


def _relation(name: str, subject: str, object_: str, check: str) -> None:
    """A table of (subject, object) pairs with its time, keyed by the pair."""
    op.create_table(
        name,
        sa.Column(subject, sa.BigInteger, primary_key=True),
        sa.Column(object_, sa.BigInteger, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(f"{subject} <> {object_}", name=check),
        schema=SCHEMA,
    )


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("is_private", sa.Boolean, nullable=False, server_default=sa.text("false")), schema=SCHEMA
    )

    _relation("follow_requests", "requester_id", "target_id", "no_self_request")
    op.create_index(
        "follow_requests_incoming",
        "follow_requests",
        ["target_id", sa.text("created_at DESC"), sa.text("requester_id DESC")],
        schema=SCHEMA,
    )

    _relation("blocks", "blocker_id", "blocked_id", "no_self_block")
    op.create_index("blocks_by_blocked", "blocks", ["blocked_id", "blocker_id"], schema=SCHEMA)
    op.create_index(
        "blocks_recent", "blocks", ["blocker_id", sa.text("created_at DESC"), sa.text("blocked_id DESC")], schema=SCHEMA
    )

    _relation("mutes", "muter_id", "muted_id", "no_self_mute")
    op.create_index("mutes_by_muted", "mutes", ["muted_id", "muter_id"], schema=SCHEMA)
    op.create_index(
        "mutes_recent", "mutes", ["muter_id", sa.text("created_at DESC"), sa.text("muted_id DESC")], schema=SCHEMA
    )

    op.create_table(
        "reports",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("reporter_id", sa.BigInteger, nullable=False),
        sa.Column("subject_type", sa.Text, nullable=False),
        sa.Column("subject_id", sa.BigInteger, nullable=False),
        sa.Column("reported_user_id", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False, server_default=""),
        sa.Column("snapshot", JSONB, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="open"),
        sa.Column("resolution", sa.Text),
        sa.Column("resolution_note", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(_one_of("subject_type", SUBJECT_TYPES), name="known_subject_type"),
        sa.CheckConstraint(_one_of("reason", REASONS), name="known_reason"),
        sa.CheckConstraint(_one_of("state", STATES), name="known_state"),
        sa.CheckConstraint(_one_of("resolution", RESOLUTIONS), name="known_resolution"),
        sa.CheckConstraint("(state = 'open') = (resolution IS NULL)", name="resolved_iff_resolution"),
        schema=SCHEMA,
    )
    op.create_index("reports_by_state", "reports", ["state", "id"], schema=SCHEMA)
    op.create_index(
        "reports_open_once",
        "reports",
        ["reporter_id", "subject_type", "subject_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("state = 'open'"),
    )


def downgrade() -> None:
    op.drop_table("reports", schema=SCHEMA)
    op.drop_table("mutes", schema=SCHEMA)
    op.drop_table("blocks", schema=SCHEMA)
    op.drop_table("follow_requests", schema=SCHEMA)
    op.drop_column("users", "is_private", schema=SCHEMA)
