"""Outboxes read through to post_svc: a cold outbox (Redis lost it, or the author has not posted
since it expired) is rebuilt from the source of truth."""

from __future__ import annotations

from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.names import user_name
from timelines.store import Timelines


class OutboxLoader:
    """Reads outboxes, rebuilding a cold one (Redis lost it, or the author never posted since) from
    post_svc, the source of truth."""

    def __init__(self, timelines: Timelines, posts: post_pb2_grpc.PostServiceStub, *, timeout: float) -> None:
        self._timelines = timelines
        self._posts = posts
        self._timeout = timeout

    async def newest(self, author_id: int, limit: int) -> list[int]:
        """The author's newest post ids (at most `limit`, within the outbox cap)."""
        page = await self._timelines.page(self._timelines.outbox_key(author_id), None, limit)
        if page is not None:
            return page
        return (await self.rebuild(author_id))[:limit]

    async def rebuild(self, author_id: int) -> list[int]:
        """Loads the author's newest posts (up to the outbox cap) into a live outbox; returns them."""
        ids: list[int] = []
        token = ""
        while len(ids) < self._timelines.outbox_max:
            response = await self._posts.ListPosts(
                post_pb2.ListPostsRequest(parent=user_name(author_id), page_size=100, page_token=token),
                timeout=self._timeout,
            )
            ids += [post.id for post in response.posts]
            token = response.next_page_token
            if not token:
                break
        ids = ids[: self._timelines.outbox_max]
        await self._timelines.build_outbox(author_id, ids)
        return ids

    async def add(self, author_id: int, post_id: int) -> None:
        """Adds a new post to the author's outbox, rebuilding it (with the post) if it was cold."""
        if not await self._timelines.add_to_outbox(author_id, post_id):
            await self.rebuild(author_id)
