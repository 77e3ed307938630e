"""What notification_svc asks about content it is not told in events: a post's author (post_svc,
cached: an author never changes) and a comment's text (engagement_svc, never cached: it is read once
per mention in a comment, and a deleted comment must not be announced)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from cachetools import LRUCache

from glimpse.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc

# The first characters of a comment a notification shows.
PREVIEW_CHARACTERS = 100


@dataclass(frozen=True)
class CommentSummary:
    post_id: int
    preview: str


class ContentDirectory:
    def __init__(
        self,
        posts: post_pb2_grpc.PostServiceStub,
        engagement: engagement_pb2_grpc.EngagementServiceStub,
        *,
        max_authors: int,
        timeout: float,
    ) -> None:
        self._posts = posts
        self._engagement = engagement
        self._timeout = timeout
        self._authors: LRUCache[int, int] = LRUCache(max_authors)

    async def author_of(self, post_id: int) -> int | None:
        """The author of a live post; None if it does not exist (or was deleted). post_svc's failures
        pass through as its gRPC error."""
        author = self._authors.get(post_id)
        if author is None:
            response = await self._posts.BatchGetPosts(
                post_pb2.BatchGetPostsRequest(post_ids=[post_id]), timeout=self._timeout
            )
            if not response.posts:
                return None
            author = int(response.posts[0].author_id)
            self._authors[post_id] = author
        return author

    async def comment(self, comment_id: int) -> CommentSummary | None:
        """The live comment's post and first PREVIEW_CHARACTERS characters; None if it was deleted.
        engagement_svc's other failures pass through as its gRPC error."""
        try:
            found = await self._engagement.GetComment(
                engagement_pb2.GetCommentRequest(comment_id=comment_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return CommentSummary(int(found.post_id), found.text[:PREVIEW_CHARACTERS])
