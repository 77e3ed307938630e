"""export_svc's share of a user's erasure (issue 16; the scheme is mesh.erasure's): their exports,
rows and zips (and any upload a build has open).

One unit of work locks the user's export rows, deletes every object under the user's prefix and
aborts every upload open there (a zip whose build crashed between completing its upload and
marking the row READY included), then deletes the rows; a store outage rolls it back and the bus
redelivers the event. A build running
at that moment finds its row gone when it finishes and deletes its own zip (export_svc.builder), and
a later delivery of its `exports.requested` finds nothing to claim. A user has a few exports
(exports_per_day), so one batch holds them all. Idempotent: a second delivery finds no rows.
"""

from __future__ import annotations

import logging

from export_svc import repository as repo
from export_svc.storage import ExportStore, user_prefix
from glimpse.events.v1 import events_pb2
from mesh.db import Database
from mesh.erasure import ERASED, ERASURES_FINISHED, erased_user

log = logging.getLogger("export_svc.erasure")

ERASURE_DURABLE = "export_erasure"


class ExportErasure:
    def __init__(self, db: Database, store: ExportStore) -> None:
        self._db = db
        self._store = store

    async def on_user_deleted(self, event: events_pb2.UserDeleted) -> None:
        """`graph.user_deleted`: every export of the user, its zip and open upload. Unavailable
        (retried by the bus) if the database or the store is down."""
        user_id = erased_user(event)
        async with self._db.unit_of_work() as session:
            await repo.lock_of_user(session, user_id)
            objects = await self._store.delete_under(user_prefix(user_id))
            removed = await repo.delete_of_user(session, user_id)
        ERASED.labels("exports").inc(removed)
        ERASURES_FINISHED.labels(ERASURE_DURABLE).inc()
        log.info("user's exports erased", extra={"user_id": user_id, "exports": removed, "objects": objects})
