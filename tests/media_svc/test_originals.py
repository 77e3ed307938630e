"""BatchGetOriginals: the owner's own uploads, exactly as sent, through short-lived signed URLs (what a
data export reads); never another user's, never an upload that was not attached."""

from __future__ import annotations

import datetime as dt

import grpc
import httpx
import pytest

from glimpse.media.v1 import media_pb2
from tests.media_svc import photos
from tests.media_svc.conftest import error_details, new_post_id


async def test_the_owner_gets_each_original_byte_for_byte(media, make_account, upload):
    owner = await make_account()
    sent = [photos.tiny_jpeg(), photos.tiny_jpeg()]
    grants = [await upload(owner, data) for data in sent]
    ids = [g.media_id for g in grants]
    pending = (await upload(owner, photos.tiny_jpeg())).media_id  # uploaded, on no post
    await media.AttachMedia(media_pb2.AttachMediaRequest(post_id=new_post_id(), media_ids=ids), metadata=owner.metadata)

    request = media_pb2.BatchGetOriginalsRequest(media_ids=[ids[1], 123456789, pending, ids[0]])
    found = (await media.BatchGetOriginals(request, metadata=owner.metadata)).originals
    assert [o.media_id for o in found] == [ids[1], ids[0]]  # request order; unknown and unattached left out
    now = dt.datetime.now(dt.UTC)
    async with httpx.AsyncClient(timeout=10) as client:
        for original, data in zip(found, reversed(sent), strict=True):
            assert original.content_type == "image/jpeg" and original.size_bytes == len(data)
            assert dt.timedelta(minutes=14) < original.expire_time.ToDatetime(dt.UTC) - now <= dt.timedelta(minutes=15)
            assert (await client.get(original.url)).content == data


async def test_another_users_media_is_refused(media, make_account, upload):
    owner, other = await make_account(), await make_account()
    media_id = (await upload(owner, photos.tiny_jpeg())).media_id
    await media.AttachMedia(
        media_pb2.AttachMediaRequest(post_id=new_post_id(), media_ids=[media_id]), metadata=owner.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await media.BatchGetOriginals(media_pb2.BatchGetOriginalsRequest(media_ids=[media_id]), metadata=other.metadata)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(caught.value)[0] == "NOT_MEDIA_OWNER"
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await media.BatchGetOriginals(media_pb2.BatchGetOriginalsRequest(media_ids=[media_id]))
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
