"""Pages of a ranking frozen for its page sequence: the ranked home feed and explore.

Scores move with every like, so ranking again for each page would skip and repeat posts. The first
page ranks once, stores the ranked post ids for SNAPSHOT_TTL_SECONDS (feed_svc.signals) and puts
(snapshot id, offset) in the page token; later pages read their slice of the same ranking. So a page
sequence never repeats or skips a post, whatever arrives meanwhile; new posts and new likes show up
on the next first page. What may change between pages is only what must: a post deleted since, or
one the viewer may no longer see (a block, a mute, an account made private), is left out when its
page is served. A token whose ranking has expired is FAILED_PRECONDITION (PAGE_TOKEN_EXPIRED).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from feed_svc.engagement import EngagementReader
from feed_svc.hydration import Hydrator, RenderedItem, RenderedPage
from feed_svc.signals import SNAPSHOT_TTL_SECONDS, SignalStore
from glimpse.engagement.v1 import engagement_pb2
from mesh.errors import FailedPrecondition
from mesh.pagination import Count, Id, PageCursor, decode_cursor, encode_cursor, page_size

# Extra ids read per round, so a few posts left out rarely cost a second round.
_SLACK = 4

# The items of a page the viewer may see (in their order).
Keep = Callable[[list[RenderedItem]], Awaitable[list[RenderedItem]]]


class FrozenCursor(PageCursor):
    """The next page is the frozen ranking `snapshot` from position `offset`."""

    snapshot: Id
    offset: Count


def expired() -> FailedPrecondition:
    minutes = SNAPSHOT_TTL_SECONDS // 60
    text = f"has expired (a ranking is kept for {minutes} minutes); start again without page_token"
    return FailedPrecondition(f"page_token: {text}", reason="PAGE_TOKEN_EXPIRED", fields={"page_token": text})


class FrozenPages:
    def __init__(self, signals: SignalStore, hydrator: Hydrator, engagement: EngagementReader) -> None:
        self._signals = signals
        self._hydrator = hydrator
        self._engagement = engagement

    async def page(
        self,
        viewer: int,
        scope: str,
        token: str,
        size: int,
        rank: Callable[[], Awaitable[tuple[list[int], Mapping[int, engagement_pb2.PostEngagement]]]],
        keep: Keep,
    ) -> RenderedPage:
        """One page for `viewer`: the first (empty `token`) ranks with `rank()` (post ids best first,
        and any engagement it already read, reused for the page); later ones read the frozen ranking.
        INVALID_ARGUMENT for a bad page size or a token not issued for `scope`; FAILED_PRECONDITION
        (PAGE_TOKEN_EXPIRED) once the ranking has expired."""
        want = page_size(size)
        cursor = decode_cursor(token, FrozenCursor, scope)
        known: Mapping[int, engagement_pb2.PostEngagement] = {}
        ranked: list[int] | None = None
        if cursor is None:
            ranked, known = await rank()
            snapshot, offset = 0, 0
        else:
            snapshot, offset = cursor.snapshot, cursor.offset
        items: list[RenderedItem] = []
        at_end = False
        while len(items) < want and not at_end:
            start, count = offset, want - len(items) + _SLACK
            if ranked is not None:
                ids = ranked[start : start + count]
            else:
                ids = await self._read(viewer, snapshot, start, count)
            rendered = await self._hydrator.rendered(ids)
            kept = {i.post_id for i in await keep([rendered[p] for p in ids if p in rendered])}
            for post_id in ids:
                offset += 1
                if post_id in kept:
                    items.append(rendered[post_id])
                    if len(items) == want:
                        break
            # The ranking's end: a short read used up (a read of exactly what was left ends on an
            # empty page next time; the in-memory first ranking knows its length).
            at_end = offset >= len(ranked) if ranked is not None else len(ids) < count and offset == start + len(ids)
        served = [i.post_id for i in items]
        engagement: Mapping[int, engagement_pb2.PostEngagement]
        if all(p in known for p in served):
            engagement = {p: known[p] for p in served}
            if not at_end and ranked is not None:
                snapshot = await self._signals.freeze(viewer, ranked)
        elif not at_end and ranked is not None:
            # Two round trips to different stores: at once.
            snapshot, engagement = await asyncio.gather(
                self._signals.freeze(viewer, ranked), self._engagement.of(served, viewer)
            )
        else:
            engagement = await self._engagement.of(served, viewer)
        next_token = "" if at_end else encode_cursor(FrozenCursor(snapshot=snapshot, offset=offset), scope)
        return RenderedPage(items, engagement, next_token)

    async def _read(self, viewer: int, snapshot: int, offset: int, count: int) -> list[int]:
        ids = await self._signals.thawed(viewer, snapshot, offset, count)
        if ids is None:
            raise expired()
        return ids
