"""media_svc's share of a user's erasure (issue 16; the scheme is mesh.erasure's): their photos.

In batches of up to ERASURE_BATCH // 4 media (a media has up to four objects: the upload and three
renditions, or its avatar's renditions, and one delete request takes 1,000 keys), each one unit of
work: the media rows are locked, every object they may have is deleted from the bucket, then the
rows. A render in flight finishes first (it holds the row) or finds the row gone and deletes what it
wrote (media_svc.renditions). Then whatever is still stored under the user's prefixes
(object_keys.owner_prefixes: objects no row names any more, such as a render's that lost a race
before that rule) is listed and deleted, so the bucket holds nothing of theirs.

Objects go before rows: a batch cut short leaves rows whose objects may be gone, found again on
redelivery and deleted again (deleting a missing key is fine). Unavailable (retried) when the store
or the database cannot be reached.
"""

from __future__ import annotations

import logging

from glimpse.events.v1 import events_pb2
from media_svc import repository as repo
from media_svc.object_keys import owner_prefixes
from media_svc.storage import ObjectStore
from media_svc.sweeper import object_keys
from mesh.db import Database
from mesh.erasure import ERASED, ERASURE_BATCH, ERASURES_FINISHED, erased_user

log = logging.getLogger("media_svc.erasure")

ERASURE_DURABLE = "media_erasure"
# One S3 DeleteObjects request takes at most this many keys.
_DELETE_MAX_KEYS = 1000


class MediaErasure:
    def __init__(self, db: Database, store: ObjectStore, *, batch_size: int = ERASURE_BATCH // 4) -> None:
        self._db = db
        self._store = store
        self._batch_size = batch_size

    async def on_user_deleted(self, event: events_pb2.UserDeleted) -> None:
        """`graph.user_deleted`: every media of the user, their objects, and anything left under their
        prefixes."""
        user_id = erased_user(event)
        media = 0
        while True:
            async with self._db.unit_of_work() as session:
                batch = await repo.lock_media_of_owner(session, user_id, self._batch_size)
                keys = [key for record in batch for key in _keys_of(record)]
                for start in range(0, len(keys), _DELETE_MAX_KEYS):
                    await self._store.delete(keys[start : start + _DELETE_MAX_KEYS])
                if batch:
                    await repo.delete_media(session, [record.id for record in batch])
            media += len(batch)
            ERASED.labels("media").inc(len(batch))
            if len(batch) < self._batch_size:
                break
        leftovers = 0
        for prefix in owner_prefixes(user_id):
            while found := await self._store.list_keys(prefix, _DELETE_MAX_KEYS):
                await self._store.delete(found)
                leftovers += len(found)
        ERASURES_FINISHED.labels(ERASURE_DURABLE).inc()
        log.info("user's media erased", extra={"user_id": user_id, "media": media, "unlisted_objects": leftovers})


def _keys_of(record: repo.MediaRecord) -> list[str]:
    """Every key the media may have an object under: those a post's photo may have, and its
    renditions as recorded."""
    return sorted({*object_keys(record), *(r.key for r in record.renditions)})
