"""AttachMedia: what post_svc calls before it commits a post. Every refusal is precise and changes nothing."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from glimpse.media.v1 import media_pb2
from tests.media_svc import photos
from tests.media_svc.conftest import error_details, new_post_id, publish_post_created, wait_until_settled


async def attach(media, account, post_id, media_ids):
    return await media.AttachMedia(
        media_pb2.AttachMediaRequest(post_id=post_id, media_ids=media_ids), metadata=account.metadata
    )


async def refused(call, code: grpc.StatusCode) -> tuple[str, str, dict[str, str], dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    reason, metadata, fields = error_details(caught.value)
    return caught.value.details() or "", reason, metadata, fields


async def statuses(media, ids):
    found = (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=ids))).media
    return [(m.status, m.post_id) for m in found]


async def test_attach_binds_uploaded_media_and_is_idempotent(media, make_account, upload):
    user = await make_account()
    grants = [await upload(user, photos.tiny_jpeg()) for _ in range(2)]
    ids = [g.media_id for g in grants]
    post_id = new_post_id()

    attached = (await attach(media, user, post_id, ids)).media
    assert [m.id for m in attached] == ids
    assert all(m.status == media_pb2.MEDIA_STATUS_PROCESSING and m.post_id == post_id for m in attached)

    again = (await attach(media, user, post_id, ids)).media  # post_svc retrying the same post
    assert [(m.id, m.status, m.post_id) for m in again] == [(m.id, m.status, m.post_id) for m in attached]


async def test_only_the_owner_can_attach(media, make_account, upload):
    owner, other = await make_account(), await make_account()
    grant = await upload(owner, photos.tiny_jpeg())
    _, reason, _, _ = await refused(
        attach(media, other, new_post_id(), [grant.media_id]), grpc.StatusCode.PERMISSION_DENIED
    )
    assert reason == "NOT_MEDIA_OWNER"
    assert await statuses(media, [grant.media_id]) == [(media_pb2.MEDIA_STATUS_PENDING, 0)]


async def test_media_must_be_uploaded_first(media, make_account):
    user = await make_account()
    grant = await media.CreateUploadGrant(
        media_pb2.CreateUploadGrantRequest(content_type="image/jpeg", size_bytes=1234), metadata=user.metadata
    )
    message, reason, metadata, _ = await refused(
        attach(media, user, new_post_id(), [grant.media_id]), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert reason == "NOT_UPLOADED" and metadata == {"media_id": str(grant.media_id)}
    assert message == f"media {grant.media_id} has not been uploaded yet"


async def test_stored_size_must_match_the_grant(media, make_account, s3):
    user = await make_account()
    raw = photos.tiny_jpeg()
    grant = await media.CreateUploadGrant(
        media_pb2.CreateUploadGrantRequest(content_type="image/jpeg", size_bytes=len(raw)), metadata=user.metadata
    )
    # A store that ignores the policy's size range (moto does) takes a bigger file: we still refuse it.
    bigger = raw + b"\0" * 100
    response = await s3.post(grant.url, data=dict(grant.form_fields), files={"file": ("p.jpg", bigger, "image/jpeg")})
    assert response.status_code == 204
    message, reason, _, _ = await refused(
        attach(media, user, new_post_id(), [grant.media_id]), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert reason == "SIZE_MISMATCH" and f"{len(bigger)} bytes" in message


async def test_media_cannot_move_to_another_post(media, make_account, upload):
    user = await make_account()
    grant = await upload(user, photos.tiny_jpeg())
    first_post = new_post_id()
    await attach(media, user, first_post, [grant.media_id])
    _, reason, metadata, _ = await refused(
        attach(media, user, new_post_id(), [grant.media_id]), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert reason == "ALREADY_ATTACHED" and metadata == {"media_id": str(grant.media_id)}
    assert await statuses(media, [grant.media_id]) == [(media_pb2.MEDIA_STATUS_PROCESSING, first_post)]


async def test_attach_is_all_or_nothing(media, make_account, upload):
    user = await make_account()
    good = await upload(user, photos.tiny_jpeg())
    missing = await media.CreateUploadGrant(
        media_pb2.CreateUploadGrantRequest(content_type="image/png", size_bytes=99), metadata=user.metadata
    )
    await refused(
        attach(media, user, new_post_id(), [good.media_id, missing.media_id]), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert await statuses(media, [good.media_id]) == [(media_pb2.MEDIA_STATUS_PENDING, 0)]


async def test_bad_attach_requests(media, make_account, upload):
    user = await make_account()
    grant = await upload(user, photos.tiny_jpeg())
    cases = [
        (new_post_id(), list(range(1, 12)), grpc.StatusCode.INVALID_ARGUMENT, "media_ids"),  # 11 media
        (new_post_id(), [], grpc.StatusCode.INVALID_ARGUMENT, "media_ids"),
        (new_post_id(), [grant.media_id, grant.media_id], grpc.StatusCode.INVALID_ARGUMENT, "media_ids"),
        (0, [grant.media_id], grpc.StatusCode.INVALID_ARGUMENT, "post_id"),
        (new_post_id(), [grant.media_id, 424242], grpc.StatusCode.NOT_FOUND, None),
    ]
    for post_id, ids, code, field in cases:
        _, _, _, fields = await refused(attach(media, user, post_id, ids), code)
        if field:
            assert list(fields) == [field]
    await refused(
        media.AttachMedia(media_pb2.AttachMediaRequest(post_id=new_post_id(), media_ids=[grant.media_id])),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert await statuses(media, [grant.media_id]) == [(media_pb2.MEDIA_STATUS_PENDING, 0)]


async def test_ten_media_attach_at_once(media, make_account, upload):
    user = await make_account()
    ids = [(await upload(user, photos.tiny_jpeg())).media_id for _ in range(10)]
    attached = (await attach(media, user, new_post_id(), ids)).media
    assert [m.id for m in attached] == ids


async def test_two_posts_racing_for_one_photo_get_it_once(media, make_account, upload):
    user = await make_account()
    grant = await upload(user, photos.tiny_jpeg())
    posts = [new_post_id() for _ in range(4)]
    outcomes = await asyncio.gather(*(attach(media, user, p, [grant.media_id]) for p in posts), return_exceptions=True)
    winners = [p for p, o in zip(posts, outcomes, strict=True) if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(winners) == 1 and len(losers) == 3
    assert all(error_details(e)[0] == "ALREADY_ATTACHED" for e in losers)
    assert await statuses(media, [grant.media_id]) == [(media_pb2.MEDIA_STATUS_PROCESSING, winners[0])]


async def test_attach_decodes_nothing_so_its_answer_carries_no_placeholder_yet(media, make_account, upload):
    """The worker stores each photo's blurhash once the post is published (tests/media_svc/
    test_placeholders.py); AttachMedia only checks and binds, whatever the bytes are."""
    user = await make_account()
    ids = [(await upload(user, data)).media_id for data in (photos.phone_jpeg(3000, 2000), photos.NOT_AN_IMAGE)]
    attached = (await attach(media, user, new_post_id(), ids)).media
    assert [(m.status, m.blurhash) for m in attached] == [(media_pb2.MEDIA_STATUS_PROCESSING, "")] * 2


# DetachMedia: post_svc's compensation when a post could not be stored after AttachMedia.


async def detach(media, account, post_id, media_ids):
    return await media.DetachMedia(
        media_pb2.DetachMediaRequest(post_id=post_id, media_ids=media_ids), metadata=account.metadata
    )


async def test_detached_media_can_go_on_another_post(media, make_account, upload, placeholders):
    user = await make_account()
    ids = [(await upload(user, photos.tiny_jpeg())).media_id for _ in range(2)]
    failed_post = new_post_id()
    await attach(media, user, failed_post, ids)
    await placeholders.make(failed_post, user.id, ids)  # as if its posts.created had been handled
    attached = (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=ids))).media

    assert list((await detach(media, user, failed_post, ids)).detached_media_ids) == ids
    found = (await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=ids))).media
    assert [(m.status, m.post_id) for m in found] == [(media_pb2.MEDIA_STATUS_PENDING, 0)] * 2
    # The same bytes, the same placeholder.
    assert [len(m.blurhash) for m in found] == [28, 28] and [m.blurhash for m in found] == [
        m.blurhash for m in attached
    ]

    # A retry of the compensation changes nothing; the retried post gets the photos.
    assert list((await detach(media, user, failed_post, ids)).detached_media_ids) == []
    retried = new_post_id()
    assert [m.post_id for m in (await attach(media, user, retried, ids)).media] == [retried, retried]


async def test_detach_leaves_media_of_other_posts_and_unknown_ids_alone(media, make_account, upload):
    user = await make_account()
    mine, elsewhere, unattached = [(await upload(user, photos.tiny_jpeg())).media_id for _ in range(3)]
    post, other_post = new_post_id(), new_post_id()
    await attach(media, user, post, [mine])
    await attach(media, user, other_post, [elsewhere])

    reply = await detach(media, user, post, [mine, elsewhere, unattached, 424242])
    assert list(reply.detached_media_ids) == [mine]
    assert await statuses(media, [mine, elsewhere, unattached]) == [
        (media_pb2.MEDIA_STATUS_PENDING, 0),
        (media_pb2.MEDIA_STATUS_PROCESSING, other_post),
        (media_pb2.MEDIA_STATUS_PENDING, 0),
    ]


async def test_rendered_media_stay_on_their_published_post(media, make_account, upload, bus, media_worker):
    """READY (or FAILED) means the worker saw the post's posts.created: the post exists."""
    user = await make_account()
    grant = await upload(user, photos.tiny_jpeg())
    post = new_post_id()
    await attach(media, user, post, [grant.media_id])
    await publish_post_created(bus, post, user.id, [grant.media_id])
    await wait_until_settled(media, [grant.media_id])

    assert list((await detach(media, user, post, [grant.media_id])).detached_media_ids) == []
    assert await statuses(media, [grant.media_id]) == [(media_pb2.MEDIA_STATUS_READY, post)]


async def test_only_the_owner_can_detach(media, make_account, upload):
    owner, other = await make_account(), await make_account()
    grant = await upload(owner, photos.tiny_jpeg())
    post = new_post_id()
    await attach(media, owner, post, [grant.media_id])
    _, reason, _, _ = await refused(detach(media, other, post, [grant.media_id]), grpc.StatusCode.PERMISSION_DENIED)
    assert reason == "NOT_MEDIA_OWNER"
    await refused(
        media.DetachMedia(media_pb2.DetachMediaRequest(post_id=post, media_ids=[grant.media_id])),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert await statuses(media, [grant.media_id]) == [(media_pb2.MEDIA_STATUS_PROCESSING, post)]


async def test_bad_detach_requests_name_the_field(media, make_account):
    user = await make_account()
    cases = [
        (new_post_id(), [], "media_ids"),
        (new_post_id(), list(range(1, 12)), "media_ids"),
        (new_post_id(), [5, 5], "media_ids"),
        (new_post_id(), [-1], "media_ids"),
        (0, [5], "post_id"),
    ]
    for post_id, ids, field in cases:
        _, _, _, fields = await refused(detach(media, user, post_id, ids), grpc.StatusCode.INVALID_ARGUMENT)
        assert list(fields) == [field]
