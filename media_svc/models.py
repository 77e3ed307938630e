"""Tables of the `media` schema."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, MetaData, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB

from mesh.outbox import outbox_table

metadata = MetaData(schema="media")

STATUSES = ("PENDING", "PROCESSING", "READY", "FAILED")

media = Table(
    "media",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner_id", BigInteger, nullable=False),
    # u/{owner}/raw/{id}: the upload, never served to clients.
    Column("object_key", Text, nullable=False, unique=True),
    # What the uploader declared when asking for the grant ...
    Column("content_type", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    # ... and what the worker found in the bytes.
    Column("real_format", Text),
    Column("width", Integer),
    Column("height", Integer),
    Column("checksum", Text),
    Column("blurhash", Text),
    # [{"size": 1080, "width": .., "height": .., "key": "u/{owner}/r/{id}/1080.webp"}, ...]
    Column("renditions", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("status", Text, nullable=False, server_default="PENDING"),
    Column("failure_reason", Text),
    Column("post_id", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="known_status"),
    CheckConstraint("size_bytes > 0", name="size_positive"),
    # Attached media always have their post; pending ones never do.
    CheckConstraint("(status = 'PENDING') = (post_id IS NULL)", name="attached_iff_not_pending"),
)
Index("media_by_post", media.c.post_id, postgresql_where=media.c.post_id.is_not(None))
Index("media_by_owner", media.c.owner_id, media.c.id.desc())

outbox = outbox_table(metadata)
