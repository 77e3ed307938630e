"""Tables of the `graph` schema."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, MetaData, Table, Text, func

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
    CheckConstraint("follower_count >= 0 AND following_count >= 0", name="counts_not_negative"),
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

outbox = outbox_table(metadata)
