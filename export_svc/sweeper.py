"""The sweeper: a background task of export_svc that expires exports past their `expire_at` (7 days
after they were requested) and deletes their zips (and aborts any upload still open).

Nothing depends on it for correctness: GetExport answers EXPIRED, without a URL, for any export past
its expiry whether or not a pass has run; the sweeper only frees the storage. A pass handles batches
of `batch_size`, oldest expiry first, each in one transaction that deletes the objects before the
rows say EXPIRED: a store outage rolls the batch back and the next pass retries it. Safe with
several replicas: rows another sweeper holds are skipped (SKIP LOCKED), and deleting an object or
aborting an upload twice is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging

from prometheus_client import Counter

from export_svc import repository as repo
from export_svc.storage import ExportStore
from mesh.db import Database
from mesh.periodic import run_passes

log = logging.getLogger("export_svc.sweeper")

EXPIRED_EXPORTS = Counter("glimpse_exports_expired_total", "Exports expired by the sweeper (zips deleted).")
# Batches per pass at most, so a backlog never holds one pass for long.
MAX_BATCHES = 20


class Sweeper:
    def __init__(self, db: Database, store: ExportStore, *, interval: dt.timedelta, batch_size: int) -> None:
        self._db = db
        self._store = store
        self._interval = interval
        self._batch_size = batch_size

    async def run(self) -> None:
        """A pass every interval, until cancelled (mesh.periodic.run_passes: an outage is retried next pass)."""
        await run_passes(self._interval, self._one_pass, log)

    async def _one_pass(self) -> None:
        expired = await self.sweep()
        if expired:
            log.info("exports expired", extra={"exports": expired})

    async def sweep(self) -> int:
        """One pass: the number of exports expired. Unavailable if the database or the store is down."""
        expired = 0
        for _ in range(MAX_BATCHES):
            async with self._db.unit_of_work() as session:
                batch = await repo.lock_expiring(session, self._batch_size)
                for stored in batch:
                    if stored.upload_id and stored.object_key:
                        await self._store.abort_upload(stored.object_key, stored.upload_id)
                await self._store.delete([s.object_key for s in batch if s.object_key])
                if batch:
                    await repo.mark_expired(session, [s.export_id for s in batch])
            expired += len(batch)
            EXPIRED_EXPORTS.inc(len(batch))
            if len(batch) < self._batch_size:
                break
        return expired
