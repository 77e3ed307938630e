"""feed_svc.engagement.EngagementReader against the real engagement_svc: the same answer with the
cache warm, cold, unreachable, or covering only part of a reader's posts."""

from __future__ import annotations

import uuid

from engagement_cache import EngagementCache
from feed_svc.engagement import EngagementReader
from glimpse.engagement.v1 import engagement_pb2
from mesh.redis_client import connect_redis
from tests.conftest import ENV
from tests.feed_svc.actions import create_post


def shape(found: dict[int, engagement_pb2.PostEngagement]) -> dict[int, tuple[int, int, int, bool, bool]]:
    return {
        p: (e.like_count, e.comment_count, e.save_count, e.viewer_has_liked, e.viewer_has_saved)
        for p, e in found.items()
    }


async def posts_with_engagement(stubs, make_account, upload_photo):
    author, reader, other = await make_account(), await make_account(), await make_account()
    posts = [await create_post(stubs, upload_photo, author, caption=f"reader {n}") for n in range(3)]
    for user in (reader, other):
        await stubs.engagement.LikePost(engagement_pb2.LikePostRequest(post_id=posts[0]), metadata=user.metadata)
    await stubs.engagement.SavePost(engagement_pb2.SavePostRequest(post_id=posts[1]), metadata=reader.metadata)
    expected = {
        posts[0]: (2, 0, 0, True, False),
        posts[1]: (0, 0, 1, False, True),
        posts[2]: (0, 0, 0, False, False),
    }
    return reader, posts, expected


async def test_unreachable_redis_asks_engagement_svc(stubs, make_account, upload_photo):
    reader, posts, expected = await posts_with_engagement(stubs, make_account, upload_photo)
    redis = connect_redis("redis://127.0.0.1:1/0")
    try:
        engagement = EngagementReader(stubs.engagement, timeout=5, cache=EngagementCache(redis, "unreachable"))
        assert shape(await engagement.of(posts, reader.id)) == expected
        await engagement.wait_for_loads()
    finally:
        await redis.aclose()


async def test_posts_older_than_the_window_ask_for_the_readers_state(stubs, make_account, upload_photo):
    """A window reaching back 1 ms covers none of these posts: counts come from the cache, the
    reader's own state from engagement_svc, on every read."""
    reader, posts, expected = await posts_with_engagement(stubs, make_account, upload_photo)
    redis = connect_redis(ENV.redis_url)
    namespace = f"er{uuid.uuid4().hex[:8]}"
    try:
        cache = EngagementCache(redis, namespace)
        engagement = EngagementReader(stubs.engagement, timeout=5, cache=cache, viewer_window_seconds=0.001)
        for _ in range(3):
            assert shape(await engagement.of(posts, reader.id)) == expected
            await engagement.wait_for_loads()
        warm = await cache.read(posts, reader.id)
        assert len(warm.counts) == 3
        assert warm.viewer is not None and not any(warm.viewer.covers(p) for p in posts)
        # Counts only (no reader): all from the cache.
        assert {p: e.like_count for p, e in (await engagement.of(posts, None)).items()} == {
            p: e[0] for p, e in expected.items()
        }
    finally:
        async for key in redis.scan_iter(match=f"{namespace}:*"):
            await redis.delete(key)
        await redis.aclose()


async def test_counts_for_ranking_agree_cold_and_warm(stubs, make_account, upload_photo):
    _, posts, expected = await posts_with_engagement(stubs, make_account, upload_photo)
    redis = connect_redis(ENV.redis_url)
    namespace = f"er{uuid.uuid4().hex[:8]}"
    try:
        cache = EngagementCache(redis, namespace)
        engagement = EngagementReader(stubs.engagement, timeout=5, cache=cache)
        want = {p: (e[0], e[1], e[2]) for p, e in expected.items()}
        assert await engagement.counts(posts + posts[:1]) == want  # cold: asked, then cached
        assert (await cache.read(posts, None)).counts == want
        assert await engagement.counts(posts) == want  # warm
        assert await engagement.counts([]) == {}
    finally:
        async for key in redis.scan_iter(match=f"{namespace}:*"):
            await redis.delete(key)
        await redis.aclose()
