"""Fixtures for graph_svc's privacy and safety tests: failed calls read as (code, reason, fields), the
events graph_svc's outbox holds, private accounts, and a second graph_svc host that has an operator
token (the suite's shared one has none, so its moderation is off)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc.app import graph_host
from graph_svc.settings import GraphSettings
from mesh.events import EventType
from tests.conftest import Account

OPERATOR_TOKEN = "operator-token-for-the-test-suite-0123456789"

Failure = tuple[grpc.StatusCode, str, dict[str, str]]


def status_of(exc: grpc.aio.AioRpcError) -> Failure:
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


async def refused(call: Awaitable[object]) -> Failure:
    """The status of `call`, which must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    return status_of(failure.value)


async def refusal(call: Awaitable[object]) -> tuple[grpc.StatusCode, str, str]:
    """(code, reason, message) of `call`, which must fail."""
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    code, reason, _ = status_of(failure.value)
    return code, reason, failure.value.details() or ""


@pytest.fixture(scope="session")
async def sql(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The test database, for reading graph_svc's rows as they are."""
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


Events = Callable[..., Awaitable[list[Any]]]


@pytest.fixture
def outbox_events(sql: AsyncEngine) -> Events:
    """The `kind` events graph_svc's outbox holds whose fields equal `match`, oldest first (the outbox
    is what the relay publishes, in this order)."""

    async def read(kind: EventType[Any], **match: object) -> list[Any]:
        async with sql.connect() as conn:
            rows = await conn.execute(
                text("SELECT payload FROM graph.outbox WHERE subject = :s ORDER BY id"), {"s": kind.subject}
            )
            events: list[Message] = [kind.message.FromString(row.payload) for row in rows]
        return [e for e in events if all(getattr(e, name) == value for name, value in match.items())]

    return read


def privacy_update(is_private: bool) -> graph_pb2.UpdateUserRequest:
    return graph_pb2.UpdateUserRequest(
        user=graph_pb2.User(is_private=is_private), update_mask=FieldMask(paths=["is_private"])
    )


@pytest.fixture
def make_private_account(
    graph: graph_pb2_grpc.GraphServiceStub, make_account: Callable[[], Awaitable[Account]]
) -> Callable[[], Awaitable[Account]]:
    """A fresh account, made private."""

    async def make() -> Account:
        account = await make_account()
        updated = await graph.UpdateUser(privacy_update(True), metadata=account.metadata)
        assert updated.is_private
        return account

    return make


async def user_of(graph: graph_pb2_grpc.GraphServiceStub, account: Account) -> graph_pb2.User:
    return await graph.GetUser(graph_pb2.GetUserRequest(user_id=account.id))


@pytest.fixture(scope="session")
async def moderated_graph_addr(graph_settings: GraphSettings, bus: object) -> AsyncIterator[str]:
    """A second graph_svc on the suite's database, with an operator token."""
    settings = graph_settings.model_copy(update={"operator_token": OPERATOR_TOKEN})
    async with graph_host(settings) as host:
        port = await host.start()
        yield f"127.0.0.1:{port}"
        await host.stop()


@pytest.fixture(scope="session")
async def moderation(moderated_graph_addr: str) -> AsyncIterator[graph_pb2_grpc.ModerationServiceStub]:
    async with grpc.aio.insecure_channel(moderated_graph_addr) as channel:
        yield graph_pb2_grpc.ModerationServiceStub(channel)


OPERATOR = (("x-operator-token", OPERATOR_TOKEN),)
