"""The rendition worker end to end: upload with a grant, attach, `posts.created` on the real bus,
renditions in the real store, READY/FAILED in the database and `media.*` events on the bus."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import uuid
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import pytest
from PIL import Image

from glimpse.media.v1 import media_pb2
from media_svc import models
from media_svc.consumers import rendition_consumer
from media_svc.renditions import Renditions
from media_svc.storage import ObjectStore
from mesh.bus import Bus, run_consumer
from mesh.db import Database
from mesh.events import MEDIA_FAILED, MEDIA_READY
from mesh.ids import IdGenerator
from mesh.outbox import Outbox
from tests.media_svc import photos
from tests.media_svc.conftest import (
    media_events,
    new_post_id,
    publish_post_created,
    wait_until_consumed,
    wait_until_settled,
)

pytestmark = pytest.mark.usefixtures("media_worker")


async def post_with(media, bus, account, grants) -> list[media_pb2.Media]:
    """Attaches the uploads to a new post, publishes the post's event and waits for the worker."""
    ids = [g.media_id for g in grants]
    post_id = new_post_id()
    await media.AttachMedia(media_pb2.AttachMediaRequest(post_id=post_id, media_ids=ids), metadata=account.metadata)
    await publish_post_created(bus, post_id, account.id, ids)
    return await wait_until_settled(media, ids)


