"""SQL of the posts schema. Every function runs inside the caller's unit of work."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ARRAY, BigInteger, any_, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from mesh.db import Session, Statement
from mesh.pagination import INT64_MAX
from post_svc.captions import Location
from post_svc.models import ACTIVE, DELETED, post_requests, post_tags, posts


@dataclass(frozen=True)
class PostRecord:
    id: int
    author_id: int
    caption: str
    hashtags: list[str]
    location: Location | None
    media_ids: list[int]
    deleted: bool
    created_at: dt.datetime
    updated_at: dt.datetime


_COLUMNS = [
    posts.c.id,
    posts.c.author_id,
    posts.c.caption,
    posts.c.hashtags,
    posts.c.location_name,
    posts.c.latitude,
    posts.c.longitude,
    posts.c.media_ids,
    posts.c.state,
    posts.c.created_at,
    posts.c.updated_at,
]


def _record(row: object) -> PostRecord:
    m = row._mapping  # type: ignore[attr-defined]
    location = None
    if m["location_name"] is not None:
        location = Location(m["location_name"], m["latitude"], m["longitude"])
    return PostRecord(
        id=m["id"],
        author_id=m["author_id"],
        caption=m["caption"],
        hashtags=list(m["hashtags"]),
        location=location,
        media_ids=list(m["media_ids"]),
        deleted=m["state"] == DELETED,
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


# The statements of creating and reading posts, compiled once (mesh.db.Statement): they run on
# every CreatePost and on every feed page whose posts are not cached.
_RESERVE = Statement(
    insert(post_requests)
    .values(
        author_id=bindparam("author_id"),
        request_id=bindparam("request_id"),
        post_id=bindparam("post_id"),
        fingerprint=bindparam("fingerprint"),
    )
    .on_conflict_do_nothing()
    .returning(post_requests.c.post_id, post_requests.c.fingerprint)
)
_RESERVED = Statement(
    select(post_requests.c.post_id, post_requests.c.fingerprint).where(
        post_requests.c.author_id == bindparam("author_id"), post_requests.c.request_id == bindparam("request_id")
    )
)
_INSERT = Statement(
    insert(posts)
    .values(
        id=bindparam("id"),
        author_id=bindparam("author_id"),
        caption=bindparam("caption"),
        hashtags=bindparam("hashtags"),
        location_name=bindparam("location_name"),
        latitude=bindparam("latitude"),
        longitude=bindparam("longitude"),
        media_ids=bindparam("media_ids"),
        created_at=bindparam("created_at"),
        updated_at=bindparam("created_at"),
    )
    .on_conflict_do_nothing()
    .returning(*_COLUMNS)
)
_GET = Statement(select(*_COLUMNS).where(posts.c.id == bindparam("id")))
_GET_FOR_UPDATE = Statement(select(*_COLUMNS).where(posts.c.id == bindparam("id")).with_for_update())
_GET_LIVE = Statement(
    select(*_COLUMNS).where(posts.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))), posts.c.state == ACTIVE)
)


async def reserve_post_id(
    session: Session, author_id: int, request_id: str, post_id: int, fingerprint: bytes
) -> tuple[int, bytes]:
    """The (post id, fingerprint) reserved for (author, request id): `post_id` if this call reserved it.

    One statement for a new key; a key reserved before (a retry) takes a second one to read it. A
    concurrent reservation of the same key waits for the other transaction to end."""
    key = {"author_id": author_id, "request_id": request_id}
    row = (await session.execute(_RESERVE, {**key, "post_id": post_id, "fingerprint": fingerprint})).first()
    if row is None:
        row = (await session.execute(_RESERVED, key)).one()
    return row.post_id, bytes(row.fingerprint)


async def insert_post(session: Session, record: PostRecord) -> PostRecord | None:
    """The stored post if inserted; None if a post with this id already exists (a retried request)."""
    location = record.location
    row = (
        await session.execute(
            _INSERT,
            {
                "id": record.id,
                "author_id": record.author_id,
                "caption": record.caption,
                "hashtags": record.hashtags,
                "location_name": location.name if location else None,
                "latitude": location.latitude if location else None,
                "longitude": location.longitude if location else None,
                "media_ids": record.media_ids,
                "created_at": record.created_at,
            },
        )
    ).first()
    return _record(row) if row else None


async def get_post(session: Session, post_id: int, *, for_update: bool = False) -> PostRecord | None:
    row = (await session.execute(_GET_FOR_UPDATE if for_update else _GET, {"id": post_id})).one_or_none()
    return _record(row) if row else None


async def get_posts(session: Session, post_ids: list[int]) -> dict[int, PostRecord]:
    rows = await session.execute(_GET_LIVE, {"ids": post_ids})
    return {row.id: _record(row) for row in rows}


async def list_by_author(session: Session, author_id: int, before_id: int | None, limit: int) -> list[PostRecord]:
    """An author's live posts, newest first, older than `before_id`."""
    query = select(*_COLUMNS).where(posts.c.author_id == author_id, posts.c.state == ACTIVE)
    if before_id is not None:
        query = query.where(posts.c.id < before_id)
    rows = await session.execute(query.order_by(posts.c.id.desc()).limit(limit))
    return [_record(row) for row in rows]


