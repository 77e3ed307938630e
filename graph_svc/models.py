"""Tables of the `graph` schema."""

from __future__ import annotations

from google.protobuf.descriptor import EnumDescriptor
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from glimpse.graph.v1 import graph_pb2
from mesh.outbox import outbox_table

metadata = MetaData(schema="graph")

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    # Stored lower-case with the "C" collation, so uniqueness is case-insensitive and a prefix
    # search is a plain btree range.
    Column("username", Text(collation="C"), nullable=False, unique=True),
    Column("email", Text, nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("bio", Text, nullable=False, server_default=""),
    Column("follower_count", BigInteger, nullable=False, server_default="0"),
    Column("following_count", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Only the owner and approved followers see a private account's posts and lists.
    Column("is_private", Boolean, nullable=False, server_default=text("false")),
    # The profile (graph_svc.profile): a normalised http(s) URL or "".
    Column("website", Text, nullable=False, server_default=""),
    # The profile picture shown: media_svc's avatar media and the public URLs of its 150 and 320 px
    # squares (media.avatar_ready), all set or all NULL.
    Column("avatar_media_id", BigInteger),
    Column("avatar_url", Text),
    Column("avatar_large_url", Text),
    # The picture asked for (SetAvatar) whose renditions are being made; shown once they are ready.
    Column("pending_avatar_media_id", BigInteger),
    CheckConstraint("follower_count >= 0 AND following_count >= 0", name="counts_not_negative"),
    CheckConstraint(
        "(avatar_media_id IS NULL) = (avatar_url IS NULL) AND (avatar_url IS NULL) = (avatar_large_url IS NULL)",
        name="avatar_complete",
    ),
)

# SearchUsers' typo tolerance (graph_svc.repository.search_users): trigram indexes (pg_trgm) for the
# similarity of usernames and the word similarity of display names.
Index("users_username_trgm", users.c.username, postgresql_using="gin", postgresql_ops={"username": "gin_trgm_ops"})
Index(
    "users_display_name_trgm",
    users.c.display_name,
    postgresql_using="gin",
    postgresql_ops={"display_name": "gin_trgm_ops"},
)

follows = Table(
    "follows",
    metadata,
    Column("follower_id", BigInteger, primary_key=True),
    Column("followee_id", BigInteger, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("follower_id <> followee_id", name="no_self_follow"),
)
# Follower ids in id order: the fan-out's stream.
Index("follows_by_followee", follows.c.followee_id, follows.c.follower_id)
# Newest-first pages of followers and of followees.
Index("follows_followers_recent", follows.c.followee_id, follows.c.created_at.desc(), follows.c.follower_id.desc())
Index("follows_following_recent", follows.c.follower_id, follows.c.created_at.desc(), follows.c.followee_id.desc())

# Pending requests to follow a private account; approving one moves it to `follows`.
follow_requests = Table(
    "follow_requests",
    metadata,
    Column("requester_id", BigInteger, primary_key=True),
    Column("target_id", BigInteger, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("requester_id <> target_id", name="no_self_request"),
)
# A private account's incoming requests, newest first (ListFollowRequests, and approving them all).
Index(
    "follow_requests_incoming",
    follow_requests.c.target_id,
    follow_requests.c.created_at.desc(),
    follow_requests.c.requester_id.desc(),
)

blocks = Table(
    "blocks",
    metadata,
    Column("blocker_id", BigInteger, primary_key=True),
    Column("blocked_id", BigInteger, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("blocker_id <> blocked_id", name="no_self_block"),
)
# "Who blocks this user": the other direction of every visibility check (the key covers the first).
Index("blocks_by_blocked", blocks.c.blocked_id, blocks.c.blocker_id)
Index("blocks_recent", blocks.c.blocker_id, blocks.c.created_at.desc(), blocks.c.blocked_id.desc())

mutes = Table(
    "mutes",
    metadata,
    Column("muter_id", BigInteger, primary_key=True),
    Column("muted_id", BigInteger, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("muter_id <> muted_id", name="no_self_mute"),
)
# "Who mutes this author": the fan-out's audience filter.
Index("mutes_by_muted", mutes.c.muted_id, mutes.c.muter_id)
Index("mutes_recent", mutes.c.muter_id, mutes.c.created_at.desc(), mutes.c.muted_id.desc())


def _vocabulary(enum: EnumDescriptor, prefix: str) -> tuple[str, ...]:
    """The stored spelling of a wire enum: its value names without `prefix`, lower-case, UNSPECIFIED left out."""
    return tuple(v.name.removeprefix(prefix).lower() for v in enum.values if v.number != 0)


# Reports store their enums as these words (readable in SQL); the migration's checks spell the same
# lists, and tests/graph_svc/test_reports.py compares them.
REPORT_SUBJECT_TYPES = _vocabulary(graph_pb2.ReportSubjectType.DESCRIPTOR, "REPORT_SUBJECT_TYPE_")
REPORT_REASONS = _vocabulary(graph_pb2.ReportReason.DESCRIPTOR, "REPORT_REASON_")
REPORT_STATES = _vocabulary(graph_pb2.ReportState.DESCRIPTOR, "REPORT_STATE_")
REPORT_RESOLUTIONS = _vocabulary(graph_pb2.ReportResolution.DESCRIPTOR, "REPORT_RESOLUTION_")
REPORT_OPEN, REPORT_RESOLVED = REPORT_STATES


def _one_of(column: str, words: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(w) for w in words)})"


reports = Table(
    "reports",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    # NULL once the reporter's account is deleted (graph_svc.erasure): the report stays.
    Column("reporter_id", BigInteger),
    Column("subject_type", Text, nullable=False),
    Column("subject_id", BigInteger, nullable=False),
    Column("reported_user_id", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False, server_default=""),
    # The content as the reporter saw it: evidence that outlives the content.
    Column("snapshot", JSONB, nullable=False),
    Column("state", Text, nullable=False, server_default=REPORT_OPEN),
    Column("resolution", Text),
    Column("resolution_note", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True)),
    CheckConstraint(_one_of("subject_type", REPORT_SUBJECT_TYPES), name="known_subject_type"),
    CheckConstraint(_one_of("reason", REPORT_REASONS), name="known_reason"),
    CheckConstraint(_one_of("state", REPORT_STATES), name="known_state"),
    # NULL passes a CHECK: an open report has no resolution.
    CheckConstraint(_one_of("resolution", REPORT_RESOLUTIONS), name="known_resolution"),
    CheckConstraint(f"(state = '{REPORT_OPEN}') = (resolution IS NULL)", name="resolved_iff_resolution"),
)
# The moderation queue: reports in a state, oldest first (ids are time-ordered).
Index("reports_by_state", reports.c.state, reports.c.id)
# One open report per reporter and subject: a repeat answers the open one.
Index(
    "reports_open_once",
    reports.c.reporter_id,
    reports.c.subject_type,
    reports.c.subject_id,
    unique=True,
    postgresql_where=text(f"state = '{REPORT_OPEN}'"),
)
# Why a session ended; the migration's check spells the same words.
SESSION_REVOKE_REASONS = ("logged_out", "revoked", "password_changed", "refresh_token_reused")

# One login on one device (graph_svc.sessions). The refresh token itself is never stored: the row
# keeps the SHA-256 of the current one and the generation the token carries, so presenting an older
# generation is detectable reuse.
sessions = Table(
    "sessions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False),
    Column("device_label", Text, nullable=False, server_default=""),
    Column("refresh_token_hash", LargeBinary, nullable=False),
    Column("generation", BigInteger, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoke_reason", Text),
    CheckConstraint("octet_length(refresh_token_hash) = 32", name="sha256_hash"),
    CheckConstraint("char_length(device_label) <= 200", name="device_label_bounded"),
    CheckConstraint("generation >= 1", name="generation_positive"),
    CheckConstraint(_one_of("revoke_reason", SESSION_REVOKE_REASONS), name="known_revoke_reason"),
    CheckConstraint("(revoked_at IS NULL) = (revoke_reason IS NULL)", name="revoked_iff_reason"),
)
# A user's sessions newest first (ids are time-ordered).
Index("sessions_by_user", sessions.c.user_id, sessions.c.id.desc())

# A deleted account's username, unavailable until `released_at` (graph_svc.erasure); no user id.
username_holds = Table(
    "username_holds",
    metadata,
    Column("username", Text(collation="C"), primary_key=True),
    Column("released_at", DateTime(timezone=True), nullable=False),
)

outbox = outbox_table(metadata)
