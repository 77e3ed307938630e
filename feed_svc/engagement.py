"""Engagement on every rendered post: like and comment counts and the viewer's own like/save state
(and the save count, which only ranking reads: the gateway shows it to nobody).

Counts change with every like, so they are never cached here: each page asks engagement_svc once
(BatchGetEngagement, one call per page, never per post), and the answer is added to the cached,
viewer-independent items as they are encoded (feed_svc.encoding). If engagement_svc is down or
slow, posts are still served, without the `engagement` field (clients show no counts), rather than
failing the whole feed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import grpc
from prometheus_client import Counter

from glimpse.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from mesh.identity import as_caller

log = logging.getLogger("feed_svc.engagement")

SERVED_WITHOUT = Counter(
    "glimpse_feed_pages_without_engagement_total", "Pages served without counts: engagement_svc did not answer."
)
# Failures that mean "not now" rather than a bug in the request.
_DEGRADE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# BatchGetEngagement's limit per call.
_BATCH = 100


class EngagementReader:
    def __init__(self, engagement: engagement_pb2_grpc.EngagementServiceStub | None, *, timeout: float) -> None:
        """`engagement` None: every post is served without engagement (FeedSettings.serve_engagement)."""
        self._engagement = engagement
        self._timeout = timeout

    async def of(self, post_ids: Sequence[int], viewer: int | None) -> dict[int, engagement_pb2.PostEngagement]:
        """Each post's engagement as `viewer` sees it (no viewer: counts only), by post id, in one
        BatchGetEngagement call per 100 posts; {} when engagement_svc does not answer in time (the posts
        are then served without it). Other upstream failures propagate as its gRPC error."""
        if not post_ids or self._engagement is None:
            return {}
        unique = list(dict.fromkeys(post_ids))
        metadata = as_caller(viewer) if viewer else None
        batches = [unique[start : start + _BATCH] for start in range(0, len(unique), _BATCH)]
        try:
            # A list longer than one call takes (a ranked feed's candidates) is asked for in
            # concurrent batches; a page is one call, awaited as it is.
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
