"""The rules of saved posts: private to the saver, toggled idempotently, counted exactly (for ranking
only: no user is shown a post's save count), listed newest first."""

from __future__ import annotations

import random

from engagement_svc import repository as repo
from engagement_svc.posts import PostDirectory, post_not_found
from engagement_svc.repository import SaveRecord
from mesh.db import Database
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


class SaveCursor(PageCursor):
    """A saved-posts page continues after this save (newest first: earlier time, or the same time and a
    lower post id)."""

    before_us: TimestampUs
    before_post: Id


class SaveService:
    def __init__(self, db: Database, posts: PostDirectory, *, counter_shards: int) -> None:
        self._db = db
        self._posts = posts
        self._shards = counter_shards

    async def save(self, user_id: int, post_id: int) -> None:
        """The user saves the post (idempotent: only the call that adds the save counts it, however many
        run at once; nobody else sees it, no event). INVALID_ARGUMENT (post_id) for an impossible id;
        NOT_FOUND (POST_NOT_FOUND) for an unknown or deleted post."""
        await self._posts.author_of(post_id, user_id)
        async with self._db.unit_of_work() as session:
            await repo.hold_post(session, post_id)
            if await repo.insert_save(session, user_id, post_id):
                deleted = (await repo.bump_counters(session, post_id, self._shard(), saves=1)).post_deleted
            else:
                deleted = await repo.is_deleted(session, post_id)
            if deleted:
                raise post_not_found(post_id)  # rolls the save and its count back

    async def unsave(self, user_id: int, post_id: int) -> None:
        """The user unsaves the post (idempotent: only the call that removes the save counts it).
        Errors as `save`."""
        await self._posts.author_of(post_id, user_id)
        async with self._db.unit_of_work() as session:
            await repo.hold_post(session, post_id)
            if await repo.delete_save(session, user_id, post_id):
                deleted = (await repo.bump_counters(session, post_id, self._shard(), saves=-1)).post_deleted
            else:
                deleted = await repo.is_deleted(session, post_id)
            if deleted:
                raise post_not_found(post_id)

    def _shard(self) -> int:
        return random.randrange(self._shards)

    async def saved(self, user_id: int, size: int, token: str) -> Page[SaveRecord]:
        """The user's saves, most recently saved first (deleted posts' saves are gone with them).
        INVALID_ARGUMENT for a bad page size or token."""
        limit = page_size(size)
        scope = f"saved:{user_id}"
        cursor = decode_cursor(token, SaveCursor, scope)
        before = (from_timestamp_us(cursor.before_us), cursor.before_post) if cursor else None
        async with self._db.read_only() as session:
            found = await repo.list_saves(session, user_id, before, limit + 1)
        return page_of(
            found, limit, scope, lambda s: SaveCursor(before_us=timestamp_us(s.created_at), before_post=s.post_id)
        )