def webp(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP"
    image.load()
    return image


async def test_phone_photo_becomes_upright_renditions_without_gps(media, bus, make_account, upload, s3):
    user = await make_account()
    raw = photos.phone_jpeg(3000, 2000, orientation=6)
    grant = await upload(user, raw)
    [ready] = await post_with(media, bus, user, [grant])

    assert ready.status == media_pb2.MEDIA_STATUS_READY, ready.failure_reason
    assert (ready.width, ready.height) == (2000, 3000)  # the upright original: portrait
    assert len(ready.blurhash) == 28
    assert [(r.size, r.width, r.height) for r in ready.renditions] == [
        (1080, 720, 1080),
        (640, 427, 640),
        (150, 100, 150),
    ]
    for rendition in ready.renditions:
        assert urlsplit(rendition.url).path.endswith(f"/u/{user.id}/r/{ready.id}/{rendition.size}.webp")
        response = await s3.get(rendition.url)  # with the URL's signature only, as a browser or CDN fetches it
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        # Kept by caches until the signed URL stops working (tests/media_svc/test_rendition_urls.py).
        assert response.headers["cache-control"] == "public, immutable"
        assert parsedate_to_datetime(response.headers["expires"]) == rendition.expire_time.ToDatetime(dt.UTC)
        image = webp(response.content)
        assert image.size == (rendition.width, rendition.height)
        assert image.width < image.height
        top_right = image.convert("RGB").getpixel((image.width * 7 // 8, image.height // 8))
        assert all(abs(a - b) < 40 for a, b in zip(top_right, photos.RED, strict=True)), top_right  # type: ignore[arg-type]
        assert not image.getexif() and b"Exif" not in response.content
        assert photos.CAMERA.encode() not in response.content
    # The raw upload is never exposed.
    assert "raw" not in str(ready)

    [event] = await media_events(bus, MEDIA_READY, ready.id)
    assert (event.owner_id, event.post_id) == (user.id, ready.post_id)


async def test_png_alpha_and_tiny_images_in_one_post(media, bus, make_account, upload, s3):
    user = await make_account()
    png = await upload(user, photos.transparent_png(), "image/png")
    tiny = await upload(user, photos.tiny_jpeg())
    alpha, small = await post_with(media, bus, user, [png, tiny])

    assert alpha.status == small.status == media_pb2.MEDIA_STATUS_READY
    image = webp((await s3.get(alpha.renditions[0].url)).content)
    assert image.mode == "RGBA"
    assert image.getpixel((image.width * 3 // 4, image.height // 2))[3] == 0  # type: ignore[index]
    assert image.getpixel((image.width // 4, image.height // 2))[3] == 255  # type: ignore[index]

    assert (small.width, small.height) == (100, 80)
    assert [(r.width, r.height) for r in small.renditions] == [(100, 80)] * 3
    for rendition in small.renditions:
        assert webp((await s3.get(rendition.url)).content).size == (100, 80)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (photos.NOT_AN_IMAGE, "not an image"),
        (photos.truncated_jpeg(), "truncated"),
        (photos.png_declaring(30000, 30000), "decompression bomb"),
    ],
    ids=["text-as-jpeg", "truncated-jpeg", "png-bomb"],
)
async def test_bad_upload_fails_with_a_reason_and_the_worker_carries_on(media, bus, make_account, upload, raw, reason):
    user = await make_account()
    bad = await upload(user, raw, "image/png" if raw.startswith(b"\x89PNG") else "image/jpeg")
    [failed] = await post_with(media, bus, user, [bad])
    assert failed.status == media_pb2.MEDIA_STATUS_FAILED
    assert reason in failed.failure_reason
    assert not failed.renditions and not failed.blurhash
    [event] = await media_events(bus, MEDIA_FAILED, failed.id)
    assert event.reason == failed.failure_reason

    # The next good photo is served as usual.
    [good] = await post_with(media, bus, user, [await upload(user, photos.tiny_jpeg())])
    assert good.status == media_pb2.MEDIA_STATUS_READY


async def test_redelivered_event_changes_nothing(media, bus, make_account, upload):
    user = await make_account()
    grant = await upload(user, photos.phone_jpeg(1200, 900))
    post_id = new_post_id()
    await media.AttachMedia(
        media_pb2.AttachMediaRequest(post_id=post_id, media_ids=[grant.media_id]), metadata=user.metadata
    )
    await publish_post_created(bus, post_id, user.id, [grant.media_id])
    [first] = await wait_until_settled(media, [grant.media_id])

    await publish_post_created(bus, post_id, user.id, [grant.media_id])
    await wait_until_consumed(bus)
    [after] = (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=[grant.media_id]))).media
    assert after == first
    assert len(await media_events(bus, MEDIA_READY, grant.media_id)) == 1


async def test_an_event_cannot_render_someone_elses_media(media, bus, make_account, upload):
    owner, intruder = await make_account(), await make_account()
    grant = await upload(owner, photos.tiny_jpeg())
    post_id = new_post_id()
    await media.AttachMedia(
        media_pb2.AttachMediaRequest(post_id=post_id, media_ids=[grant.media_id]), metadata=owner.metadata
    )
    # Wrong author, and wrong post: both are ignored.
    await publish_post_created(bus, post_id, intruder.id, [grant.media_id])
    await publish_post_created(bus, new_post_id(), owner.id, [grant.media_id])
    await wait_until_consumed(bus)
    [untouched] = (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=[grant.media_id]))).media
    assert untouched.status == media_pb2.MEDIA_STATUS_PROCESSING

    await publish_post_created(bus, post_id, owner.id, [grant.media_id])
    [ready] = await wait_until_settled(media, [grant.media_id])
    assert ready.status == media_pb2.MEDIA_STATUS_READY


async def test_unreachable_store_is_retried_then_the_media_fail(media, make_account, upload, media_settings):
    """A worker whose store is down retries with backoff, then dead-letters and marks the media FAILED."""
    user = await make_account()
    grant = await upload(user, photos.tiny_jpeg())
    post_id = new_post_id()
    await media.AttachMedia(
        media_pb2.AttachMediaRequest(post_id=post_id, media_ids=[grant.media_id]), metadata=user.metadata
    )
    # Its own namespace on the bus, so only this broken worker sees the event.
    broken_bus = await Bus.connect(media_settings.nats_url, f"b{uuid.uuid4().hex[:8]}", media_settings.stream_replicas)
    db = Database(media_settings.database_url, pool_size=2)
    dead_store = ObjectStore("http://127.0.0.1:9", "k", "s", "us-east-1", media_settings.bucket)
    renditions = Renditions(
        db, dead_store, Outbox(models.outbox, IdGenerator()), max_bytes=1 << 20, max_pixels=1 << 20, concurrency=1
    )
    await broken_bus.ensure_streams()
    consumer = asyncio.create_task(run_consumer(broken_bus, rendition_consumer(renditions, media_settings)))
    try:
        await publish_post_created(broken_bus, post_id, user.id, [grant.media_id])
        [failed] = await wait_until_settled(media, [grant.media_id])
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await broken_bus.delete_streams()
        await broken_bus.close()
        await db.dispose()
    assert failed.status == media_pb2.MEDIA_STATUS_FAILED
    assert f"after {media_settings.rendition_max_deliveries} attempts (Unavailable)" in failed.failure_reason
    assert "upload it again" in failed.failure_reason
