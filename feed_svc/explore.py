"""Explore: recent public posts of people the viewer does not follow, by engagement velocity.

The ranking is kept incrementally from engagement events (feed_svc.signals: each like adds
2^((t - epoch) / 2 h) to its post's weight, a comment twice that), so a page never rescans posts or
likes: the first page reads the EXPLORE_CANDIDATES heaviest trending posts (one script), drops what
this viewer must not get, and freezes the result for the page sequence (feed_svc.frozen_pages).

Left out: posts older than TRENDING_WINDOW_MS (48 h) or with fewer than explore_min_interactions
likes and comments by others (Mastodon's trends also wait for a threshold, so a single like
cannot make a post trend); the viewer's own posts; authors the viewer follows (their posts are in
the home feed already); authors the viewer blocks, is blocked by or mutes; and authors whose posts
the viewer may not see (graph_svc's visibility rule: with followed authors out, that leaves public
accounts only). At most MAX_PER_AUTHOR posts per author in a whole page sequence (so in any page).
Each page checks blocks, mutes and privacy again, and deleted posts are left out when served.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from feed_svc.frozen_pages import FrozenPages
from feed_svc.hydration import RenderedItem, RenderedPage
from feed_svc.signals import TRENDING_WINDOW_MS, SignalStore
from glimpse.engagement.v1 import engagement_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from mesh.ids import timestamp_ms
from visibility import Visibility

# Trending posts read for a viewer's first page (before their own filters).
EXPLORE_CANDIDATES = 500
# Posts a page sequence serves at most (the frozen ranking's length).
EXPLORE_MAX_ITEMS = 300
MAX_PER_AUTHOR = 2


class ExploreFeed:
    def __init__(
        self,
        signals: SignalStore,
        pages: FrozenPages,
        graph: graph_pb2_grpc.GraphServiceStub,
        *,
        visibility: Visibility,
        timeout: float,
    ) -> None:
        self._signals = signals
        self._pages = pages
        self._graph = graph
        self._visibility = visibility
        self._timeout = timeout

    async def page(self, viewer: int, size: int, token: str) -> RenderedPage:
        """One explore page for `viewer`, best first, each item with its engagement as `viewer` sees it.
        INVALID_ARGUMENT for a bad page size or token; FAILED_PRECONDITION (PAGE_TOKEN_EXPIRED) once
        the ranking a token names has expired."""

        async def keep(items: list[RenderedItem]) -> list[RenderedItem]:
            hidden = await self._visibility.home_filters(viewer)
            others = [i.author_id for i in items if i.author_id != viewer and not hidden.hides(i.author_id)]
            allowed = await self._visibility.visible(viewer, others) if others else set()
            return [i for i in items if i.author_id in allowed]

        async def rank() -> tuple[list[int], Mapping[int, engagement_pb2.PostEngagement]]:
            return await self._ranked(viewer), {}

        return await self._pages.page(viewer, f"explore:{viewer}", token, size, rank, keep)

    async def _ranked(self, viewer: int) -> list[int]:
        oldest = int(time.time() * 1000) - TRENDING_WINDOW_MS
        trending, followees, hidden = await asyncio.gather(
            self._signals.trending(EXPLORE_CANDIDATES),
            self._graph.ListFolloweeIds(graph_pb2.ListFolloweeIdsRequest(user_id=viewer), timeout=self._timeout),
            self._visibility.home_filters(viewer),
        )
        followed = set(followees.followee_ids)
        fresh = [
            t
            for t in trending
            if timestamp_ms(t.post_id) >= oldest
            and t.author_id != viewer
            and t.author_id not in followed
            and not hidden.hides(t.author_id)
        ]
        allowed = await self._visibility.visible(viewer, list({t.author_id for t in fresh})) if fresh else set()
        ranked: list[int] = []
        per_author: dict[int, int] = {}
        for t in sorted(fresh, key=lambda t: (-t.weight, -t.post_id)):
            if t.author_id in allowed and per_author.get(t.author_id, 0) < MAX_PER_AUTHOR:
                per_author[t.author_id] = per_author.get(t.author_id, 0) + 1
                ranked.append(t.post_id)
                if len(ranked) == EXPLORE_MAX_ITEMS:
                    break
        return ranked
