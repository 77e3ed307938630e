"""The home feed through the real stack: post_svc -> outbox -> JetStream -> fanout_svc -> Redis -> feed_svc."""

from __future__ import annotations

import grpc
import pytest

from glimpse.feed.v1 import feed_pb2
from glimpse.media.v1.media_pb2 import MEDIA_STATUS_FAILED, MEDIA_STATUS_PROCESSING, MEDIA_STATUS_READY
from tests.conftest import CELEBRITY_THRESHOLD
from tests.feed_svc.actions import create_post, delete_post, drain, feed_ids, feed_page, follow, unfollow
from timelines.keys import TimelineKeys

pytestmark = pytest.mark.usefixtures("fanout")


@pytest.fixture
async def redis(namespace):
    from mesh.redis_client import connect_redis
    from tests.conftest import ENV

    client = connect_redis(ENV.redis_url)
    yield client
    await client.aclose()


async def test_followers_see_a_post_and_its_photos_with_the_author(
    stubs, make_account, upload_photo, bus, database_url
):
    author, reader = await make_account(), await make_account()
    await follow(stubs, reader, author)
    assert await feed_ids(stubs, reader) == []  # builds the reader's (empty) inbox: now live
    post_id = await create_post(stubs, upload_photo, author, caption="hello #glimpse", photos=2)
    await drain(bus, database_url)
    page = await feed_page(stubs, reader)
    assert [item.id for item in page.items] == [post_id]
    item = page.items[0]
    assert item.author.id == author.id and item.author.username == author.user.username
    assert item.caption == "hello #glimpse" and list(item.hashtags) == ["glimpse"]
    assert len(item.media) == 2
    assert all(m.status in (MEDIA_STATUS_PROCESSING, MEDIA_STATUS_READY, MEDIA_STATUS_FAILED) for m in item.media)
    assert not page.next_page_token


async def test_an_inactive_inbox_is_skipped_then_rebuilt_on_read(
    stubs, make_account, upload_photo, bus, database_url, namespace, redis
):
    author, reader = await make_account(), await make_account()
    await follow(stubs, reader, author)
    first = await create_post(stubs, upload_photo, author)
    await drain(bus, database_url)
    inbox = TimelineKeys(namespace).inbox(reader.id)
    assert not await redis.exists(inbox), "the fan-out must not create inboxes for readers who never read"
    assert await feed_ids(stubs, reader) == [first]
    assert await redis.ttl(inbox) > 0
    await redis.delete(inbox)  # an inbox lost mid-life is rebuilt the same
    second = await create_post(stubs, upload_photo, author)
    await drain(bus, database_url)
    assert await feed_ids(stubs, reader) == [second, first]


async def test_own_posts_are_in_the_feed(stubs, make_account, upload_photo, bus, database_url):
    me = await make_account()
    assert await feed_ids(stubs, me) == []
    mine = await create_post(stubs, upload_photo, me)
    await drain(bus, database_url)
    assert await feed_ids(stubs, me) == [mine]


async def test_a_celebrity_post_costs_no_inbox_writes_but_reaches_followers(
    stubs, make_account, upload_photo, bus, database_url, namespace, redis
):
    star = await make_account()
    fans = [await make_account() for _ in range(CELEBRITY_THRESHOLD + 1)]
    for fan in fans:
        await follow(stubs, fan, star)
    for fan in fans:
        assert await feed_ids(stubs, fan) == []
    # Follow events handled after the post would (rightly) backfill it into the inboxes.
    await drain(bus, database_url)
    post_id = await create_post(stubs, upload_photo, star)
    await drain(bus, database_url)
    for fan in fans:
        inbox = await redis.zrange(TimelineKeys(namespace).inbox(fan.id), 0, -1)
        assert inbox == [b"live"], "a celebrity's post is pulled at read time, never pushed"
        assert await feed_ids(stubs, fan) == [post_id]


async def test_deleted_posts_disappear_and_unfollow_removes_follow_backfills(
    stubs, make_account, upload_photo, bus, database_url
):
    author, reader = await make_account(), await make_account()
    await follow(stubs, reader, author)
    assert await feed_ids(stubs, reader) == []
    kept = await create_post(stubs, upload_photo, author)
    gone = await create_post(stubs, upload_photo, author)
    await drain(bus, database_url)
    assert await feed_ids(stubs, reader) == [gone, kept]
    await delete_post(stubs, author, gone)
    await drain(bus, database_url)
    assert await feed_ids(stubs, reader) == [kept]
    await unfollow(stubs, reader, author)
    await drain(bus, database_url)
    assert await feed_ids(stubs, reader) == []
    await follow(stubs, reader, author)
    await drain(bus, database_url)
    assert await feed_ids(stubs, reader) == [kept]


async def test_pages_stay_exact_while_new_posts_arrive(stubs, make_account, upload_photo, bus, database_url):
    author, reader = await make_account(), await make_account()
    await follow(stubs, reader, author)
    assert await feed_ids(stubs, reader) == []
    older = [await create_post(stubs, upload_photo, author) for _ in range(7)]
    await drain(bus, database_url)
    first = await feed_page(stubs, reader, size=3)
    newer = [await create_post(stubs, upload_photo, author) for _ in range(2)]
    await drain(bus, database_url)
    seen = [item.id for item in first.items]
    token = first.next_page_token
    while token:
        page = await feed_page(stubs, reader, size=3, token=token)
        seen += [item.id for item in page.items]
        token = page.next_page_token
    assert seen == sorted(older, reverse=True), "no duplicates, no gaps, nothing newer slipped in"
    assert (await feed_ids(stubs, reader))[:2] == sorted(newer, reverse=True)


async def test_bad_requests(stubs, make_account):
    reader = await make_account()
    for request, metadata, code in [
        (feed_pb2.GetHomeFeedRequest(page_token="garbage"), reader.metadata, grpc.StatusCode.INVALID_ARGUMENT),
        (feed_pb2.GetHomeFeedRequest(page_size=-1), reader.metadata, grpc.StatusCode.INVALID_ARGUMENT),
        (feed_pb2.GetHomeFeedRequest(), (), grpc.StatusCode.UNAUTHENTICATED),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.feed.GetHomeFeed(request, metadata=metadata)
        assert caught.value.code() == code
    other = await make_account()
    token = (
        await stubs.feed.GetHomeFeed(feed_pb2.GetHomeFeedRequest(page_size=1), metadata=other.metadata)
    ).next_page_token
    if token:  # another reader's token is refused
        with pytest.raises(grpc.aio.AioRpcError):
            await stubs.feed.GetHomeFeed(feed_pb2.GetHomeFeedRequest(page_token=token), metadata=reader.metadata)
