"""The sweeper: a background task of story_svc that deletes expired stories.

Nothing depends on it for correctness: every read filters by `expire_at`, so a story is never served
after its 24 hours whether or not a pass has run. A pass deletes expired stories oldest first, in
batches of `batch_size` and at most `max_batches` batches, each batch in one transaction with one
`stories.deleted` per story (media_svc deletes the photo's objects and record when it handles it).
Idempotent and safe with several replicas: rows another sweeper holds are skipped (SKIP LOCKED), a
deleted row is never found again, and media_svc's handler deletes nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging

from prometheus_client import Counter

from mesh.db import Database
from mesh.outbox import Outbox
from mesh.periodic import run_passes
from story_svc import repository as repo
from story_svc.stories import deleted_event

log = logging.getLogger("story_svc.sweeper")

SWEPT = Counter("glimpse_stories_swept_total", "Expired stories deleted by the sweeper.")


class Sweeper:
    def __init__(
        self, db: Database, outbox: Outbox, *, interval: dt.timedelta, batch_size: int, max_batches: int
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._interval = interval
        self._batch_size = batch_size
        self._max_batches = max_batches

    async def run(self) -> None:
        """A pass every interval, until cancelled (mesh.periodic.run_passes: an outage is retried next pass)."""
        await run_passes(self._interval, self._one_pass, log)

    async def _one_pass(self) -> None:
        deleted = await self.sweep()
        if deleted:
            log.info("expired stories deleted", extra={"stories": deleted})

    async def sweep(self) -> int:
        """One pass: the number of expired stories deleted. Unavailable if the database is down."""
        deleted = 0
        for _ in range(self._max_batches):
            async with self._db.unit_of_work() as session:
                batch = await repo.delete_expired(session, self._batch_size)
                for story in batch:
                    await self._outbox.add(session, deleted_event(story))
            deleted += len(batch)
            SWEPT.inc(len(batch))
            if len(batch) < self._batch_size:
                break
        return deleted
