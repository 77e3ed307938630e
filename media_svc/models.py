"""Tables of the `media` schema."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, MetaData, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB

from mesh.outbox import outbox_table

metadata = MetaData(schema="media")


class MediaStatus(StrEnum):
    """A media's life, the one spelling of it (the table's check, the SQL and the servicer's mapping
    to glimpse.media.v1.MediaStatus, whose value names are "MEDIA_STATUS_" + these)."""

    # Granted (bytes maybe uploaded), on no post: attachable; swept once its grant is long expired.
    PENDING = "PENDING"
    # Attached to a post; renditions being made (a blurhash is already there).
    PROCESSING = "PROCESSING"
    READY = "READY"
    # The upload can never be rendered; failure_reason says why.
    FAILED = "FAILED"


class MediaPurpose(StrEnum):
    """What an upload is for, chosen with its grant (glimpse.media.v1.MediaPurpose is "MEDIA_PURPOSE_"
    + these): it decides what the media can be attached to and which renditions it gets."""

    # A post's or a story's photo (AttachMedia): 1080/640/150 px renditions behind signed URLs.
    PHOTO = "PHOTO"
    # A profile picture (AttachAvatar): square 320/150 px renditions at public URLs
    # (object_keys.avatar_key). Attached to no post: PROCESSING with post_id NULL.
    AVATAR = "AVATAR"


media = Table(
    "media",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("owner_id", BigInteger, nullable=False),
    # media_svc.object_keys.raw_key: the upload, never served to clients.
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
    # [{"size": 1080, "width": .., "height": .., "key": object_keys.rendition_key(..)}, ...]
    Column("renditions", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("status", Text, nullable=False, server_default=MediaStatus.PENDING.value),
    Column("failure_reason", Text),
    Column("post_id", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # When the upload grant stops working: the sweeper deletes media still PENDING long after it.
    Column("upload_expires_at", DateTime(timezone=True), nullable=False),
    # When the sweeper deleted the raw upload (retention policy): renditions remain, the original is gone.
    Column("raw_deleted_at", DateTime(timezone=True)),
    Column("purpose", Text, nullable=False, server_default=MediaPurpose.PHOTO.value),
    CheckConstraint(f"status IN ({', '.join(repr(s.value) for s in MediaStatus)})", name="known_status"),
    CheckConstraint(f"purpose IN ({', '.join(repr(p.value) for p in MediaPurpose)})", name="known_purpose"),
    CheckConstraint("size_bytes > 0", name="size_positive"),
    # Attached photos always have their post; pending ones never do; avatars never have one.
    CheckConstraint(
        f"purpose = '{MediaPurpose.AVATAR}' OR (status = '{MediaStatus.PENDING}') = (post_id IS NULL)",
        name="attached_iff_not_pending",
    ),
    CheckConstraint(f"purpose = '{MediaPurpose.PHOTO}' OR post_id IS NULL", name="avatars_on_no_post"),
)
Index("media_by_post", media.c.post_id, postgresql_where=media.c.post_id.is_not(None))
Index("media_by_owner", media.c.owner_id, media.c.id.desc())
# The sweeper's three queries, each over the few rows it looks for.
Index(
    "media_pending_by_expiry",
    media.c.upload_expires_at,
    postgresql_where=media.c.status == text(f"'{MediaStatus.PENDING}'"),
)
Index(
    "media_processing_by_update",
    media.c.updated_at,
    postgresql_where=media.c.status == text(f"'{MediaStatus.PROCESSING}'"),
)
Index(
    "media_raw_kept_by_update",
    media.c.updated_at,
    postgresql_where=media.c.status.in_([MediaStatus.READY.value, MediaStatus.FAILED.value])
    & media.c.raw_deleted_at.is_(None),
)

outbox = outbox_table(metadata)
