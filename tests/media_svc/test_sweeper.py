"""The sweeper on real rows, real objects in the store and a real post_svc: abandoned uploads,
orphaned attachments, the raw-original policy, and the worker running it in the background.

Time is made to pass by moving a media's timestamps back (`age`); everything else is as it happens.
The grace periods are an hour or a day, so rows other tests create meanwhile are never touched.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from minio.error import S3Error
from sqlalchemy import text

from glimpse.media.v1 import media_pb2
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from media_svc import repository as repo
from media_svc.app import open_store, worker_host
from media_svc.images import RENDITION_SIZES
from media_svc.object_keys import rendition_key
from media_svc.settings import MediaSettings
from media_svc.storage import ObjectStore
from media_svc.sweeper import Sweeper
from mesh.db import Database
from mesh.errors import Unavailable
from tests.media_svc import photos
from tests.media_svc.conftest import new_post_id, publish_post_created, wait_until_settled

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
async def media_db(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, pool_size=2)
    yield db
    await db.dispose()


@pytest.fixture(scope="module")
async def store(media_settings: MediaSettings) -> ObjectStore:
    return await open_store(media_settings)


@pytest.fixture(scope="module")
async def posts(post_addr: str) -> AsyncIterator[post_pb2_grpc.PostServiceStub]:
    async with grpc.aio.insecure_channel(post_addr) as channel:
        yield post_pb2_grpc.PostServiceStub(channel)


def sweeper(
    db: Database,
    store: ObjectStore,
    posts: post_pb2_grpc.PostServiceStub,
    *,
    raw_retention: dt.timedelta | None = None,
    batch_size: int = 100,
    max_batches: int = 10,
) -> Sweeper:
    return Sweeper(
        db,
        store,
        posts,
        interval=dt.timedelta(seconds=1),
        batch_size=batch_size,
        max_batches=max_batches,
        abandoned_grace=HOUR,
        orphan_grace=HOUR,
        raw_retention=raw_retention,
    )


async def age(db: Database, media_ids: Sequence[int], by: dt.timedelta, *, since_update: dt.timedelta | None = None):
    """Makes `by` pass for these media (grant and all); `since_update` if their last change was more recent."""
    async with db.unit_of_work() as session:
        await session.execute(
            text(
                "UPDATE media.media SET created_at = created_at - :by, upload_expires_at = upload_expires_at - :by,"
                " updated_at = now() - :since WHERE id = ANY(:ids)"
            ),
            {"by": by, "since": since_update if since_update is not None else by, "ids": list(media_ids)},
        )


async def found(media, ids: Sequence[int]) -> dict[int, media_pb2.Media]:
    return {m.id: m for m in (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=list(ids)))).media}


def stored(s3_admin, settings: MediaSettings, key: str) -> bool:
    try:
        s3_admin.stat_object(settings.bucket, key)
    except S3Error as exc:
        assert exc.code == "NoSuchKey", exc
        return False
    return True


async def grant_without_upload(media, account) -> int:
    grant = await media.CreateUploadGrant(
        media_pb2.CreateUploadGrantRequest(content_type="image/jpeg", size_bytes=1234), metadata=account.metadata
    )
    return grant.media_id


async def test_abandoned_uploads_are_deleted_with_their_objects(
    media, make_account, upload, media_db, store, posts, s3_admin, media_settings
):
    user = await make_account()
    uploaded = (await upload(user, photos.tiny_jpeg())).media_id
    never_uploaded = await grant_without_upload(media, user)
    fresh = (await upload(user, photos.tiny_jpeg())).media_id
    # Granted two days ago, attached to a post that failed, detached (post_svc's compensation) a minute ago.
    detached = (await upload(user, photos.tiny_jpeg())).media_id
    failed_post = new_post_id()
    await media.AttachMedia(
        media_pb2.AttachMediaRequest(post_id=failed_post, media_ids=[detached]), metadata=user.metadata
    )
    await media.DetachMedia(
        media_pb2.DetachMediaRequest(post_id=failed_post, media_ids=[detached]), metadata=user.metadata
    )
    await age(media_db, [uploaded, never_uploaded], 2 * HOUR)
    await age(media_db, [detached], 2 * DAY, since_update=dt.timedelta(minutes=1))
    keys = {i: m.object_key for i, m in (await _records(media_db, [uploaded, fresh, detached])).items()}
    # A worker that lost a race to a detach may have left renditions: they go too.
    await store.write(rendition_key(user.id, uploaded, 150), b"stale rendition", "image/webp")

    sweep = sweeper(media_db, store, posts)
    assert await sweep.delete_abandoned_uploads() >= 2
    assert set(await found(media, [uploaded, never_uploaded, fresh, detached])) == {fresh, detached}
    assert not stored(s3_admin, media_settings, keys[uploaded])
    assert not stored(s3_admin, media_settings, rendition_key(user.id, uploaded, 150))
    assert stored(s3_admin, media_settings, keys[fresh]) and stored(s3_admin, media_settings, keys[detached])

    # Idempotent: nothing left to do; a client holding the old id is told it is gone.
    assert await sweep.delete_abandoned_uploads() == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await media.AttachMedia(
            media_pb2.AttachMediaRequest(post_id=new_post_id(), media_ids=[uploaded]), metadata=user.metadata
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_each_pass_is_bounded(media, make_account, media_db, store, posts):
    user = await make_account()
    ids = [await grant_without_upload(media, user) for _ in range(5)]
    # Older than anything another test ages, so these are the first in line.
    await age(media_db, ids, 300 * DAY)
    sweep = sweeper(media_db, store, posts, batch_size=2, max_batches=2)
    assert await sweep.delete_abandoned_uploads() == 4
    assert len(await found(media, ids)) == 1
    await sweep.delete_abandoned_uploads()
    assert await found(media, ids) == {}


async def test_an_attach_in_flight_keeps_its_media(media, make_account, upload, media_db, store, posts):
    """The sweeper skips rows an AttachMedia holds; once attached they are no longer abandoned."""
    user = await make_account()
    media_id = (await upload(user, photos.tiny_jpeg())).media_id
    await age(media_db, [media_id], 2 * HOUR)
    post_id = new_post_id()
    async with media_db.unit_of_work() as session:
        await repo.lock_media(session, [media_id])  # as AttachMedia does, before it attaches
        assert await sweeper(media_db, store, posts).delete_abandoned_uploads() == 0
        await repo.attach(session, [media_id], post_id)
    assert await sweeper(media_db, store, posts).delete_abandoned_uploads() == 0
    assert (await found(media, [media_id]))[media_id].post_id == post_id


async def test_media_of_posts_that_never_existed_are_detached(
    media, make_account, upload, media_db, store, posts, post_addr
):
    user = await make_account()
    orphan, fresh_orphan = [(await upload(user, photos.tiny_jpeg())).media_id for _ in range(2)]
    never_stored, also_never = new_post_id(), new_post_id()
    for media_id, post_id in ((orphan, never_stored), (fresh_orphan, also_never)):
        await media.AttachMedia(
            media_pb2.AttachMediaRequest(post_id=post_id, media_ids=[media_id]), metadata=user.metadata
        )
    # A real post, through post_svc (which attaches its media itself).
    kept = (await upload(user, photos.tiny_jpeg())).media_id
    post = await posts.CreatePost(
        post_pb2.CreatePostRequest(caption="still here", media_ids=[kept], request_id=f"sweeper-{kept}"),
        metadata=user.metadata,
    )
    await age(media_db, [orphan, kept], 2 * HOUR)

    # post_svc unreachable: nothing is detached on a guess.
    async with grpc.aio.insecure_channel("127.0.0.1:9") as dead:
        with pytest.raises(Unavailable):
            await sweeper(media_db, store, post_pb2_grpc.PostServiceStub(dead)).detach_orphans()
    assert (await found(media, [orphan]))[orphan].status == media_pb2.MEDIA_STATUS_PROCESSING

    sweep = sweeper(media_db, store, posts)
    assert await sweep.detach_orphans() >= 1
    now = await found(media, [orphan, fresh_orphan, kept])
    assert (now[orphan].status, now[orphan].post_id) == (media_pb2.MEDIA_STATUS_PENDING, 0)
    assert (now[fresh_orphan].status, now[fresh_orphan].post_id) == (media_pb2.MEDIA_STATUS_PROCESSING, also_never)
    # The real post keeps its photo (PROCESSING, or READY if a worker already rendered it).
    assert now[kept].post_id == post.id and now[kept].status != media_pb2.MEDIA_STATUS_PENDING

    assert await sweep.detach_orphans() == 0  # idempotent
    # The detached photo can be posted again.
    retried = new_post_id()
    attached = await media.AttachMedia(
        media_pb2.AttachMediaRequest(post_id=retried, media_ids=[orphan]), metadata=user.metadata
    )
    assert attached.media[0].post_id == retried


async def test_raw_originals_are_kept_unless_a_retention_is_set(
    media, bus, make_account, upload, media_db, store, posts, s3_admin, media_settings, s3, media_worker
):
    user = await make_account()
    raw = photos.tiny_jpeg()
    grants = [await upload(user, raw) for _ in range(2)]
    ids = [g.media_id for g in grants]
    post_id = new_post_id()
    await media.AttachMedia(media_pb2.AttachMediaRequest(post_id=post_id, media_ids=ids), metadata=user.metadata)
    await publish_post_created(bus, post_id, user.id, ids)
    ready = await wait_until_settled(media, ids)
    assert all(m.status == media_pb2.MEDIA_STATUS_READY for m in ready)
    old, recent = ids
    await age(media_db, [old], 3 * DAY)

    # The default policy: originals are kept.
    assert await sweeper(media_db, store, posts).delete_raw_originals() == 0
    assert all(stored(s3_admin, media_settings, g.object_key) for g in grants)

    with_retention = sweeper(media_db, store, posts, raw_retention=DAY)
    assert await with_retention.delete_raw_originals() >= 1
    assert not stored(s3_admin, media_settings, grants[0].object_key)
    assert stored(s3_admin, media_settings, grants[1].object_key)
    records = await _records(media_db, ids)
    assert records[old].raw_deleted_at is not None and records[recent].raw_deleted_at is None
    # The photo is still served, unchanged.
    after = (await found(media, [old]))[old]
    assert (after.status, after.blurhash) == (ready[0].status, ready[0].blurhash)
    assert [(r.size, r.width, r.height) for r in after.renditions] == [
        (r.size, r.width, r.height) for r in ready[0].renditions
    ]
    assert sorted(r.size for r in after.renditions) == sorted(RENDITION_SIZES)
    for rendition in after.renditions:
        assert (await s3.get(rendition.url)).status_code == 200
    assert await with_retention.delete_raw_originals() == 0  # idempotent


async def test_the_worker_sweeps_in_the_background(media, make_account, media_db, media_settings, post_addr):
    user = await make_account()
    abandoned = await grant_without_upload(media, user)
    await age(media_db, [abandoned], 3 * DAY)
    settings = media_settings.model_copy(
        update={
            "sweep_interval_seconds": 0.1,
            "abandoned_upload_grace_seconds": DAY.total_seconds(),
            "post_addr": post_addr,
        }
    )
    async with worker_host(settings) as host:
        await host.start()
        try:
            deadline = asyncio.get_running_loop().time() + 20
            while await found(media, [abandoned]):
                assert asyncio.get_running_loop().time() < deadline, "the worker's sweeper did not run"
                await asyncio.sleep(0.1)
        finally:
            await host.stop()


async def _records(db: Database, ids: Sequence[int]) -> dict[int, repo.MediaRecord]:
    async with db.read_only() as session:
        return await repo.get_media(session, ids)
