"""Placeholders: a blurhash on every attached photo, for clients to show until its renditions exist.

Made by the rendition worker in a consumer of their own (`posts.created`, `stories.created`) that
does nothing else, so a placeholder is stored within tens of milliseconds of its post's commit
(bench/create_post.py prints the lag), however many renders are queued. AttachMedia decodes
nothing: a placeholder made there put a JPEG decode (~40 ms of CPU for a 12-megapixel photo, more
for PNG, WebP, AVIF and HEIC without a thumbnail) on the API's write path, once per photo.

The window: from the post's commit until its placeholder is stored, a photo is PROCESSING without a
blurhash (clients show a neutral tile). The same event drives the fan-out, so followers' feeds get
the post at about the time its placeholders appear; the author's own client has the photo itself.

A placeholder is a nicety: an upload that cannot be decoded is left without one (the rendition
consumer marks it FAILED with the reason); a store or database outage is retried a few times, after
which the worker's own blurhash, made with the renditions, fills it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from media_svc import images
from media_svc import repository as repo
from media_svc.images import UnusableImage
from media_svc.models import MediaStatus
from media_svc.repository import MediaRecord
from media_svc.storage import ObjectStore
from mesh.db import Database

log = logging.getLogger("media_svc.placeholders")


class Placeholders:
    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        *,
        max_bytes: int,
        max_pixels: int,
        concurrency: int,
        pixels: images.PixelBudget,
    ) -> None:
        """`concurrency` uploads are read and decoded at once, each holding its bytes (at most
        `max_bytes`); their decoded pixels are held in `pixels`, the budget the worker's renders share."""
        self._db = db
        self._store = store
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._slots = asyncio.Semaphore(concurrency)
        self._pixels = pixels

    async def make(self, parent_id: int, owner_id: int, media_ids: Sequence[int]) -> int:
        """Stores a blurhash on each media of the post (or story) `parent_id` that is PROCESSING
        without one; how many it stored. Media of other posts or owners are skipped (an event never
        grants access to them). Unavailable (retry) if the store or the database is unreachable."""
        async with self._db.read_only(transaction=False) as session:
            found = await repo.get_media(session, media_ids)
        todo = [
            record
            for record in found.values()
            if record.post_id == parent_id
            and record.owner_id == owner_id
            and record.status == MediaStatus.PROCESSING
            and not record.blurhash
        ]
        if not todo:
            return 0
        made = await asyncio.gather(*(self._placeholder(record) for record in todo))
        blurhashes = {record.id: value for record, value in zip(todo, made, strict=True) if value is not None}
        if not blurhashes:
            return 0
        async with self._db.unit_of_work() as session:
            # Only where none is stored yet: a render that finished first keeps its own.
            stored = await repo.set_blurhash(session, blurhashes)
        return len(stored)

    async def _placeholder(self, record: MediaRecord) -> str | None:
        async with self._slots:
            raw = await self._store.read(record.object_key, self._max_bytes)
            if raw is None or len(raw) > self._max_bytes:
                return None  # the rendition consumer tells the uploader
            try:
                # Decoding releases the GIL: the event loop goes on meanwhile.
                return await asyncio.to_thread(
                    images.placeholder, raw, max_pixels=self._max_pixels, budget=self._pixels
                )
            except UnusableImage as exc:
                log.info("no placeholder: unusable upload", extra={"media_id": record.id, "reason": exc.reason})
                return None
