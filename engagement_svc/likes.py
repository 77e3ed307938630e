"""The rules of likes: one per user and post, toggled idempotently, counted exactly."""

from __future__ import annotations

import random
from dataclasses import dataclass

from engagement_svc import repository as repo
from engagement_svc.posts import PostDirectory, post_not_found
from engagement_svc.repository import LikedPostRecord, LikeRecord
from glimpse.events.v1 import events_pb2
from mesh.db import Database
from mesh.outbox import Outbox
from mesh.pagination import (
    Id,
    Page,
    PageCursor,
    TimestampUs,
    decode_cursor,
    from_timestamp_us,
    page_of,
    page_size,
    timestamp_us,
)


class LikeCursor(PageCursor):
    """A likers page continues after this like (newest first: earlier time, or the same time and a
    lower user id)."""

    before_us: TimestampUs
    before_user: Id


@dataclass(frozen=True)
class LikeState:
    post_id: int
    liked: bool
    like_count: int


class LikeService:
    def __init__(self, db: Database, outbox: Outbox, posts: PostDirectory, *, counter_shards: int) -> None:
        self._db = db
        self._outbox = outbox
        self._posts = posts
        self._shards = counter_shards

    async def like(self, user_id: int, post_id: int) -> LikeState:
        """The user likes the post. Idempotent: only the call that adds the like moves the count and
        emits `engagement.liked`, however many run at once. INVALID_ARGUMENT (post_id) for an
        impossible id; NOT_FOUND (POST_NOT_FOUND) for an unknown or deleted post."""
        author_id = await self._posts.author_of(post_id, user_id)
        async with self._db.unit_of_work() as session:
            if await repo.insert_like(session, post_id, user_id):
                counts = await repo.bump_counters(session, post_id, random.randrange(self._shards), likes=1)
                if counts.post_deleted:
                    raise post_not_found(post_id)  # rolls the like back
                event = events_pb2.PostLiked(post_id=post_id, post_author_id=author_id, user_id=user_id)
                await self._outbox.add(session, event)
            else:
                counts = await repo.counts(session, post_id)
                if counts.post_deleted:
                    raise post_not_found(post_id)
        return LikeState(post_id, True, counts.likes)

    async def unlike(self, user_id: int, post_id: int) -> LikeState:
        """The user no longer likes the post. Idempotent: only the call that removes the like moves the
        count and emits `engagement.unliked`. Errors as `like`."""
        author_id = await self._posts.author_of(post_id, user_id)
        async with self._db.unit_of_work() as session:
            await repo.hold_post(session, post_id)
            if await repo.delete_like(session, post_id, user_id):
                counts = await repo.bump_counters(session, post_id, random.randrange(self._shards), likes=-1)
                event = events_pb2.PostUnliked(post_id=post_id, post_author_id=author_id, user_id=user_id)
                await self._outbox.add(session, event)
            else:
                counts = await repo.counts(session, post_id)
            if counts.post_deleted:
                raise post_not_found(post_id)
        return LikeState(post_id, False, counts.likes)

    async def likers(self, post_id: int, viewer_id: int | None, size: int, token: str) -> Page[LikeRecord]:
        """Who liked the post, newest like first, leaving out users blocked either way with
        `viewer_id` (a page may hold fewer than `size`). NOT_FOUND (POST_NOT_FOUND) for an unknown or
        deleted post or one the viewer may not see; INVALID_ARGUMENT for a bad page size or token
        (mesh.pagination.decode_cursor)."""
        await self._posts.author_of(post_id, viewer_id)
        blocked = await self._posts.blocked_for(viewer_id)
        limit = page_size(size)
        scope = f"likes:{post_id}"
        cursor = decode_cursor(token, LikeCursor, scope)
        before = (from_timestamp_us(cursor.before_us), cursor.before_user) if cursor else None
        async with self._db.read_only() as session:
            found = await repo.list_likes(session, post_id, before, limit + 1)
        page = page_of(
            found,
            limit,
            scope,
            lambda like: LikeCursor(before_us=timestamp_us(like.created_at), before_user=like.user_id),
        )
        return Page([like for like in page.items if like.user_id not in blocked], page.next_page_token)

    async def liked_by(self, user_id: int, size: int, token: str) -> Page[LikedPostRecord]:
        """The posts `user_id` liked, newest like first (the user's own likes: their data export).
        INVALID_ARGUMENT for a bad page size or token."""
        limit = page_size(size)
        scope = f"liked_by:{user_id}"
        cursor = decode_cursor(token, LikedPostCursor, scope)
        before = (from_timestamp_us(cursor.before_us), cursor.before_post) if cursor else None
        async with self._db.read_only() as session:
            found = await repo.list_likes_by_user(session, user_id, before, limit + 1)
        return page_of(
            found,
            limit,
            scope,
            lambda like: LikedPostCursor(before_us=timestamp_us(like.created_at), before_post=like.post_id),
        )


class LikedPostCursor(PageCursor):
    """A page of a user's likes continues after this like (newest first: earlier time, or the same
    time and a lower post id)."""

    before_us: TimestampUs
    before_post: Id
