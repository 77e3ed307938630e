"""Engagement: like and unlike a post, its likers, comments and replies, saving posts and the caller's
saved posts. engagement_svc owns all of it; people are rendered from graph_svc (one BatchGetUsers per
page) and saved posts by feed_svc, exactly as the feed renders them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from pydantic import BaseModel, Field

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import CommentId, PageSize, PageToken, PostId, Text
from gateway.render import feed_item_json, to_json, user_summary_json
from gateway.resources import Author, Post, Resource, User, error_responses
from gateway.upstream import Services, Upstream
from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2
from glimpse.graph.v1 import graph_pb2
from mesh.identity import as_caller

router = APIRouter(tags=["engagement"])

_NEXT_PAGE = "Pass as `page_token` for the next page; empty on the last page."


class LikeResult(Resource):
    post_id: str = Field(description="64-bit post id, as a decimal string.")
    liked: bool = Field(description="Whether the caller likes the post now.")
    like_count: str = Field(description="Likes of the post after this call (64-bit count, as a decimal string).")


class SaveResult(Resource):
    post_id: str = Field(description="64-bit post id, as a decimal string.")
    saved: bool = Field(description="Whether the post is in the caller's saved posts now.")


class Comment(Resource):
    id: str = Field(description="64-bit comment id, as a decimal string.")
    post_id: str
    author: Author | None = Field(description="The comment's author (null if the account no longer exists).")
    text: str = Field(description="1-2,200 characters; line breaks as \\n.")
    parent_comment_id: str | None = Field(
        description="The top-level comment a reply belongs to; null for a top-level comment."
    )
    reply_to_comment_id: str | None = Field(
        description="What a reply answered (its top-level comment or another reply of it); null for a top-level one."
    )
    reply_count: str = Field(description="Live replies of a top-level comment (0 for a reply), as a decimal string.")
    create_time: str = Field(description="RFC 3339.")


class CommentPage(Resource):
    items: list[Comment] = Field(description="Oldest first.")
    next_page_token: str = Field(description=_NEXT_PAGE)


class LikerPage(Resource):
    items: list[User] = Field(description="The users who liked the post, newest like first.")
    next_page_token: str = Field(description=_NEXT_PAGE)


class SavedPage(Resource):
    items: list[Post] = Field(description="Most recently saved first; deleted posts are left out.")
    next_page_token: str = Field(description=_NEXT_PAGE)


class CreateCommentBody(BaseModel):
    text: Text = Field(
        description="1 to 2,200 characters after trimming; line breaks are kept, other control characters "
        "(tab included) are refused. @username mentions tell the users mentioned."
    )
    parent_comment_id: CommentId | None = Field(
        None, description="Reply to this comment (a top-level comment or a reply of it); omit for a top-level one."
    )


CommentKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="Any unique string per new comment; retrying with the same key returns the same comment.",
    ),
]


async def _users(services: Upstream, caller: int, user_ids: Iterable[int]) -> dict[int, graph_pb2.User]:
    """The accounts that still exist among `user_ids`, from one BatchGetUsers call."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    request = graph_pb2.BatchGetUsersRequest(user_ids=ids)
    response = await services.graph.BatchGetUsers(request, timeout=services.timeout, metadata=as_caller(caller))
    return {user.id: user for user in response.users}


def _comment_json(comment: engagement_pb2.Comment, authors: dict[int, graph_pb2.User]) -> dict[str, Any]:
    author = authors.get(comment.author_id)
    return {
        "id": str(comment.id),
        "post_id": str(comment.post_id),
        "author": (user_summary_json(author) if author is not None else None),
        "text": comment.text,
        "parent_comment_id": str(comment.parent_comment_id) if comment.parent_comment_id else None,
        "reply_to_comment_id": str(comment.reply_to_comment_id) if comment.reply_to_comment_id else None,
        "reply_count": str(comment.reply_count),
        "create_time": comment.create_time.ToJsonString(),
    }


