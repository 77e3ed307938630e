"""Fixtures for notification_svc tests: the running service (with graph_svc, post_svc and engagement_svc
behind it, so real likes, comments and follows reach it as events), its stub, a Notifier on the test
database (called directly, as a consumer or a redelivery would call it), and ways to wait for it."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from glimpse.notification.v1 import notification_pb2, notification_pb2_grpc
from mesh.db import Database
from mesh.identity import as_caller
from mesh.ids import IdGenerator
from mesh.outbox import Outbox
from notification_svc import models
from notification_svc.notifier import Activity, Notifier
from tests.conftest import Account, Stubs
from tests.feed_svc.actions import create_post

WINDOW = dt.timedelta(hours=12)
# Ids of users who need no account (the notifier and the inbox never ask graph_svc about them).
_user_ids = itertools.count(random.randrange(10**12, 2 * 10**12, 10**6))
EVENT_IDS = IdGenerator(4321)


@pytest.fixture
def new_user_id() -> Callable[[], int]:
    return lambda: next(_user_ids)


@pytest.fixture(scope="session")
async def notification_channel(notification_addr: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(notification_addr) as channel:
        yield channel


@pytest.fixture(scope="session")
def notifications(notification_channel: grpc.aio.Channel) -> notification_pb2_grpc.NotificationServiceStub:
    return notification_pb2_grpc.NotificationServiceStub(notification_channel)


@pytest.fixture(scope="session")
async def notifier(database_url: str, notification_addr: str) -> AsyncIterator[Notifier]:
    """A second writer on the same schema (what another replica, or a redelivery, does); its events
    reach the running service's watchers through the relay the running service runs."""
    db = Database(database_url, pool_size=4)
    yield Notifier(db, Outbox(models.outbox, IdGenerator()), IdGenerator(), group_window=WINDOW)
    await db.dispose()


def activity(recipient_id: int, kind: int, actor_id: int, *, at: dt.datetime | None = None, **fields: Any) -> Activity:
    """An activity announced by a new event (a fresh, time-ordered event id)."""
    return Activity(recipient_id, kind, actor_id, EVENT_IDS.next_id(), at or dt.datetime.now(dt.UTC), **fields)


async def inbox(
    notifications: notification_pb2_grpc.NotificationServiceStub, user_id: int, size: int = 30, token: str = ""
) -> notification_pb2.ListNotificationsResponse:
    request = notification_pb2.ListNotificationsRequest(page_size=size, page_token=token)
    return await notifications.ListNotifications(request, metadata=as_caller(user_id))


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float = 15.0, what: str = "the condition") -> Any:
    """Polls `check` until it returns something truthy; fails after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{what} did not happen within {within}s (last: {found!r})")
        await asyncio.sleep(0.05)


NewPost = Callable[..., Awaitable[int]]


@pytest.fixture
def new_post(stubs: Stubs, upload_photo: Callable[..., Awaitable[int]]) -> NewPost:
    """Creates a post by `author` (one photo) through post_svc; its id."""

    async def make(author: Account, caption: str = "") -> int:
        return await create_post(stubs, upload_photo, author, caption)

    return make
