"""The fan-out handlers called directly with events, against the real graph_svc, post_svc and Redis.

The handlers write to a Redis namespace of their own, so the suite's running fan-out (if any) never
touches what these tests assert on. Every handler is run twice somewhere: redelivery changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from fanout_svc.consumers import FanoutHandlers
from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2
from glimpse.post.v1 import post_pb2_grpc
from mesh.events import PoisonMessage
from mesh.ids import IdGenerator
from mesh.redis_client import connect_redis
from tests.conftest import CELEBRITY_THRESHOLD, ENV, Account, Stubs
from timelines.keys import TimelineKeys
from timelines.outboxes import OutboxLoader
from timelines.store import Timelines

_ids = IdGenerator(7)


@pytest.fixture
async def timelines() -> AsyncIterator[Timelines]:
    redis = connect_redis(ENV.redis_url)
    yield Timelines(redis, TimelineKeys(f"fo{uuid.uuid4().hex[:8]}"), feed_max=50, outbox_max=50, inbox_ttl_seconds=600)
    await redis.aclose()


@pytest.fixture
async def handlers(timelines: Timelines, stubs: Stubs, post_addr: str) -> AsyncIterator[FanoutHandlers]:
    async with grpc.aio.insecure_channel(post_addr) as channel:
        yield FanoutHandlers(
            timelines,
            OutboxLoader(timelines, post_pb2_grpc.PostServiceStub(channel), timeout=5),
            stubs.graph,
            celebrity_threshold=CELEBRITY_THRESHOLD,
            follower_batch=2,  # several pages even for a handful of followers
            timeout=5,
        )


async def _follow(stubs: Stubs, follower: Account, followee: Account) -> None:
    await stubs.graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=followee.id), metadata=follower.metadata)


def _created(author: Account) -> events_pb2.PostCreated:
    return events_pb2.PostCreated(event_id=_ids.next_id(), post_id=_ids.next_id(), author_id=author.id)


async def _ids_in(timelines: Timelines, key: str) -> list[int] | None:
    return await timelines.page(key, None, 100)


async def test_a_post_reaches_the_outbox_the_authors_inbox_and_only_live_follower_inboxes(
    handlers: FanoutHandlers, timelines: Timelines, stubs: Stubs, make_account: Callable[[], Awaitable[Account]]
):
    author, reader, away = await make_account(), await make_account(), await make_account()
    for follower in (reader, away):
        await _follow(stubs, follower, author)
    await timelines.build_outbox(author.id, [])
    await timelines.build_inbox(author.id, [])
    await timelines.build_inbox(reader.id, [])  # `away` has no live inbox: it is rebuilt when read
    event = _created(author)
    for _ in range(2):  # a redelivery changes nothing
        await handlers.on_post_created(event)
        assert await _ids_in(timelines, timelines.outbox_key(author.id)) == [event.post_id]
        assert await _ids_in(timelines, timelines.inbox_key(author.id)) == [event.post_id]
        assert await _ids_in(timelines, timelines.inbox_key(reader.id)) == [event.post_id]
        assert await _ids_in(timelines, timelines.inbox_key(away.id)) is None


async def test_a_celebrity_is_pulled_then_pushed_again_once_under_the_threshold(
    handlers: FanoutHandlers, timelines: Timelines, stubs: Stubs, make_account: Callable[[], Awaitable[Account]]
):
    star = await make_account()
    fans = [await make_account() for _ in range(CELEBRITY_THRESHOLD + 1)]
    for fan in fans:
        await _follow(stubs, fan, star)
        await timelines.build_inbox(fan.id, [])
    await timelines.build_outbox(star.id, [])
    pulled = _created(star)
    await handlers.on_post_created(pulled)
    assert await _ids_in(timelines, timelines.outbox_key(star.id)) == [pulled.post_id]
    for fan in fans:  # above the threshold nobody is pushed to: readers merge the outbox
        assert await _ids_in(timelines, timelines.inbox_key(fan.id)) == []
    assert await timelines.was_pulled(star.id)

    leaving = fans.pop()
    await stubs.graph.UnfollowUser(graph_pb2.UnfollowUserRequest(target_user_id=star.id), metadata=leaving.metadata)
    pushed = _created(star)
    await handlers.on_post_created(pushed)
    for fan in fans:  # back under: the new post and the ones readers used to pull
        assert await _ids_in(timelines, timelines.inbox_key(fan.id)) == [pushed.post_id, pulled.post_id]
    assert await _ids_in(timelines, timelines.inbox_key(leaving.id)) == []
    assert not await timelines.was_pulled(star.id)


async def test_a_deleted_post_leaves_the_outbox_and_the_authors_inbox(
    handlers: FanoutHandlers, timelines: Timelines, make_account: Callable[[], Awaitable[Account]]
):
    author = await make_account()
    await timelines.build_outbox(author.id, [])
    await timelines.build_inbox(author.id, [])
    created = _created(author)
    await handlers.on_post_created(created)
    deleted = events_pb2.PostDeleted(event_id=_ids.next_id(), post_id=created.post_id, author_id=author.id)
    for _ in range(2):
        await handlers.on_post_deleted(deleted)
        assert await _ids_in(timelines, timelines.outbox_key(author.id)) == []
        assert await _ids_in(timelines, timelines.inbox_key(author.id)) == []


async def test_follow_events_converge_on_the_follow_as_it_is_now(
    handlers: FanoutHandlers, timelines: Timelines, stubs: Stubs, make_account: Callable[[], Awaitable[Account]]
):
    author, reader = await make_account(), await make_account()
    posts = [_ids.next_id() for _ in range(3)]
    await timelines.build_outbox(author.id, posts)
    await timelines.build_inbox(reader.id, [])
    followed = events_pb2.UserFollowed(event_id=_ids.next_id(), follower_id=reader.id, followee_id=author.id)

    # The event arrives, but the follow does not hold (yet, or any more): nothing is backfilled.
    await handlers.on_relationship_changed(followed)
    assert await _ids_in(timelines, timelines.inbox_key(reader.id)) == []

    await _follow(stubs, reader, author)
    for _ in range(2):
        await handlers.on_relationship_changed(followed)
        assert await _ids_in(timelines, timelines.inbox_key(reader.id)) == sorted(posts, reverse=True)

    await stubs.graph.UnfollowUser(graph_pb2.UnfollowUserRequest(target_user_id=author.id), metadata=reader.metadata)
    # A late UserFollowed after the unfollow removes rather than adds: the state wins, not the order.
    await handlers.on_relationship_changed(followed)
    assert await _ids_in(timelines, timelines.inbox_key(reader.id)) == []


async def test_events_about_users_that_do_not_exist_are_poison(handlers: FanoutHandlers):
    ghost = 10**15
    with pytest.raises(PoisonMessage):
        await handlers.on_relationship_changed(
            events_pb2.UserFollowed(event_id=_ids.next_id(), follower_id=ghost, followee_id=ghost + 1)
        )
    with pytest.raises(PoisonMessage):
        await handlers.on_post_created(
            events_pb2.PostCreated(event_id=_ids.next_id(), post_id=_ids.next_id(), author_id=ghost)
        )


async def test_a_muted_author_is_not_pushed_and_leaves_and_returns_with_the_mute(
    handlers: FanoutHandlers, timelines: Timelines, stubs: Stubs, make_account: Callable[[], Awaitable[Account]]
):
    author, muter, fan = await make_account(), await make_account(), await make_account()
    for follower in (muter, fan):
        await _follow(stubs, follower, author)
        await timelines.build_inbox(follower.id, [])
    await timelines.build_outbox(author.id, [])
    before = _created(author)
    await handlers.on_post_created(before)
    await stubs.graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=author.id), metadata=muter.metadata)
    muted = events_pb2.UserMuted(event_id=_ids.next_id(), muter_id=muter.id, muted_id=author.id)
    for _ in range(2):
        await handlers.on_relationship_changed(muted)
        assert await _ids_in(timelines, timelines.inbox_key(muter.id)) == []

    during = _created(author)
    await handlers.on_post_created(during)  # the muter is left out of the audience
    assert await _ids_in(timelines, timelines.inbox_key(muter.id)) == []
    assert await _ids_in(timelines, timelines.inbox_key(fan.id)) == [during.post_id, before.post_id]

    await stubs.graph.UnmuteUser(graph_pb2.UnmuteUserRequest(target_user_id=author.id), metadata=muter.metadata)
    await handlers.on_relationship_changed(
        events_pb2.UserUnmuted(event_id=_ids.next_id(), muter_id=muter.id, muted_id=author.id)
    )
    assert await _ids_in(timelines, timelines.inbox_key(muter.id)) == [during.post_id, before.post_id]


async def test_a_block_purges_each_one_s_posts_from_the_other_s_inbox(
    handlers: FanoutHandlers, timelines: Timelines, stubs: Stubs, make_account: Callable[[], Awaitable[Account]]
):
    ann, bob = await make_account(), await make_account()
    await _follow(stubs, ann, bob)
    await _follow(stubs, bob, ann)
    for user in (ann, bob):
        await timelines.build_inbox(user.id, [])
        await timelines.build_outbox(user.id, [])
    by_ann, by_bob = _created(ann), _created(bob)
    await handlers.on_post_created(by_ann)
    await handlers.on_post_created(by_bob)
    assert await _ids_in(timelines, timelines.inbox_key(ann.id)) == [by_bob.post_id, by_ann.post_id]

    await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=bob.id), metadata=ann.metadata)
    blocked = events_pb2.UserBlocked(event_id=_ids.next_id(), blocker_id=ann.id, blocked_id=bob.id)
    for _ in range(2):
        await handlers.on_relationship_changed(blocked)
        assert await _ids_in(timelines, timelines.inbox_key(ann.id)) == [by_ann.post_id]
        assert await _ids_in(timelines, timelines.inbox_key(bob.id)) == [by_bob.post_id]
    # Even a late UserFollowed from before the block cannot bring the posts back.
    await handlers.on_relationship_changed(
        events_pb2.UserFollowed(event_id=_ids.next_id(), follower_id=ann.id, followee_id=bob.id)
    )
    assert await _ids_in(timelines, timelines.inbox_key(ann.id)) == [by_ann.post_id]
