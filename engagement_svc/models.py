"""Tables of the `engagement` schema.

The rows are the truth: a like is unique per (post, user), a save per (user, post), and a comment
is live until deleted. `post_counters` only caches their counts, split over shards so that a viral
post does not queue every like behind one row lock; the count of a post is the SUM over its shards,
and `ReconcileCounts` rebuilds it from the rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
)

from mesh.outbox import outbox_table

metadata = MetaData(schema="engagement")

LIVE, DELETED = 1, 2

likes = Table(
    "likes",
    metadata,
    Column("post_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("post_id", "user_id"),
)
# The likers of a post, newest first (ties broken by user id, so pages never skip or repeat).
Index("likes_newest", likes.c.post_id, likes.c.created_at.desc(), likes.c.user_id.desc())
# A user's own likes, newest first (their data export; erasing them).
Index("likes_by_user", likes.c.user_id, likes.c.created_at.desc(), likes.c.post_id.desc())

comments = Table(
    "comments",
    metadata,
    # Time-ordered ids.
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("post_id", BigInteger, nullable=False),
    Column("author_id", BigInteger, nullable=False),
    # The top-level comment of a reply (NULL for a top-level comment): replies nest one level.
    Column("parent_id", BigInteger),
    # What a reply answered: its top-level comment or another reply of it (NULL for a top-level one).
    Column("reply_to_id", BigInteger),
    Column("text", Text, nullable=False),
    # Live replies of a top-level comment, moved in the transaction that adds or deletes one.
    Column("reply_count", BigInteger, nullable=False, server_default="0"),
    Column("state", SmallInteger, nullable=False, server_default=str(LIVE)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
)
# A post's live top-level comments and a comment's live replies, oldest first (ties by id).
Index(
    "comments_top_level",
    comments.c.post_id,
    comments.c.created_at,
    comments.c.id,
    postgresql_where=(comments.c.parent_id.is_(None)) & (comments.c.state == LIVE),
)
Index(
    "comments_replies",
    comments.c.parent_id,
    comments.c.created_at,
    comments.c.id,
    postgresql_where=(comments.c.parent_id.is_not(None)) & (comments.c.state == LIVE),
)
# Every comment of a post, live or not: what a deleted post takes with it.
Index("comments_by_post", comments.c.post_id)
# A user's own comments, oldest first (their data export; erasing them).
Index("comments_by_author", comments.c.author_id, comments.c.id)

# Idempotency: the comment id reserved for (author, client request id), written with the comment.
# `fingerprint` detects a key reused for another comment.
comment_requests = Table(
    "comment_requests",
    metadata,
    Column("author_id", BigInteger, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("comment_id", BigInteger, nullable=False),
    Column("post_id", BigInteger, nullable=False),
    Column("fingerprint", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("author_id", "request_id"),
)
Index("comment_requests_by_post", comment_requests.c.post_id)

saves = Table(
    "saves",
    metadata,
    Column("user_id", BigInteger, nullable=False),
    Column("post_id", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("user_id", "post_id"),
)
# A user's saved posts, most recently saved first; and every save of a post (for its deletion).
Index("saves_newest", saves.c.user_id, saves.c.created_at.desc(), saves.c.post_id.desc())
Index("saves_by_post", saves.c.post_id)

# Counts of live likes, comments (replies included) and saves per post, as the SUM over its shards.
# One change moves one shard (chosen at random), so a single shard may go below zero while the sum,
# which equals the number of rows, never does.
post_counters = Table(
    "post_counters",
    metadata,
    Column("post_id", BigInteger, nullable=False),
    Column("shard", SmallInteger, nullable=False),
    Column("likes", BigInteger, nullable=False, server_default="0"),
    Column("comments", BigInteger, nullable=False, server_default="0"),
    # Saves are counted for ranking only (feed_svc.ranking); no user is ever shown the count.
    Column("saves", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("post_id", "shard"),
)

# Posts whose `posts.deleted` was handled: their likes, comments and saves are gone, and a write
# arriving later is refused here without asking post_svc.
deleted_posts = Table(
    "deleted_posts",
    metadata,
    Column("post_id", BigInteger, primary_key=True, autoincrement=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Users a post's caption mentioned and who were told (UserMentioned), so that a redelivered
# `posts.created` tells nobody twice.
caption_mentions = Table(
    "caption_mentions",
    metadata,
    Column("post_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("post_id", "user_id"),
)
# The captions that mentioned a user (their erasure).
Index("caption_mentions_by_user", caption_mentions.c.user_id)

outbox = outbox_table(metadata)
