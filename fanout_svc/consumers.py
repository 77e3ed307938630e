"""One handler per event type. Each is idempotent: handling an event twice, or crashing between
the Redis write and the ack, leaves the same state. The bus decodes the events (mesh.bus)."""

from __future__ import annotations

import logging

import grpc
from prometheus_client import Counter, Histogram

from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from mesh.events import PoisonMessage
from timelines.outboxes import OutboxLoader
from timelines.store import Timelines

log = logging.getLogger("fanout_svc")

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
        if await self._follower_count(author) > self._threshold:
            # O(1) writes: followers merge this outbox when they read.
            await self._timelines.mark_pulled(author, post)
            return
        with FANOUT_SECONDS.time():
            if not await self._catch_up(author):
                await self._push_to_followers(author, [post])

    async def _push_to_followers(self, author: int, posts: list[int]) -> None:
        request = graph_pb2.StreamFollowerIdsRequest(user_id=author, batch_size=self._batch)
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

    async def on_follow_changed(self, event: events_pb2.UserFollowed | events_pb2.UserUnfollowed) -> None:
        """UserFollowed / UserUnfollowed: makes the follower's inbox match the follow as it is *now*
        (asked from graph_svc), so events handled out of order or twice converge to the same state."""
        follower, followee = event.follower_id, event.followee_id
        try:
            response = await self._graph.ListFolloweeIds(
                graph_pb2.ListFolloweeIdsRequest(user_id=follower), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise PoisonMessage(f"follower {follower} does not exist") from exc
            raise
        posts = await self._outboxes.newest(followee, self._timelines.outbox_max)
        if followee in response.followee_ids:
            await self._timelines.add_to_inbox_if_live(follower, posts)
        else:
            await self._timelines.remove_from_inbox(follower, posts)
            # An unfollow can take a celebrity back under the threshold.
            await self._catch_up(followee)

    async def _follower_count(self, author_id: int) -> int:
        try:
            response = await self._graph.GetFollowerCount(
                graph_pb2.GetFollowerCountRequest(user_id=author_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise PoisonMessage(f"author {author_id} does not exist") from exc
            raise
        return response.follower_count
