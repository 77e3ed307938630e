"""Every post view carries engagement as its viewer sees it (feed, single post, grid, saved), read in
one batch per page; and posts are still served, without counts, when engagement_svc is down."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
import pytest

from engagement_cache import EngagementCache
from feed_svc.app import feed_host
from feed_svc.settings import FeedSettings
from glimpse.feed.v1 import feed_pb2, feed_pb2_grpc
from mesh.redis_client import connect_redis
from tests.conftest import ENV, Account
from tests.feed_svc.actions import cached, drain
from tests.gateway.conftest import UNREACHABLE

pytestmark = pytest.mark.usefixtures("fanout")


async def _post(http: httpx.AsyncClient, upload_photo, author: Account) -> str:
    media_id = str(await upload_photo(author))
    response = await http.post("/v1/posts", json={"media_ids": [media_id]}, headers=author.headers)
    assert response.status_code == 201, response.text
    post_id: str = response.json()["id"]
    return post_id


async def _views(http: httpx.AsyncClient, viewer: Account, author: Account, post_id: str) -> dict[str, Any]:
    """The post's `engagement` from every route that renders it, as `viewer` sees it."""
    single = (await http.get(f"/v1/posts/{post_id}", headers=viewer.headers)).json()
    grid = (await http.get(f"/v1/users/{author.id}/posts", headers=viewer.headers)).json()["items"]
    feed = (await http.get("/v1/feed", headers=viewer.headers)).json()["items"]
    saved = (await http.get("/v1/users/me/saved", headers=viewer.headers)).json()["items"]
    views = {"single": single, "grid": next(p for p in grid if p["id"] == post_id)}
    for name, items in (("feed", feed), ("saved", saved)):
        views.update((name, p) for p in items if p["id"] == post_id)
    return {name: post["engagement"] for name, post in views.items()}


async def test_counts_and_the_viewer_s_own_state_in_every_view(http, make_account, upload_photo, bus, database_url):
    author, fan, stranger = await make_account(), await make_account(), await make_account()
    post_id = await _post(http, upload_photo, author)
    for path in (f"/v1/posts/{post_id}/like", f"/v1/posts/{post_id}/save"):
        assert (await http.post(path, headers=fan.headers)).status_code == 200
    comment = await http.post(f"/v1/posts/{post_id}/comments", json={"text": "lovely"}, headers=stranger.headers)
    assert comment.status_code == 201, comment.text
    await drain(bus, database_url)

    fan_views = await _views(http, fan, author, post_id)
    assert set(fan_views) == {"single", "grid", "saved"}  # the fan follows nobody: no feed item
    for engagement in fan_views.values():
        assert engagement == {
            "post_id": post_id,
            "like_count": "1",
            "comment_count": "1",
            "viewer_has_liked": True,
            "viewer_has_saved": True,
        }
    author_views = await _views(http, author, author, post_id)
    assert set(author_views) == {"single", "grid", "feed"}  # the author's own post is in their feed
    for engagement in author_views.values():
        assert engagement["like_count"] == "1" and engagement["comment_count"] == "1"
        assert not engagement["viewer_has_liked"] and not engagement["viewer_has_saved"]


async def test_posts_are_served_without_counts_when_engagement_is_down(
    make_account, upload_photo, http, database_url, namespace, graph_addr, post_addr, media_addr
):
    """engagement_svc unreachable: a post the engagement cache does not cover is served without
    counts (not an error); once the cache covers it (counts and the reader's window), with them."""
    author = await make_account()
    post_id = int(await _post(http, upload_photo, author))
    settings = FeedSettings(
        database_url=database_url,
        namespace=namespace,
        listen="127.0.0.1:0",
        log_json=False,
        graph_addr=graph_addr,
        post_addr=post_addr,
        media_addr=media_addr,
        engagement_addr=UNREACHABLE,
        upstream_timeout_seconds=1,
    )
    redis = connect_redis(ENV.redis_url)
    cache = EngagementCache(redis, namespace)
    try:
        async with feed_host(settings) as host:
            port = await host.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    feed = feed_pb2_grpc.FeedServiceStub(channel)
                    request = feed_pb2.BatchGetFeedItemsRequest(post_ids=[post_id])
                    await cache.drop(post_ids=[post_id], viewer_ids=[author.id])
                    [cold] = (await feed.BatchGetFeedItems(request, metadata=author.metadata)).items
                    # Read through the live stack until the cache covers the post for its author.
                    for _ in range(100):
                        await http.get(f"/v1/posts/{post_id}", headers=author.headers)
                        if await cached(redis, cache, [post_id], author.id):
                            break
                        await asyncio.sleep(0.05)
                    [warm] = (await feed.BatchGetFeedItems(request, metadata=author.metadata)).items
            finally:
                await host.stop()
    finally:
        await redis.aclose()
    assert cold.id == post_id and cold.author.id == author.id
    assert not cold.HasField("engagement")
    assert warm.HasField("engagement") and warm.engagement.like_count == 0
