"""Profile pictures: an upload granted with purpose AVATAR, attached with AttachAvatar, rendered by the
worker into public square renditions (320 and 150 px, upright, centre-cropped, no metadata), deleted
on `graph.avatar_discarded`; and the purposes kept apart (a post takes no avatar, an avatar no photo)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import grpc
import pytest
from PIL import Image

from glimpse.events.v1 import events_pb2
from glimpse.media.v1 import media_pb2
from media_svc import images
from media_svc.object_keys import avatar_key
from mesh.bus import Bus
from mesh.events import AVATAR_READY
from mesh.ids import IdGenerator
from tests.media_svc import photos
from tests.media_svc.conftest import error_details, media_events, new_post_id, upload_avatar, wait_until_settled

pytestmark = pytest.mark.usefixtures("media_worker")

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "photos"
_ids = IdGenerator()


def webp(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP"
    return image


def test_render_avatar_crops_the_upright_centre_square():
    # 3000x2000 stored sideways (orientation 6): upright it is 2000x3000, red top-left ... yellow
    # bottom-right. The centre square of the upright picture keeps the four colours in their corners.
    rendering = images.render_avatar(photos.phone_jpeg(3000, 2000, orientation=6), max_pixels=50_000_000)
    assert (rendering.width, rendering.height) == (2000, 3000)
    assert [(r.size, r.width, r.height) for r in rendering.renditions] == [(320, 320, 320), (150, 150, 150)]
    square = webp(rendering.renditions[0].webp).convert("RGB")
    assert dict(square.getexif()) == {} and "exif" not in square.info
    corners = [square.getpixel(xy) for xy in ((20, 20), (300, 20), (20, 300), (300, 300))]
    # Upright: the stored image turned 90 degrees clockwise, so its blue (bottom-left) is top-left.
    expected = [photos.BLUE, photos.RED, photos.YELLOW, photos.GREEN]
    for found, colour in zip(corners, expected, strict=True):
        assert all(abs(a - b) < 40 for a, b in zip(found, colour, strict=True)), (corners, expected)


def test_render_avatar_never_upscales_a_small_picture():
    rendering = images.render_avatar(photos.encoded(photos.quadrants(200, 120), "PNG"), max_pixels=50_000_000)
    assert [(r.size, r.width, r.height) for r in rendering.renditions] == [(320, 120, 120), (150, 120, 120)]
    assert rendering.renditions[0].webp == rendering.renditions[1].webp


async def test_an_avatar_is_rendered_square_public_and_without_metadata(
    media, make_account, s3, bus: Bus, media_settings
):
    user = await make_account()
    original = (DATASET / "hubble_deep_field.jpg").read_bytes()  # 1000x872 with Photoshop's EXIF
    assert dict(Image.open(io.BytesIO(original)).getexif())
    grant = await upload_avatar(media, s3, user, original)

    attached = await media.AttachAvatar(media_pb2.AttachAvatarRequest(media_id=grant.media_id), metadata=user.metadata)
    assert attached.status == media_pb2.MEDIA_STATUS_PROCESSING
    assert (attached.purpose, attached.post_id) == (media_pb2.MEDIA_PURPOSE_AVATAR, 0)

    [ready] = await wait_until_settled(media, [grant.media_id])
    assert ready.status == media_pb2.MEDIA_STATUS_READY, ready.failure_reason
    assert (ready.width, ready.height) == (1000, 872)
    assert [(r.size, r.width, r.height) for r in ready.renditions] == [(320, 320, 320), (150, 150, 150)]

    [event] = await media_events(bus, AVATAR_READY, grant.media_id)
    assert event.owner_id == user.id
    assert [(i.size, i.width) for i in event.images] == [(320, 320), (150, 150)]
    for image, rendition in zip(event.images, ready.renditions, strict=True):
        assert str(grant.media_id) in image.url
        assert image.url == rendition.url  # public: no signature, the same for everyone
        response = await s3.get(image.url)  # anonymous
        assert response.status_code == 200, image.url
        picture = webp(response.content)
        assert picture.size == (image.width, image.width)
        assert dict(picture.getexif()) == {} and "exif" not in picture.info and "icc_profile" not in picture.info

    # Idempotent: attaching again returns it as it is and emits nothing more.
    again = await media.AttachAvatar(media_pb2.AttachAvatarRequest(media_id=grant.media_id), metadata=user.metadata)
    assert again.status == media_pb2.MEDIA_STATUS_READY
    assert len(await media_events(bus, AVATAR_READY, grant.media_id)) == 1


async def test_purposes_are_kept_apart_and_only_the_owner_attaches(media, make_account, s3, upload):
    user, other = await make_account(), await make_account()
    avatar = await upload_avatar(media, s3, user, photos.tiny_jpeg())
    photo = await upload(user, photos.tiny_jpeg())

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await media.AttachMedia(
            media_pb2.AttachMediaRequest(post_id=new_post_id(), media_ids=[avatar.media_id]), metadata=user.metadata
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(refused.value)[0] == "WRONG_PURPOSE"

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await media.AttachAvatar(media_pb2.AttachAvatarRequest(media_id=photo.media_id), metadata=user.metadata)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(refused.value)[0] == "WRONG_PURPOSE"

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await media.AttachAvatar(media_pb2.AttachAvatarRequest(media_id=avatar.media_id), metadata=other.metadata)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(refused.value)[0] == "NOT_MEDIA_OWNER"

    never_sent = await media.CreateUploadGrant(
        media_pb2.CreateUploadGrantRequest(content_type="image/jpeg", size_bytes=10, purpose=2),
        metadata=user.metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await media.AttachAvatar(media_pb2.AttachAvatarRequest(media_id=never_sent.media_id), metadata=user.metadata)
    assert error_details(refused.value)[0] == "NOT_UPLOADED"

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await media.CreateUploadGrant(
            media_pb2.CreateUploadGrantRequest(content_type="image/jpeg", size_bytes=10, purpose=7),
            metadata=user.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "purpose" in error_details(refused.value)[2]

    # Nothing changed: both still PENDING, attachable to what they were granted for.
    found = (
        await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=[avatar.media_id, photo.media_id]))
    ).media
    assert [m.status for m in found] == [media_pb2.MEDIA_STATUS_PENDING] * 2
    assert [m.purpose for m in found] == [media_pb2.MEDIA_PURPOSE_AVATAR, media_pb2.MEDIA_PURPOSE_PHOTO]


async def test_a_discarded_avatar_is_deleted_with_its_objects(
    media, make_account, s3, bus: Bus, media_settings, s3_admin
):
    user = await make_account()
    grant = await upload_avatar(media, s3, user, photos.phone_jpeg(800, 600))
    await media.AttachAvatar(media_pb2.AttachAvatarRequest(media_id=grant.media_id), metadata=user.metadata)
    [ready] = await wait_until_settled(media, [grant.media_id])
    assert (await s3.get(ready.renditions[1].url)).status_code == 200

    # Another user's id names nothing of theirs: left alone.
    await bus.publish_event(
        events_pb2.AvatarDiscarded(event_id=_ids.next_id(), user_id=user.id + 1, media_id=grant.media_id)
    )
    await bus.publish_event(
        events_pb2.AvatarDiscarded(event_id=_ids.next_id(), user_id=user.id, media_id=grant.media_id)
    )
    deadline = asyncio.get_running_loop().time() + 20
    while (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=[grant.media_id]))).media:
        assert asyncio.get_running_loop().time() < deadline, "the discarded avatar was not deleted"
        await asyncio.sleep(0.05)
    left = {
        o.object_name
        for o in s3_admin.list_objects(media_settings.bucket, prefix=f"avatars/{user.id}/", recursive=True)
    }
    assert left == set()
    assert (await s3.get(ready.renditions[1].url)).status_code in (403, 404)
    assert avatar_key(user.id, grant.media_id, 150) in ready.renditions[1].url
