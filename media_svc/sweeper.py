"""The sweeper: a background task of the rendition worker that clears what uploads leave behind.

Each pass runs three steps, each idempotent, batched (`sweep_batch_size` media per batch) and
bounded (`sweep_max_batches` batches per step per pass), oldest first:

1. **Abandoned uploads.** A PENDING media whose upload grant expired more than a grace period ago
   (and that was not detached from a post within it either) will never be posted: its row, its raw
   upload and any rendition objects under its keys are deleted. The rows are locked (SKIP LOCKED)
   while the objects are deleted, so an AttachMedia in flight either wins (the media is no longer
   PENDING) or finds the media gone (NOT_FOUND), never a row whose bytes vanished underneath.
   Objects first, rows second: a crash between them leaves rows whose objects are gone, which the
   next pass deletes (deleting a missing object is not an error).

2. **Orphaned attachments.** A media PROCESSING for longer than `orphan_grace_seconds` was attached
   to a post that was never published (post_svc failed after AttachMedia and could not compensate)
   or the worker is behind. post_svc is asked (BatchGetPosts); media whose post it does not know
   are detached (back to PENDING, attachable again, and swept by step 1 if never used). If post_svc
   cannot be reached, nothing is detached in that pass. A post deleted while its media were still
   waiting for the worker also counts as absent: detaching those harms nothing.

3. **Raw originals.** The policy: **keep them** unless `raw_original_retention_seconds` is set.
   The raw upload is the only full-quality copy (renditions are at most 1080 px lossy WebP); a
   data export must be able to hand people their photos as they uploaded them, and new rendition
   sizes or formats can only be made from it. Storage costs less than that loss. The originals
   stay private (never served) and their EXIF, GPS included, never reaches a rendition. An
   operator who must reclaim the space sets the retention: raw uploads of READY or FAILED media
   are then deleted that long after they settled and `raw_deleted_at` records it (an export then
   offers the 1080 px rendition).

Several worker replicas may sweep at once: steps 1 and 3 skip rows another holds, step 2 detaches
by a conditional update, so no work is done twice and no media is half-swept.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import grpc
from prometheus_client import Counter

from glimpse.post.v1 import post_pb2, post_pb2_grpc
from media_svc import repository as repo
from media_svc.images import AVATAR_SIZES, RENDITION_SIZES
from media_svc.models import MediaPurpose
from media_svc.object_keys import avatar_key, rendition_key
from media_svc.repository import MediaRecord
from media_svc.settings import MediaSettings
from media_svc.storage import ObjectStore
from mesh.db import Database
from mesh.errors import Unavailable
from mesh.periodic import run_passes

log = logging.getLogger("media_svc.sweeper")

SWEPT = Counter("glimpse_media_swept_total", "Media handled by the sweeper, by step.", ["step"])
# post_svc's BatchGetPosts limit.
_POSTS_PER_CALL = 100
_POST_LOOKUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class SweepPass:
    """What one pass did: media deleted, media detached, raw uploads deleted."""

    abandoned_deleted: int
    orphans_detached: int
    raw_deleted: int


class Sweeper:
    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        posts: post_pb2_grpc.PostServiceStub,
        *,
        interval: dt.timedelta,
        batch_size: int,
        max_batches: int,
        abandoned_grace: dt.timedelta,
        orphan_grace: dt.timedelta,
        raw_retention: dt.timedelta | None,
    ) -> None:
        self._db = db
        self._store = store
        self._posts = posts
        self._interval = interval
        self._batch_size = batch_size
        self._max_batches = max_batches
        self._abandoned_grace = abandoned_grace
        self._orphan_grace = orphan_grace
        self._raw_retention = raw_retention

    @classmethod
    def from_settings(
        cls, settings: MediaSettings, db: Database, store: ObjectStore, posts: post_pb2_grpc.PostServiceStub
    ) -> Sweeper:
        retention = settings.raw_original_retention_seconds
        return cls(
            db,
            store,
            posts,
            interval=dt.timedelta(seconds=settings.sweep_interval_seconds),
            batch_size=settings.sweep_batch_size,
            max_batches=settings.sweep_max_batches,
            abandoned_grace=dt.timedelta(seconds=settings.abandoned_upload_grace_seconds),
            orphan_grace=dt.timedelta(seconds=settings.orphan_grace_seconds),
            raw_retention=None if retention is None else dt.timedelta(seconds=retention),
        )

    async def run(self) -> None:
        """A pass every interval, until cancelled (mesh.periodic.run_passes: the first after one interval; an
        outage is retried next pass)."""
        await run_passes(self._interval, self._one_pass, log)

    async def _one_pass(self) -> None:
        done = await self.sweep()
        if done != SweepPass(0, 0, 0):
            log.info("swept", extra=vars(done))

    async def sweep(self) -> SweepPass:
        """One pass of the three steps. Unavailable if the database or the store is down."""
        return SweepPass(
            abandoned_deleted=await self.delete_abandoned_uploads(),
            orphans_detached=await self.detach_orphans(),
            raw_deleted=await self.delete_raw_originals(),
        )

    async def delete_abandoned_uploads(self) -> int:
        """Step 1: the number of abandoned PENDING media deleted with their objects."""
        deleted = 0
        for _ in range(self._max_batches):
            async with self._db.unit_of_work() as session:
                batch = await repo.lock_abandoned_uploads(session, grace=self._abandoned_grace, limit=self._batch_size)
                if not batch:
                    break
                await self._store.delete([key for record in batch for key in object_keys(record)])
                await repo.delete_media(session, [record.id for record in batch])
            deleted += len(batch)
            SWEPT.labels(step="abandoned_upload").inc(len(batch))
            if len(batch) < self._batch_size:
                break
        return deleted

    async def detach_orphans(self) -> int:
        """Step 2: the number of media detached from posts that do not exist.

        Each batch looks at the oldest stalled media; those whose post exists stay as they are (the
        worker will render them), so while the worker is down a pass only re-checks the same ones.
        """
        detached = 0
        after: tuple[dt.datetime, int] | None = None
        for _ in range(self._max_batches):
            async with self._db.read_only() as session:
                batch = await repo.stalled_processing(
                    session, older_than=self._orphan_grace, limit=self._batch_size, after=after
                )
            if not batch:
                break
            after = (batch[-1].updated_at, batch[-1].id)
            by_post: dict[int, list[int]] = {}
            for record in batch:
                if record.post_id is not None:
                    by_post.setdefault(record.post_id, []).append(record.id)
            existing = await self._existing_posts(list(by_post))
            orphaned = {post_id: ids for post_id, ids in by_post.items() if post_id not in existing}
            if orphaned:
                async with self._db.unit_of_work() as session:
                    for post_id, ids in orphaned.items():
                        # Conditional on still PROCESSING on that post: a render that finished
                        # meanwhile is kept.
                        done = await repo.detach(session, ids, post_id)
                        detached += len(done)
                        if done:
                            log.info("orphaned media detached", extra={"post_id": post_id, "media_ids": done})
            if len(batch) < self._batch_size:
                break
        SWEPT.labels(step="orphan_detached").inc(detached)
        return detached

    async def delete_raw_originals(self) -> int:
        """Step 3: the number of raw uploads deleted under the retention policy (0 when kept)."""
        if self._raw_retention is None:
            return 0
        deleted = 0
        for _ in range(self._max_batches):
            async with self._db.unit_of_work() as session:
                batch = await repo.lock_settled_with_raw(
                    session, settled_for=self._raw_retention, limit=self._batch_size
                )
                if not batch:
                    break
                await self._store.delete([record.object_key for record in batch])
                await repo.mark_raw_deleted(session, [record.id for record in batch])
            deleted += len(batch)
            SWEPT.labels(step="raw_original").inc(len(batch))
            if len(batch) < self._batch_size:
                break
        return deleted

    async def _existing_posts(self, post_ids: list[int]) -> set[int]:
        """The ids post_svc knows (deleted posts count as absent). Unavailable if it cannot answer:
        nothing may be detached on a guess."""
        existing: set[int] = set()
        for start in range(0, len(post_ids), _POSTS_PER_CALL):
            chunk = post_ids[start : start + _POSTS_PER_CALL]
            try:
                reply = await self._posts.BatchGetPosts(
                    post_pb2.BatchGetPostsRequest(post_ids=chunk), timeout=_POST_LOOKUP_TIMEOUT
                )
            except grpc.aio.AioRpcError as exc:
                raise Unavailable(f"post service did not answer ({exc.code().name})") from exc
            existing.update(post.id for post in reply.posts)
        return existing


def object_keys(record: MediaRecord) -> list[str]:
    """Every key a media may have objects under: its upload, and renditions a worker may have
    written before the media was detached (writes are not undone when a render loses the race); an
    avatar's squares for an avatar."""
    if record.purpose == MediaPurpose.AVATAR:
        return [record.object_key, *(avatar_key(record.owner_id, record.id, size) for size in AVATAR_SIZES)]
    return [record.object_key, *(rendition_key(record.owner_id, record.id, size) for size in RENDITION_SIZES)]
