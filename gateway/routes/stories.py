"""Stories: share a photo for 24 hours, the tray above the feed, a user's stories, views and who viewed
one. story_svc owns them; authors and viewers are rendered from graph_svc (one BatchGetUsers per
response) and photos from media_svc (one BatchGetMedia per response, signed URLs as for posts)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, status
from pydantic import BaseModel, Field

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import MediaId, PageSize, PageToken, StoryId, UserId
from gateway.render import MEDIA_STATUSES, user_summary_json
from gateway.resources import Story, StoryList, StoryTray, StoryViewerPage, ViewResult, error_responses
from gateway.upstream import Services, Upstream
from glimpse.graph.v1 import graph_pb2
from glimpse.media.v1 import media_pb2
from glimpse.story.v1 import story_pb2
from mesh.identity import as_caller

router = APIRouter(tags=["stories"])


class CreateStoryBody(BaseModel):
    media_id: MediaId = Field(description="An uploaded photo (POST /v1/media/upload-url), not used yet.")


StoryKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="Any unique string per new story; retrying with the same key returns the same story.",
    ),
]


async def _authors(services: Upstream, caller: int, user_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The accounts that still exist among `user_ids` as Author objects, from one BatchGetUsers call."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    request = graph_pb2.BatchGetUsersRequest(user_ids=ids)
    response = await services.graph.BatchGetUsers(request, timeout=services.timeout, metadata=as_caller(caller))
    return {u.id: user_summary_json(u) for u in response.users}


async def _stories_json(services: Upstream, caller: int, stories: list[story_pb2.Story]) -> list[dict[str, Any]]:
    """The stories rendered with their authors and photos (two calls however many stories)."""
    if not stories:
        return []
    authors = await _authors(services, caller, (s.author_id for s in stories))
    found = await services.media.BatchGetMedia(
        media_pb2.BatchGetMediaRequest(media_ids=[s.media_id for s in stories]), timeout=services.timeout
    )
    media = {m.id: m for m in found.media}
    return [
        {
            "id": str(s.id),
            "author": authors.get(s.author_id),
            "media": _media_json(media[s.media_id]) if s.media_id in media else None,
            "create_time": s.create_time.ToJsonString(),
            "expire_time": s.expire_time.ToJsonString(),
            "viewed": s.viewed,
        }
        for s in stories
    ]


def _media_json(media: media_pb2.Media) -> dict[str, Any]:
    return {
        "id": str(media.id),
        "status": MEDIA_STATUSES.get(media.status, "PENDING"),
        "width": media.width,
        "height": media.height,
        "blurhash": media.blurhash,
        "renditions": [{"size": r.size, "width": r.width, "height": r.height, "url": r.url} for r in media.renditions],
    }


@router.post(
    "/v1/stories",
    status_code=status.HTTP_201_CREATED,
    response_model=Story,
    summary="Share a story",
    response_description="The story: served for 24 hours; its photo is PROCESSING until its renditions are ready.",
    responses=error_responses(400, 401, 403, 404, 429),
    dependencies=[rate_limits.post_changes],
)
async def create_story(
    body: CreateStoryBody, caller: CallerId, services: Services, idempotency_key: StoryKey = ""
) -> dict[str, Any]:
    """Shares an uploaded photo for 24 hours. 403 for another user's media; 400 for media not uploaded
    yet, already used, or an `Idempotency-Key` reused for a different story (IDEMPOTENCY_KEY_REUSED)."""
    # Without the client's key, a key of our own still makes the channel's retries safe (mesh.channels).
    request = story_pb2.CreateStoryRequest(media_id=body.media_id, request_id=idempotency_key or str(uuid.uuid4()))
    story = await services.story.CreateStory(request, timeout=services.timeout, metadata=as_caller(caller))
    return (await _stories_json(services, caller, [story]))[0]


@router.get(
    "/v1/stories/tray",
    response_model=StoryTray,
    summary="The story tray",
    response_description="You, then the people you follow who have active stories.",
    responses=error_responses(401, 429),
    dependencies=[rate_limits.user_reads],
)
async def story_tray(caller: CallerId, services: Services) -> dict[str, Any]:
    """The accounts to show above the feed: you first if you have active stories, then followees with
    unseen stories, then the rest, each group by most recent story."""
    response = await services.story.GetStoryTray(
        story_pb2.GetStoryTrayRequest(), timeout=services.timeout, metadata=as_caller(caller)
    )
    authors = await _authors(services, caller, (e.author_id for e in response.entries))
    return {
        "items": [
            {
                "author": authors[e.author_id],
                "story_count": e.story_count,
                "latest_story_time": e.latest_story_time.ToJsonString(),
                "has_unseen": e.has_unseen,
            }
            for e in response.entries
            if e.author_id in authors
        ]
    }


@router.get(
    "/v1/users/{user_id}/stories",
    response_model=StoryList,
    summary="A user's stories",
    response_description="Their active stories, oldest first, each with whether you viewed it.",
    responses=error_responses(400, 401, 403, 404, 429),
    dependencies=[rate_limits.user_reads],
)
async def user_stories(user_id: UserId, caller: CallerId, services: Services) -> dict[str, Any]:
    """403 (ACCOUNT_PRIVATE) for a private account you do not follow; 404 (USER_NOT_FOUND) for an
    unknown account or across a block."""
    response = await services.story.ListStories(
        story_pb2.ListStoriesRequest(parent=f"users/{user_id}"), timeout=services.timeout, metadata=as_caller(caller)
    )
    return {"items": await _stories_json(services, caller, list(response.stories))}


@router.post(
    "/v1/stories/{story_id}/view",
    response_model=ViewResult,
    summary="Mark a story viewed",
    response_description="The story is viewed by you.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.engagement_changes],
)
async def view_story(story_id: StoryId, caller: CallerId, services: Services) -> dict[str, Any]:
    """Idempotent: a story counts each viewer once. 404 (STORY_NOT_FOUND) for an unknown, expired or
    deleted story, or one you may not see."""
    response = await services.story.ViewStory(
        story_pb2.ViewStoryRequest(story_id=story_id), timeout=services.timeout, metadata=as_caller(caller)
    )
    return {"story_id": str(response.story_id), "viewed": response.viewed}


@router.get(
    "/v1/stories/{story_id}/viewers",
    response_model=StoryViewerPage,
    summary="Who viewed your story",
    response_description="One page of viewers, newest view first, and the exact view count.",
    responses=error_responses(400, 401, 403, 404, 429),
    dependencies=[rate_limits.user_reads],
)
async def story_viewers(
    story_id: StoryId, caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """The author only (403 NOT_STORY_AUTHOR otherwise); 404 (STORY_NOT_FOUND) once expired or deleted."""
    request = story_pb2.ListStoryViewersRequest(
        parent=f"stories/{story_id}", page_size=page_size, page_token=page_token
    )
    response = await services.story.ListStoryViewers(request, timeout=services.timeout, metadata=as_caller(caller))
    users = await _authors(services, caller, (v.user_id for v in response.viewers))
    return {
        "items": [
            {"user": users[v.user_id], "view_time": v.view_time.ToJsonString()}
            for v in response.viewers
            if v.user_id in users
        ],
        "next_page_token": response.next_page_token,
        "view_count": str(response.view_count),
    }


@router.delete(
    "/v1/stories/{story_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete your story",
    responses=error_responses(400, 401, 403, 404, 429),
    dependencies=[rate_limits.post_changes],
)
async def delete_story(story_id: StoryId, caller: CallerId, services: Services) -> Response:
    """The author only (403 NOT_STORY_AUTHOR otherwise). Idempotent: deleting it again is a 204 too."""
    await services.story.DeleteStory(
        story_pb2.DeleteStoryRequest(story_id=story_id), timeout=services.timeout, metadata=as_caller(caller)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
