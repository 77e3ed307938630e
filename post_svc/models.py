"""Tables of the `posts` schema."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Identity,
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

metadata = MetaData(schema="posts")

ACTIVE, DELETED = 1, 2

posts = Table(
    "posts",
    metadata,
    # Time-ordered ids: ordering by id is ordering by creation time.
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("author_id", BigInteger, nullable=False),
    Column("caption", Text, nullable=False, server_default=""),
    Column("hashtags", ARRAY(Text), nullable=False, server_default="{}"),
    Column("location_name", Text),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("media_ids", ARRAY(BigInteger), nullable=False),
    Column("state", SmallInteger, nullable=False, server_default=str(ACTIVE)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
)
# The profile grid: an author's live posts, newest first.
Index("posts_by_author", posts.c.author_id, posts.c.id.desc(), postgresql_where=posts.c.state == ACTIVE)
# Every post of an author, live or deleted (their erasure).
Index("posts_of_author", posts.c.author_id, posts.c.id)

# Idempotency: the post id reserved for (author, client request id) before media are attached, so a
# retry after any failure reuses the same id. `fingerprint` detects a key reused for another request.
post_requests = Table(
    "post_requests",
    metadata,
    Column("author_id", BigInteger, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("post_id", BigInteger, nullable=False),
    Column("fingerprint", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("author_id", "request_id"),
)

# The tag index: one row per hashtag of each live post, written in the transaction that creates the
# post or edits its caption and removed in the one that deletes it. A tag page, newest first, is one
# backward range of the primary key (post ids are time-ordered).
post_tags = Table(
    "post_tags",
    metadata,
    # The normalised tag (usertext.normalize_hashtag); "C" collation, so a prefix is a btree range.
    Column("tag", Text(collation="C"), primary_key=True),
    Column("post_id", BigInteger, primary_key=True),
)

# Each hashtag ever used and the exact number of live posts carrying it, changed in the same
# transactions as `post_tags`. A tag whose posts are all gone keeps its row with a count of 0.
tags = Table(
    "tags",
    metadata,
    Column("name", Text(collation="C"), primary_key=True),
    Column("post_count", BigInteger, nullable=False, server_default="0"),
    # Breaks ties of SearchTags' order (most used first) and goes in its page token: a name can be
    # 100 characters of any script, too long for a token.
    Column("id", BigInteger, Identity(always=True), nullable=False, unique=True),
    CheckConstraint("post_count >= 0", name="post_count_not_negative"),
)

outbox = outbox_table(metadata)
