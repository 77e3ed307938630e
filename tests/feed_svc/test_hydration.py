"""The Hydrator's caches and its `fresh` read, against the real post, graph and media services (this
Hydrator listens to no events, so only its own reads change what it holds)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from feed_svc.hydration import Hydrator
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from media_svc.app import media_host
from tests.conftest import Stubs
from tests.feed_svc.actions import create_post
from tests.media_svc import signatures
from tests.media_svc.conftest import wait_until_settled


def hydrator(stubs: Stubs) -> Hydrator:
    return Hydrator(stubs.post, stubs.graph, stubs.media, ttl_seconds=600, max_items=100, timeout=5)


async def test_a_fresh_read_shows_an_edit_the_cache_does_not_yet_and_refills_it(stubs, make_account, upload_photo):
    author = await make_account()
    post_id = await create_post(stubs, upload_photo, author, caption="before #old")
    cached = hydrator(stubs)
    assert (await cached.items([post_id]))[post_id].caption == "before #old"
    await stubs.post.UpdatePost(
        post_pb2.UpdatePostRequest(
            post=post_pb2.Post(id=post_id, caption="after #new"), update_mask=FieldMask(paths=["caption"])
        ),
        metadata=author.metadata,
    )
    assert (await cached.items([post_id]))[post_id].caption == "before #old"  # within the cache's TTL
    fresh = (await cached.items([post_id], fresh=True))[post_id]
    assert (fresh.caption, list(fresh.hashtags)) == ("after #new", ["new"])
    assert fresh.update_time.ToDatetime() > fresh.create_time.ToDatetime()
    assert (await cached.items([post_id]))[post_id].caption == "after #new"


async def test_a_forgotten_post_is_read_again(stubs, make_account, upload_photo):
    author = await make_account()
    post_id = await create_post(stubs, upload_photo, author)
    cached = hydrator(stubs)
    assert set(await cached.items([post_id, 1])) == {post_id}
    await stubs.post.DeletePost(post_pb2.DeletePostRequest(post_id=post_id), metadata=author.metadata)
    assert set(await cached.items([post_id])) == {post_id}  # still cached: the event would evict it
    cached.forget_post(post_id)
    assert await cached.items([post_id]) == {}


class _AnsweredBeforeTheEviction:
    """post_svc's stub, with `evict()` run while a BatchGetPosts answer is on its way back: the post's
    posts.deleted (or posts.updated) event arrives during a read that fetched the old post."""

    def __init__(self, posts: post_pb2_grpc.PostServiceStub, evict: Callable[[], Awaitable[None]]) -> None:
        self._posts = posts
        self.evict = evict

    async def BatchGetPosts(self, request: post_pb2.BatchGetPostsRequest, **kwargs: Any) -> Any:
        response = await self._posts.BatchGetPosts(request, **kwargs)
        await self.evict()
        return response


async def test_a_post_evicted_during_a_read_is_served_by_that_read_but_not_cached(stubs, make_account, upload_photo):
    author = await make_account()
    post_id = await create_post(stubs, upload_photo, author)

    async def delete_and_evict() -> None:
        await stubs.post.DeletePost(post_pb2.DeletePostRequest(post_id=post_id), metadata=author.metadata)
        cached.forget_post(post_id)

    posts = _AnsweredBeforeTheEviction(stubs.post, delete_and_evict)
    cached = Hydrator(posts, stubs.graph, stubs.media, ttl_seconds=600, max_items=100, timeout=5)
    assert set(await cached.items([post_id])) == {post_id}  # asked before the deletion
    posts.evict = _nothing
    assert await cached.items([post_id]) == {}  # not the old post for the cache's 600 s


async def _nothing() -> None:
    return None


class _CountedMedia:
    """media_svc's stub, counting BatchGetMedia calls."""

    def __init__(self, media: media_pb2_grpc.MediaServiceStub) -> None:
        self._media = media
        self.calls = 0

    async def BatchGetMedia(self, request: media_pb2.BatchGetMediaRequest, **kwargs: Any) -> Any:
        self.calls += 1
        return await self._media.BatchGetMedia(request, **kwargs)


async def _read_twice(stubs: Stubs, media: _CountedMedia, post_id: int) -> list[str]:
    """Reads the post twice through a fresh Hydrator; the rendition URLs of the second read."""
    cached = Hydrator(stubs.post, stubs.graph, media, ttl_seconds=600, max_items=100, timeout=5)  # type: ignore[arg-type]
    await cached.items([post_id])
    item = (await cached.items([post_id]))[post_id]
    return [r.url for m in item.media for r in m.renditions]


@pytest.mark.usefixtures("media_worker")
async def test_rendition_urls_are_cached_only_while_they_have_time_left(
    stubs, make_account, upload_photo, media_settings
):
    author = await make_account()
    post_id = await create_post(stubs, upload_photo, author)
    [post] = (await stubs.post.BatchGetPosts(post_pb2.BatchGetPostsRequest(post_ids=[post_id]))).posts
    await wait_until_settled(stubs.media, list(post.media_ids))

    # The suite's media_svc: URLs live 30 to 60 minutes, so the media and the item are cached.
    long_lived = _CountedMedia(stubs.media)
    assert len(await _read_twice(stubs, long_lived, post_id)) == 3
    assert long_lived.calls == 1

    # URLs living 1 to 2 minutes would expire in clients' hands: asked for on every read instead.
    short = media_settings.model_copy(update={"rendition_url_slot_seconds": 60})
    async with media_host(short) as host:
        port = await host.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                short_lived = _CountedMedia(media_pb2_grpc.MediaServiceStub(channel))
                urls = await _read_twice(stubs, short_lived, post_id)
        finally:
            await host.stop()
    assert short_lived.calls == 2
    assert len(urls) == 3
    assert all(signatures.parse(u).expires_at <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2) for u in urls)


@pytest.mark.usefixtures("media_worker")
async def test_finished_items_are_reused_for_their_ttl_and_the_oldest_goes_when_full(stubs, make_account, upload_photo):
    author = await make_account()
    first, second = [await create_post(stubs, upload_photo, author) for _ in range(2)]
    posts = (await stubs.post.BatchGetPosts(post_pb2.BatchGetPostsRequest(post_ids=[first, second]))).posts
    await wait_until_settled(stubs.media, [m for p in posts for m in p.media_ids])  # only finished items are kept
    # One item kept: storing the second pushes the first out.
    one = Hydrator(stubs.post, stubs.graph, stubs.media, ttl_seconds=600, max_items=1, timeout=5)
    kept = (await one.rendered([first]))[first]
    assert (await one.rendered([first]))[first] is kept
    await one.rendered([second])
    rebuilt = (await one.rendered([first]))[first]
    assert rebuilt is not kept and rebuilt.encoded == kept.encoded
    # A short TTL: the item is built again once it is over.
    brief = Hydrator(stubs.post, stubs.graph, stubs.media, ttl_seconds=0.2, max_items=100, timeout=5)
    kept = (await brief.rendered([first]))[first]
    assert (await brief.rendered([first]))[first] is kept
    await asyncio.sleep(0.3)
    assert (await brief.rendered([first]))[first] is not kept