async def _comment_page(
    services: Upstream,
    caller: int,
    response: engagement_pb2.ListCommentsResponse | engagement_pb2.ListRepliesResponse,
) -> dict[str, Any]:
    authors = await _users(services, caller, (c.author_id for c in response.comments))
    return {
        "items": [_comment_json(c, authors) for c in response.comments],
        "next_page_token": response.next_page_token,
    }


@router.post(
    "/v1/posts/{post_id}/like",
    response_model=LikeResult,
    summary="Like a post",
    response_description="The caller likes the post, and its like count.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.engagement_changes],
)
async def like_post(post_id: PostId, caller: CallerId, services: Services) -> dict[str, Any]:
    """Idempotent: liking again changes nothing (the count moves once). 404 (reason POST_NOT_FOUND) for
    an unknown or deleted post."""
    request = engagement_pb2.LikePostRequest(post_id=post_id)
    return to_json(await services.engagement.LikePost(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.delete(
    "/v1/posts/{post_id}/like",
    response_model=LikeResult,
    summary="Unlike a post",
    response_description="The caller no longer likes the post, and its like count.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.engagement_changes],
)
async def unlike_post(post_id: PostId, caller: CallerId, services: Services) -> dict[str, Any]:
    """Idempotent: unliking a post not liked changes nothing. 404 (reason POST_NOT_FOUND) for an unknown
    or deleted post."""
    request = engagement_pb2.UnlikePostRequest(post_id=post_id)
    return to_json(await services.engagement.UnlikePost(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.get(
    "/v1/posts/{post_id}/likes",
    response_model=LikerPage,
    summary="List who liked a post",
    response_description="One page of users, newest like first.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_likes(
    post_id: PostId, caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """404 (reason POST_NOT_FOUND) for an unknown or deleted post; 400 for a malformed `page_token`."""
    request = engagement_pb2.ListLikesRequest(parent=f"posts/{post_id}", page_size=page_size, page_token=page_token)
    response = await services.engagement.ListLikes(request, timeout=services.timeout, metadata=as_caller(caller))
    users = await _users(services, caller, (like.user_id for like in response.likes))
    return {
        "items": [to_json(users[like.user_id]) for like in response.likes if like.user_id in users],
        "next_page_token": response.next_page_token,
    }


@router.post(
    "/v1/posts/{post_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=Comment,
    summary="Comment on a post, or reply to a comment",
    response_description="The comment.",
    responses=error_responses(400, 401, 404, 413, 429),
    dependencies=[rate_limits.engagement_changes],
)
async def create_comment(
    post_id: PostId, body: CreateCommentBody, caller: CallerId, services: Services, idempotency_key: CommentKey = ""
) -> dict[str, Any]:
    """A reply to a reply joins the same top-level comment (replies nest one level), keeping what it
    answered in `reply_to_comment_id`. 400 naming `text` for empty, too long or control-character text,
    or for an `Idempotency-Key` reused for another comment; 404 (POST_NOT_FOUND, COMMENT_NOT_FOUND) for
    an unknown or deleted post, or a parent that is not a live comment of the post."""
    # Without the client's key, a key of our own still makes the channel's retries safe (mesh.channels).
    request = engagement_pb2.CreateCommentRequest(
        post_id=post_id,
        text=body.text,
        parent_comment_id=body.parent_comment_id or 0,
        request_id=idempotency_key or str(uuid.uuid4()),
    )
    comment = await services.engagement.CreateComment(request, timeout=services.timeout, metadata=as_caller(caller))
    return _comment_json(comment, await _users(services, caller, [comment.author_id]))


@router.get(
    "/v1/posts/{post_id}/comments",
    response_model=CommentPage,
    summary="List a post's comments",
    response_description="One page of top-level comments, oldest first, each with its reply count.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_comments(
    post_id: PostId, caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """Replies are listed under their comment (`GET /v1/comments/{comment_id}/replies`). 404 (reason
    POST_NOT_FOUND) for an unknown or deleted post; 400 for a malformed `page_token`."""
    request = engagement_pb2.ListCommentsRequest(parent=f"posts/{post_id}", page_size=page_size, page_token=page_token)
    response = await services.engagement.ListComments(request, timeout=services.timeout, metadata=as_caller(caller))
    return await _comment_page(services, caller, response)


@router.get(
    "/v1/comments/{comment_id}/replies",
    response_model=CommentPage,
    summary="List a comment's replies",
    response_description="One page of replies, oldest first.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_replies(
    comment_id: CommentId, caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """404 (reason COMMENT_NOT_FOUND) for an unknown or deleted comment, or one on a post you may not
    see; 400 for a reply (its replies are its top-level comment's) or a malformed `page_token`."""
    request = engagement_pb2.ListRepliesRequest(
        parent=f"comments/{comment_id}", page_size=page_size, page_token=page_token
    )
    response = await services.engagement.ListReplies(request, timeout=services.timeout, metadata=as_caller(caller))
    return await _comment_page(services, caller, response)


@router.delete(
    "/v1/comments/{comment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a comment",
    response_description="Deleted, with its replies if it is a top-level comment (deleting again is also 204).",
    responses=error_responses(400, 401, 403, 404, 429),
    dependencies=[rate_limits.engagement_changes],
)
async def delete_comment(comment_id: CommentId, caller: CallerId, services: Services) -> Response:
    """By the comment's author or the post's author (403, reason NOT_COMMENT_OR_POST_AUTHOR, for anyone
    else). 404 (reason COMMENT_NOT_FOUND) for a comment that never existed, went with its post, or is
    on a post you may not see."""
    request = engagement_pb2.DeleteCommentRequest(comment_id=comment_id)
    await services.engagement.DeleteComment(request, timeout=services.timeout, metadata=as_caller(caller))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/v1/posts/{post_id}/save",
    response_model=SaveResult,
    summary="Save a post",
    response_description="The post is in the caller's saved posts (which only the caller sees).",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.engagement_changes],
)
async def save_post(post_id: PostId, caller: CallerId, services: Services) -> dict[str, Any]:
    """Idempotent. 404 (reason POST_NOT_FOUND) for an unknown or deleted post."""
    request = engagement_pb2.SavePostRequest(post_id=post_id)
    return to_json(await services.engagement.SavePost(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.delete(
    "/v1/posts/{post_id}/save",
    response_model=SaveResult,
    summary="Unsave a post",
    response_description="The post is no longer in the caller's saved posts.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.engagement_changes],
)
async def unsave_post(post_id: PostId, caller: CallerId, services: Services) -> dict[str, Any]:
    """Idempotent. 404 (reason POST_NOT_FOUND) for an unknown or deleted post."""
    request = engagement_pb2.UnsavePostRequest(post_id=post_id)
    return to_json(await services.engagement.UnsavePost(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.get(
    "/v1/users/me/saved",
    response_model=SavedPage,
    summary="List the posts the caller saved",
    response_description="One page of posts, each as in the feed, most recently saved first.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_saved(
    caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """Only the caller's own saves. A saved post that was deleted is left out (a page may then hold fewer
    than `page_size` posts; keep following `next_page_token`). 400 for a malformed `page_token`."""
    metadata = as_caller(caller)
    request = engagement_pb2.ListSavedPostsRequest(page_size=page_size, page_token=page_token)
    response = await services.engagement.ListSavedPosts(request, timeout=services.timeout, metadata=metadata)
    items: list[dict[str, Any]] = []
    if response.saved_posts:
        render = feed_pb2.BatchGetFeedItemsRequest(post_ids=[s.post_id for s in response.saved_posts])
        rendered = await services.feed.BatchGetFeedItems(render, timeout=services.timeout, metadata=metadata)
        items = [feed_item_json(item) for item in rendered.items]
    return {"items": items, "next_page_token": response.next_page_token}
