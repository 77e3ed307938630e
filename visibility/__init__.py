"""The one visibility rule, as every content-serving service reads it: a cached client of graph_svc.

graph_svc owns the rule ("may viewer V see author A's content?": the owner always; BLOCKED if either
blocks the other; NOT_FOLLOWER_OF_PRIVATE if A is private and V does not follow A; else VISIBLE)
and each user's home-feed filters (whom they block, are blocked by, or mute). This library is how
post_svc, feed_svc, engagement_svc and notification_svc ask it: in batch, cached per viewer.

A public author that a second viewer asks about within the TTL (a viral post's likers and viewers
are mostly new viewer-author pairs) has their audience read once instead: everyone blocked either way
with them (GetViewerFilters of the author: blocks are symmetric in the rule) and whether they are
public (CheckVisibility as anonymous). Any later viewer of that author is then answered in process:
the owner and everyone outside the blocked set see them. A private author's answer depends on each
viewer's follow, so it is always asked.

Staleness: an answer (or audience) is reused for `ttl_seconds` at most; `watch(bus)` drops a user's
entries as soon as a follow, unfollow, block, unblock, mute or unmute names them, and every entry on a
privacy change, so only a missed message (a watch is at-most-once across a NATS restart of the process)
leaves an entry stale, for at most the TTL. graph_svc's failures pass through as its gRPC error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass

from cachetools import TTLCache
from google.protobuf.message import Message

from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from mesh.bus import Bus
from mesh.events import (
    USER_BLOCKED,
    USER_FOLLOWED,
    USER_MUTED,
    USER_PRIVACY_CHANGED,
    USER_UNBLOCKED,
    USER_UNFOLLOWED,
    USER_UNMUTED,
)

VISIBLE = graph_pb2.VISIBILITY_VISIBLE
NOT_FOLLOWER_OF_PRIVATE = graph_pb2.VISIBILITY_NOT_FOLLOWER_OF_PRIVATE
BLOCKED = graph_pb2.VISIBILITY_BLOCKED
AUTHOR_NOT_FOUND = graph_pb2.VISIBILITY_AUTHOR_NOT_FOUND
# CheckVisibility's batch limit.
_BATCH = 100
# An author blocked either way with more users than this is not answered in process (the whole list is
# read once per TTL): every viewer of theirs is asked about, as for a private author.
AUDIENCE_MAX_BLOCKED = 10_000


@dataclass(frozen=True, slots=True)
class _Audience:
    """Whether an author is public (existing, not private), and who is blocked either way with them."""

    public: bool
    blocked: frozenset[int]

    def verdict(self, viewer: int, author: int) -> int:
        """The rule for a public author's `viewer`: the owner, and everyone not blocked either way, see."""
        return BLOCKED if viewer in self.blocked and viewer != author else VISIBLE


@dataclass(frozen=True)
class HomeFilters:
    """Authors whose posts stay out of a viewer's home feed: blocked either way, or muted."""

    blocked: frozenset[int]
    muted: frozenset[int]

    def hides(self, author_id: int) -> bool:
        return author_id in self.blocked or author_id in self.muted


