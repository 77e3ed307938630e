"""Tables of the `stories` schema.

A story row lives until the sweeper deletes it, which may be long after `expire_at`: every read
filters by `expire_at`, so an expired row is never served. A view is unique per (story, viewer) and
goes with its story (ON DELETE CASCADE); the view count is the number of those rows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)

from mesh.outbox import outbox_table

metadata = MetaData(schema="stories")

stories = Table(
    "stories",
    metadata,
    # Time-ordered ids; also the id media_svc's record of the photo is attached to.
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("author_id", BigInteger, nullable=False),
    Column("media_id", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expire_at", DateTime(timezone=True), nullable=False),
)
# A user's active stories (the tray, one user's stories): by author, then expiry.
Index("stories_by_author", stories.c.author_id, stories.c.expire_at)
# The sweeper's oldest-expired-first batches.
Index("stories_by_expiry", stories.c.expire_at)

story_views = Table(
    "story_views",
    metadata,
    Column("story_id", BigInteger, ForeignKey(stories.c.id, ondelete="CASCADE"), nullable=False),
    Column("viewer_id", BigInteger, nullable=False),
    Column("viewed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("story_id", "viewer_id"),
)
# A story's viewers, newest first (ties broken by viewer id, so pages never skip or repeat).
Index("story_views_newest", story_views.c.story_id, story_views.c.viewed_at.desc(), story_views.c.viewer_id.desc())
# The views a user made (their erasure).
Index("story_views_by_viewer", story_views.c.viewer_id)

# Idempotency: the story id reserved for (author, client request id); `media_id` detects a key reused
# for another story. Deleted with the story.
story_requests = Table(
    "story_requests",
    metadata,
    Column("author_id", BigInteger, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("story_id", BigInteger, nullable=False),
    Column("media_id", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("author_id", "request_id"),
)
Index("story_requests_by_story", story_requests.c.story_id)

outbox = outbox_table(metadata)
