"""SQL of the media schema. Every function runs inside the caller's unit of work."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, BigInteger, any_, bindparam, delete, func, literal, select, tuple_, update

from media_svc.models import MediaPurpose, MediaStatus, media
from mesh.db import Session, Statement


@dataclass(frozen=True)
class RenditionRecord:
    size: int
    width: int
    height: int
    key: str


@dataclass(frozen=True)
class MediaRecord:
    id: int
    owner_id: int
    object_key: str
    content_type: str
    size_bytes: int
    real_format: str | None
    width: int | None
    height: int | None
    checksum: str | None
    blurhash: str | None
    renditions: tuple[RenditionRecord, ...]
    status: MediaStatus
    failure_reason: str | None
    post_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    upload_expires_at: dt.datetime
    raw_deleted_at: dt.datetime | None
    purpose: MediaPurpose


_COLUMNS = [media.c[name] for name in MediaRecord.__dataclass_fields__]


def _record(row: Any) -> MediaRecord:
    fields = dict(row._mapping)
    fields["renditions"] = tuple(RenditionRecord(**r) for r in fields["renditions"])
    fields["status"] = MediaStatus(fields["status"])
    fields["purpose"] = MediaPurpose(fields["purpose"])
    return MediaRecord(**fields)


async def insert_media(
    session: Session,
    *,
    media_id: int,
    owner_id: int,
    object_key: str,
    content_type: str,
    size_bytes: int,
    upload_expires_at: dt.datetime,
    purpose: MediaPurpose = MediaPurpose.PHOTO,
) -> MediaRecord:
    row = (
        await session.execute(
            media.insert()
            .values(
                id=media_id,
                owner_id=owner_id,
                object_key=object_key,
                content_type=content_type,
                size_bytes=size_bytes,
                status=MediaStatus.PENDING,
                upload_expires_at=upload_expires_at,
                purpose=purpose,
            )
            .returning(*_COLUMNS)
        )
    ).one()
    return _record(row)


# The statements of every post's attach and of every feed page's media, compiled once (mesh.db.Statement).
_IDS = bindparam("ids", type_=ARRAY(BigInteger))
_GET = Statement(select(*_COLUMNS).where(media.c.id == any_(_IDS)))
_LOCK = Statement(select(*_COLUMNS).where(media.c.id == any_(_IDS)).order_by(media.c.id).with_for_update())
_ATTACH = Statement(
    update(media)
    .where(media.c.id == any_(_IDS), media.c.status == MediaStatus.PENDING)
    .values(post_id=bindparam("post_id"), status=MediaStatus.PROCESSING, updated_at=func.now())
    .returning(*_COLUMNS)
)


async def get_media(session: Session, media_ids: Sequence[int]) -> dict[int, MediaRecord]:
    rows = await session.execute(_GET, {"ids": list(media_ids)})
    return {row.id: _record(row) for row in rows}


async def lock_media(session: Session, media_ids: Sequence[int]) -> dict[int, MediaRecord]:
    """Locks the media rows in id order (so two requests on overlapping media cannot deadlock)."""
    rows = await session.execute(_LOCK, {"ids": list(media_ids)})
    return {row.id: _record(row) for row in rows}


async def attach(session: Session, media_ids: Sequence[int], post_id: int) -> dict[int, MediaRecord]:
    """Binds pending media to `post_id` and marks them PROCESSING."""
    rows = await session.execute(_ATTACH, {"ids": list(media_ids), "post_id": post_id})
    return {row.id: _record(row) for row in rows}


async def detach(session: Session, media_ids: Sequence[int], post_id: int) -> list[int]:
    """Returns media that are PROCESSING on `post_id` to PENDING (unattached); the ids changed.

    The blurhash stays (it describes the same bytes); `updated_at` restarts the sweeper's clock.
    """
    rows = await session.execute(
        update(media)
        .where(
            media.c.id.in_(list(media_ids)),
            media.c.post_id == post_id,
            media.c.status == MediaStatus.PROCESSING,
        )
        .values(post_id=None, status=MediaStatus.PENDING, updated_at=func.now())
        .returning(media.c.id)
    )
    return [row.id for row in rows]


async def attach_avatar(session: Session, media_id: int) -> MediaRecord | None:
    """Marks a PENDING avatar upload PROCESSING (on no post); the record, None if it was not one."""
    row = (
        await session.execute(
            update(media)
            .where(
                media.c.id == media_id,
                media.c.status == MediaStatus.PENDING,
                media.c.purpose == MediaPurpose.AVATAR,
            )
            .values(status=MediaStatus.PROCESSING, updated_at=func.now())
            .returning(*_COLUMNS)
        )
    ).one_or_none()
    return _record(row) if row is not None else None


_SET_BLURHASH = Statement(
    update(media)
    .where(media.c.id == bindparam("id"), media.c.blurhash.is_(None))
    .values(blurhash=bindparam("blurhash"))
    .returning(*_COLUMNS)
)


async def set_blurhash(session: Session, blurhashes: dict[int, str]) -> dict[int, MediaRecord]:
    """Stores each media's placeholder unless it has one already; the updated records."""
    updated = {}
    for media_id, value in blurhashes.items():
        row = (await session.execute(_SET_BLURHASH, {"id": media_id, "blurhash": value})).one_or_none()
        if row is not None:
            updated[media_id] = _record(row)
    return updated


