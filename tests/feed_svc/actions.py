"""What users do, through the real services, and a way to wait until the fan-out has caught up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from engagement_cache import EngagementCache
from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2
from glimpse.graph.v1 import graph_pb2
from glimpse.post.v1 import post_pb2
from mesh.bus import Bus
from tests.conftest import Account, Stubs

FANOUT_CONSUMERS = {
    "fanout_posts_created": "POSTS",
    "fanout_posts_deleted": "POSTS",
    "fanout_graph": "GRAPH",
}


async def create_post(
    stubs: Stubs, upload: Callable[..., Awaitable[int]], author: Account, caption: str = "", photos: int = 1
) -> int:
    media_ids = [await upload(author) for _ in range(photos)]
    post = await stubs.post.CreatePost(
        post_pb2.CreatePostRequest(caption=caption, media_ids=media_ids), metadata=author.metadata
    )
    return post.id


async def follow(stubs: Stubs, follower: Account, followee: Account) -> None:
    await stubs.graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=followee.id), metadata=follower.metadata)


async def unfollow(stubs: Stubs, follower: Account, followee: Account) -> None:
    await stubs.graph.UnfollowUser(
        graph_pb2.UnfollowUserRequest(target_user_id=followee.id), metadata=follower.metadata
    )


async def delete_post(stubs: Stubs, author: Account, post_id: int) -> None:
    await stubs.post.DeletePost(post_pb2.DeletePostRequest(post_id=post_id), metadata=author.metadata)


async def feed_page(stubs: Stubs, reader: Account, size: int = 20, token: str = "") -> feed_pb2.GetHomeFeedResponse:
    return await stubs.feed.GetHomeFeed(
        feed_pb2.GetHomeFeedRequest(page_size=size, page_token=token), metadata=reader.metadata
    )


async def feed_ids(stubs: Stubs, reader: Account, size: int = 7) -> list[int]:
    """Every post id of the reader's feed, paging through it."""
    ids: list[int] = []
    token = ""
    while True:
        page = await feed_page(stubs, reader, size, token)
        ids += [item.id for item in page.items]
        token = page.next_page_token
        if not token:
            return ids


async def drain(bus: Bus, database_url: str, within: float = 30.0) -> None:
    """Waits until every outbox row is published and the fan-out has acked every event (twice in a row)."""
    engine = create_async_engine(database_url)
    deadline = asyncio.get_running_loop().time() + within
    quiet = 0
    try:
        while quiet < 2:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the fan-out did not drain within {within}s")
            busy = 0
            async with engine.connect() as conn:
                for schema in ("graph", "posts"):
                    busy += (
                        await conn.execute(text(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"))
                    ).scalar_one()
            for durable, stream in FANOUT_CONSUMERS.items():
                info = await bus.js.consumer_info(bus.stream(stream), f"{bus.namespace}_{durable}")
                busy += info.num_pending + info.num_ack_pending
            quiet = quiet + 1 if busy == 0 else 0
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


# feed_svc's own consumers (explore and affinity, feed_svc.consumers) and the outboxes feeding them.
SIGNAL_CONSUMERS = {"feed_engagement": "ENGAGEMENT", "feed_posts_deleted": "POSTS"}


async def like(stubs: Stubs, user: Account, post_id: int) -> None:
    await stubs.engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=user.metadata)


async def drain_signals(bus: Bus, database_url: str, within: float = 30.0) -> None:
    """Waits until every engagement and post event is published and feed_svc's consumers have acked
    them all (twice in a row)."""
    engine = create_async_engine(database_url)
    deadline = asyncio.get_running_loop().time() + within
    quiet = 0
    try:
        while quiet < 2:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"feed_svc's consumers did not drain within {within}s")
            busy = 0
            async with engine.connect() as conn:
                for schema in ("graph", "posts", "engagement"):
                    busy += (
                        await conn.execute(text(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"))
                    ).scalar_one()
            for durable, stream in SIGNAL_CONSUMERS.items():
                info = await bus.js.consumer_info(bus.stream(stream), f"{bus.namespace}_{durable}")
                busy += info.num_pending + info.num_ack_pending
            quiet = quiet + 1 if busy == 0 else 0
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


async def cached(redis, cache: EngagementCache, post_ids: list[int], viewer: int) -> bool:
    """Whether the cache holds every post's counts and `viewer`'s window, read without leasing."""
    if await redis.hget(cache.viewer_key(viewer), "since") is None:
        return False
    values = [await redis.hget(cache.counts_key(p), str(p)) for p in post_ids]
    return all(v is not None and not v.startswith(b"~") for v in values)
