"""What engagement_svc knows of posts: whether one exists, who wrote it, and whether a caller may
see it (graph_svc's visibility rule, through the shared `visibility` client), asked and cached.

Staleness: a post is remembered for `ttl_seconds` after post_svc last confirmed it. The process
watches `posts.deleted` and forgets a deleted post at once, so only a missed message (the watch is
at-most-once) lets a deleted post look alive, for at most the TTL. Writes in that window are not
lost in the schema: the `posts.deleted` consumer purges them, and once it has run, every write to
the post is refused in its own transaction (`deleted_posts`), whatever this cache says. The author of
a post never changes, so a cached author is never wrong. Unknown posts are not cached.
"""

from __future__ import annotations

import asyncio

from cachetools import TTLCache

from engagement_svc import repository as repo
from glimpse.events.v1 import events_pb2
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.db import Database
from mesh.errors import NotFound, invalid_field
from visibility import Visibility


def post_not_found(post_id: int) -> NotFound:
    return NotFound(f"post {post_id} does not exist or was deleted", reason="POST_NOT_FOUND")


class PostDirectory:
    def __init__(
        self,
        db: Database,
        posts: post_pb2_grpc.PostServiceStub,
        *,
        visibility: Visibility,
        ttl_seconds: float,
        max_items: int,
        timeout: float,
    ) -> None:
        self._db = db
        self._posts = posts
        self._visibility = visibility
        self._timeout = timeout
        self._authors: TTLCache[int, int] = TTLCache(max_items, ttl_seconds)
        # One post_svc call per post however many requests miss the cache at once (a viral post's
        # first second): the others await the same task, which no caller's cancellation stops.
        self._lookups: dict[int, asyncio.Task[int | None]] = {}

    async def author_of(self, post_id: int, viewer_id: int | None) -> int:
        """The author of a live post that `viewer_id` may see (None: a service acting for no user).
        INVALID_ARGUMENT (post_id) for an id that cannot be a post's; NOT_FOUND (POST_NOT_FOUND) for
        a post that never existed or was deleted, or whose author's content the viewer may not see (a
        private account they do not follow, a block either way: as if it did not exist); post_svc's
        and graph_svc's failures (UNAVAILABLE, DEADLINE_EXCEEDED) pass through as their gRPC error."""
        author = await self._author(post_id)
        if viewer_id is not None and viewer_id != author and not await self._visibility.visible(viewer_id, [author]):
            raise post_not_found(post_id)
        return author

    async def blocked_for(self, viewer_id: int | None) -> frozenset[int]:
        """The users who block `viewer_id` or whom they block: their likes and comments are left out
        of what the viewer is shown, as if they did not exist."""
        if viewer_id is None:
            return frozenset()
        return (await self._visibility.home_filters(viewer_id)).blocked

    async def _author(self, post_id: int) -> int:
        if post_id <= 0:
            raise invalid_field("post_id", "must be a post id (a positive integer)")
        author = self._authors.get(post_id)
        if author is not None:
            return author
        lookup = self._lookups.get(post_id)
        if lookup is None:
            lookup = asyncio.create_task(self._look_up(post_id))
            self._lookups[post_id] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(post_id, None))
        found = await asyncio.shield(lookup)
        if found is None:
            raise post_not_found(post_id)
        return found

    async def _look_up(self, post_id: int) -> int | None:
        async with self._db.read_only() as session:
            if await repo.is_deleted(session, post_id):
                return None
        response = await self._posts.BatchGetPosts(
            post_pb2.BatchGetPostsRequest(post_ids=[post_id]), timeout=self._timeout
        )
        if not response.posts:
            return None
        author = int(response.posts[0].author_id)
        self._authors[post_id] = author
        return author

    def forget(self, post_id: int) -> None:
        self._authors.pop(post_id, None)

    async def on_post_deleted(self, event: events_pb2.PostDeleted) -> None:
        """The `posts.deleted` watch: the post is gone for this process from now on."""
        self.forget(event.post_id)
