"""Engagement on every rendered post: like and comment counts and the viewer's own like/save state
(and the save count, which only ranking reads: the gateway shows it to nobody).

Read through the engagement cache (engagement_cache: counts per post, each reader's likes and saves
of recent posts, dropped by engagement_svc after every change), so a page whose posts were read
before costs one Redis round trip. What the cache lacks is asked of engagement_svc in one
BatchGetEngagement call per 100 posts (never per post) and stored for the next page, and a reader
whose window is missing gets it loaded in the background (ListViewerEngagement), so their next
pages hit. The answer is added to the cached, viewer-independent items as they are encoded
(feed_svc.encoding). If engagement_svc is down or slow, posts the cache does not cover are served
without the `engagement` field (clients show no counts) rather than failing the whole feed; if Redis
is, every page asks engagement_svc.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import grpc
from prometheus_client import Counter
from redis.exceptions import RedisError

from engagement_cache import CachedEngagement, EngagementCache
from engagement_cache.store import LIKED, SAVED
from glimpse.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from mesh.identity import as_caller
from mesh.ids import lowest_id_at

log = logging.getLogger("feed_svc.engagement")

SERVED_WITHOUT = Counter(
    "glimpse_feed_pages_without_engagement_total", "Pages served without counts: engagement_svc did not answer."
)
CACHE_READS = Counter(
    "glimpse_feed_engagement_cache_posts_total",
    "Posts whose engagement a page read, by where it came from.",
    ["source"],
)
FROM_CACHE, FROM_ENGAGEMENT_SVC = CACHE_READS.labels("cache"), CACHE_READS.labels("engagement_svc")
# Failures that mean "not now" rather than a bug in the request.
_DEGRADE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# BatchGetEngagement's limit per call.
_BATCH = 100
# Reader windows loaded at once (each one ListViewerEngagement call); more wait their turn.
_LOADS = 8


class EngagementReader:
    def __init__(
        self,
        engagement: engagement_pb2_grpc.EngagementServiceStub | None,
        *,
        timeout: float,
        cache: EngagementCache | None = None,
        viewer_window_seconds: float = 30 * 86_400.0,
    ) -> None:
        """`engagement` None: every post is served without engagement (FeedSettings.serve_engagement).
        `cache` None: every page asks engagement_svc. `viewer_window_seconds`: how far back (by post
        age) a reader's cached window of their own likes and saves reaches; older posts ask."""
        self._engagement = engagement
        self._timeout = timeout
        self._cache = cache
        self._window_ms = int(viewer_window_seconds * 1000)
        self._loads: set[asyncio.Task[None]] = set()
        self._load_slots = asyncio.Semaphore(_LOADS)

    async def of(self, post_ids: Sequence[int], viewer: int | None) -> dict[int, engagement_pb2.PostEngagement]:
        """Each post's engagement as `viewer` sees it (no viewer: counts only), by post id: from the
        cache, the rest in one BatchGetEngagement call per 100 posts. A post is left out when
        engagement_svc does not answer in time and the cache lacks it (it is then served without).
        Other upstream failures propagate as its gRPC error."""
        if not post_ids or self._engagement is None:
            return {}
        unique = list(dict.fromkeys(post_ids))
        cached = await self._read_cache(unique, viewer)
        if cached is None:
            need = unique
        else:
            window = cached.viewer
            counts = cached.counts
            # A post a reader's state is needed for and their window does not cover is asked too.
            since = (window.since if window is not None else None) if viewer else 0
            need = [p for p in unique if p not in counts or since is None or p < since]
        asked = await self._ask(need, viewer) if need else {}
        if need:
            FROM_ENGAGEMENT_SVC.inc(len(need))
        if cached is None:
            return asked
        FROM_CACHE.inc(len(unique) - len(need))
        if asked and cached.leased:
            await self._fill(cached, {p: (e.like_count, e.comment_count, e.save_count) for p, e in asked.items()})
        if viewer and cached.load_viewer:
            self._start_load(viewer, cached)
        flags = window.flags if viewer and window is not None else {}
        found: dict[int, engagement_pb2.PostEngagement] = {}
        message = engagement_pb2.PostEngagement
        for post_id in unique:
            answer = asked.get(post_id)
            if answer is not None:
                found[post_id] = answer
                continue
            count = counts.get(post_id)
            if count is None or since is None or post_id < since:
                continue  # engagement_svc did not answer for it
            own = flags.get(post_id, 0)
            found[post_id] = message(
                post_id=post_id,
                like_count=count[0],
                comment_count=count[1],
                save_count=count[2],
                viewer_has_liked=bool(own & LIKED),
                viewer_has_saved=bool(own & SAVED),
            )
        return found

    async def counts(self, post_ids: Sequence[int]) -> dict[int, tuple[int, int, int]]:
        """(likes, comments, saves) of each post, by post id, for ranking: from the cache, the rest
        asked of engagement_svc (one BatchGetEngagement call per 100 posts, counts only) and cached. No
        message is built, and no reader's state read. A post is left out when engagement_svc does not
        answer in time and the cache lacks it; other upstream failures propagate."""
        if not post_ids or self._engagement is None:
            return {}
        unique = list(dict.fromkeys(post_ids))
        cached = await self._read_cache(unique, None)
        found = dict(cached.counts) if cached is not None else {}
        need = [p for p in unique if p not in found]
        FROM_ENGAGEMENT_SVC.inc(len(need))
        FROM_CACHE.inc(len(unique) - len(need))
        if need:
            asked = {p: (e.like_count, e.comment_count, e.save_count) for p, e in (await self._ask(need, None)).items()}
            if cached is not None and asked and cached.leased:
                await self._fill(cached, asked)
            found.update(asked)
        return found

    async def wait_for_loads(self) -> None:
        """Waits for the reader windows being loaded (tests and benchmarks: a warm cache)."""
        while self._loads:
            await asyncio.gather(*self._loads, return_exceptions=True)

    async def _read_cache(self, post_ids: list[int], viewer: int | None) -> CachedEngagement | None:
        if self._cache is None:
            return None
        try:
            return await self._cache.read(post_ids, viewer)
        except RedisError as exc:
            log.warning("engagement cache unreadable; asking engagement_svc", extra={"error": str(exc)})
            return None

    async def _fill(self, cached: CachedEngagement, counts: dict[int, tuple[int, int, int]]) -> None:
        assert self._cache is not None
        try:
            await self._cache.fill_counts(cached, counts)
        except RedisError as exc:
            log.warning("engagement cache not filled", extra={"error": str(exc)})

    def _start_load(self, viewer: int, cached: CachedEngagement) -> None:
        task = asyncio.create_task(self._load_viewer(viewer, cached))
        self._loads.add(task)
        task.add_done_callback(self._loads.discard)

    async def _load_viewer(self, viewer: int, cached: CachedEngagement) -> None:
        """Loads `viewer`'s window of likes and saves into the cache (where their lease still stands);
        a failure only leaves the next page asking engagement_svc."""
        assert self._engagement is not None and self._cache is not None
        since = lowest_id_at(int(time.time() * 1000) - self._window_ms)
        async with self._load_slots:
            try:
                window = await self._engagement.ListViewerEngagement(
                    engagement_pb2.ListViewerEngagementRequest(since_post_id=since),
                    timeout=self._timeout,
                    metadata=as_caller(viewer),
                )
                await self._cache.fill_viewer(
                    viewer, cached, window.complete_since_post_id, window.liked_post_ids, window.saved_post_ids
                )
            except (grpc.aio.AioRpcError, RedisError) as exc:
                log.warning("reader's engagement window not loaded", extra={"viewer": viewer, "error": str(exc)})
                with contextlib.suppress(RedisError):
                    await self._cache.release_viewer(viewer, cached)

    async def _ask(self, post_ids: list[int], viewer: int | None) -> dict[int, engagement_pb2.PostEngagement]:
        """engagement_svc's answer for `post_ids` (one call per 100, concurrent), or {} when it does not
        answer in time."""
        metadata = as_caller(viewer) if viewer else None
        batches = [post_ids[start : start + _BATCH] for start in range(0, len(post_ids), _BATCH)]
        try:
            if len(batches) == 1:
                responses = [await self._batch(batches[0], metadata)]
            else:
                responses = await asyncio.gather(*(self._batch(batch, metadata) for batch in batches))
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _DEGRADE:
                raise
            SERVED_WITHOUT.inc()
            log.warning("posts served without engagement", extra={"code": exc.code().name})
            return {}
        return {e.post_id: e for response in responses for e in response.engagement}

    async def _batch(
        self, post_ids: list[int], metadata: tuple[tuple[str, str], ...] | None
    ) -> engagement_pb2.BatchGetEngagementResponse:
        assert self._engagement is not None
        request = engagement_pb2.BatchGetEngagementRequest(post_ids=post_ids)
        return await self._engagement.BatchGetEngagement(request, timeout=self._timeout, metadata=metadata)
