"""One handler per event type. Each is idempotent: handling an event twice, or crashing between
the Redis write and the ack, leaves the same state. The bus decodes the events (mesh.bus)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from prometheus_client import Counter, Histogram

from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from mesh.events import PoisonMessage
from timelines.outboxes import OutboxLoader
from timelines.store import Timelines

log = logging.getLogger("fanout_svc")

RelationshipEvent = (
    events_pb2.UserFollowed
    | events_pb2.UserUnfollowed
    | events_pb2.UserBlocked
    | events_pb2.UserUnblocked
    | events_pb2.UserMuted
    | events_pb2.UserUnmuted
)

Reply = TypeVar("Reply")

INBOX_WRITES = Counter("glimpse_fanout_inbox_writes_total", "Posts written into live inboxes.")
FANOUT_SECONDS = Histogram(
    "glimpse_fanout_post_seconds",
    "Time to push one post into its author's followers' inboxes.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class FanoutHandlers:
    def __init__(
        self,
        timelines: Timelines,
        outboxes: OutboxLoader,
        graph: graph_pb2_grpc.GraphServiceStub,
        *,
        celebrity_threshold: int,
        follower_batch: int,
        timeout: float,
    ) -> None:
        self._timelines = timelines
        self._outboxes = outboxes
        self._graph = graph
        self._threshold = celebrity_threshold
        self._batch = follower_batch
        self._timeout = timeout

    async def on_post_created(self, event: events_pb2.PostCreated) -> None:
        """Outbox always; the author's own inbox; followers' live inboxes unless the author is a celebrity."""
        author, post = event.author_id, event.post_id
        await self._outboxes.add(author, post)
        await self._timelines.add_to_inbox_if_live(author, [post])
        # One call for most posts: the count, and the audience itself when it fits in one batch.
        audience = await self._graph_call(
            self._graph.GetAudience, graph_pb2.GetAudienceRequest(user_id=author, max_ids=self._batch), author
        )
        if audience.follower_count > self._threshold:
            # O(1) writes: followers merge this outbox when they read.
            await self._timelines.mark_pulled(author, post)
            return
        with FANOUT_SECONDS.time():
            if await self._catch_up(author):
                return
            if audience.complete:
                INBOX_WRITES.inc(await self._timelines.push([post], audience.follower_ids))
            else:
                await self._push_to_followers(author, [post])

    async def _push_to_followers(self, author: int, posts: list[int]) -> None:
        # audience_only: followers who mute the author, or block or are blocked by them, are left out
        # by graph_svc in the same query (its FilterAudience rule).
        request = graph_pb2.StreamFollowerIdsRequest(user_id=author, batch_size=self._batch, audience_only=True)
        async for page in self._graph.StreamFollowerIds(request, timeout=self._timeout):
            INBOX_WRITES.inc(await self._timelines.push(posts, page.follower_ids))

    async def _catch_up(self, author: int) -> bool:
        """If the author posted as a celebrity and is one no longer, pushes their recent posts (which
        followers stopped pulling) to the followers' inboxes; returns whether it did."""
        if not await self._timelines.was_pulled(author):
            return False
        if await self._follower_count(author) > self._threshold:
            return False
        await self._push_to_followers(author, await self._outboxes.newest(author, self._timelines.feed_max))
        await self._timelines.clear_pulled(author)
        return True

    async def on_post_deleted(self, event: events_pb2.PostDeleted) -> None:
        """Drops the post from the outbox and the author's inbox; readers filter it from other inboxes."""
        await self._timelines.remove_from_outbox(event.author_id, event.post_id)
        await self._timelines.remove_from_inbox(event.author_id, [event.post_id])

    async def on_relationship_changed(self, event: RelationshipEvent) -> None:
        """Every graph.* event the fan-out consumes, in stream order: dispatched by type."""
        if isinstance(event, events_pb2.UserBlocked | events_pb2.UserUnblocked):
            await self.on_block_changed(event)
        elif isinstance(event, events_pb2.UserMuted | events_pb2.UserUnmuted):
            await self.on_mute_changed(event)
        else:
            await self.on_follow_changed(event)

    async def on_follow_changed(self, event: events_pb2.UserFollowed | events_pb2.UserUnfollowed) -> None:
        """UserFollowed / UserUnfollowed: makes the follower's inbox match the relationship as it is now."""
        if not await self._reconcile(event.follower_id, event.followee_id):
            # An unfollow can take a celebrity back under the threshold.
            await self._catch_up(event.followee_id)

    async def on_block_changed(self, event: events_pb2.UserBlocked | events_pb2.UserUnblocked) -> None:
        """UserBlocked / UserUnblocked: each one's posts leave (or, if ever allowed again, return to)
        the other's inbox. Blocking also removed the follows both ways, with their own events."""
        await self._reconcile(event.blocker_id, event.blocked_id)
        await self._reconcile(event.blocked_id, event.blocker_id)

    async def on_mute_changed(self, event: events_pb2.UserMuted | events_pb2.UserUnmuted) -> None:
        """UserMuted / UserUnmuted: the muted user's posts leave (return to) the muter's inbox."""
        await self._reconcile(event.muter_id, event.muted_id)

    async def _reconcile(self, reader: int, author: int) -> bool:
        """Makes the reader's inbox hold the author's recent posts exactly when the reader should see
        them at home *now* (follows the author, and neither mutes nor blocks apply), asked from
        graph_svc, so relationship events handled out of order or twice converge to the same state.
        Returns whether the posts belong there. PoisonMessage if the reader does not exist."""
        try:
            followees = await self._graph.ListFolloweeIds(
                graph_pb2.ListFolloweeIdsRequest(user_id=reader), timeout=self._timeout
            )
            wanted = author in followees.followee_ids
            if wanted:
                hidden = await self._graph.FilterAudience(
                    graph_pb2.FilterAudienceRequest(author_id=author, user_ids=[reader]), timeout=self._timeout
                )
                wanted = reader not in hidden.excluded_user_ids
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise PoisonMessage(f"user {reader} does not exist") from exc
            raise
        posts = await self._outboxes.newest(author, self._timelines.outbox_max)
        if wanted:
            await self._timelines.add_to_inbox_if_live(reader, posts)
        else:
            await self._timelines.remove_from_inbox(reader, posts)
        return wanted

    async def _follower_count(self, author_id: int) -> int:
        request = graph_pb2.GetFollowerCountRequest(user_id=author_id)
        return (await self._graph_call(self._graph.GetFollowerCount, request, author_id)).follower_count

    async def _graph_call(self, method: Callable[..., Awaitable[Reply]], request: object, author_id: int) -> Reply:
        """`method(request)` on graph_svc; PoisonMessage if the author does not exist."""
        try:
            return await method(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise PoisonMessage(f"author {author_id} does not exist") from exc
            raise
