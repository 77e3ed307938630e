"""story_svc's share of a user's erasure (issue 16; the scheme is mesh.erasure's): their stories and
the views they made.

In batches of up to ERASURE_BATCH rows, each one unit of work: their stories, expired or not, with
every view of them and their idempotency keys, each with its `stories.deleted` (media_svc deletes the
photo, as for a story its author deleted); then the views they made of others' stories (a story's
view count is the number of its view rows, so it drops with them); then keys of creates that never
made a story.

Idempotent and resumable: a committed batch is never found again, and its events were written with it.
"""

from __future__ import annotations

import logging

from glimpse.events.v1 import events_pb2
from mesh.db import Database
from mesh.erasure import ERASED, ERASURE_BATCH, ERASURES_FINISHED, erased_user
from mesh.outbox import Outbox
from story_svc import repository as repo
from story_svc.stories import deleted_event

log = logging.getLogger("story_svc.erasure")

ERASURE_DURABLE = "story_erasure"


class StoryErasure:
    def __init__(self, db: Database, outbox: Outbox, *, batch_size: int = ERASURE_BATCH) -> None:
        self._db = db
        self._outbox = outbox
        self._batch_size = batch_size

    async def on_user_deleted(self, event: events_pb2.UserDeleted) -> None:
        """`graph.user_deleted`: the user's stories (with their views) and the views they made.
        Unavailable (retried by the bus) if the database is down."""
        user_id = erased_user(event)
        stories = views = 0
        while True:
            async with self._db.unit_of_work() as session:
                batch = await repo.delete_stories_of_author(session, user_id, self._batch_size)
                for story in batch:
                    await self._outbox.add(session, deleted_event(story))
            stories += len(batch)
            if len(batch) < self._batch_size:
                break
        while True:
            async with self._db.unit_of_work() as session:
                removed = await repo.delete_views_by(session, user_id, self._batch_size)
                if removed < self._batch_size:
                    await repo.delete_requests_of_author(session, user_id)
            views += removed
            if removed < self._batch_size:
                break
        ERASED.labels("stories").inc(stories)
        ERASED.labels("story_views").inc(views)
        ERASURES_FINISHED.labels(ERASURE_DURABLE).inc()
        log.info("user's stories erased", extra={"user_id": user_id, "stories": stories, "views": views})
