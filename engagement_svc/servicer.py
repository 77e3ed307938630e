"""EngagementService gRPC servicer: converts between protobuf and the domain, nothing else."""

from __future__ import annotations

import re

import grpc

from engagement_svc.comments import CommentService
from engagement_svc.counts import CountService
from engagement_svc.likes import LikeService, LikeState
from engagement_svc.repository import CommentRecord, PostEngagement
from engagement_svc.saves import SaveService
from glimpse.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from mesh.errors import Unauthenticated, invalid_field
from mesh.identity import caller_id, optional_caller_id

_NAME = re.compile(r"^(posts|comments)/([1-9][0-9]{0,18})$")


def _parse_name(value: str, collection: str) -> int:
    """The id in "<collection>/{id}"; INVALID_ARGUMENT (parent) otherwise."""
    match = _NAME.match(value)
    if not match or match.group(1) != collection or int(match.group(2)) >= 2**63:
        raise invalid_field("parent", f'must be "{collection}/{{id}}", got {value[:60]!r}')
    return int(match.group(2))


def _viewer(context: grpc.aio.ServicerContext) -> int:
    """The caller's id, or 0 for a call without one (counts only)."""
    try:
        return caller_id(context)
    except Unauthenticated:
        return 0


def like_state(state: LikeState) -> engagement_pb2.LikeState:
    return engagement_pb2.LikeState(post_id=state.post_id, liked=state.liked, like_count=state.like_count)


def comment_message(comment: CommentRecord) -> engagement_pb2.Comment:
    message = engagement_pb2.Comment(
        id=comment.id,
        post_id=comment.post_id,
        author_id=comment.author_id,
        text=comment.text,
        parent_comment_id=comment.parent_id or 0,
        reply_to_comment_id=comment.reply_to_id or 0,
        reply_count=comment.reply_count,
    )
    message.create_time.FromDatetime(comment.created_at)
    return message


def engagement_message(e: PostEngagement) -> engagement_pb2.PostEngagement:
    return engagement_pb2.PostEngagement(
        post_id=e.post_id,
        like_count=e.like_count,
        comment_count=e.comment_count,
        save_count=e.save_count,
        viewer_has_liked=e.viewer_has_liked,
        viewer_has_saved=e.viewer_has_saved,
    )


class EngagementServicer(engagement_pb2_grpc.EngagementServiceServicer):
    def __init__(self, likes: LikeService, comments: CommentService, saves: SaveService, counts: CountService) -> None:
        self._likes = likes
        self._comments = comments
        self._saves = saves
        self._counts = counts

    async def LikePost(
        self, request: engagement_pb2.LikePostRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.LikeState:
        return like_state(await self._likes.like(caller_id(context), request.post_id))

    async def UnlikePost(
        self, request: engagement_pb2.UnlikePostRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.LikeState:
        return like_state(await self._likes.unlike(caller_id(context), request.post_id))

    async def ListLikes(
        self, request: engagement_pb2.ListLikesRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.ListLikesResponse:
        post_id = _parse_name(request.parent, "posts")
        page = await self._likes.likers(post_id, optional_caller_id(context), request.page_size, request.page_token)
        response = engagement_pb2.ListLikesResponse(next_page_token=page.next_page_token)
        for like in page.items:
            response.likes.add(user_id=like.user_id).create_time.FromDatetime(like.created_at)
        return response

    async def CreateComment(
        self, request: engagement_pb2.CreateCommentRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.Comment:
        comment = await self._comments.create(
            caller_id(context), request.post_id, request.text, request.parent_comment_id, request.request_id
        )
        return comment_message(comment)

    async def ListComments(
        self, request: engagement_pb2.ListCommentsRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.ListCommentsResponse:
        post_id = _parse_name(request.parent, "posts")
        page = await self._comments.comments(
            post_id, optional_caller_id(context), request.page_size, request.page_token
        )
        return engagement_pb2.ListCommentsResponse(
            comments=[comment_message(c) for c in page.items], next_page_token=page.next_page_token
        )

    async def ListReplies(
        self, request: engagement_pb2.ListRepliesRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.ListRepliesResponse:
        comment_id = _parse_name(request.parent, "comments")
        page = await self._comments.replies(
            comment_id, optional_caller_id(context), request.page_size, request.page_token
        )
        return engagement_pb2.ListRepliesResponse(
            comments=[comment_message(c) for c in page.items], next_page_token=page.next_page_token
        )

    async def GetComment(
        self, request: engagement_pb2.GetCommentRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.Comment:
        return comment_message(await self._comments.get(request.comment_id, optional_caller_id(context)))

    async def DeleteComment(
        self, request: engagement_pb2.DeleteCommentRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.DeleteCommentResponse:
        deleted = await self._comments.delete(caller_id(context), request.comment_id)
        return engagement_pb2.DeleteCommentResponse(deleted=deleted)

    async def SavePost(
        self, request: engagement_pb2.SavePostRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.SaveState:
        await self._saves.save(caller_id(context), request.post_id)
        return engagement_pb2.SaveState(post_id=request.post_id, saved=True)

    async def UnsavePost(
        self, request: engagement_pb2.UnsavePostRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.SaveState:
        await self._saves.unsave(caller_id(context), request.post_id)
        return engagement_pb2.SaveState(post_id=request.post_id, saved=False)

    async def ListSavedPosts(
        self, request: engagement_pb2.ListSavedPostsRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.ListSavedPostsResponse:
        page = await self._saves.saved(caller_id(context), request.page_size, request.page_token)
        response = engagement_pb2.ListSavedPostsResponse(next_page_token=page.next_page_token)
        for save in page.items:
            response.saved_posts.add(post_id=save.post_id).save_time.FromDatetime(save.created_at)
        return response

    async def BatchGetEngagement(
        self, request: engagement_pb2.BatchGetEngagementRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.BatchGetEngagementResponse:
        found = await self._counts.batch_get(_viewer(context), list(request.post_ids))
        return engagement_pb2.BatchGetEngagementResponse(engagement=[engagement_message(e) for e in found])

    async def ReconcileCounts(
        self, request: engagement_pb2.ReconcileCountsRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.ReconcileCountsResponse:
        found = await self._counts.reconcile(list(request.post_ids))
        return engagement_pb2.ReconcileCountsResponse(engagement=[engagement_message(e) for e in found])

    async def ListViewerEngagement(
        self, request: engagement_pb2.ListViewerEngagementRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.ListViewerEngagementResponse:
        window = await self._counts.viewer_window(caller_id(context), request.since_post_id, request.limit)
        return engagement_pb2.ListViewerEngagementResponse(
            liked_post_ids=window.liked, saved_post_ids=window.saved, complete_since_post_id=window.complete_since
        )

    async def ListLikesByUser(
        self, request: engagement_pb2.ListLikesByUserRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.ListLikesByUserResponse:
        page = await self._likes.liked_by(caller_id(context), request.page_size, request.page_token)
        response = engagement_pb2.ListLikesByUserResponse(next_page_token=page.next_page_token)
        for like in page.items:
            response.liked_posts.add(post_id=like.post_id).create_time.FromDatetime(like.created_at)
        return response

    async def ListCommentsByUser(
        self, request: engagement_pb2.ListCommentsByUserRequest, context: grpc.aio.ServicerContext
    ) -> engagement_pb2.ListCommentsByUserResponse:
        page = await self._comments.by_author(caller_id(context), request.page_size, request.page_token)
        return engagement_pb2.ListCommentsByUserResponse(
            comments=[comment_message(c) for c in page.items], next_page_token=page.next_page_token
        )
