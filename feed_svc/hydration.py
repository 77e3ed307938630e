"""Turns post ids into feed items: post, author and media, fetched in batch and cached. This is the one
place a post is rendered for clients (home feed, single post, profile grid, create/edit responses).

Posts and users are cached for a short TTL; a deleted or edited post is evicted at once (the service
watches `posts.deleted` and `posts.updated`), and media are cached only once final (READY or FAILED),
so a photo that is still PROCESSING is asked for again on the next read. A `fresh` read skips the
post and item caches (and refills them), so the response to a write shows the write.

Rendition URLs are signed and expire (30 to 60 minutes after media_svc hands them out; see
media.v1.Rendition): a medium is cached only while its URLs have more than _URL_TIME_LEFT left, and
an item only if they keep that much for the item cache's whole TTL, so every URL this hands out
still works for at least _URL_TIME_LEFT.

An eviction can arrive while a read that fetched the old post is still building items (the event
comes a few milliseconds after the write); that read answers with what it fetched, but does not
cache it, or the old post would be served for the whole TTL.

Each item is serialised once, when it is built: responses are assembled from those bytes
(feed_svc.encoding) instead of copying every cached message into each response and serialising it
again on every call.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from cachetools import Cache, TLRUCache, TTLCache

from feed_svc.expiring import ExpiringMap
from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc

_BATCH = 100
V = TypeVar("V")
_FINAL = (media_pb2.MEDIA_STATUS_READY, media_pb2.MEDIA_STATUS_FAILED)
# What a rendition URL handed out from a cache has left at least: time for the client to fetch it.
_URL_TIME_LEFT = 15 * 60.0


@dataclass(frozen=True, slots=True)
class RenderedItem:
    """A feed item as built from its post, author and photos (without engagement, which is per
    viewer) and its protobuf encoding. `message` may be shared with the cache: never modify it."""

    post_id: int
    author_id: int
    message: feed_pb2.FeedItem
    encoded: bytes


@dataclass(frozen=True)
class RenderedPage:
    """Feed items in order; each post's engagement as the viewer sees it (a post without an entry is
    served without engagement); the next page's token ("" on the last page)."""

    items: list[RenderedItem]
    engagement: Mapping[int, engagement_pb2.PostEngagement]
    next_page_token: str = ""


