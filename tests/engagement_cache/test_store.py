"""engagement_cache.store: leases, fills, drops and max ages on the real Redis (a cluster in the
cluster suite). The property that keeps counts exact: a value read before a change is never stored
after the change's drop."""

from __future__ import annotations

import time
import uuid

import pytest

from engagement_cache import EngagementCache
from engagement_cache.store import LIKED, SAVED
from mesh.ids import EPOCH_MS
from mesh.redis_client import connect_redis
from tests.conftest import ENV

DAY_MS = 86_400_000


def post_id(ms: int, seq: int = 0) -> int:
    return ((ms - EPOCH_MS) << 23) | (1 << 10) | seq


NOW_MS = int(time.time() * 1000)
# Posts of today and of two days ago: two counts buckets.
TODAY = [post_id(NOW_MS, s) for s in range(3)]
OLDER = [post_id(NOW_MS - 2 * DAY_MS, s) for s in range(2)]


@pytest.fixture
async def redis():
    client = connect_redis(ENV.redis_url)
    namespace = f"ec{uuid.uuid4().hex[:8]}"
    client.test_namespace = namespace
    yield client
    async for key in client.scan_iter(match=f"{namespace}:*"):
        await client.delete(key)
    await client.aclose()


def cache_on(redis, **kwargs) -> EngagementCache:
    return EngagementCache(redis, redis.test_namespace, **kwargs)


async def test_a_miss_is_leased_and_a_fill_is_read_back(redis) -> None:
    cache = cache_on(redis)
    posts = TODAY + OLDER
    first = await cache.read(posts, None)
    assert first.counts == {}
    assert sorted(p for ids in first.leased.values() for p in ids) == sorted(posts)
    assert len(first.leased) == 2  # one bucket per UTC day
    await cache.fill_counts(first, {p: (i, 2 * i, 3 * i) for i, p in enumerate(posts)})
    second = await cache.read(posts, None)
    assert second.counts == {p: (i, 2 * i, 3 * i) for i, p in enumerate(posts)}
    assert second.leased == {}


async def test_a_drop_after_the_lease_keeps_the_old_value_out(redis) -> None:
    """The race that would make a count stale: a reader leases, reads 5 from engagement_svc, a like
    commits and is dropped, then the reader fills 5. The fill must not land."""
    cache = cache_on(redis)
    post = TODAY[0]
    read = await cache.read([post], None)
    await cache.drop(post_ids=[post])  # the like's commit, after the reader's lease
    await cache.fill_counts(read, {post: (5, 0, 0)})
    again = await cache.read([post], None)
    assert again.counts == {}, "a value read before the drop was stored after it"
    await cache.fill_counts(again, {post: (6, 0, 0)})
    assert (await cache.read([post], None)).counts == {post: (6, 0, 0)}


async def test_only_the_newest_lease_fills(redis) -> None:
    cache = cache_on(redis)
    post = TODAY[1]
    older = await cache.read([post], None)
    newer = await cache.read([post], None)
    await cache.fill_counts(older, {post: (1, 0, 0)})
    assert (await cache.read([post], None)).counts == {}
    third = await cache.read([post], None)
    await cache.fill_counts(newer, {post: (2, 0, 0)})  # replaced by the third's lease
    await cache.fill_counts(third, {post: (3, 0, 0)})
    assert (await cache.read([post], None)).counts == {post: (3, 0, 0)}


async def test_a_value_older_than_the_max_age_is_read_anew(redis) -> None:
    cache = cache_on(redis, counts_max_age_seconds=1)
    post = TODAY[2]
    read = await cache.read([post], None)
    await cache.fill_counts(read, {post: (4, 0, 0)})
    assert (await cache.read([post], None)).counts == {post: (4, 0, 0)}
    # "filled_s" is whole seconds: more than max age + 1 s later it has aged out for sure.
    key = cache.counts_key(post)
    value = await redis.hget(key, str(post))
    await redis.hset(key, str(post), value.rsplit(b",", 1)[0] + b"," + str(int(time.time()) - 3).encode())
    stale = await cache.read([post], None)
    assert stale.counts == {} and stale.leased


async def test_dropping_unknown_posts_and_viewers_is_harmless(redis) -> None:
    cache = cache_on(redis)
    await cache.drop(post_ids=OLDER, viewer_ids=[123456789])
    await cache.drop()
    assert (await cache.read(OLDER, None)).counts == {}


async def test_a_viewer_window_is_leased_once_filled_and_dropped(redis) -> None:
    cache = cache_on(redis)
    viewer = 42
    posts = TODAY + OLDER
    first = await cache.read(posts, viewer)
    assert first.viewer is None and first.load_viewer
    # A second page read while the first one's load runs does not start another load.
    second = await cache.read(posts, viewer)
    assert second.viewer is None and not second.load_viewer
    since = TODAY[0]
    assert await cache.fill_viewer(viewer, first, since, liked=[TODAY[0], TODAY[2]], saved=[TODAY[2]])
    third = await cache.read(posts, viewer)
    assert third.viewer is not None
    assert [third.viewer.covers(p) for p in posts] == [True, True, True, False, False]
    assert [third.viewer.of(p) for p in TODAY] == [LIKED, 0, LIKED | SAVED]
    # The viewer likes something: the window goes, and a load that leased before is refused.
    fourth = await cache.read(posts, viewer + 1)
    assert fourth.load_viewer
    await cache.drop(viewer_ids=[viewer])
    fifth = await cache.read(posts, viewer)
    assert fifth.viewer is None and fifth.load_viewer
    await cache.drop(viewer_ids=[viewer])
    assert not await cache.fill_viewer(viewer, fifth, since, liked=[], saved=[])
    assert (await cache.read(posts, viewer)).viewer is None


async def test_a_viewer_window_with_nothing_liked_covers_its_posts(redis) -> None:
    cache = cache_on(redis)
    read = await cache.read(TODAY, 7)
    assert await cache.fill_viewer(7, read, OLDER[0], liked=[], saved=[])
    window = (await cache.read(TODAY + OLDER, 7)).viewer
    assert window is not None and window.flags == {}
    assert all(window.covers(p) for p in TODAY + OLDER)
    assert (await cache.read([], 7)).viewer is not None


async def test_a_released_viewer_lease_lets_the_next_read_load(redis) -> None:
    cache = cache_on(redis)
    failed = await cache.read(TODAY, 9)
    assert failed.load_viewer
    assert not (await cache.read(TODAY, 9)).load_viewer  # someone else's young lease
    await cache.release_viewer(9, failed)
    retry = await cache.read(TODAY, 9)
    assert retry.load_viewer
    await cache.release_viewer(9, failed)  # no longer its lease: nothing changes
    assert not (await cache.read(TODAY, 9)).load_viewer
    assert await cache.fill_viewer(9, retry, TODAY[0], liked=[], saved=[])
