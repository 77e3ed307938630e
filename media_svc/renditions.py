"""The rendition workflow of one post's media (or of an avatar): read the upload, render it, store
the renditions, then mark the media READY (or FAILED) and emit its event in the same transaction.
A post's or story's photo gets images.render's renditions under object_keys.rendition_key and
`media.ready`; an avatar images.render_avatar's squares under object_keys.avatar_key and
`media.avatar_ready`, which carries their public URLs.

Idempotent: renditions are written under fixed keys from deterministic bytes, and only a media
still PROCESSING is changed, so a redelivered event changes nothing and emits nothing twice.
A bad photo is a permanent failure (FAILED, acknowledged); an unreachable store or database raises,
so the event is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from glimpse.events.v1 import events_pb2
from media_svc import images
from media_svc import repository as repo
from media_svc.images import UnusableImage
from media_svc.models import MediaPurpose, MediaStatus
from media_svc.object_keys import avatar_key, rendition_key
from media_svc.repository import MediaRecord, RenditionRecord
from media_svc.storage import AVATAR_CACHE, IMMUTABLE, ObjectStore
from mesh.db import Database, Session
from mesh.outbox import Outbox

log = logging.getLogger("media_svc.renditions")

WEBP = "image/webp"
# What a render holds beside its decode: the 1080 px image, its sRGB and upright copies, the
# smaller renditions and the WebP encoder's buffers (measured: under 12 MiB; rounded up).
RENDITION_WORKING_BYTES = 16 * 2**20


def memory_bound(
    *,
    max_bytes: int,
    max_pixels: int,
    concurrency: int,
    placeholder_concurrency: int = 0,
    pixel_budget: int | None = None,
) -> int:
    """The most memory (bytes) a worker holds for decodes on top of its idle footprint, for its
    settings: each of the `concurrency` renders holds its upload (twice while it is read from the
    store) and rendition-sized images, each of the `placeholder_concurrency` placeholders
    (media_svc.placeholders) its upload; all of them together decode at most
    max(pixel_budget, max_pixels) pixels (a photo larger than the budget goes alone), each pixel
    costing at most images.DECODED_BYTES_PER_PIXEL, and freed pixels leaving the process at once
    (images.free_decoded_pixels_at_once). With the defaults (2 renders, 2 placeholders,
    20 MiB, 50 MP): ~1 GiB, of which the one whole decode is ~810 MiB; without the pixel budget, two
    50-MP WebPs at once would need ~1.6 GiB, four (renders and placeholders) ~3.2 GiB.
    bench/renditions.py prints the measured peaks beside it."""
    decoded = max(pixel_budget or max_pixels, max_pixels) * images.DECODED_BYTES_PER_PIXEL
    uploads = (concurrency + placeholder_concurrency) * 2 * max_bytes
    return uploads + concurrency * RENDITION_WORKING_BYTES + decoded


class Renditions:
    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        outbox: Outbox,
        *,
        max_bytes: int,
        max_pixels: int,
        concurrency: int,
        pixel_budget: int | None = None,
    ) -> None:
        """`concurrency` media are rendered at once, each holding its upload's bytes (at most
        `max_bytes`); together they decode at most `pixel_budget` pixels at once (default
        `max_pixels`: one photo of the largest size, or many JPEGs decoded at reduced scale).
        memory_bound gives the memory this allows."""
        self._db = db
        self._store = store
        self._outbox = outbox
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._slots = asyncio.Semaphore(concurrency)
        # Memory follows decoded pixels, not photos: two 50-MP WebPs at once would double the peak,
        # while many JPEGs decoded at reduced scale cost little.
        self._pixels = images.PixelBudget(pixel_budget or max_pixels)

    @property
    def pixels(self) -> images.PixelBudget:
        """The decoded-pixel budget renders hold; the worker's other decodes (placeholders) share it."""
        return self._pixels

    async def render_post(self, post_id: int, author_id: int, media_ids: Sequence[int]) -> None:
        """Renders every media of a post that is still PROCESSING.

        Media of other posts or owners are skipped (an event never grants access to them). Every
        media is attempted; then the first transient error (e.g. mesh.errors.Unavailable) is raised.
        """
        async with self._db.read_only() as session:
            found = await repo.get_media(session, media_ids)
        todo = []
        for media_id in media_ids:
            record = found.get(media_id)
            if record is None or record.post_id != post_id or record.owner_id != author_id:
                log.warning(
                    "skipping media not attached to this post",
                    extra={"media_id": media_id, "post_id": post_id, "found": record is not None},
                )
            elif record.status == MediaStatus.PROCESSING:
                todo.append(record)
        outcomes = await asyncio.gather(*(self._render(r) for r in todo), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            raise errors[0]

    async def render_avatar(self, media_id: int, owner_id: int) -> None:
        """Renders an avatar of `owner_id` that is still PROCESSING (anything else is skipped: an
        event never grants access to another's media). Transient errors raise, as render_post's."""
        async with self._db.read_only() as session:
            record = (await repo.get_media(session, [media_id])).get(media_id)
        if record is None or record.owner_id != owner_id or record.purpose != MediaPurpose.AVATAR:
            log.warning("skipping media that is not this owner's avatar", extra={"media_id": media_id})
            return
        if record.status == MediaStatus.PROCESSING:
            await self._render(record)

    async def fail_avatar(self, media_id: int, reason: str) -> None:
        """Marks an avatar still PROCESSING as FAILED with `reason` (emitting media.failed)."""
        async with self._db.unit_of_work() as session:
            record = (await repo.lock_media(session, [media_id])).get(media_id)
            if record is not None and record.purpose == MediaPurpose.AVATAR and record.status == MediaStatus.PROCESSING:
                await self._mark_failed(session, record, reason)

    async def fail_post(self, post_id: int, media_ids: Sequence[int], reason: str) -> None:
        """Marks the post's media that are still PROCESSING as FAILED with `reason` (emitting media.failed)."""
        async with self._db.unit_of_work() as session:
            locked = await repo.lock_media(session, media_ids)
            for record in locked.values():
                if record.post_id == post_id and record.status == MediaStatus.PROCESSING:
                    await self._mark_failed(session, record, reason)

    async def _render(self, record: MediaRecord) -> None:
        async with self._slots:
            raw = await self._store.read(record.object_key, self._max_bytes)
            if raw is None:
                await self._fail(record, "the uploaded file is missing from storage; upload the photo again")
                return
            if len(raw) > self._max_bytes:
                limit = f"{self._max_bytes / (1024 * 1024):g} MiB"
                await self._fail(record, f"the file is larger than the {limit} limit; upload a smaller photo")
                return
            avatar = record.purpose == MediaPurpose.AVATAR
            try:
                # Decoding and encoding release the GIL: other renders and the event loop go on.
                rendering = await asyncio.to_thread(
                    images.render_avatar if avatar else images.render,
                    raw,
                    max_pixels=self._max_pixels,
                    budget=self._pixels,
                )
            except UnusableImage as exc:
                await self._fail(record, exc.reason)
                return
            del raw
        key = avatar_key if avatar else rendition_key
        cache_control = AVATAR_CACHE if avatar else IMMUTABLE
        renditions = [
            RenditionRecord(r.size, r.width, r.height, key(record.owner_id, record.id, r.size))
            for r in rendering.renditions
        ]
        await asyncio.gather(
            *(
                self._store.write(stored.key, rendered.webp, WEBP, cache_control=cache_control)
                for stored, rendered in zip(renditions, rendering.renditions, strict=True)
            )
        )
        async with self._db.unit_of_work() as session:
            current = (await repo.lock_media(session, [record.id])).get(record.id)
            if current is None:
                # Deleted meanwhile (swept, or its owner erased): what was just written goes too.
                await self._store.delete([stored.key for stored in renditions])
                return
            if current.status != MediaStatus.PROCESSING:
                return  # another delivery finished it meanwhile
            await repo.mark_ready(
                session,
                record.id,
                real_format=rendering.real_format,
                width=rendering.width,
                height=rendering.height,
                checksum=rendering.checksum,
                blurhash=rendering.blurhash,
                renditions=renditions,
            )
            await self._outbox.add(session, self._ready_event(current, renditions))
        log.info("media ready", extra={"media_id": record.id, "format": rendering.real_format})

    def _ready_event(
        self, record: MediaRecord, renditions: Sequence[RenditionRecord]
    ) -> events_pb2.MediaReady | events_pb2.AvatarReady:
        if record.purpose == MediaPurpose.AVATAR:
            squares = [
                events_pb2.AvatarReady.Image(size=r.size, width=r.width, url=self._store.public_url(r.key))
                for r in renditions
            ]
            return events_pb2.AvatarReady(media_id=record.id, owner_id=record.owner_id, images=squares)
        return events_pb2.MediaReady(media_id=record.id, owner_id=record.owner_id, post_id=record.post_id or 0)

    async def _fail(self, record: MediaRecord, reason: str) -> None:
        async with self._db.unit_of_work() as session:
            current = (await repo.lock_media(session, [record.id])).get(record.id)
            if current is not None and current.status == MediaStatus.PROCESSING:
                await self._mark_failed(session, current, reason)

    async def _mark_failed(self, session: Session, record: MediaRecord, reason: str) -> None:
        await repo.mark_failed(session, record.id, reason)
        event = events_pb2.MediaFailed(
            media_id=record.id, owner_id=record.owner_id, post_id=record.post_id or 0, reason=reason
        )
        await self._outbox.add(session, event)
        log.info("media failed", extra={"media_id": record.id, "reason": reason})
