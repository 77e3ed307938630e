"""The home feed: the reader's inbox merged with their celebrity followees' outboxes, newest first
or ranked.

Newest first, pages are keyed on the last post id handed out (opaque token), so posts arriving while
a reader pages through never shift later pages: no duplicates, no gaps, also across posts created in
the same millisecond (see the timelines package for the ordering).

Ranked: the newest RANKED_WINDOW candidates of the same timelines are scored by feed_svc.ranking
(their like, comment and save counts, the reader's affinity with each author, their age) and diversified;
the ranking is frozen for the page sequence (feed_svc.frozen_pages), so new posts and likes never
make a later page skip or repeat a post.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Mapping, Sequence
from operator import itemgetter

from cachetools import TTLCache
from prometheus_client import Counter

from feed_svc import ranking
from feed_svc.engagement import EngagementReader
from feed_svc.expiring import ExpiringMap
from feed_svc.frozen_pages import FrozenPages
from feed_svc.hydration import Hydrator, RenderedItem, RenderedPage
from feed_svc.signals import SignalStore
from glimpse.engagement.v1 import engagement_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from mesh.errors import invalid_field
from mesh.ids import timestamp_ms
from mesh.pagination import Count, Id, PageCursor, decode_cursor, encode_cursor, page_size
from timelines.outboxes import OutboxLoader
from timelines.store import Timelines
from visibility import Visibility

REBUILDS = Counter("glimpse_feed_inbox_rebuilds_total", "Inboxes rebuilt on read (expired or never built).")
# Extra candidates read per round, so a few deleted posts rarely cost a second round.
_SLACK = 4
# Outboxes rebuilt from post_svc at once while rebuilding an inbox.
_REBUILD_CONCURRENCY = 16
# Newest posts of a celebrity kept in process memory (a few pages' worth).
_HEAD = 100
# Posts rendered per BatchGetFeedItems call: one upstream batch of each kind.
MAX_FEED_ITEMS = 100
# Candidates a ranked feed scores: the newest of the inbox and celebrity outboxes (a few days of a
# typical reader's feed; each costs an engagement count and an author lookup on the first page).
RANKED_WINDOW = 200
# How long a post's like, comment and save counts are reused for ranking (FeedSettings overrides it).
RANKING_COUNTS_SECONDS = 10.0


class FeedCursor(PageCursor):
    """The next home feed page starts below post id `before`, after `served` items so far (the feed
    ends at feed_max items)."""

    before: Id
    served: Count


class FeedService:
    def __init__(
        self,
        timelines: Timelines,
        outboxes: OutboxLoader,
        hydrator: Hydrator,
        engagement: EngagementReader,
        graph: graph_pb2_grpc.GraphServiceStub,
        *,
        visibility: Visibility,
        signals: SignalStore,
        celebrity_threshold: int,
        celebrity_cache_seconds: float,
        celebrity_head_seconds: float = 0.0,
        ranking_counts_cache_seconds: float = RANKING_COUNTS_SECONDS,
        timeout: float,
    ) -> None:
        self._timelines = timelines
        self._outboxes = outboxes
        self._hydrator = hydrator
        self._engagement = engagement
        self._visibility = visibility
        self._signals = signals
        self._frozen = FrozenPages(signals, hydrator, engagement)
        self._graph = graph
        self._threshold = celebrity_threshold
        self._timeout = timeout
        self._celebrities: TTLCache[int, list[int]] = TTLCache(100_000, celebrity_cache_seconds or 1e-9)
        # forget_celebrity_followees calls so far, and the count at each reader's last one.
        self._followee_forgets = 0
        self._followees_forgotten: TTLCache[int, int] = TTLCache(100_000, max(celebrity_cache_seconds, timeout))
        # Every follower of a celebrity (thousands, by definition) merges the same outbox: read it once
        # per celebrity_head_seconds per process, not once per page.
        self._heads: TTLCache[int, list[int]] = TTLCache(100_000, celebrity_head_seconds or 1e-9)
        # Like, comment and save counts the ranked feed scores with: counts move with every like, but a score
        # a few seconds stale changes nothing a reader notices, and readers of the same authors share
        # candidates. Served counts are never these: each page reads its own (feed_svc.engagement).
        self._ranking_counts: ExpiringMap[int, tuple[int, int, int]] = ExpiringMap(
            100_000, ranking_counts_cache_seconds
        )

    async def home_feed(self, user_id: int, size: int, token: str) -> RenderedPage:
        """One page of `user_id`'s home feed, newest first, each item with its engagement as `user_id`
        sees it. INVALID_ARGUMENT for a bad page size or token (see mesh.pagination.decode_cursor)."""
        want = page_size(size)
        scope = f"feed:{user_id}"
        cursor = decode_cursor(token, FeedCursor, scope)
        before, served = (cursor.before, cursor.served) if cursor else (None, 0)
        want = min(want, self._timelines.feed_max - served)
        if want <= 0:
            return RenderedPage([], {})
        celebrities = await self._celebrity_followees(user_id)
        # The read-time guard: the fan-out filters pushes and purges inboxes on a block or mute, but a
        # push racing a block, or a celebrity's outbox, can still hold a post this reader must not see.
        hidden = await self._visibility.home_filters(user_id)
        items: list[RenderedItem] = []
        exhausted = False
        # A first page keeps the inbox alive for inbox_ttl_seconds more, in the round trip reading it.
        touch = token == ""
        while len(items) < want and not exhausted:
            fetch = want - len(items) + _SLACK
            candidates, exhausted = await self._candidates(user_id, celebrities, before, fetch, touch=touch)
            touch = False
            rendered = await self._hydrator.rendered(candidates)
            for post_id in candidates:
                before = post_id
                item = rendered.get(post_id)
                # Deleted and hidden posts are skipped, but still move the cursor.
                if item is not None and (item.author_id == user_id or not hidden.hides(item.author_id)):
                    items.append(item)
                    if len(items) == want:
                        exhausted = exhausted and post_id == candidates[-1]
                        break
        served += len(items)
        more = not exhausted and served < self._timelines.feed_max
        next_token = (
            encode_cursor(FeedCursor(before=before, served=served), scope) if more and before is not None else ""
        )
        return RenderedPage(items, await self._engagement.of([i.post_id for i in items], user_id), next_token)

    async def ranked_home_feed(self, user_id: int, size: int, token: str) -> RenderedPage:
        """One page of `user_id`'s home feed ranked by feed_svc.ranking over the newest RANKED_WINDOW
        candidates, frozen for the page sequence (feed_svc.frozen_pages), each item with its
        engagement as `user_id` sees it. INVALID_ARGUMENT for a bad page size or token (a
        chronological feed's token included); FAILED_PRECONDITION (PAGE_TOKEN_EXPIRED) once the
        ranking a token names has expired. The counts it scores with may be ranking_counts_cache_seconds
        old."""
        hidden = await self._visibility.home_filters(user_id)

        async def keep(items: list[RenderedItem]) -> list[RenderedItem]:
            return [i for i in items if i.author_id == user_id or not hidden.hides(i.author_id)]

        async def rank() -> tuple[list[int], Mapping[int, engagement_pb2.PostEngagement]]:
            now_ms = int(time.time() * 1000)
            celebrities = await self._celebrity_followees(user_id)
            # The reader's affinity does not depend on the candidates: read at the same time.
            (candidates, _), affinity = await asyncio.gather(
                self._candidates(user_id, celebrities, None, RANKED_WINDOW, touch=True),
                self._signals.affinity(user_id, now_ms),
            )
            rendered, counts = await self._rendered_with_counts(candidates)
            present = await keep([rendered[p] for p in candidates if p in rendered])
            ordered = ranking.diversify(
                ranking.rank_posts(
                    [(i.post_id, i.author_id, timestamp_ms(i.post_id)) for i in present], counts, affinity, now_ms
                ),
                author=itemgetter(1),
            )
            # The page's own engagement (as the reader sees it) is read when it is served (frozen_pages).
            return [post_id for post_id, _ in ordered], {}

        return await self._frozen.page(user_id, f"feed:{user_id}:ranked", token, size, rank, keep)

    async def _rendered_with_counts(
        self, post_ids: Sequence[int]
    ) -> tuple[dict[int, RenderedItem], dict[int, tuple[int, int, int]]]:
        """The posts rendered, and (likes, comments, saves) of each for ranking: reused in process for
        ranking_counts_cache_seconds, the others read through the engagement cache."""
        counts, missing = self._ranking_counts.get_many(post_ids)
        rendered, read = await asyncio.gather(self._hydrator.rendered(post_ids), self._engagement.counts(missing))
        for post_id, found in read.items():
            counts[post_id] = found
            self._ranking_counts.put(post_id, found)
        return rendered, counts

    async def feed_items(self, post_ids: Sequence[int], viewer: int | None, *, fresh: bool = False) -> RenderedPage:
        """The posts as feed items, in request order (a repeated id is rendered each time), with their
        engagement as `viewer` sees it; left out: deleted or unknown posts, posts whose author's
        account is gone, and posts `viewer` may not see (graph_svc's visibility rule: a private
        account they do not follow, a block either way; `viewer` None: a service acting for no user,
        which sees all). `fresh` bypasses the hydration cache. INVALID_ARGUMENT naming `post_ids` for
        more than MAX_FEED_ITEMS ids."""
        if len(post_ids) > MAX_FEED_ITEMS:
            raise invalid_field("post_ids", f"at most {MAX_FEED_ITEMS} ids per call, got {len(post_ids)}")
        # The ids are known up front: engagement is read while the posts are rendered (only what is
        # served is sent; counts of a post left out are read for nothing, never shown).
        rendered, engagement = await asyncio.gather(
            self._hydrator.rendered(post_ids, fresh=fresh), self._engagement.of(post_ids, viewer)
        )
        found = [rendered[p] for p in post_ids if p in rendered]
        if viewer is not None:
            others = [i.author_id for i in found if i.author_id != viewer]
            allowed = await self._visibility.visible(viewer, others) if others else set()
            found = [i for i in found if i.author_id == viewer or i.author_id in allowed]
        return RenderedPage(found, engagement)

    async def _candidates(
        self, user_id: int, celebrities: list[int], before: int | None, fetch: int, *, touch: bool = False
    ) -> tuple[list[int], bool]:
        """The newest `fetch` distinct post ids older than `before` across inbox and celebrity outboxes,
        and whether every timeline ran out; `touch` refreshes the inbox's TTL in the same round trip."""
        heads = await self._celebrity_heads(celebrities)
        pages: list[list[int] | None] = []
        deep = []  # celebrities whose kept head does not reach far enough below `before`
        for author in celebrities:
            head = heads[author]
            older = head if before is None else [p for p in head if p < before]
            if len(older) >= fetch or len(head) < _HEAD:  # a head shorter than _HEAD is the whole outbox
                pages.append(older[:fetch])
            else:
                deep.append(author)
        inbox = self._timelines.inbox_key(user_id)
        keys = [inbox, *(self._timelines.outbox_key(a) for a in deep)]
        read = await self._timelines.pages(keys, before, fetch, touch=[inbox] if touch else ())
        if read[0] is None:
            await self._rebuild_inbox(user_id, celebrities)
        for author, page in zip(deep, read[1:], strict=True):
            if page is None:
                await self._outboxes.rebuild(author)
        if any(page is None for page in read):
            read = await self._timelines.pages(keys, before, fetch)
        pages += read
        merged: list[int] = []
        for post_id in heapq.merge(*(page or [] for page in pages), reverse=True):
            if not merged or merged[-1] != post_id:  # an author may sit in the inbox and be a celebrity
                merged.append(post_id)
            if len(merged) == fetch:
                break
        exhausted = all(page is None or len(page) < fetch for page in pages) and len(merged) < fetch
        return merged, exhausted

    async def _celebrity_heads(self, celebrities: list[int]) -> dict[int, list[int]]:
        """The newest _HEAD post ids of each celebrity, from memory or (once per celebrity_head_seconds)
        one pipeline for all the missing ones; a cold outbox is rebuilt."""
        heads = {a: head for a in celebrities if (head := self._heads.get(a)) is not None}
        missing = [a for a in celebrities if a not in heads]
        if missing:
            pages = await self._timelines.pages([self._timelines.outbox_key(a) for a in missing], None, _HEAD)
            for author, page in zip(missing, pages, strict=True):
                head = page if page is not None else (await self._outboxes.rebuild(author))[:_HEAD]
                heads[author] = self._heads[author] = head
        return heads

    async def _celebrity_followees(self, user_id: int) -> list[int]:
        cached = self._celebrities.get(user_id)
        if cached is None:
            forgets = self._followee_forgets
            response = await self._graph.ListCelebrityFollowees(
                graph_pb2.ListCelebrityFolloweesRequest(user_id=user_id, threshold=self._threshold),
                timeout=self._timeout,
            )
            cached = sorted(response.user_ids)
            if self._followees_forgotten.get(user_id, 0) <= forgets:  # else a follow may have changed it
                self._celebrities[user_id] = cached
        return cached

    def forget_celebrity_followees(self, user_id: int) -> None:
        """Drops `user_id`'s cached celebrity followees (they followed or unfollowed someone), so their
        next page asks graph_svc again instead of waiting out celebrity_cache_seconds; a list being
        read meanwhile is not cached."""
        self._followee_forgets += 1
        self._followees_forgotten[user_id] = self._followee_forgets
        self._celebrities.pop(user_id, None)

    async def _rebuild_inbox(self, user_id: int, celebrities: Sequence[int]) -> None:
        """Builds the inbox from the outboxes of the user and every non-celebrity followee."""
        REBUILDS.inc()
        response = await self._graph.ListFolloweeIds(
            graph_pb2.ListFolloweeIdsRequest(user_id=user_id), timeout=self._timeout
        )
        authors = sorted((set(response.followee_ids) - set(celebrities)) | {user_id})
        started_ms = int(time.time() * 1000)
        await self._timelines.build_inbox(user_id, await self._newest_of(authors))
        # A post fanned out while we read the outboxes found no live inbox and was skipped; it is in
        # its author's outbox by then (outbox first, then inboxes), so a second read catches it.
        recent = [p for p in await self._newest_of(authors) if timestamp_ms(p) >= started_ms - 1000]
        if recent:
            await self._timelines.add_to_inbox_if_live(user_id, recent)

    async def _newest_of(self, authors: Sequence[int]) -> list[int]:
        """The newest feed_max post ids over the authors' outboxes (cold outboxes rebuilt from posts)."""
        keys = [self._timelines.outbox_key(a) for a in authors]
        pages = await self._timelines.pages(keys, None, self._timelines.feed_max)
        cold = [a for a, page in zip(authors, pages, strict=True) if page is None]
        semaphore = asyncio.Semaphore(_REBUILD_CONCURRENCY)

        async def rebuild(author: int) -> list[int]:
            async with semaphore:
                return await self._outboxes.rebuild(author)

        rebuilt = await asyncio.gather(*(rebuild(a) for a in cold))
        streams = [page for page in pages if page is not None] + list(rebuilt)
        return heapq.nlargest(self._timelines.feed_max, {p for stream in streams for p in stream})
