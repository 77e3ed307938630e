"""Tables of the `posts` schema."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Float,
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

outbox = outbox_table(metadata)
