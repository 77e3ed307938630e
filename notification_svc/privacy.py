"""Who may be told: graph_svc's blocks, mutes and visibility rule, asked at write time and cached
briefly.

A recipient is not told about someone they block, who blocks them, or whom they mute
(GetViewerFilters, one call per recipient, cached), nor about a post they may not see
(CheckVisibility of the post's author, cached per recipient). Staleness: an entry is reused for
`ttl_seconds`; the `graph.*` watch (mesh.bus.Bus.watch) drops a user's entries as soon as a block,
unblock, mute, unmute, follow, unfollow or privacy change names them, so only a missed message (the
watch is at-most-once across a NATS restart) leaves an entry stale, for at most the TTL. A block
also removes what was already written (the `graph.blocked` consumer). graph_svc's failures
(UNAVAILABLE, DEADLINE_EXCEEDED) pass through as its gRPC error, so the event is retried.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import TTLCache
from google.protobuf.message import Message

from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc


@dataclass(frozen=True)
class _Filters:
    blocked: frozenset[int]
    muted: frozenset[int]


class Privacy:
    def __init__(
        self, graph: graph_pb2_grpc.GraphServiceStub, *, ttl_seconds: float, max_items: int, timeout: float
    ) -> None:
        self._graph = graph
        self._timeout = timeout
        self._filters: TTLCache[int, _Filters] = TTLCache(max_items, ttl_seconds)
        # viewer -> author -> whether the viewer may see the author's posts.
        self._visible: TTLCache[int, dict[int, bool]] = TTLCache(max_items, ttl_seconds)

    async def may_tell(self, recipient_id: int, actor_id: int, post_author_id: int = 0) -> bool:
        """Whether `recipient_id` may be told about what `actor_id` did (on a post by
        `post_author_id`, 0 when no post is involved)."""
        filters = await self._filters_of(recipient_id)
        if actor_id in filters.blocked or actor_id in filters.muted:
            return False
        if not post_author_id or post_author_id == recipient_id:
            return True
        if post_author_id in filters.blocked:
            return False
        return await self._sees(recipient_id, post_author_id)

    async def _filters_of(self, user_id: int) -> _Filters:
        found = self._filters.get(user_id)
        if found is None:
            response = await self._graph.GetViewerFilters(
                graph_pb2.GetViewerFiltersRequest(viewer_id=user_id), timeout=self._timeout
            )
            found = _Filters(frozenset(response.blocked_user_ids), frozenset(response.muted_user_ids))
            self._filters[user_id] = found
        return found

    async def _sees(self, viewer_id: int, author_id: int) -> bool:
        known = self._visible.get(viewer_id)
        if known is not None and author_id in known:
            return known[author_id]
        response = await self._graph.CheckVisibility(
            graph_pb2.CheckVisibilityRequest(viewer_id=viewer_id, author_ids=[author_id]), timeout=self._timeout
        )
        visible = all(r.visibility == graph_pb2.VISIBILITY_VISIBLE for r in response.results)
        self._visible.setdefault(viewer_id, {})[author_id] = visible
        return visible

    def forget(self, *user_ids: int) -> None:
        """Drops what is cached about the users as recipients (their blocks, mutes, what they see)."""
        for user_id in user_ids:
            self._filters.pop(user_id, None)
            self._visible.pop(user_id, None)

    async def on_graph_event(self, event: Message) -> None:
        """The `graph.*` watch: a block, mute, follow or privacy change makes the cache of everyone it
        names stale. A change of privacy concerns every viewer of the user: the visibility cache goes."""
        if isinstance(event, events_pb2.UserPrivacyChanged):
            self._visible.clear()
            return
        if isinstance(event, events_pb2.UserBlocked | events_pb2.UserUnblocked):
            self.forget(event.blocker_id, event.blocked_id)
        elif isinstance(event, events_pb2.UserMuted | events_pb2.UserUnmuted):
            self.forget(event.muter_id, event.muted_id)
        elif isinstance(event, events_pb2.UserFollowed | events_pb2.UserUnfollowed):
            self.forget(event.follower_id, event.followee_id)