async def mark_ready(
    session: Session,
    media_id: int,
    *,
    real_format: str,
    width: int,
    height: int,
    checksum: str,
    blurhash: str,
    renditions: Sequence[RenditionRecord],
) -> None:
    await session.execute(
        update(media)
        .where(media.c.id == media_id)
        .values(
            status=MediaStatus.READY,
            real_format=real_format,
            width=width,
            height=height,
            checksum=checksum,
            # The placeholder clients already show (media_svc.placeholders) is kept, so it never changes
            # under their eyes; the worker's own is used when there was none.
            blurhash=func.coalesce(media.c.blurhash, blurhash),
            renditions=[{"size": r.size, "width": r.width, "height": r.height, "key": r.key} for r in renditions],
            failure_reason=None,
            updated_at=func.now(),
        )
    )


async def mark_failed(session: Session, media_id: int, reason: str) -> None:
    await session.execute(
        update(media)
        .where(media.c.id == media_id)
        .values(status=MediaStatus.FAILED, failure_reason=reason, updated_at=func.now())
    )


# The sweeper's queries. Each takes at most `limit` rows, oldest first; the locking ones skip rows
# another transaction holds (an AttachMedia in flight, or a second worker's sweeper).


async def lock_abandoned_uploads(session: Session, *, grace: dt.timedelta, limit: int) -> list[MediaRecord]:
    """PENDING media whose upload grant expired more than `grace` ago and that were not detached
    from a post within `grace` either; locked until the unit of work ends."""
    cutoff = func.now() - grace
    rows = await session.execute(
        select(*_COLUMNS)
        .where(media.c.status == MediaStatus.PENDING, media.c.upload_expires_at < cutoff, media.c.updated_at < cutoff)
        .order_by(media.c.upload_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_record(row) for row in rows]


async def delete_media(session: Session, media_ids: Sequence[int]) -> None:
    await session.execute(delete(media).where(media.c.id.in_(list(media_ids))))


async def stalled_processing(
    session: Session, *, older_than: dt.timedelta, limit: int, after: tuple[dt.datetime, int] | None = None
) -> list[MediaRecord]:
    """Media attached (PROCESSING) more than `older_than` ago, ordered by (updated_at, id) and
    after `after` if given: their post was never published, or the worker is behind. Not locked:
    the caller asks post_svc first, then detaches by post."""
    query = select(*_COLUMNS).where(
        media.c.status == MediaStatus.PROCESSING, media.c.updated_at < func.now() - older_than
    )
    if after is not None:
        query = query.where(tuple_(media.c.updated_at, media.c.id) > tuple_(literal(after[0]), literal(after[1])))
    rows = await session.execute(query.order_by(media.c.updated_at, media.c.id).limit(limit))
    return [_record(row) for row in rows]


async def lock_settled_with_raw(session: Session, *, settled_for: dt.timedelta, limit: int) -> list[MediaRecord]:
    """READY or FAILED media, settled more than `settled_for` ago, whose raw upload is still
    stored; locked until the unit of work ends."""
    rows = await session.execute(
        select(*_COLUMNS)
        .where(
            media.c.status.in_([MediaStatus.READY, MediaStatus.FAILED]),
            media.c.raw_deleted_at.is_(None),
            media.c.updated_at < func.now() - settled_for,
        )
        .order_by(media.c.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_record(row) for row in rows]


async def mark_raw_deleted(session: Session, media_ids: Sequence[int]) -> None:
    await session.execute(update(media).where(media.c.id.in_(list(media_ids))).values(raw_deleted_at=func.now()))


# Erasure (media_svc.erasure) -----------------------------------------------------------------------


async def lock_media_of_owner(session: Session, owner_id: int, limit: int) -> list[MediaRecord]:
    """Up to `limit` of the owner's media in any status, oldest first, locked until the unit of work ends
    (a render or an attach in flight finishes first)."""
    query = select(*_COLUMNS).where(media.c.owner_id == owner_id).order_by(media.c.id).limit(limit)
    return [_record(row) for row in await session.execute(query.with_for_update())]
