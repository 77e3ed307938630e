"""BatchGetFeedItems through the real stack: the one rendering of a post (post, author, photos) that
every gateway post route uses."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from glimpse.feed.v1 import feed_pb2
from glimpse.media.v1 import media_pb2
from glimpse.post.v1 import post_pb2
from tests.conftest import Account, Stubs
from tests.feed_svc.actions import create_post, delete_post


async def feed_items(stubs: Stubs, reader: Account, post_ids: list[int], fresh: bool = False) -> list[int]:
    response = await stubs.feed.BatchGetFeedItems(
        feed_pb2.BatchGetFeedItemsRequest(post_ids=post_ids, fresh=fresh), metadata=reader.metadata
    )
    return [item.id for item in response.items]


async def test_items_come_in_request_order_without_deleted_or_unknown_posts(stubs, make_account, upload_photo):
    author, reader = await make_account(), await make_account()
    a, b, c = [await create_post(stubs, upload_photo, author, caption=f"post {n}") for n in range(3)]
    await delete_post(stubs, author, c)
    assert await feed_items(stubs, reader, [b, 1, a, b, c]) == [b, a, b]
    assert await feed_items(stubs, reader, [c], fresh=True) == []
    assert await feed_items(stubs, reader, []) == []


async def test_an_item_carries_the_post_its_author_and_its_photos(stubs, make_account, upload_photo):
    author = await make_account()
    media_ids = [await upload_photo(author) for _ in range(2)]
    post = await stubs.post.CreatePost(
        post_pb2.CreatePostRequest(
            caption="Hello #Glimpse #glimpse",
            media_ids=media_ids,
            location=post_pb2.Location(name="Portland", latitude=45.5, longitude=-122.7),
        ),
        metadata=author.metadata,
    )
    response = await stubs.feed.BatchGetFeedItems(
        feed_pb2.BatchGetFeedItemsRequest(post_ids=[post.id], fresh=True), metadata=author.metadata
    )
    [item] = response.items
    assert item.id == post.id and item.caption == post.caption and list(item.hashtags) == ["glimpse"]
    assert (item.author.id, item.author.username) == (author.id, author.user.username)
    assert item.location == post.location
    assert item.create_time == post.create_time and item.update_time == post.update_time
    assert [m.id for m in item.media] == media_ids
    # Attached, so PROCESSING until a rendition worker (if one runs in this session) finishes them.
    final = (media_pb2.MEDIA_STATUS_READY, media_pb2.MEDIA_STATUS_FAILED)
    for media in item.media:
        assert media.status in (media_pb2.MEDIA_STATUS_PROCESSING, *final)
        assert bool(media.renditions) == (media.status == media_pb2.MEDIA_STATUS_READY)


async def test_more_than_100_ids_is_invalid_argument_naming_post_ids(stubs, make_account):
    reader = await make_account()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await feed_items(stubs, reader, list(range(1, 102)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad_request) for d in status.details)
    assert [v.field for v in bad_request.field_violations] == ["post_ids"]
    assert await feed_items(stubs, reader, list(range(1, 101))) == []
