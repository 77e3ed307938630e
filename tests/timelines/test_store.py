"""timelines.store: pagination across equal timestamps, live-only pushes, caps, rebuilds."""

from __future__ import annotations

import time
import uuid

import pytest

from mesh.ids import EPOCH_MS, timestamp_ms
from mesh.redis_client import connect_redis
from tests.conftest import ENV
from timelines.keys import TimelineKeys
from timelines.store import Timelines


def post_id(ms: int, seq: int, shard: int = 1) -> int:
    return ((ms - EPOCH_MS) << 23) | (shard << 10) | seq


@pytest.fixture
async def timelines():
    redis = connect_redis(ENV.redis_url)
    namespace = f"tl{uuid.uuid4().hex[:8]}"
    yield Timelines(redis, TimelineKeys(namespace), feed_max=50, outbox_max=20, inbox_ttl_seconds=60)
    async for key in redis.scan_iter(match=f"{namespace}:*"):
        await redis.delete(key)
    await redis.aclose()


async def read_all(timelines: Timelines, key: str, page_size: int) -> list[int]:
    seen, before = [], None
    while True:
        page = await timelines.page(key, before, page_size)
        assert page is not None
        seen += page
        if len(page) < page_size:
            return seen
        before = page[-1]


async def test_pages_are_exact_across_posts_of_the_same_millisecond(timelines):
    now = int(time.time() * 1000)
    # 40 posts in one millisecond (two shards), and some around it.
    ids = [post_id(now, seq, shard) for seq in range(20) for shard in (1, 2)]
    ids += [post_id(now - 1, 0), post_id(now + 1, 0), post_id(now - 5, 3)]
    minted = timestamp_ms(ids[0])
    assert minted == now
    await timelines.build_inbox(7, ids)
    expected = sorted(ids, reverse=True)
    for size in (1, 3, 7, 50):
        assert await read_all(timelines, timelines.inbox_key(7), size) == expected


async def test_push_reaches_only_live_inboxes_and_caps_them(timelines):
    now = int(time.time() * 1000)
    await timelines.build_inbox(1, [])
    await timelines.build_inbox(2, [post_id(now - 100, s) for s in range(50)])
    pushed = await timelines.push([post_id(now, 0)], [1, 2, 3])
    assert pushed == 2
    assert await timelines.page(timelines.inbox_key(3), None, 10) is None  # not created
    assert await timelines.page(timelines.inbox_key(1), None, 10) == [post_id(now, 0)]
    capped = await read_all(timelines, timelines.inbox_key(2), 100)
    assert len(capped) == 50 and capped[0] == post_id(now, 0)  # the oldest fell off
    # The same push again changes nothing.
    assert await timelines.push([post_id(now, 0)], [1, 2, 3]) == 2
    assert await read_all(timelines, timelines.inbox_key(2), 100) == capped


async def test_empty_rebuilt_inbox_stays_live_and_gets_a_ttl(timelines):
    await timelines.build_inbox(5, [])
    assert await timelines.page(timelines.inbox_key(5), None, 10) == []
    assert 0 < await timelines.redis.ttl(timelines.inbox_key(5)) <= 60


async def test_outbox_is_cold_until_built(timelines):
    now = int(time.time() * 1000)
    assert not await timelines.add_to_outbox(9, post_id(now, 0))
    assert await timelines.page(timelines.outbox_key(9), None, 5) is None
    await timelines.build_outbox(9, [post_id(now - s, 0) for s in range(30)])
    assert await timelines.add_to_outbox(9, post_id(now + 1, 0))
    newest = await read_all(timelines, timelines.outbox_key(9), 100)
    assert len(newest) == 20 and newest[0] == post_id(now + 1, 0)
    await timelines.remove_from_outbox(9, post_id(now + 1, 0))
    assert (await timelines.page(timelines.outbox_key(9), None, 1)) == [post_id(now, 0)]


async def test_pages_tell_live_from_cold_timelines_and_refresh_the_ttls_asked_for(timelines):
    now = int(time.time() * 1000)
    live, empty, cold = (timelines.inbox_key(u) for u in (11, 12, 13))
    ids = [post_id(now - s, 0) for s in range(8)]
    await timelines.build_inbox(11, ids)
    await timelines.build_inbox(12, [])
    await timelines.redis.expire(live, 5)
    # A first page (read from +inf, LIVE included) and a later page (EXISTS beside the range).
    assert await timelines.pages([live, empty, cold], None, 3, touch=[live, cold]) == [ids[:3], [], None]
    assert await timelines.pages([live, empty, cold], ids[2], 3) == [ids[3:6], [], None]
    assert await timelines.pages([live], None, 100) == [ids]
    assert 5 < await timelines.redis.ttl(live) <= 60, "touched: the inbox TTL again"
    assert not await timelines.redis.exists(cold), "touching a cold timeline does not create it"
