"""SQL of the media schema. Every function runs inside the caller's unit of work."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from media_svc.models import media

PENDING, PROCESSING, READY, FAILED = "PENDING", "PROCESSING", "READY", "FAILED"


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
    status: str
    failure_reason: str | None
    post_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


_COLUMNS = [media.c[name] for name in MediaRecord.__dataclass_fields__]


def _record(row: Any) -> MediaRecord:
    fields = dict(row._mapping)
    fields["renditions"] = tuple(RenditionRecord(**r) for r in fields["renditions"])
    return MediaRecord(**fields)


async def insert_media(
    session: AsyncSession, *, media_id: int, owner_id: int, object_key: str, content_type: str, size_bytes: int
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
                status=PENDING,
            )
            .returning(*_COLUMNS)
        )
    ).one()
    return _record(row)


async def get_media(session: AsyncSession, media_ids: Sequence[int]) -> dict[int, MediaRecord]:
    rows = await session.execute(select(*_COLUMNS).where(media.c.id.in_(list(media_ids))))
    return {row.id: _record(row) for row in rows}


async def lock_media(session: AsyncSession, media_ids: Sequence[int]) -> dict[int, MediaRecord]:
    """Locks the media rows in id order (so two requests on overlapping media cannot deadlock)."""
    rows = await session.execute(
        select(*_COLUMNS).where(media.c.id.in_(list(media_ids))).order_by(media.c.id).with_for_update()
    )
    return {row.id: _record(row) for row in rows}


async def attach(session: AsyncSession, media_ids: Sequence[int], post_id: int) -> dict[int, MediaRecord]:
    """Binds pending media to `post_id` and marks them PROCESSING."""
    rows = await session.execute(
        update(media)
        .where(media.c.id.in_(list(media_ids)), media.c.status == PENDING)
        .values(post_id=post_id, status=PROCESSING, updated_at=func.now())
        .returning(*_COLUMNS)
    )
    return {row.id: _record(row) for row in rows}


async def mark_ready(
    session: AsyncSession,
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
            status=READY,
            real_format=real_format,
            width=width,
            height=height,
            checksum=checksum,
            blurhash=blurhash,
            renditions=[{"size": r.size, "width": r.width, "height": r.height, "key": r.key} for r in renditions],
            failure_reason=None,
            updated_at=func.now(),
        )
    )


async def mark_failed(session: AsyncSession, media_id: int, reason: str) -> None:
    await session.execute(
        update(media).where(media.c.id == media_id).values(status=FAILED, failure_reason=reason, updated_at=func.now())
    )