# A page of a tag (ListTagPosts), compiled once: below `before` (INT64_MAX for the first page).
_BY_TAG = Statement(
    select(*_COLUMNS)
    .select_from(post_tags.join(posts, posts.c.id == post_tags.c.post_id))
    .where(
        post_tags.c.tag == bindparam("tag"),
        post_tags.c.post_id < bindparam("before", type_=BigInteger),
        posts.c.state == ACTIVE,
    )
    .order_by(post_tags.c.post_id.desc())
    .limit(bindparam("limit"))
)


async def list_by_tag(session: Session, tag: str, before_id: int | None, limit: int) -> list[PostRecord]:
    """The live posts carrying `tag`, newest first, older than `before_id` (a backward range of the
    tag index's primary key, each post then read by its own)."""
    before = before_id if before_id is not None else INT64_MAX
    rows = await session.execute(_BY_TAG, {"tag": tag, "before": before, "limit": limit})
    return [_record(row) for row in rows]


async def set_caption(session: Session, post_id: int, caption: str, hashtags: list[str]) -> None:
    await session.execute(
        update(posts).where(posts.c.id == post_id).values(caption=caption, hashtags=hashtags, updated_at=func.now())
    )


async def mark_deleted(session: Session, post_id: int) -> None:
    await session.execute(
        update(posts).where(posts.c.id == post_id).values(state=DELETED, deleted_at=func.now(), updated_at=func.now())
    )


# Erasure (post_svc.erasure) ------------------------------------------------------------------------


async def lock_posts_of_author(session: Session, author_id: int, limit: int) -> list[PostRecord]:
    """Up to `limit` of the author's posts, live or deleted, oldest first, locked until the unit of work
    ends (a caption edit or a delete in flight finishes first)."""
    query = select(*_COLUMNS).where(posts.c.author_id == author_id).order_by(posts.c.id).limit(limit)
    rows = await session.execute(query.with_for_update())
    return [_record(row) for row in rows]


_REMOVE_POSTS = Statement(delete(posts).where(posts.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))))


async def remove_posts(session: Session, post_ids: list[int]) -> None:
    """Deletes the posts' rows for good (erasure; a user's delete only marks them DELETED)."""
    await session.execute(_REMOVE_POSTS, {"ids": post_ids})


async def remove_post_requests(session: Session, author_id: int) -> int:
    """Deletes the author's idempotency keys; how many there were."""
    result = await session.execute(delete(post_requests).where(post_requests.c.author_id == author_id))
    return int(result.rowcount)
