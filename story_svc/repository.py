"""SQL of the stories schema. Every function runs inside the caller's unit of work.

"Active" is decided here, in each statement, by `expire_at > now()` (the transaction's start), so
an expired story is never served whether or not the sweeper has run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert

from mesh.db import Session
from story_svc.models import stories, story_requests, story_views


@dataclass(frozen=True)
class StoryRecord:
    id: int
    author_id: int
    media_id: int
    created_at: dt.datetime
    expire_at: dt.datetime
    # Whether the reader asked about viewed it (False where no reader was named).
    viewed: bool = False


@dataclass(frozen=True)
class TrayRow:
    author_id: int
    story_count: int
    latest_story_time: dt.datetime
    has_unseen: bool


@dataclass(frozen=True)
class ViewRecord:
    viewer_id: int
    viewed_at: dt.datetime


@dataclass(frozen=True)
class ViewOutcome:
    # The story exists and is active.
    live: bool
    # This call recorded the view (False: the viewer had viewed it already, or the story is gone).
    added: bool


_COLUMNS = [stories.c.id, stories.c.author_id, stories.c.media_id, stories.c.created_at, stories.c.expire_at]


async def reserve_story_id(
    session: Session, author_id: int, request_id: str, story_id: int, media_id: int
) -> tuple[int, int]:
    """The (story id, media id) reserved for (author, request id): `story_id` if this call reserved it."""
    await session.execute(
        insert(story_requests)
        .values(author_id=author_id, request_id=request_id, story_id=story_id, media_id=media_id)
        .on_conflict_do_nothing()
    )
    row = (
        await session.execute(
            select(story_requests.c.story_id, story_requests.c.media_id).where(
                story_requests.c.author_id == author_id, story_requests.c.request_id == request_id
            )
        )
    ).one()
    return row.story_id, row.media_id


async def insert_story(session: Session, record: StoryRecord) -> bool:
    """True if inserted; False if a story with this id already exists (a retried request)."""
    result = await session.execute(
        insert(stories)
        .values(
            id=record.id,
            author_id=record.author_id,
            media_id=record.media_id,
            created_at=record.created_at,
            expire_at=record.expire_at,
        )
        .on_conflict_do_nothing()
        .returning(stories.c.id)
    )
    return result.first() is not None


async def get_story(session: Session, story_id: int) -> StoryRecord | None:
    """The story's row, active or not (None once deleted)."""
    row = (await session.execute(select(*_COLUMNS).where(stories.c.id == story_id))).first()
    return None if row is None else StoryRecord(row.id, row.author_id, row.media_id, row.created_at, row.expire_at)


async def lock_story(session: Session, story_id: int) -> StoryRecord | None:
    """The story's row, locked until the transaction ends (None once deleted)."""
    row = (await session.execute(select(*_COLUMNS).where(stories.c.id == story_id).with_for_update())).first()
    return None if row is None else StoryRecord(row.id, row.author_id, row.media_id, row.created_at, row.expire_at)


async def delete_stories(session: Session, story_ids: Sequence[int]) -> None:
    """Deletes the stories, their views (cascade) and their idempotency keys."""
    await session.execute(delete(story_requests).where(story_requests.c.story_id.in_(story_ids)))
    await session.execute(delete(stories).where(stories.c.id.in_(story_ids)))


_ACTIVE_OF_AUTHOR = text(
    f"""
    SELECT s.id, s.author_id, s.media_id, s.created_at, s.expire_at, v.viewer_id IS NOT NULL AS viewed
    FROM {stories.fullname} s
    LEFT JOIN {story_views.fullname} v ON v.story_id = s.id AND v.viewer_id = :viewer_id
    WHERE s.author_id = :author_id AND s.expire_at > now()
    ORDER BY s.created_at, s.id
    """
)


async def active_stories(session: Session, author_id: int, viewer_id: int) -> list[StoryRecord]:
    """The author's active stories, oldest first, each with whether `viewer_id` viewed it."""
    rows = await session.execute(_ACTIVE_OF_AUTHOR, {"author_id": author_id, "viewer_id": viewer_id})
    return [StoryRecord(r.id, r.author_id, r.media_id, r.created_at, r.expire_at, r.viewed) for r in rows]


# One row per author with active stories: the tray before ordering. The views joined are the viewer's
# own (the primary key's prefix), so the cost is the authors' active stories, not their views.
_TRAY = text(
    f"""
    SELECT s.author_id, count(*)::int AS story_count, max(s.created_at) AS latest_story_time,
           bool_or(v.viewer_id IS NULL) AS has_unseen
    FROM {stories.fullname} s
    LEFT JOIN {story_views.fullname} v ON v.story_id = s.id AND v.viewer_id = :viewer_id
    WHERE s.author_id = ANY(:author_ids) AND s.expire_at > now()
    GROUP BY s.author_id
    """
)


