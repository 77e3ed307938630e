"""The rules of likes: one per user and post, toggled idempotently, counted exactly."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from engagement_svc import repository as repo
from engagement_svc.posts import PostDirectory, post_not_found
from engagement_svc.repository import LikeCount, LikedPostRecord, LikeRecord
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


# Group commit of likes: concurrent LikePost calls share one transaction of four round trips (BEGIN;
# the posts' locks and the rows; the counters, the counts and the outbox rows; COMMIT) and one cache
# drop, instead of five round trips and a drop each. At most _FLUSHERS batches are in flight; a call
# that arrives meanwhile waits for the next one, which takes everything waiting, up to _MAX_BATCH.
_FLUSHERS = 1
_MAX_BATCH = 64


@dataclass
class _PendingLike:
    post_id: int
    user_id: int
    author_id: int
    answer: asyncio.Future[LikeCount]


class _PostsDeleted(Exception):
    """A batch met deleted posts (their counts): it rolls back, to be committed again without them."""

    def __init__(self, counts: dict[int, LikeCount]) -> None:
        super().__init__(sorted(counts))
        self.counts = counts


class LikeService:
    def __init__(self, db: Database, outbox: Outbox, posts: PostDirectory, *, counter_shards: int) -> None:
        self._db = db
        self._outbox = outbox
        self._posts = posts
        self._shards = counter_shards
        self._waiting: list[_PendingLike] = []
        # Counted by the flushers themselves (a finished task's done-callbacks run later: a call
        # arriving in between must still start a flusher); the set keeps the tasks referenced.
        self._flushing = 0
        self._flushers: set[asyncio.Task[None]] = set()

    async def like(self, user_id: int, post_id: int) -> LikeState:
        """The user likes the post. Idempotent: only the call that adds the like moves the count and
        emits `engagement.liked`, however many run at once. Calls running at once commit together
        (one transaction per batch): a database failure fails the whole batch (UNAVAILABLE), a
        deleted post only its own calls. INVALID_ARGUMENT (post_id) for an impossible id; NOT_FOUND
        (POST_NOT_FOUND) for an unknown or deleted post."""
        author_id = await self._posts.author_of(post_id, user_id)
        answer: asyncio.Future[LikeCount] = asyncio.get_running_loop().create_future()
        self._waiting.append(_PendingLike(post_id, user_id, author_id, answer))
        if self._flushing < _FLUSHERS:
            self._flushing += 1
            flusher = asyncio.create_task(self._flush())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        # Shielded: a cancelled caller leaves its like to the batch (committed or not, as any call
        # cancelled in flight), and the batch's other callers are not disturbed.
        count = await asyncio.shield(answer)
        if count.post_deleted:
            raise post_not_found(post_id)
        return LikeState(post_id, True, count.likes)

    async def _flush(self) -> None:
        """Commits batches of waiting likes until none wait, answering each call."""
        try:
            await self._flush_waiting()
        finally:
            self._flushing -= 1

    async def _flush_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:_MAX_BATCH], self._waiting[_MAX_BATCH:]
            try:
                counts = await self._commit_likes(batch)
            except Exception as exc:  # noqa: BLE001 - each caller gets the failure as its own
                for pending in batch:
                    if not pending.answer.done():
                        pending.answer.set_exception(exc)
                continue
            except BaseException:
                # The flusher was cancelled (shutdown): so are its callers.
                for pending in batch:
                    pending.answer.cancel()
                raise
            for pending in batch:
                if not pending.answer.done():
                    pending.answer.set_result(counts[pending.post_id])

    async def _commit_likes(self, batch: list[_PendingLike]) -> dict[int, LikeCount]:
        """Commits the batch's likes; each post's like count after it. The likes of a post found
        deleted roll the batch back, which is then committed again without them."""
        authors = {(p.post_id, p.user_id): p.author_id for p in batch}
        deleted: dict[int, LikeCount] = {}
        while authors:
            try:
                return deleted | await self._commit_once(authors)
            except _PostsDeleted as gone:
                deleted |= gone.counts
                authors = {pair: author for pair, author in authors.items() if pair[0] not in deleted}
        return deleted

    async def _commit_once(self, authors: dict[tuple[int, int], int]) -> dict[int, LikeCount]:
        """One transaction for the likes `authors` ((post, user) -> the post's author): the rows, the
        counters with the counts and the events. _PostsDeleted (rolled back) if a post was deleted."""
        async with self._db.unit_of_work() as session:
            added = sorted(await repo.insert_likes(session, list(authors)))
            new_likes: dict[int, int] = {}
            for post_id, _ in added:
                new_likes[post_id] = new_likes.get(post_id, 0) + 1
            events = self._outbox.stage(
                session,
                [events_pb2.PostLiked(post_id=p, post_author_id=authors[p, u], user_id=u) for p, u in added],
            )
            post_ids = {post_id for post_id, _ in authors}
            counts = await repo.bump_likes(session, random.randrange(self._shards), new_likes, post_ids, events)
            gone = {post_id: count for post_id, count in counts.items() if count.post_deleted}
            if gone:
                raise _PostsDeleted(gone)
        return counts

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
