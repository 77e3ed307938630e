"""Posts: create (idempotent), read, edit the caption, delete, and an author's grid. Every post is a
feed_svc FeedItem rendered by `feed_item_json`, as in the home feed: the same post has the same JSON
on every route, with its author and its photos' status, dimensions, blurhash and rendition URLs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from google.protobuf.field_mask_pb2 import FieldMask
from pydantic import BaseModel, Field

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import MediaId, PageSize, PageToken, PostId, Text, UserId
from gateway.render import feed_item_json
from gateway.resources import Post, PostPage, error_responses
from gateway.upstream import Services, Upstream
from glimpse.feed.v1 import feed_pb2
from glimpse.post.v1 import post_pb2
from mesh.errors import NotFound
from mesh.identity import as_caller

router = APIRouter(tags=["posts"])


class LocationBody(BaseModel):
    name: Text = Field("", max_length=100)
    latitude: float = Field(0, ge=-90, le=90)
    longitude: float = Field(0, ge=-180, le=180)


class CreatePostBody(BaseModel):
    caption: Text = Field("", description="At most 2200 characters; #hashtags are extracted.")
    media_ids: list[MediaId] = Field(description="1 to 10 uploaded media ids, in display order.")
    location: LocationBody | None = None


class UpdatePostBody(BaseModel):
    caption: Text = Field(description="The new caption (the only field that can change).")


IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="Any unique string per new post; retrying with the same key returns the same post.",
    ),
]


async def _rendered(
    post_ids: Sequence[int], services: Upstream, caller: int, *, fresh: bool = False
) -> list[dict[str, Any]]:
    """The JSON of each post that exists, in order (deleted ones left out), from one BatchGetFeedItems
    call. `fresh` skips feed_svc's hydration cache: for the response to a write."""
    request = feed_pb2.BatchGetFeedItemsRequest(post_ids=post_ids, fresh=fresh)
    response = await services.feed.BatchGetFeedItems(request, timeout=services.timeout, metadata=as_caller(caller))
    return [feed_item_json(item) for item in response.items]


async def _one(post_id: int, services: Upstream, caller: int, *, fresh: bool = False) -> dict[str, Any]:
    """The JSON of one post; NOT_FOUND (reason POST_NOT_FOUND) if it does not exist or was deleted."""
    rendered = await _rendered([post_id], services, caller, fresh=fresh)
    if not rendered:
        raise NotFound(f"post {post_id} does not exist", reason="POST_NOT_FOUND")
    return rendered[0]


@router.post(
    "/v1/posts",
    status_code=status.HTTP_201_CREATED,
    response_model=Post,
    summary="Create a post",
    response_description="The post; its photos are PROCESSING until their renditions are ready.",
    responses=error_responses(400, 401, 403, 404, 413, 429),
    dependencies=[rate_limits.post_changes],
)
async def create_post(
    body: CreatePostBody, caller: CallerId, services: Services, idempotency_key: IdempotencyKey = ""
) -> dict[str, Any]:
    """Posts uploaded photos with a caption. 403 for another user's media; 400 for media not uploaded
    yet, already used, or an `Idempotency-Key` reused for a different post."""
    location = post_pb2.Location(**body.location.model_dump()) if body.location else None
    # Without the client's key, a key of our own still makes the channel's retries safe (mesh.channels).
    request_id = idempotency_key or str(uuid.uuid4())
    request = post_pb2.CreatePostRequest(
        caption=body.caption, media_ids=body.media_ids, location=location, request_id=request_id
    )
    post = await services.post.CreatePost(request, timeout=services.timeout, metadata=as_caller(caller))
    return await _one(post.id, services, caller, fresh=True)


@router.get(
    "/v1/posts/{post_id}",
    response_model=Post,
    summary="Get a post",
    response_description="The post with its photos.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.user_reads],
)
async def get_post(post_id: PostId, caller: CallerId, services: Services) -> dict[str, Any]:
    """404 (reason POST_NOT_FOUND) if the post does not exist or was deleted (feed_svc's cache may serve
    a post deleted in the last moments until the deletion event reaches it)."""
    return await _one(post_id, services, caller)


@router.patch(
    "/v1/posts/{post_id}",
    response_model=Post,
    summary="Edit a post's caption",
    response_description="The updated post.",
    responses=error_responses(400, 401, 403, 404, 413, 429),
    dependencies=[rate_limits.post_changes],
)
async def update_post(post_id: PostId, body: UpdatePostBody, caller: CallerId, services: Services) -> dict[str, Any]:
    """Only the author may edit (403 otherwise)."""
    request = post_pb2.UpdatePostRequest(
        post=post_pb2.Post(id=post_id, caption=body.caption), update_mask=FieldMask(paths=["caption"])
    )
    post = await services.post.UpdatePost(request, timeout=services.timeout, metadata=as_caller(caller))
    return await _one(post.id, services, caller, fresh=True)


@router.delete(
    "/v1/posts/{post_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a post",
    response_description="Deleted (deleting again is also 204).",
    responses=error_responses(400, 401, 403, 404, 429),
    dependencies=[rate_limits.post_changes],
)
async def delete_post(post_id: PostId, caller: CallerId, services: Services) -> Response:
    """Only the author may delete (403 otherwise); the post disappears from feeds."""
    await services.post.DeletePost(
        post_pb2.DeletePostRequest(post_id=post_id), timeout=services.timeout, metadata=as_caller(caller)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/users/{user_id}/posts",
    response_model=PostPage,
    summary="List a user's posts (profile grid)",
    response_description="One page of posts, newest first.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_posts(
    user_id: UserId, caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """The author's live posts with their photos. 400 for a malformed `page_token`."""
    request = post_pb2.ListPostsRequest(parent=f"users/{user_id}", page_size=page_size, page_token=page_token)
    response = await services.post.ListPosts(request, timeout=services.timeout, metadata=as_caller(caller))
    items = await _rendered([post.id for post in response.posts], services, caller) if response.posts else []
    return {"items": items, "next_page_token": response.next_page_token}
