"""The one visibility rule, as every content-serving service reads it: a cached client of graph_svc.

graph_svc owns the rule ("may viewer V see author A's content?": the owner always; BLOCKED if either
blocks the other; NOT_FOLLOWER_OF_PRIVATE if A is private and V does not follow A; else VISIBLE)
and each user's home-feed filters (whom they block, are blocked by, or mute). This library is how
post_svc, feed_svc, engagement_svc and notification_svc ask it: in batch, cached per viewer.

Staleness: an answer is reused for `ttl_seconds` at most; `watch(bus)` drops a user's entries as soon
as a follow, unfollow, block, unblock, mute or unmute names them, and every entry on a privacy change,
so only a missed message (a watch is at-most-once across a NATS restart of the process) leaves an
entry stale, for at most the TTL. graph_svc's failures pass through as its gRPC error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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

    async def of(self, viewer_id: int | None, author_ids: Iterable[int]) -> dict[int, int]:
        """author id -> graph_pb2.Visibility for `viewer_id` (None or 0: anonymous, who sees public
        accounts only), one CheckVisibility call per 100 authors not cached yet.

        New answers join the viewer's cached ones (they expire with them, within the TTL), so calls
        in flight together for one viewer (a client opening several posts at once) keep every answer:
        replacing the entry would drop a concurrent call's. Measured by bench post_view (warm cache)."""
        viewer = viewer_id or 0
        wanted = list(author_ids)
        known = self._seen.get(viewer) or {}
        missing = [a for a in dict.fromkeys(wanted) if a not in known]
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
        """Drops what is cached about the users as viewers (their blocks, mutes, what they see)."""
        self._forgets += 1
        for user_id in user_ids:
            self._filters.pop(user_id, None)
            self._seen.pop(user_id, None)
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
