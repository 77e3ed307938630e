"""Profile pictures end to end through graph_svc and media_svc: a real photo set as the avatar is shown
once its squares are ready (the previous picture, or none, until then), at public URLs naming the
media id, so replacing it changes the URLs; the replaced and the removed pictures' objects are
deleted; media_svc's refusals reach the caller with nothing pending."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from PIL import Image

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from tests.conftest import Account
from tests.graph_svc.conftest import refused, user_of
from tests.media_svc import photos
from tests.media_svc.conftest import upload_avatar

pytestmark = pytest.mark.usefixtures("media_worker")

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "photos"


@pytest.fixture
async def media(media_addr: str) -> AsyncIterator[media_pb2_grpc.MediaServiceStub]:
    async with grpc.aio.insecure_channel(media_addr) as channel:
        yield media_pb2_grpc.MediaServiceStub(channel)


@pytest.fixture
async def s3() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def shown(
    graph: graph_pb2_grpc.GraphServiceStub, account: Account, changed_from: str | None, within: float = 20.0
) -> graph_pb2.User:
    """The account once its avatar_url is no longer `changed_from`."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        user = await user_of(graph, account)
        current = user.avatar_url if user.HasField("avatar_url") else None
        if current != changed_from:
            return user
        assert asyncio.get_running_loop().time() < deadline, f"avatar still {changed_from!r} after {within}s"
        await asyncio.sleep(0.05)


async def square(s3: httpx.AsyncClient, url: str) -> Image.Image:
    response = await s3.get(url)  # anonymous: avatars are public
    assert response.status_code == 200, url
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "WEBP" and image.width == image.height
    assert dict(image.getexif()) == {} and "exif" not in image.info
    return image


async def test_a_real_photo_becomes_the_avatar_and_is_replaced_then_removed(graph, make_account, media, s3):
    user = await make_account()
    first = await upload_avatar(media, s3, user, (DATASET / "hubble_deep_field.jpg").read_bytes())
    answer = await graph.SetAvatar(graph_pb2.SetAvatarRequest(media_id=first.media_id), metadata=user.metadata)
    assert not answer.applied and not answer.user.HasField("avatar_url")  # none until the squares are ready

    one = await shown(graph, user, None)
    assert str(first.media_id) in one.avatar_url and str(first.media_id) in one.avatar_large_url
    assert (await square(s3, one.avatar_url)).size == (150, 150)
    assert (await square(s3, one.avatar_large_url)).size == (320, 320)
    # Everyone sees it, in every rendering of the user (BatchGetUsers feeds the summaries).
    batch = await graph.BatchGetUsers(graph_pb2.BatchGetUsersRequest(user_ids=[user.id]))
    assert batch.users[0].avatar_url == one.avatar_url

    # Repeating the call changes nothing and says it is shown.
    again = await graph.SetAvatar(graph_pb2.SetAvatarRequest(media_id=first.media_id), metadata=user.metadata)
    assert again.applied and again.user.avatar_url == one.avatar_url

    second = await upload_avatar(media, s3, user, photos.phone_jpeg(1200, 800))
    await graph.SetAvatar(graph_pb2.SetAvatarRequest(media_id=second.media_id), metadata=user.metadata)
    two = await shown(graph, user, one.avatar_url)
    assert two.avatar_url != one.avatar_url and str(second.media_id) in two.avatar_url
    await square(s3, two.avatar_url)
    await _gone(s3, one.avatar_url)  # the replaced picture's objects are deleted

    removed = await graph.DeleteAvatar(graph_pb2.DeleteAvatarRequest(), metadata=user.metadata)
    assert removed.deleted and not removed.user.HasField("avatar_url") and not removed.user.HasField("avatar_large_url")
    await _gone(s3, two.avatar_url)
    assert not (await graph.DeleteAvatar(graph_pb2.DeleteAvatarRequest(), metadata=user.metadata)).deleted


async def _gone(s3: httpx.AsyncClient, url: str, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (await s3.get(url)).status_code == 200:
        assert asyncio.get_running_loop().time() < deadline, f"{url} still served after {within}s"
        await asyncio.sleep(0.1)


async def test_an_unusable_upload_leaves_the_picture_as_it_was(graph, make_account, media, s3):
    user = await make_account()
    good = await upload_avatar(media, s3, user, photos.phone_jpeg(600, 600))
    await graph.SetAvatar(graph_pb2.SetAvatarRequest(media_id=good.media_id), metadata=user.metadata)
    before = await shown(graph, user, None)

    broken = await upload_avatar(media, s3, user, b"GIF89a" + b"\x00" * 64)  # declared JPEG, is not
    await graph.SetAvatar(graph_pb2.SetAvatarRequest(media_id=broken.media_id), metadata=user.metadata)
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        found = (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=[broken.media_id]))).media
        if not found:
            break  # FAILED, then discarded by graph_svc
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.05)
    after = await user_of(graph, user)
    assert after.avatar_url == before.avatar_url


async def test_media_refusals_reach_the_caller_and_nothing_is_pending(graph, make_account, media, s3):
    user, other = await make_account(), await make_account()
    photo = await media.CreateUploadGrant(
        media_pb2.CreateUploadGrantRequest(content_type="image/jpeg", size_bytes=10), metadata=user.metadata
    )
    others = await upload_avatar(media, s3, other, photos.tiny_jpeg())
    cases = [
        (photo.media_id, grpc.StatusCode.FAILED_PRECONDITION, "WRONG_PURPOSE"),
        (others.media_id, grpc.StatusCode.PERMISSION_DENIED, "NOT_MEDIA_OWNER"),
        (987654321, grpc.StatusCode.NOT_FOUND, "MEDIA_NOT_FOUND"),
    ]
    for media_id, code, reason in cases:
        failure = await refused(graph.SetAvatar(graph_pb2.SetAvatarRequest(media_id=media_id), metadata=user.metadata))
        assert failure[:2] == (code, reason), (media_id, failure)
    code, _, fields = await refused(graph.SetAvatar(graph_pb2.SetAvatarRequest(media_id=0), metadata=user.metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "media_id" in fields
    # Nothing pending: the account deletes nothing.
    assert not (await graph.DeleteAvatar(graph_pb2.DeleteAvatarRequest(), metadata=user.metadata)).deleted