async def tray_rows(session: Session, viewer_id: int, author_ids: Sequence[int]) -> list[TrayRow]:
    """Per author of `author_ids` with active stories: their count, the newest one's time and whether
    one was not viewed by `viewer_id` (unordered)."""
    rows = await session.execute(_TRAY, {"viewer_id": viewer_id, "author_ids": list(author_ids)})
    return [TrayRow(r.author_id, r.story_count, r.latest_story_time, r.has_unseen) for r in rows]


# The existence check and the insert in one round trip: the insert's foreign key locks the story row
# (KEY SHARE), so a delete either waits for the view or the view finds no story.
_VIEW = text(
    f"""
    WITH story AS (
        SELECT id FROM {stories.fullname} WHERE id = :story_id AND expire_at > now()
    ), added AS (
        INSERT INTO {story_views.fullname} (story_id, viewer_id)
        SELECT id, :viewer_id FROM story
        ON CONFLICT DO NOTHING RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM story) AS live, EXISTS (SELECT 1 FROM added) AS added
    """
)


async def add_view(session: Session, story_id: int, viewer_id: int) -> ViewOutcome:
    """Records that `viewer_id` viewed the story, if it is active and they had not already."""
    row = (await session.execute(_VIEW, {"story_id": story_id, "viewer_id": viewer_id})).one()
    return ViewOutcome(row.live, row.added)


async def view_count(session: Session, story_id: int) -> int:
    """The story's distinct viewers (an index-only count of its views)."""
    found = await session.execute(select(func.count()).where(story_views.c.story_id == story_id))
    return int(found.scalar_one())


async def list_views(
    session: Session, story_id: int, before: tuple[dt.datetime, int] | None, limit: int
) -> list[ViewRecord]:
    """The story's views, newest first (ties: higher viewer id first), strictly after `before`."""
    query = select(story_views.c.viewer_id, story_views.c.viewed_at).where(story_views.c.story_id == story_id)
    if before is not None:
        query = query.where(
            text("(viewed_at, viewer_id) < (:before_at, :before_viewer)").bindparams(
                before_at=before[0], before_viewer=before[1]
            )
        )
    rows = await session.execute(
        query.order_by(story_views.c.viewed_at.desc(), story_views.c.viewer_id.desc()).limit(limit)
    )
    return [ViewRecord(r.viewer_id, r.viewed_at) for r in rows]


# The oldest expired stories no other sweeper holds, deleted with their views in one statement.
_SWEEP = text(
    f"""
    WITH gone AS (
        SELECT id FROM {stories.fullname} WHERE expire_at <= now()
        ORDER BY expire_at LIMIT :limit FOR UPDATE SKIP LOCKED
    ), requests AS (
        DELETE FROM {story_requests.fullname} r USING gone WHERE r.story_id = gone.id
    )
    DELETE FROM {stories.fullname} s USING gone WHERE s.id = gone.id
    RETURNING s.id, s.author_id, s.media_id, s.created_at, s.expire_at
    """
)


async def delete_expired(session: Session, limit: int) -> list[StoryRecord]:
    """Deletes up to `limit` expired stories (oldest expiry first, skipping rows another transaction
    holds) with their views and idempotency keys; the stories deleted."""
    rows = await session.execute(_SWEEP, {"limit": limit})
    return [StoryRecord(r.id, r.author_id, r.media_id, r.created_at, r.expire_at) for r in rows]


# Erasure (story_svc.erasure) -----------------------------------------------------------------------


async def delete_stories_of_author(session: Session, author_id: int, limit: int) -> list[StoryRecord]:
    """Deletes up to `limit` of the author's stories, expired or not (oldest first, waiting for rows
    another transaction holds), with their views and idempotency keys; the stories deleted."""
    rows = await session.execute(_OF_AUTHOR, {"author_id": author_id, "limit": limit})
    return [StoryRecord(r.id, r.author_id, r.media_id, r.created_at, r.expire_at) for r in rows]


_OF_AUTHOR = text(
    f"""
    WITH gone AS (
        SELECT id FROM {stories.fullname} WHERE author_id = :author_id ORDER BY id LIMIT :limit FOR UPDATE
    ), keys AS (
        DELETE FROM {story_requests.fullname} r USING gone WHERE r.story_id = gone.id
    )
    DELETE FROM {stories.fullname} s USING gone WHERE s.id = gone.id
    RETURNING s.id, s.author_id, s.media_id, s.created_at, s.expire_at
    """
)
_VIEWS_BY = text(
    f"""
    DELETE FROM {story_views.fullname} v
     WHERE v.viewer_id = :viewer_id
       AND v.story_id IN (SELECT story_id FROM {story_views.fullname} WHERE viewer_id = :viewer_id LIMIT :limit)
    """
)


async def delete_views_by(session: Session, viewer_id: int, limit: int) -> int:
    """Deletes up to `limit` views the user made of others' stories (the view counts are the rows);
    how many."""
    result = await session.execute(_VIEWS_BY, {"viewer_id": viewer_id, "limit": limit})
    return int(result.rowcount)


async def delete_requests_of_author(session: Session, author_id: int) -> None:
    """Deletes the author's idempotency keys left without a story (a create that never finished)."""
    await session.execute(delete(story_requests).where(story_requests.c.author_id == author_id))
