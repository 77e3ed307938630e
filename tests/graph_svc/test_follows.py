"""The follow graph through a real GraphService stub, with its events on the real JetStream."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from glimpse.graph.v1 import graph_pb2
from graph_svc import demo
from graph_svc.credentials import Passwords
from mesh.bus import Bus
from mesh.db import Database
from mesh.events import USER_FOLLOWED, USER_UNFOLLOWED, EventType
from mesh.ids import IdGenerator


async def events_about(bus: Bus, kind: EventType[Any], user_id: int, expect: int, settle: float = 0.5) -> list:
    """The `kind` events whose follower is `user_id`; waits for `expect` then `settle` s for extras."""
    sub = await bus.js.pull_subscribe(
        bus.subject(kind.subject),
        durable=None,
        stream=bus.stream(kind.stream),
        config=ConsumerConfig(
            name=f"probe_{uuid.uuid4().hex[:8]}", ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL
        ),
    )
    found: list = []
    deadline = asyncio.get_running_loop().time() + 10
    quiet_until = None
    try:
        while True:
            now = asyncio.get_running_loop().time()
            if now > deadline or (quiet_until is not None and now > quiet_until):
                return found
            try:
                batch = await sub.fetch(500, timeout=0.2)
            except TimeoutError:
                batch = []
            for msg in batch:
                event = kind.decode(msg.data)
                if event.follower_id == user_id:
                    assert msg.headers["Nats-Msg-Id"] == str(event.event_id)
                    found.append(event)
            if len(found) >= expect and quiet_until is None:
                quiet_until = now + settle
    finally:
        await sub.unsubscribe()


async def test_follow_is_idempotent_counts_and_emits_one_event(graph, make_account, bus):
    a, b = await make_account(), await make_account()
    first = await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=b.id), metadata=a.metadata)
    again = await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=b.id), metadata=a.metadata)
    assert first.created and not again.created
    assert again.target.follower_count == 1
    assert (await graph.GetUser(graph_pb2.GetUserRequest(user_id=a.id))).following_count == 1
    followed = await events_about(bus, USER_FOLLOWED, a.id, expect=1)
    assert [(e.follower_id, e.followee_id) for e in followed] == [(a.id, b.id)]

    removed = await graph.UnfollowUser(graph_pb2.UnfollowUserRequest(target_user_id=b.id), metadata=a.metadata)
    removed_again = await graph.UnfollowUser(graph_pb2.UnfollowUserRequest(target_user_id=b.id), metadata=a.metadata)
    assert removed.deleted and not removed_again.deleted
    assert (await graph.GetFollowerCount(graph_pb2.GetFollowerCountRequest(user_id=b.id))).follower_count == 0
    assert (await graph.GetUser(graph_pb2.GetUserRequest(user_id=a.id))).following_count == 0
    assert len(await events_about(bus, USER_UNFOLLOWED, a.id, expect=1)) == 1


async def test_follow_errors_are_precise_and_change_nothing(graph, make_account):
    a = await make_account()
    cases = [
        (a.id, a.metadata, grpc.StatusCode.INVALID_ARGUMENT),  # yourself
        (987654321, a.metadata, grpc.StatusCode.NOT_FOUND),  # nobody
        (0, a.metadata, grpc.StatusCode.INVALID_ARGUMENT),
        (a.id, (), grpc.StatusCode.UNAUTHENTICATED),  # no caller
        (a.id, (("x-user-id", "abc"),), grpc.StatusCode.UNAUTHENTICATED),
    ]
    for target, metadata, code in cases:
        for call, request in (
            (graph.FollowUser, graph_pb2.FollowUserRequest),
            (graph.UnfollowUser, graph_pb2.UnfollowUserRequest),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request(target_user_id=target), metadata=metadata)
            assert caught.value.code() == code, (target, metadata)
    user = await graph.GetUser(graph_pb2.GetUserRequest(user_id=a.id))
    assert user.following_count == 0 and user.follower_count == 0


async def test_opposite_follows_at_once_do_not_deadlock(graph, make_account):
    a, b = await make_account(), await make_account()
    await asyncio.gather(
        *[
            graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=target.id), metadata=actor.metadata)
            for actor, target in [(a, b), (b, a)] * 10
        ]
    )
    for user in (a, b):
        fresh = await graph.GetUser(graph_pb2.GetUserRequest(user_id=user.id))
        assert (fresh.follower_count, fresh.following_count) == (1, 1)


async def test_followers_and_following_pages_newest_first(graph, make_account):
    star = await make_account()
    fans = [await make_account() for _ in range(5)]
    for fan in fans:
        await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=star.id), metadata=fan.metadata)
    pages, token = [], ""
    while True:
        page = await graph.ListFollowers(
            graph_pb2.ListFollowersRequest(parent=f"users/{star.id}", page_size=2, page_token=token)
        )
        pages.append([f.user.id for f in page.follows])
        token = page.next_page_token
        if not token:
            break
    assert pages == [[fans[4].id, fans[3].id], [fans[2].id, fans[1].id], [fans[0].id]]
    following = await graph.ListFollowing(graph_pb2.ListFollowingRequest(parent=f"users/{fans[0].id}"))
    assert [f.user.id for f in following.follows] == [star.id] and not following.next_page_token


@pytest.mark.parametrize("parent", ["", "users/", "users/abc", "user/1", "users/-1", "users/99999999999999999999"])
async def test_list_rejects_malformed_parents(graph, parent):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await graph.ListFollowers(graph_pb2.ListFollowersRequest(parent=parent))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_rejects_bad_paging_and_unknown_users(graph, make_account):
    a = await make_account()
    for request, code in [
        (
            graph_pb2.ListFollowersRequest(parent=f"users/{a.id}", page_token="garbage"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (graph_pb2.ListFollowersRequest(parent=f"users/{a.id}", page_size=-1), grpc.StatusCode.INVALID_ARGUMENT),
        (graph_pb2.ListFollowersRequest(parent="users/424242"), grpc.StatusCode.NOT_FOUND),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await graph.ListFollowers(request)
        assert caught.value.code() == code


async def test_bulk_loaded_follows_with_equal_timestamps_page_without_gaps(graph, graph_settings, new_username):
    """Follows inserted in one transaction share created_at: the id tie-break must keep pages exact."""
    db = Database(graph_settings.database_url, pool_size=1)
    tag = new_username()
    edges = [(0, n) for n in range(1, 8)] + [(1, 2)]
    prefix = demo.USERNAME_PREFIX
    demo.USERNAME_PREFIX = f"{tag}r"
    try:
        await demo.load(db, edges, Passwords(time_cost=1, memory_kib=8 * 1024, parallelism=1), IdGenerator(7))
        # Loading again changes nothing.
        n_users, n_follows = await demo.load(
            db, edges, Passwords(time_cost=1, memory_kib=8 * 1024, parallelism=1), IdGenerator(7)
        )
    finally:
        demo.USERNAME_PREFIX = prefix
        await db.dispose()
    assert (n_users, n_follows) == (8, 16)
    hub = await graph.LookupUser(graph_pb2.LookupUserRequest(username=f"{tag}r0"))
    assert hub.follower_count == 7 and hub.following_count == 7
    seen, token = [], ""
    while True:
        page = await graph.ListFollowers(
            graph_pb2.ListFollowersRequest(parent=f"users/{hub.id}", page_size=3, page_token=token)
        )
        seen += [f.user.id for f in page.follows]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 7
    assert seen == sorted(seen, reverse=True)


async def test_follower_stream_ids_counts_and_celebrities(graph, make_account):
    star, small = await make_account(), await make_account()
    fans = [await make_account() for _ in range(7)]
    for fan in fans:
        await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=star.id), metadata=fan.metadata)
    await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=small.id), metadata=fans[0].metadata)

    batches = [
        list(r.follower_ids)
        async for r in graph.StreamFollowerIds(graph_pb2.StreamFollowerIdsRequest(user_id=star.id, batch_size=3))
    ]
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [i for batch in batches for i in batch] == sorted(f.id for f in fans)

    followees = await graph.ListFolloweeIds(graph_pb2.ListFolloweeIdsRequest(user_id=fans[0].id))
    assert sorted(followees.followee_ids) == sorted([star.id, small.id])
    celebrities = await graph.ListCelebrityFollowees(
        graph_pb2.ListCelebrityFolloweesRequest(user_id=fans[0].id, threshold=5)
    )
    assert list(celebrities.user_ids) == [star.id]

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in graph.StreamFollowerIds(graph_pb2.StreamFollowerIdsRequest(user_id=31337)):
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_following_limit_is_enforced(graph_settings, make_account):
    from graph_svc import models
    from graph_svc.follows import FollowService
    from mesh.errors import FailedPrecondition
    from mesh.outbox import Outbox

    a, b, c = await make_account(), await make_account(), await make_account()
    db = Database(graph_settings.database_url, pool_size=1)
    ids = IdGenerator(9)
    service = FollowService(db=db, outbox=Outbox(models.outbox, ids), max_following=1)
    try:
        assert (await service.follow(a.id, b.id)).created
        with pytest.raises(FailedPrecondition):
            await service.follow(a.id, c.id)
        assert not (await service.follow(a.id, b.id)).created  # already following: still fine
    finally:
        await db.dispose()