class Hydrator:
    def __init__(
        self,
        posts: post_pb2_grpc.PostServiceStub,
        graph: graph_pb2_grpc.GraphServiceStub,
        media: media_pb2_grpc.MediaServiceStub,
        *,
        ttl_seconds: float,
        max_items: int,
        timeout: float,
    ) -> None:
        self._posts = posts
        self._graph = graph
        self._media = media
        self._timeout = timeout
        self._post_cache: TTLCache[int, post_pb2.Post] = TTLCache(max_items or 1, ttl_seconds)
        self._user_cache: TTLCache[int, graph_pb2.User] = TTLCache(max_items or 1, ttl_seconds)
        self._ttl_seconds = ttl_seconds
        self._media_cache: TLRUCache[int, media_pb2.Media] = TLRUCache(
            max_items or 1, lambda _, m, now: min(now + ttl_seconds * 10, _urls_usable_until([m])), timer=time.time
        )
        # Finished items (author found, every photo final): most reads are of posts read before.
        self._item_cache: ExpiringMap[int, RenderedItem] = ExpiringMap(max_items, ttl_seconds)
        # Evictions so far, and the count at each post's last one: a read that started before a
        # post's eviction must not cache that post.
        self._evictions = 0
        self._evicted_at: TTLCache[int, int] = TTLCache(max_items or 1, max(ttl_seconds, timeout))

    def forget_post(self, post_id: int) -> None:
        self._evictions += 1
        self._evicted_at[post_id] = self._evictions
        self._post_cache.pop(post_id, None)
        self._item_cache.pop(post_id)

    def _unchanged_since(self, post_id: int, evictions: int) -> bool:
        """Whether `post_id` was not evicted after the count of evictions was `evictions`."""
        return self._evicted_at.get(post_id, 0) <= evictions

    async def items(self, post_ids: Sequence[int], *, fresh: bool = False) -> dict[int, feed_pb2.FeedItem]:
        """Feed items by post id, for the posts that still exist and whose author's account does
        (deleted or unknown posts are left out). `fresh` reads every post from post_svc, not the cache.
        Upstream failures propagate as the upstream's gRPC error."""
        return {post_id: item.message for post_id, item in (await self.rendered(post_ids, fresh=fresh)).items()}

    async def rendered(self, post_ids: Sequence[int], *, fresh: bool = False) -> dict[int, RenderedItem]:
        """`items`, each with its encoding (the same posts left out, the same errors)."""
        if fresh:
            return await self._build(post_ids, fresh, self._evictions)
        found, missing = self._item_cache.get_many(post_ids)
        if missing:
            found.update(await self._build(missing, fresh, self._evictions))
        return found

    async def _build(self, post_ids: Sequence[int], fresh: bool, evictions: int) -> dict[int, RenderedItem]:
        posts = await _fetch(
            self._post_cache,
            post_ids,
            self._batch_posts,
            lambda post: self._unchanged_since(post.id, evictions),
            fresh=fresh,
        )
        # Authors and photos depend only on the posts: both asked for at once.
        authors, media = await asyncio.gather(
            _fetch(self._user_cache, list({p.author_id for p in posts.values()}), self._batch_users),
            _fetch(
                self._media_cache,
                [m for p in posts.values() for m in p.media_ids],
                self._batch_media,
                lambda m: m.status in _FINAL,
            ),
        )
        items = {}
        for post_id, post in posts.items():
            author = authors.get(post.author_id)
            if author is None:  # the account is gone: its posts go with it, as deleted ones do
                continue
            item = feed_pb2.FeedItem(
                id=post.id,
                author=feed_pb2.FeedAuthor(
                    id=author.id,
                    username=author.username,
                    display_name=author.display_name,
                    avatar_url=author.avatar_url if author.HasField("avatar_url") else None,
                ),
                caption=post.caption,
                hashtags=post.hashtags,
                media=[_feed_media(media[m]) for m in post.media_ids if m in media],
                create_time=post.create_time,
                update_time=post.update_time,
            )
            if post.HasField("location"):
                item.location.CopyFrom(post.location)
            final = all(m in media and media[m].status in _FINAL for m in post.media_ids)
            urls_last = (
                _urls_usable_until(media[m] for m in post.media_ids if m in media) > time.time() + self._ttl_seconds
            )
            rendered = RenderedItem(post_id, author.id, item, item.SerializeToString())
            if final and urls_last and self._unchanged_since(post_id, evictions):
                self._item_cache.put(post_id, rendered)
            items[post_id] = rendered
        return items

    async def _batch_posts(self, ids: list[int]) -> dict[int, post_pb2.Post]:
        response = await self._posts.BatchGetPosts(post_pb2.BatchGetPostsRequest(post_ids=ids), timeout=self._timeout)
        return {p.id: p for p in response.posts}

    async def _batch_users(self, ids: list[int]) -> dict[int, graph_pb2.User]:
        response = await self._graph.BatchGetUsers(graph_pb2.BatchGetUsersRequest(user_ids=ids), timeout=self._timeout)
        return {u.id: u for u in response.users}

    async def _batch_media(self, ids: list[int]) -> dict[int, media_pb2.Media]:
        response = await self._media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=ids), timeout=self._timeout)
        return {m.id: m for m in response.media}


async def _fetch(
    cache: Cache[int, V],
    ids: Sequence[int],
    load: Callable[[list[int]], Awaitable[dict[int, V]]],
    cacheable: Callable[[V], bool] = lambda _: True,
    *,
    fresh: bool = False,
) -> dict[int, V]:
    """Values for `ids` from the cache (unless `fresh`), loading the rest in batches of 100 and caching
    what `cacheable` accepts (missing ones are left out)."""
    found = {} if fresh else {i: cache[i] for i in ids if i in cache}
    missing = list(dict.fromkeys(i for i in ids if i not in found))
    for start in range(0, len(missing), _BATCH):
        loaded = await load(missing[start : start + _BATCH])
        for key, value in loaded.items():
            if cacheable(value):
                cache[key] = value
        found.update(loaded)
    return found


def _urls_usable_until(media: Iterable[media_pb2.Media]) -> float:
    """Until when (Unix seconds) the media's rendition URLs may be handed out from a cache:
    _URL_TIME_LEFT before the first of them expires (forever if none does)."""
    expiries = [r.expire_time.seconds for m in media for r in m.renditions if r.HasField("expire_time")]
    return min(expiries) - _URL_TIME_LEFT if expiries else math.inf


def _feed_media(media: media_pb2.Media) -> feed_pb2.FeedMedia:
    return feed_pb2.FeedMedia(
        id=media.id,
        status=media.status,
        width=media.width,
        height=media.height,
        blurhash=media.blurhash,
        renditions=[
            feed_pb2.FeedRendition(size=r.size, width=r.width, height=r.height, url=r.url) for r in media.renditions
        ],
    )
