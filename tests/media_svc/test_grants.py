"""Upload grants through a real MediaService stub, and uploads with them to the real S3 endpoint."""

from __future__ import annotations

import base64
import datetime as dt
import json

import grpc
import pytest

from glimpse.media.v1 import media_pb2
from tests.media_svc import photos
from tests.media_svc.conftest import error_details


async def test_grant_uploads_straight_to_the_store(media, make_account, s3, s3_admin, media_settings):
    user = await make_account()
    raw = photos.tiny_jpeg()
    grant = await media.CreateUploadGrant(
        media_pb2.CreateUploadGrantRequest(content_type="image/jpeg", size_bytes=len(raw)), metadata=user.metadata
    )
    assert grant.object_key == f"u/{user.id}/raw/{grant.media_id}"
    assert grant.url == f"{media_settings.s3_endpoint}/{media_settings.bucket}"
    assert grant.form_fields["key"] == grant.object_key
    assert grant.form_fields["Content-Type"] == "image/jpeg"
    expires = grant.expire_time.ToDatetime(dt.UTC)
    ttl = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    lifetime = media_settings.upload_grant_ttl_seconds
    assert lifetime - 30 < ttl <= lifetime

    # The signed policy pins the key, the type and the exact size, until the grant expires.
    policy = json.loads(base64.b64decode(grant.form_fields["policy"]))
    assert ["eq", "$key", grant.object_key] in policy["conditions"]
    assert ["eq", "$Content-Type", "image/jpeg"] in policy["conditions"]
    assert ["content-length-range", len(raw), len(raw)] in policy["conditions"]
    assert dt.datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00")) == expires

    # Exactly what a phone does: a multipart POST of the form fields, then the file.
    response = await s3.post(grant.url, data=dict(grant.form_fields), files={"file": ("p.jpg", raw, "image/jpeg")})
    assert response.status_code == 204, response.text
    stored = s3_admin.stat_object(media_settings.bucket, grant.object_key)
    assert stored.size == len(raw) and stored.content_type == "image/jpeg"

    [pending] = (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=[grant.media_id]))).media
    assert pending.status == media_pb2.MEDIA_STATUS_PENDING
    assert (pending.owner_id, pending.size_bytes, pending.content_type) == (user.id, len(raw), "image/jpeg")
    assert pending.post_id == 0 and not pending.renditions and not pending.blurhash


async def test_each_accepted_type_gets_a_grant(media, make_account):
    user = await make_account()
    for content_type in (
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/heic",
        "image/heif",
        "image/avif",
        "Image/JPEG",
    ):
        grant = await media.CreateUploadGrant(
            media_pb2.CreateUploadGrantRequest(content_type=content_type, size_bytes=1), metadata=user.metadata
        )
        assert grant.form_fields["Content-Type"] == content_type.lower()


@pytest.mark.parametrize(
    ("content_type", "size", "field", "words"),
    [
        ("image/gif", 1000, "content_type", "image/jpeg, image/png, image/webp"),
        ("", 1000, "content_type", "must be one of"),
        ("text/plain", 1000, "content_type", "must be one of"),
        ("image/heic-sequence", 1000, "content_type", "image/heic, image/heif, image/avif"),
        ("image/jpeg", 0, "size_bytes", "at least 1"),
        ("image/jpeg", -5, "size_bytes", "at least 1"),
        ("image/jpeg", 20 * 1024 * 1024 + 1, "size_bytes", "at most 20 MiB"),
    ],
)
async def test_bad_grant_requests_name_the_field(media, make_account, content_type, size, field, words):
    user = await make_account()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await media.CreateUploadGrant(
            media_pb2.CreateUploadGrantRequest(content_type=content_type, size_bytes=size), metadata=user.metadata
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (caught.value.details() or "")
    _, _, fields = error_details(caught.value)
    assert list(fields) == [field]


async def test_a_grant_needs_a_signed_in_caller(media):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await media.CreateUploadGrant(media_pb2.CreateUploadGrantRequest(content_type="image/png", size_bytes=10))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_batch_get_keeps_request_order_and_leaves_out_unknown_ids(media, make_account):
    user = await make_account()
    ids = []
    for _ in range(3):
        grant = await media.CreateUploadGrant(
            media_pb2.CreateUploadGrantRequest(content_type="image/png", size_bytes=10), metadata=user.metadata
        )
        ids.append(grant.media_id)
    request = [ids[2], 999, ids[0], ids[1]]
    found = (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=request))).media
    assert [m.id for m in found] == [ids[2], ids[0], ids[1]]
    assert (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest())).media == []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=list(range(1, 102))))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
