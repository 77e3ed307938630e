"""Engagement on every rendered post: like and comment counts and the viewer's own like/save state.

Counts change with every like, so they are never cached here: each page asks engagement_svc once
(BatchGetEngagement, one call per page, never per post) and the cached, viewer-independent items
are copied with the answer. If engagement_svc is down or slow, posts are still served, without the
`engagement` field (clients show no counts), rather than failing the whole feed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
from prometheus_client import Counter

from glimpse.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from glimpse.feed.v1 import feed_pb2
from mesh.identity import as_caller

log = logging.getLogger("feed_svc.engagement")

SERVED_WITHOUT = Counter(
    "glimpse_feed_pages_without_engagement_total", "Pages served without counts: engagement_svc did not answer."
)
# Failures that mean "not now" rather than a bug in the request.
_DEGRADE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class EngagementReader:
    def __init__(self, engagement: engagement_pb2_grpc.EngagementServiceStub, *, timeout: float) -> None:
        self._engagement = engagement
        self._timeout = timeout

    async def attach(self, items: Sequence[feed_pb2.FeedItem], viewer: int | None) -> list[feed_pb2.FeedItem]:
        """Copies of `items` (in order) carrying their engagement as `viewer` sees it (no viewer: counts
        only). The items themselves are shared with the hydration cache and are left untouched."""
        if not items:
            return []
        request = engagement_pb2.BatchGetEngagementRequest(post_ids=list(dict.fromkeys(i.id for i in items)))
        try:
            response = await self._engagement.BatchGetEngagement(
                request, timeout=self._timeout, metadata=as_caller(viewer) if viewer else None
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _DEGRADE:
                raise
            SERVED_WITHOUT.inc()
            log.warning("posts served without engagement", extra={"code": exc.code().name})
            return list(items)
        found = {e.post_id: e for e in response.engagement}
        engaged = []
        for item in items:
            copy = feed_pb2.FeedItem()
            copy.CopyFrom(item)
            if (engagement := found.get(item.id)) is not None:
                copy.engagement.CopyFrom(engagement)
            engaged.append(copy)
        return engaged
