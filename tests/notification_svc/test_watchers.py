"""WatchNotifications through the running service: a stream opened "from now" says where it starts,
a like acknowledged to its client reaches the author's open stream within a second, and a stream
reopened from the last sequence it saw replays what it missed (removals included), then goes live.
A process streams at most `max_streams` inboxes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from glimpse.engagement.v1 import engagement_pb2
from glimpse.notification.v1 import notification_pb2
from mesh.db import Database
from mesh.errors import ResourceExhausted
from notification_svc.inbox import InboxReader
from notification_svc.watchers import Watchers
from tests.conftest import Account

Change = notification_pb2.NotificationChange


async def watch(notifications, user: Account, after: int = 0) -> AsyncIterator[Change]:
    request = notification_pb2.WatchNotificationsRequest(after_sequence=after)
    async for change in notifications.WatchNotifications(request, metadata=user.metadata):
        yield change


async def next_change(stream: AsyncIterator[Change], within: float = 5.0) -> Change:
    return await asyncio.wait_for(anext(stream), within)


async def like(stubs, user: Account, post_id: int, undo: bool = False) -> None:
    if undo:
        await stubs.engagement.UnlikePost(engagement_pb2.UnlikePostRequest(post_id=post_id), metadata=user.metadata)
    else:
        await stubs.engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=user.metadata)


async def test_a_like_reaches_the_author_s_open_stream_within_a_second(stubs, notifications, make_account, new_post):
    author, fan = await make_account(), await make_account()
    post_id = await new_post(author)
    stream = watch(notifications, author)
    start = await next_change(stream)
    assert (start.sequence, start.HasField("notification"), start.unread_count) == (0, False, 0)
    for n, liker in enumerate([fan, await make_account()], start=1):
        await like(stubs, liker, post_id)
        acknowledged = time.monotonic()
        change = await next_change(stream)
        took = time.monotonic() - acknowledged
        assert took < 1.0, f"the like took {took:.3f}s to reach the stream"
        assert (change.sequence, change.notification.post_id, change.notification.actor_count) == (n, post_id, n)
        assert change.notification.actor_ids[0] == liker.id and change.unread_count == 1
    await stream.aclose()


async def test_a_stream_reopened_from_its_last_sequence_misses_nothing(stubs, notifications, make_account, new_post):
    author, first, second = await make_account(), await make_account(), await make_account()
    post_id, other_post = await new_post(author), await new_post(author)
    stream = watch(notifications, author)
    await next_change(stream)
    await like(stubs, first, post_id)
    seen = await next_change(stream)
    await stream.aclose()
    # While disconnected: a new group, one more like, and one undone (a removal).
    await like(stubs, second, other_post)
    await like(stubs, second, post_id)
    await like(stubs, second, other_post, undo=True)

    async def settled() -> bool:
        request = notification_pb2.GetUnreadCountRequest()
        got = await notifications.GetUnreadCount(request, metadata=author.metadata)
        return got.last_sequence == seen.sequence + 3

    deadline = time.monotonic() + 15
    while not await settled():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    stream = watch(notifications, author, after=seen.sequence)
    replayed = [await next_change(stream) for _ in range(2)]
    # Each notification once, in its state now: the like group with both people, the other removed.
    assert replayed[0].notification.group_key == seen.notification.group_key
    assert replayed[0].notification.actor_count == 2
    assert replayed[1].removed_group_key and not replayed[1].HasField("notification")
    assert [c.sequence for c in replayed] == [seen.sequence + 2, seen.sequence + 3]
    # Then live.
    await like(stubs, first, other_post)
    live = await next_change(stream)
    assert (live.sequence, live.notification.post_id) == (seen.sequence + 4, other_post)
    await stream.aclose()


async def test_a_process_streams_at_most_max_streams_inboxes(database_url):
    db = Database(database_url, pool_size=1)
    try:
        watchers = Watchers(InboxReader(db), max_streams=1)
        first = watchers.follow(1, 0)
        await anext(first)
        assert watchers.open_streams == 1
        with pytest.raises(ResourceExhausted) as refused:
            await anext(watchers.follow(2, 0))
        assert refused.value.reason == "TOO_MANY_STREAMS"
        await first.aclose()
        assert watchers.open_streams == 0
        second = watchers.follow(2, 0)
        assert (await anext(second)).last_sequence == 0
        await second.aclose()
    finally:
        await db.dispose()


async def test_watching_needs_a_caller(notifications):
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        async for _ in notifications.WatchNotifications(notification_pb2.WatchNotificationsRequest()):
            pass
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
