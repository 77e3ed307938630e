"""Fixtures for engagement_svc tests: the running service (with post_svc, graph_svc and media_svc
behind it), posts to engage with, direct SQL on its schema, and the events its outbox holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from glimpse.engagement.v1 import engagement_pb2_grpc
from mesh.events import EventType
from tests.conftest import Account, Stubs
from tests.feed_svc.actions import create_post


@pytest.fixture(scope="session")
def engagement(stubs: Stubs) -> engagement_pb2_grpc.EngagementServiceStub:
    return stubs.engagement


@pytest.fixture(scope="session")
async def sql(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The test database, for reading the engagement schema's rows as they are."""
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


NewPost = Callable[..., Awaitable[int]]


@pytest.fixture
def new_post(stubs: Stubs, upload_photo: Callable[..., Awaitable[int]]) -> NewPost:
    """Creates a post by `author` (one photo) through post_svc; its id."""

    async def make(author: Account, caption: str = "") -> int:
        return await create_post(stubs, upload_photo, author, caption)

    return make


async def scalar(sql: AsyncEngine, query: str, **params: Any) -> Any:
    async with sql.connect() as conn:
        return (await conn.execute(text(query), params)).scalar()


async def wait_purged(sql: AsyncEngine, post_id: int, within: float = 15.0) -> None:
    """Waits until engagement_svc has handled the post's `posts.deleted` (the relay and the consumer are
    asynchronous: until then a deleted post may still take likes, which the purge then removes)."""
    deadline = asyncio.get_running_loop().time() + within
    query = "SELECT count(*) FROM engagement.deleted_posts WHERE post_id = :p"
    while not await scalar(sql, query, p=post_id):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"post {post_id} was not purged within {within}s")
        await asyncio.sleep(0.05)


async def outbox_events(sql: AsyncEngine, kind: EventType[Any], **match: int) -> list[Any]:
    """The `kind` events engagement_svc's outbox holds whose fields equal `match`, oldest first."""
    async with sql.connect() as conn:
        rows = await conn.execute(
            text("SELECT payload FROM engagement.outbox WHERE subject = :s ORDER BY id"), {"s": kind.subject}
        )
        events: list[Message] = [kind.message.FromString(row.payload) for row in rows]
    return [e for e in events if all(getattr(e, name) == value for name, value in match.items())]


def status_of(exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """(code, ErrorInfo reason, BadRequest field -> description) of a failed call."""
    status = rpc_status.from_call(exc)
    reason, fields = "", {}
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = {v.field: v.description for v in bad.field_violations}
    return exc.code(), reason, fields


async def refused(call: Awaitable[object]) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """The status of `call`, which must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    return status_of(failure.value)
