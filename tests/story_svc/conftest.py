"""Fixtures for story_svc tests: the running service (with graph_svc and media_svc behind it), a way
to share a story, direct SQL on its schema, and the events its outbox holds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from glimpse.graph.v1 import graph_pb2
from glimpse.story.v1 import story_pb2, story_pb2_grpc
from mesh.events import EventType
from tests.conftest import Account, Stubs


@pytest.fixture(scope="session")
async def stories(story_addr: str) -> AsyncIterator[story_pb2_grpc.StoryServiceStub]:
    async with grpc.aio.insecure_channel(story_addr) as channel:
        yield story_pb2_grpc.StoryServiceStub(channel)


@pytest.fixture(scope="session")
async def sql(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The test database, for reading and ageing the stories schema's rows."""
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


NewStory = Callable[..., Awaitable[story_pb2.Story]]


@pytest.fixture
def new_story(stories: story_pb2_grpc.StoryServiceStub, upload_photo: Callable[..., Awaitable[int]]) -> NewStory:
    """Shares a story of a freshly uploaded photo as `author`."""

    async def make(author: Account, request_id: str = "") -> story_pb2.Story:
        media_id = await upload_photo(author)
        return await stories.CreateStory(
            story_pb2.CreateStoryRequest(media_id=media_id, request_id=request_id), metadata=author.metadata
        )

    return make


async def follow(stubs: Stubs, follower: Account, followee: Account) -> None:
    await stubs.graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=followee.id), metadata=follower.metadata)


async def make_private(stubs: Stubs, user: Account) -> None:
    request = graph_pb2.UpdateUserRequest(
        user=graph_pb2.User(is_private=True), update_mask=FieldMask(paths=["is_private"])
    )
    await stubs.graph.UpdateUser(request, metadata=user.metadata)


async def execute(sql: AsyncEngine, query: str, **params: Any) -> Any:
    async with sql.begin() as conn:
        result = await conn.execute(text(query), params)
        return result.scalar() if result.returns_rows else None


async def age(sql: AsyncEngine, story_id: int, hours: float = 25) -> None:
    """Makes the story `hours` old (expired past 24), as if the sweeper had not run since."""
    await execute(
        sql,
        "UPDATE stories.stories SET created_at = now() - make_interval(secs => :s), "
        "expire_at = now() - make_interval(secs => :s) + interval '24 hours' WHERE id = :id",
        s=hours * 3600,
        id=story_id,
    )


async def outbox_events(sql: AsyncEngine, kind: EventType[Any], **match: int) -> list[Any]:
    """The `kind` events story_svc's outbox holds whose fields equal `match`, oldest first."""
    async with sql.connect() as conn:
        rows = await conn.execute(
            text("SELECT payload FROM stories.outbox WHERE subject = :s ORDER BY id"), {"s": kind.subject}
        )
        events: list[Message] = [kind.message.FromString(row.payload) for row in rows]
    return [e for e in events if all(getattr(e, name) == value for name, value in match.items())]