class Visibility:
    def __init__(
        self,
        graph: graph_pb2_grpc.GraphServiceStub,
        *,
        ttl_seconds: float = 10.0,
        max_viewers: int = 100_000,
        timeout: float,
    ) -> None:
        self._graph = graph
        self._timeout = timeout
        self._filters: TTLCache[int, HomeFilters] = TTLCache(max_viewers, ttl_seconds or 1e-9)
        # viewer (0: anonymous) -> author -> graph_pb2.Visibility
        self._seen: TTLCache[int, dict[int, int]] = TTLCache(max_viewers, ttl_seconds or 1e-9)
        # Forgets so far, and the count at each viewer's last one (every viewer's: `_all_forgotten`).
        # An answer fetched while a forget of its viewer happened is returned but not cached: it may
        # predate the block or mute that caused the forget.
        self._forgets = 0
        self._forgotten_at: TTLCache[int, int] = TTLCache(max_viewers, max(ttl_seconds, timeout))
        self._all_forgotten = 0
        # author -> the last viewer that missed the cache on them; author -> their audience, and the
        # reads of one in flight (every viewer that misses meanwhile awaits the same read).
        self._missed_by: TTLCache[int, int] = TTLCache(max_viewers, ttl_seconds or 1e-9)
        self._audiences: TTLCache[int, _Audience] = TTLCache(max_viewers, ttl_seconds or 1e-9)
        self._audience_reads: dict[int, asyncio.Task[_Audience]] = {}

    async def of(self, viewer_id: int | None, author_ids: Iterable[int]) -> dict[int, int]:
        """author id -> graph_pb2.Visibility for `viewer_id` (None or 0: anonymous, who sees public
        accounts only), one CheckVisibility call per 100 authors not cached yet, except public authors
        another viewer asked about lately, answered from their audience (read once per TTL: one
        GetViewerFilters and one CheckVisibility call, shared by the viewers that miss meanwhile).

        New answers join the viewer's cached ones (they expire with them, within the TTL), so calls
        in flight together for one viewer (a client opening several posts at once) keep every answer:
        replacing the entry would drop a concurrent call's. Measured by bench post_view (warm cache)."""
        viewer = viewer_id or 0
        wanted = list(author_ids)
        known = self._seen.get(viewer) or {}
        missing = [a for a in dict.fromkeys(wanted) if a not in known]
        if not missing:
            return {a: known[a] for a in wanted if a in known}
        decided = await self._by_audience(viewer, missing)
        if decided:
            known = {**known, **decided}
            missing = [a for a in missing if a not in decided]
            if not missing:
                return {a: known[a] for a in wanted if a in known}
        started = self._forgets
        fetched: dict[int, int] = {}
        for start in range(0, len(missing), _BATCH):
            response = await self._graph.CheckVisibility(
                graph_pb2.CheckVisibilityRequest(viewer_id=viewer, author_ids=missing[start : start + _BATCH]),
                timeout=self._timeout,
            )
            for result in response.results:
                fetched[result.author_id] = result.visibility
        if self._unchanged_since(viewer, started):
            entry = self._seen.get(viewer)
            if entry is None:
                self._seen[viewer] = dict(fetched)
            else:
                entry.update(fetched)
        answers = {**known, **fetched}
        return {a: answers[a] for a in wanted if a in answers}

    async def _by_audience(self, viewer: int, authors: list[int]) -> dict[int, int]:
        """Verdicts for `viewer` on those of `authors` whose audience decides them: public authors that
        another viewer missed on within the TTL (their audience is read now if it is not cached). The
        others remember `viewer` as the last to miss on them."""
        decided: dict[int, int] = {}
        reads: dict[int, Awaitable[_Audience]] = {}
        for author in authors:
            audience = self._audiences.get(author)
            if audience is not None:
                if audience.public:
                    decided[author] = audience.verdict(viewer, author)
                continue
            missed_by = self._missed_by.get(author)
            self._missed_by[author] = viewer
            if missed_by is not None and missed_by != viewer:
                read = self._audience_reads.get(author)
                if read is None:
                    read = self._audience_reads[author] = asyncio.create_task(self._read_audience(author))
                # Shielded: one caller's cancellation does not cancel the read the others await.
                reads[author] = asyncio.shield(read)
        for author, pending in reads.items():
            audience = await pending
            if audience.public:
                decided[author] = audience.verdict(viewer, author)
        return decided

    async def _read_audience(self, author: int) -> _Audience:
        """`author`'s audience from graph_svc (two calls at once), cached unless a forget of the author
        happened meanwhile (it may predate a block or a privacy change)."""
        started = self._forgets
        try:
            filters, anonymous = await asyncio.gather(
                self._graph.GetViewerFilters(
                    graph_pb2.GetViewerFiltersRequest(viewer_id=author), timeout=self._timeout
                ),
                self._graph.CheckVisibility(
                    graph_pb2.CheckVisibilityRequest(viewer_id=0, author_ids=[author]), timeout=self._timeout
                ),
            )
        finally:
            # Unless a forget replaced it meanwhile (then the entry is gone or a newer read's).
            if self._audience_reads.get(author) is asyncio.current_task():
                del self._audience_reads[author]
        public = anonymous.results[0].visibility == VISIBLE and len(filters.blocked_user_ids) <= AUDIENCE_MAX_BLOCKED
        audience = _Audience(public, frozenset(filters.blocked_user_ids) if public else frozenset())
        if self._unchanged_since(author, started):
            self._audiences[author] = audience
        return audience

    async def visible(self, viewer_id: int | None, author_ids: Sequence[int]) -> set[int]:
        """The authors of `author_ids` whose content `viewer_id` may see."""
        verdicts = await self.of(viewer_id, author_ids)
        return {a for a, verdict in verdicts.items() if verdict == VISIBLE}

    async def home_filters(self, viewer_id: int) -> HomeFilters:
        """Whom `viewer_id`'s home feed leaves out (one GetViewerFilters call when not cached)."""
        found = self._filters.get(viewer_id)
        if found is None:
            started = self._forgets
            response = await self._graph.GetViewerFilters(
                graph_pb2.GetViewerFiltersRequest(viewer_id=viewer_id), timeout=self._timeout
            )
            found = HomeFilters(frozenset(response.blocked_user_ids), frozenset(response.muted_user_ids))
            if self._unchanged_since(viewer_id, started):
                self._filters[viewer_id] = found
        return found

    def forget(self, *user_ids: int) -> None:
        """Drops what is cached about the users as viewers (their blocks, mutes, what they see) and as
        authors (their audience)."""
        self._forgets += 1
        for user_id in user_ids:
            self._filters.pop(user_id, None)
            self._seen.pop(user_id, None)
            self._audiences.pop(user_id, None)
            # A read in flight may predate the change: viewers asking from now on start their own.
            self._audience_reads.pop(user_id, None)
            self._forgotten_at[user_id] = self._forgets

    def _unchanged_since(self, viewer: int, forgets: int) -> bool:
        """Whether nothing about `viewer` was forgotten after the count of forgets was `forgets`."""
        return self._forgotten_at.get(viewer, 0) <= forgets and self._all_forgotten <= forgets

    async def on_graph_event(self, event: Message) -> None:
        """A relationship change makes the cache of everyone it names stale; a privacy change concerns
        every viewer of the user, so every visibility answer goes."""
        if isinstance(event, events_pb2.UserPrivacyChanged):
            self._forgets += 1
            self._all_forgotten = self._forgets
            self._seen.clear()
            self._audiences.clear()
            self._audience_reads.clear()
        elif isinstance(event, events_pb2.UserBlocked | events_pb2.UserUnblocked):
            self.forget(event.blocker_id, event.blocked_id)
        elif isinstance(event, events_pb2.UserMuted | events_pb2.UserUnmuted):
            self.forget(event.muter_id, event.muted_id)
        elif isinstance(event, events_pb2.UserFollowed | events_pb2.UserUnfollowed):
            self.forget(event.follower_id, event.followee_id)

    async def watch(self, bus: Bus) -> None:
        """Keeps the cache fresh from the graph's events (call once at start-up)."""
        await bus.watch(
            [
                USER_FOLLOWED,
                USER_UNFOLLOWED,
                USER_BLOCKED,
                USER_UNBLOCKED,
                USER_MUTED,
                USER_UNMUTED,
                USER_PRIVACY_CHANGED,
            ],
            self.on_graph_event,
        )
