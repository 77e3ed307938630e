"""Posts: create (idempotent), read, edit the caption, delete, and an author's grid. Every post comes
with its photos' status, dimensions, blurhash and rendition URLs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from google.protobuf.field_mask_pb2 import FieldMask
from pydantic import BaseModel, Field

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import MediaId, PageSize, PageToken, PostId, Text, UserId
from gateway.render import to_json
from gateway.resources import Post, PostPage, error_responses
from gateway.upstream import Services, Upstream
from glimpse.media.v1 import media_pb2
from glimpse.post.v1 import post_pb2
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


async def _with_media(posts: Sequence[post_pb2.Post], services: Upstream, caller: int) -> list[dict[str, Any]]:
    """Post JSON with a `media` list in each, from one BatchGetMedia call for the whole page."""
    media_ids = [m for post in posts for m in post.media_ids]
    found: dict[int, dict[str, Any]] = {}
    if media_ids:
        response = await services.media.BatchGetMedia(
            media_pb2.BatchGetMediaRequest(media_ids=media_ids), timeout=services.timeout, metadata=as_caller(caller)
        )
        found = {m.id: to_json(m) for m in response.media}
    rendered = []
    for post in posts:
        body = to_json(post)
        body["media"] = [found[m] for m in post.media_ids if m in found]
        rendered.append(body)
    return rendered


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
    request = post_pb2.CreatePostRequest(
        caption=body.caption, media_ids=body.media_ids, location=location, request_id=idempotency_key
    )
    post = await services.post.CreatePost(request, timeout=services.timeout, metadata=as_caller(caller))
    return (await _with_media([post], services, caller))[0]


@router.get(
    "/v1/posts/{post_id}",
    response_model=Post,
    summary="Get a post",
    response_description="The post with its photos.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.user_reads],
)
async def get_post(post_id: PostId, caller: CallerId, services: Services) -> dict[str, Any]:
    """404 if the post does not exist or was deleted."""
    post = await services.post.GetPost(
        post_pb2.GetPostRequest(post_id=post_id), timeout=services.timeout, metadata=as_caller(caller)
    )
    return (await _with_media([post], services, caller))[0]


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
    return (await _with_media([post], services, caller))[0]


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
    items = await _with_media(response.posts, services, caller)
    return {"items": items, "next_page_token": response.next_page_token}
