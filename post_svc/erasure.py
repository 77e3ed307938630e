"""post_svc's share of a user's erasure (issue 16; the scheme is mesh.erasure's): their posts.

Each batch of up to ERASURE_BATCH posts, live or deleted, goes in one unit of work: a live post
leaves its tags (the tag index rows and the tags' exact counts) and gets its `posts.deleted`, as if
its author had deleted it, so every consumer forgets it the usual way (fanout_svc drops it from the
author's outbox, engagement_svc purges its likes, comments and saves, notification_svc the
notifications about it); then every row of the batch is deleted for good (a user's own delete only
marks a post DELETED, which would keep `author_id`). The idempotency keys go last.

Idempotent and resumable: a committed batch is never found again, and its events were written with
it (exactly one `posts.deleted` per live post, whatever is redelivered); a batch cut short rolled
back whole.
"""

from __future__ import annotations

import logging

from glimpse.events.v1 import events_pb2
from mesh.db import Database
from mesh.erasure import ERASED, ERASURE_BATCH, ERASURES_FINISHED, erased_user
from mesh.outbox import Outbox
from post_svc import repository as repo
from post_svc import tag_repository as tag_repo

log = logging.getLogger("post_svc.erasure")

ERASURE_DURABLE = "post_erasure"


class PostErasure:
    def __init__(self, db: Database, outbox: Outbox, *, batch_size: int = ERASURE_BATCH) -> None:
        self._db = db
        self._outbox = outbox
        self._batch_size = batch_size

    async def on_user_deleted(self, event: events_pb2.UserDeleted) -> None:
        """`graph.user_deleted`: every post of the user, with its tags and its `posts.deleted`, then
        their idempotency keys. Unavailable (retried by the bus) if the database is down."""
        user_id = erased_user(event)
        removed = 0
        while True:
            async with self._db.unit_of_work() as session:
                batch = await repo.lock_posts_of_author(session, user_id, self._batch_size)
                live = [post for post in batch if not post.deleted]
                for post in live:
                    await self._outbox.add(session, events_pb2.PostDeleted(post_id=post.id, author_id=user_id))
                await tag_repo.untag_posts(session, [(post.id, post.hashtags) for post in live])
                if batch:
                    await repo.remove_posts(session, [post.id for post in batch])
                last = len(batch) < self._batch_size
                if last:
                    await repo.remove_post_requests(session, user_id)
            removed += len(batch)
            ERASED.labels("posts").inc(len(batch))
            if last:
                break
        ERASURES_FINISHED.labels(ERASURE_DURABLE).inc()
        log.info("user's posts erased", extra={"user_id": user_id, "posts": removed})
