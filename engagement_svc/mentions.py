"""@mentions: which mentioned usernames belong to someone (graph_svc says), and the UserMentioned
events announcing them. Parsing is usertext's (graph_svc's username rules)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc

from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from visibility import Visibility


class MentionResolver:
    def __init__(self, graph: graph_pb2_grpc.GraphServiceStub, visibility: Visibility, *, timeout: float) -> None:
        self._graph = graph
        self._visibility = visibility
        self._timeout = timeout

    async def user_ids(self, usernames: Sequence[str], *, actor_id: int) -> list[int]:
        """The ids of the users called `usernames` (normalised, at most usertext.MENTIONS_MAX), in
        order, each once; left out: names nobody has, and users who block `actor_id` or whom the
        actor blocks (a mention between them has no effect). One LookupUser per name, all at once.
        graph_svc's other failures (UNAVAILABLE, DEADLINE_EXCEEDED) pass through as its gRPC error."""
        found = await asyncio.gather(*(self._look_up(name) for name in usernames))
        blocked = (await self._visibility.home_filters(actor_id)).blocked
        return list(dict.fromkeys(u for u in found if u is not None and u not in blocked))

    async def _look_up(self, username: str) -> int | None:
        try:
            user = await self._graph.LookupUser(graph_pb2.LookupUserRequest(username=username), timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return int(user.id)


def mention_events(
    user_ids: Sequence[int], *, actor_id: int, post_id: int, comment_id: int = 0
) -> list[events_pb2.UserMentioned]:
    """One UserMentioned per mentioned user except the actor (nobody is told they mentioned
    themselves); `comment_id` 0 for a caption."""
    return [
        events_pb2.UserMentioned(mentioned_user_id=u, actor_id=actor_id, post_id=post_id, comment_id=comment_id)
        for u in user_ids
        if u != actor_id
    ]
