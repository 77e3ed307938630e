"""engagement_svc's share of a user's erasure (issue 16; the scheme is mesh.erasure's).

In bounded batches, each one unit of work:

- the likes they gave: removed with their posts held (shared, as a like is), and each post's like
  count moved by -1 in the same transaction, so counts stay exact;
- the comments they wrote, live or deleted: a top-level one goes with every reply under it (anyone's),
  a reply alone (its top-level comment counts one reply less); each post's comment count loses the
  live ones, and each live one removed gets its `engagement.comment_deleted` (with the replies that
  went with it, and author_id 0: the author is gone), so notification_svc forgets the notifications
  about them and feed_svc takes them out of what is trending, as for any deletion;
- the saves they made: removed with their posts held, and each post's save count moved by -1 in the
  same transaction (as for likes);
- the caption mentions of them and their comments' idempotency keys.

What others did on *their* posts goes when post_svc's erasure deletes those posts: each gets its
`posts.deleted`, and this service's purge (consumers.PostEvents.on_post_deleted) removes its likes,
comments, saves and counters. No `engagement.unliked` is sent for the likes: notification_svc's own
erasure removes the user from every notification they caused.

Idempotent and resumable: a batch finds only what is left, and a committed batch is never found again.
"""

from __future__ import annotations

import logging
import random

from engagement_svc import repository as repo
from glimpse.events.v1 import events_pb2
from mesh.db import Database
from mesh.erasure import ERASED, ERASURE_BATCH, ERASURES_FINISHED, erased_user
from mesh.outbox import Outbox

log = logging.getLogger("engagement_svc.erasure")

ERASURE_DURABLE = "engagement_erasure"


class EngagementErasure:
    def __init__(self, db: Database, outbox: Outbox, *, counter_shards: int, batch_size: int = ERASURE_BATCH) -> None:
        self._db = db
        self._outbox = outbox
        self._shards = counter_shards
        self._batch_size = batch_size

    async def on_user_deleted(self, event: events_pb2.UserDeleted) -> None:
        """`graph.user_deleted`: the user's likes, comments, saves and mentions (see the module doc).
        Unavailable (retried by the bus) if the database is down."""
        user_id = erased_user(event)
        likes = await self._erase_likes(user_id)
        comments = await self._erase_comments(user_id)
        saves = await self._erase_saves(user_id)
        rows = await self._erase_rows(user_id)
        ERASURES_FINISHED.labels(ERASURE_DURABLE).inc()
        log.info(
            "user's engagement erased",
            extra={"user_id": user_id, "likes": likes, "comments": comments, "saves": saves, "rows": rows},
        )

    async def _erase_likes(self, user_id: int) -> int:
        removed = 0
        while True:
            async with self._db.unit_of_work() as session:
                post_ids = await repo.liked_by(session, user_id, self._batch_size)
                await repo.hold_posts(session, post_ids)
                unliked = await repo.remove_likes(session, user_id, post_ids)
                await repo.bump_many(session, self._shard(), {post_id: (-1, 0, 0) for post_id in unliked})
            removed += len(unliked)
            ERASED.labels("likes").inc(len(unliked))
            if len(post_ids) < self._batch_size:
                return removed

    async def _erase_comments(self, user_id: int) -> int:
        removed = 0
        while True:
            async with self._db.unit_of_work() as session:
                found = await repo.comments_by(session, user_id, self._batch_size)
                await repo.hold_posts(session, [post_id for _, post_id, _ in found])
                erased = await repo.remove_comments_of(session, user_id, found)
                await repo.bump_many(session, self._shard(), {p: (0, -n, 0) for p, n in erased.removed_by_post.items()})
                for comment_id, post_id, reply_ids in erased.announced:
                    # author_id 0: the author is being erased (a consumer must not record anything
                    # about them again, e.g. feed_svc's affinity).
                    event = events_pb2.CommentDeleted(comment_id=comment_id, post_id=post_id, reply_ids=reply_ids)
                    await self._outbox.add(session, event)
            removed += erased.rows
            ERASED.labels("comments").inc(erased.rows)
            if len(found) < self._batch_size:
                return removed

    async def _erase_saves(self, user_id: int) -> int:
        removed = 0
        while True:
            async with self._db.unit_of_work() as session:
                post_ids = await repo.saved_by(session, user_id, self._batch_size)
                await repo.hold_posts(session, post_ids)
                unsaved = await repo.remove_saves(session, user_id, post_ids)
                await repo.bump_many(session, self._shard(), {post_id: (0, 0, -1) for post_id in unsaved})
            removed += len(unsaved)
            ERASED.labels("saves").inc(len(unsaved))
            if len(post_ids) < self._batch_size:
                return removed

    async def _erase_rows(self, user_id: int) -> int:
        removed = 0
        while True:
            async with self._db.unit_of_work() as session:
                batch = await repo.remove_user_rows(session, user_id, self._batch_size)
            removed += batch
            ERASED.labels("mentions_and_keys").inc(batch)
            if batch < self._batch_size:
                return removed

    def _shard(self) -> int:
        return random.randrange(self._shards)
