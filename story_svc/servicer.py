"""StoryService gRPC servicer: converts between protobuf and the domain, nothing else."""

from __future__ import annotations

import re

import grpc

from glimpse.story.v1 import story_pb2, story_pb2_grpc
from mesh.errors import invalid_field
from mesh.identity import caller_id
from story_svc.repository import StoryRecord
from story_svc.stories import StoryService
from story_svc.tray import TrayService

_NAME = re.compile(r"^(users|stories)/([1-9][0-9]{0,18})$")


def _parse_name(value: str, collection: str) -> int:
    """The id in "<collection>/{id}"; INVALID_ARGUMENT (parent) otherwise."""
    match = _NAME.match(value)
    if not match or match.group(1) != collection or int(match.group(2)) >= 2**63:
        raise invalid_field("parent", f'must be "{collection}/{{id}}", got {value[:60]!r}')
    return int(match.group(2))


def story_message(story: StoryRecord) -> story_pb2.Story:
    message = story_pb2.Story(id=story.id, author_id=story.author_id, media_id=story.media_id, viewed=story.viewed)
    message.create_time.FromDatetime(story.created_at)
    message.expire_time.FromDatetime(story.expire_at)
    return message


class StoryServicer(story_pb2_grpc.StoryServiceServicer):
    def __init__(self, stories: StoryService, tray: TrayService) -> None:
        self._stories = stories
        self._tray = tray

    async def CreateStory(
        self, request: story_pb2.CreateStoryRequest, context: grpc.aio.ServicerContext
    ) -> story_pb2.Story:
        story = await self._stories.create(caller_id(context), request.media_id, request.request_id)
        return story_message(story)

    async def GetStoryTray(
        self, request: story_pb2.GetStoryTrayRequest, context: grpc.aio.ServicerContext
    ) -> story_pb2.GetStoryTrayResponse:
        response = story_pb2.GetStoryTrayResponse()
        for row in await self._tray.tray(caller_id(context)):
            entry = response.entries.add(
                author_id=row.author_id, story_count=row.story_count, has_unseen=row.has_unseen
            )
            entry.latest_story_time.FromDatetime(row.latest_story_time)
        return response

    async def ListStories(
        self, request: story_pb2.ListStoriesRequest, context: grpc.aio.ServicerContext
    ) -> story_pb2.ListStoriesResponse:
        author_id = _parse_name(request.parent, "users")
        found = await self._stories.of_author(author_id, caller_id(context))
        return story_pb2.ListStoriesResponse(stories=[story_message(s) for s in found])

    async def ViewStory(
        self, request: story_pb2.ViewStoryRequest, context: grpc.aio.ServicerContext
    ) -> story_pb2.ViewStoryResponse:
        viewed = await self._stories.view(caller_id(context), request.story_id)
        return story_pb2.ViewStoryResponse(story_id=request.story_id, viewed=viewed)

    async def ListStoryViewers(
        self, request: story_pb2.ListStoryViewersRequest, context: grpc.aio.ServicerContext
    ) -> story_pb2.ListStoryViewersResponse:
        story_id = _parse_name(request.parent, "stories")
        page, count = await self._stories.viewers(caller_id(context), story_id, request.page_size, request.page_token)
        response = story_pb2.ListStoryViewersResponse(next_page_token=page.next_page_token, view_count=count)
        for view in page.items:
            response.viewers.add(user_id=view.viewer_id).view_time.FromDatetime(view.viewed_at)
        return response

    async def DeleteStory(
        self, request: story_pb2.DeleteStoryRequest, context: grpc.aio.ServicerContext
    ) -> story_pb2.DeleteStoryResponse:
        return story_pb2.DeleteStoryResponse(deleted=await self._stories.delete(caller_id(context), request.story_id))
