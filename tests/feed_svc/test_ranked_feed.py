"""GetHomeFeed with FEED_ORDER_RANKED through the real stack: the score's order on a small graph (likes
and the reader's affinity read from engagement events; saves from engagement_svc's counts, never
shown over HTTP), the diversity pass, and pages that stay exact while likes and posts arrive."""

from __future__ import annotations

import grpc
import pytest

from feed_svc.frozen_pages import FrozenCursor
from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2
from mesh.pagination import encode_cursor
from tests.feed_svc.actions import create_post, drain, drain_signals, feed_ids, follow, like

pytestmark = pytest.mark.usefixtures("fanout")

RANKED = feed_pb2.FEED_ORDER_RANKED


async def ranked_page(stubs, reader, size: int, token: str = "") -> feed_pb2.GetHomeFeedResponse:
    request = feed_pb2.GetHomeFeedRequest(page_size=size, page_token=token, order=RANKED)
    return await stubs.feed.GetHomeFeed(request, metadata=reader.metadata)


async def test_ranked_order_on_a_small_graph_then_stable_pages(stubs, make_account, upload_photo, bus, database_url):
    reader, x, y = await make_account(), await make_account(), await make_account()
    fans = [await make_account() for _ in range(2)]
    await follow(stubs, reader, x)
    await follow(stubs, reader, y)
    assert await feed_ids(stubs, reader) == []  # the reader's inbox is live from here on
    p1 = await create_post(stubs, upload_photo, x)
    p2 = await create_post(stubs, upload_photo, x)
    p3 = await create_post(stubs, upload_photo, x)
    q1 = await create_post(stubs, upload_photo, y)
    await drain(bus, database_url)
    # The reader liked x's p1 (affinity 1 with x); two fans liked y's q1.
    await like(stubs, reader, p1)
    for fan in fans:
        await like(stubs, fan, q1)
    await drain_signals(bus, database_url)
    assert await feed_ids(stubs, reader) == [q1, p3, p2, p1]  # chronological stays the default
    # ln(score), all four a few seconds old (recency alike): p1 ln(1 + ln 2 + 2 ln 2) = 1.13 (its like
    # and affinity), p3 and p2 ln(1 + 2 ln 2) = 0.87 (affinity), newer first; q1 ln(1 + ln 3) = 0.74.
    # Three of x's in a row: q1 moves up to third.
    first = await ranked_page(stubs, reader, 2)
    assert [i.id for i in first.items] == [p1, p3] and first.next_page_token
    assert first.items[0].engagement.like_count == 1 and first.items[0].engagement.viewer_has_liked
    # Meanwhile p2 gets many likes and y posts again: the page sequence keeps its frozen ranking.
    for fan in fans:
        await like(stubs, fan, p2)
    newer = await create_post(stubs, upload_photo, y)
    await drain(bus, database_url)
    await drain_signals(bus, database_url)
    second = await ranked_page(stubs, reader, 2, first.next_page_token)
    assert [i.id for i in second.items] == [q1, p2]
    assert second.items[1].engagement.like_count == 2  # engagement itself is read fresh
    if second.next_page_token:
        assert not (await ranked_page(stubs, reader, 2, second.next_page_token)).items
    # A new sequence ranks again: p2 (2 likes + affinity) now leads; the new post is in.
    again = await ranked_page(stubs, reader, 10)
    assert [i.id for i in again.items][:1] == [p2] and newer in {i.id for i in again.items}
    assert sorted(i.id for i in again.items) == sorted([p1, p2, p3, q1, newer])


async def test_saves_lift_a_post_in_the_ranked_feed_and_stay_private(
    stubs, make_account, upload_photo, bus, database_url, http
):
    reader, x, y = await make_account(), await make_account(), await make_account()
    savers = [await make_account() for _ in range(2)]
    await follow(stubs, reader, x)
    await follow(stubs, reader, y)
    assert await feed_ids(stubs, reader) == []  # the reader's inbox is live from here on
    older = await create_post(stubs, upload_photo, x)
    newer = await create_post(stubs, upload_photo, y)
    await drain(bus, database_url)
    # Nothing on either: the newer post leads.
    assert [i.id for i in (await ranked_page(stubs, reader, 5)).items] == [newer, older]
    # Two others save the older post (nobody likes or comments): ln(1 + ln 7) = 1.06 lifts it.
    for saver in savers:
        await stubs.engagement.SavePost(engagement_pb2.SavePostRequest(post_id=older), metadata=saver.metadata)
    ranked = await ranked_page(stubs, reader, 5)
    assert [i.id for i in ranked.items] == [older, newer]
    assert (ranked.items[0].engagement.like_count, ranked.items[0].engagement.comment_count) == (0, 0)
    assert await feed_ids(stubs, reader) == [newer, older]  # the chronological feed is unmoved
    # Whoever saved it, the count is nobody's to see over HTTP (the reader's own save state is).
    response = await http.get("/v1/feed", params={"order": "ranked"}, headers=reader.headers)
    assert response.status_code == 200, response.text
    engagement = {item["id"]: item["engagement"] for item in response.json()["items"]}[str(older)]
    assert engagement["viewer_has_saved"] is False and "save_count" not in engagement
    assert "save_count" not in response.text
    # Unsaved again: a new page sequence ranks by age once more.
    for saver in savers:
        await stubs.engagement.UnsavePost(engagement_pb2.UnsavePostRequest(post_id=older), metadata=saver.metadata)
    assert [i.id for i in (await ranked_page(stubs, reader, 5)).items] == [newer, older]


async def test_a_ranked_token_is_refused_by_the_other_order_and_another_reader(stubs, make_account):
    reader, other = await make_account(), await make_account()
    token = encode_cursor(FrozenCursor(snapshot=1, offset=1), f"feed:{reader.id}:ranked")
    for who, order in ((reader, feed_pb2.FEED_ORDER_CHRONOLOGICAL), (other, RANKED)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            request = feed_pb2.GetHomeFeedRequest(page_token=token, order=order)
            await stubs.feed.GetHomeFeed(request, metadata=who.metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_an_expired_ranking_is_failed_precondition_naming_the_token(stubs, make_account):
    reader = await make_account()
    token = encode_cursor(FrozenCursor(snapshot=123456789, offset=3), f"feed:{reader.id}:ranked")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ranked_page(stubs, reader, 5, token)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "page_token" in (caught.value.details() or "")


async def test_an_unknown_order_is_invalid_argument(stubs, make_account):
    reader = await make_account()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.feed.GetHomeFeed(feed_pb2.GetHomeFeedRequest(order=7), metadata=reader.metadata)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("order:")
