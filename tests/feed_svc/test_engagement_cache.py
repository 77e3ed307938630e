"""Engagement served through the cache (engagement_cache, feed_svc.engagement) through the real stack:
every read, warm or cold, agrees with engagement_svc's own answer at once after each change, and a
warm page is served from Redis."""

from __future__ import annotations

import asyncio
import random

from engagement_cache import EngagementCache
from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2
from mesh.redis_client import connect_redis
from tests.conftest import ENV, Account, Stubs
from tests.feed_svc.actions import cached, create_post


async def served(stubs: Stubs, reader: Account, post_ids: list[int]) -> dict[int, tuple[int, int, bool, bool]]:
    response = await stubs.feed.BatchGetFeedItems(
        feed_pb2.BatchGetFeedItemsRequest(post_ids=post_ids), metadata=reader.metadata
    )
    return {i.id: _shape(i.engagement) for i in response.items}


async def truth(stubs: Stubs, reader: Account, post_ids: list[int]) -> dict[int, tuple[int, int, bool, bool]]:
    response = await stubs.engagement.BatchGetEngagement(
        engagement_pb2.BatchGetEngagementRequest(post_ids=post_ids), metadata=reader.metadata
    )
    return {e.post_id: _shape(e) for e in response.engagement}


def _shape(e: engagement_pb2.PostEngagement) -> tuple[int, int, bool, bool]:
    return (e.like_count, e.comment_count, e.viewer_has_liked, e.viewer_has_saved)


async def agree(stubs: Stubs, readers: list[Account], post_ids: list[int]) -> None:
    """Each reader's served engagement equals the truth, read twice (the second from a warm cache)."""
    for reader in readers:
        expected = await truth(stubs, reader, post_ids)
        assert await served(stubs, reader, post_ids) == expected
        assert await served(stubs, reader, post_ids) == expected


async def test_every_change_shows_at_once_to_the_actor_and_to_others(stubs, make_account, upload_photo):
    author, ada, bob = await make_account(), await make_account(), await make_account()
    posts = [await create_post(stubs, upload_photo, author, caption=f"cached {n}") for n in range(3)]
    readers = [ada, bob, author]
    await agree(stubs, readers, posts)
    like = engagement_pb2.LikePostRequest(post_id=posts[0])
    await stubs.engagement.LikePost(like, metadata=ada.metadata)
    assert (await served(stubs, ada, posts))[posts[0]] == (1, 0, True, False)
    await agree(stubs, readers, posts)
    await stubs.engagement.LikePost(like, metadata=bob.metadata)
    assert (await served(stubs, ada, posts))[posts[0]] == (2, 0, True, False)
    await agree(stubs, readers, posts)
    await stubs.engagement.UnlikePost(engagement_pb2.UnlikePostRequest(post_id=posts[0]), metadata=ada.metadata)
    assert (await served(stubs, ada, posts))[posts[0]] == (1, 0, False, False)
    await stubs.engagement.SavePost(engagement_pb2.SavePostRequest(post_id=posts[1]), metadata=ada.metadata)
    assert (await served(stubs, ada, posts))[posts[1]] == (0, 0, False, True)
    comment = await stubs.engagement.CreateComment(
        engagement_pb2.CreateCommentRequest(post_id=posts[2], text="nice"), metadata=bob.metadata
    )
    assert (await served(stubs, ada, posts))[posts[2]] == (0, 1, False, False)
    await agree(stubs, readers, posts)
    await stubs.engagement.DeleteComment(
        engagement_pb2.DeleteCommentRequest(comment_id=comment.id), metadata=bob.metadata
    )
    assert (await served(stubs, ada, posts))[posts[2]] == (0, 0, False, False)
    await agree(stubs, readers, posts)


async def test_a_warm_page_is_read_from_the_cache(stubs, make_account, upload_photo, namespace):
    author, reader = await make_account(), await make_account()
    posts = [await create_post(stubs, upload_photo, author, caption=f"warm {n}") for n in range(2)]
    await stubs.engagement.LikePost(engagement_pb2.LikePostRequest(post_id=posts[0]), metadata=reader.metadata)
    await served(stubs, reader, posts)
    redis = connect_redis(ENV.redis_url)
    try:
        cache = EngagementCache(redis, namespace)
        # The reader's window loads in the background after their first page. Watched with plain
        # reads: a cache.read here would lease the window itself and hold the service's load off.
        for _ in range(200):
            if await cached(redis, cache, posts, reader.id):
                break
            await served(stubs, reader, posts)
            await asyncio.sleep(0.02)
        found = await cache.read(posts, reader.id)
        assert found.counts == {posts[0]: (1, 0, 0), posts[1]: (0, 0, 0)}
        assert found.viewer is not None and [found.viewer.of(p) for p in posts] == [1, 0]
    finally:
        await redis.aclose()


async def test_concurrent_likes_and_reads_end_exact(stubs, make_account, upload_photo):
    """Likes and unlikes by 12 users race with reads that fill the cache: once they stop, every
    reader's served counts equal a recount."""
    author = await make_account()
    users = [await make_account() for _ in range(12)]
    posts = [await create_post(stubs, upload_photo, author, caption=f"race {n}") for n in range(2)]
    rng = random.Random(11)
    stop = asyncio.Event()

    async def toggle(user: Account) -> None:
        for _ in range(6):
            post = rng.choice(posts)
            if rng.random() < 0.6:
                await stubs.engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post), metadata=user.metadata)
            else:
                await stubs.engagement.UnlikePost(
                    engagement_pb2.UnlikePostRequest(post_id=post), metadata=user.metadata
                )

    async def read_on() -> None:
        while not stop.is_set():
            await served(stubs, rng.choice(users), posts)

    readers = [asyncio.create_task(read_on()) for _ in range(4)]
    await asyncio.gather(*(toggle(u) for u in users))
    stop.set()
    await asyncio.gather(*readers)
    recounted = await stubs.engagement.ReconcileCounts(engagement_pb2.ReconcileCountsRequest(post_ids=posts))
    assert all(e.like_count >= 0 for e in recounted.engagement)
    await agree(stubs, users[:4], posts)
    served_counts = await served(stubs, author, posts)
    assert [served_counts[e.post_id][0] for e in recounted.engagement] == [e.like_count for e in recounted.engagement]
