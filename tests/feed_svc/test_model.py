"""Model-based check of the whole feed pipeline against a reference computed in the test.

Reference: a user's feed is their own posts and those of the people they follow (approved follows
only: a request to a private account adds nothing until it is approved), leaving out authors blocked
either way and authors they mute, not deleted, newest first (FEED_MAX_ITEMS is far above this test's
volume, so the cap never applies here). The graph side is checked on the way: every follow, unfollow,
approval, denial, block and mute answers as the model predicts (a blocked pair cannot follow, unfollow
or mute each other; following a private account asks it; making it public approves every request).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import field_mask_pb2

from fanout_svc.app import fanout_host
from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2
from mesh.ids import IdGenerator
from mesh.redis_client import connect_redis
from tests.conftest import CELEBRITY_THRESHOLD, ENV, Account
from tests.feed_svc.actions import create_post, delete_post, drain, feed_ids, feed_page
from timelines.keys import TimelineKeys

pytestmark = pytest.mark.usefixtures("fanout")


@dataclass
class Model:
    users: list[Account]
    follows: dict[int, set[int]] = field(default_factory=dict)  # follower -> followees (approved)
    requests: dict[int, set[int]] = field(default_factory=dict)  # private account -> pending requesters
    private: set[int] = field(default_factory=set)
    blocks: set[tuple[int, int]] = field(default_factory=set)  # (blocker, blocked)
    mutes: dict[int, set[int]] = field(default_factory=dict)  # muter -> muted
    posts: dict[int, int] = field(default_factory=dict)  # post -> author
    deleted: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        for user in self.users:
            for relation in (self.follows, self.requests, self.mutes):
                relation.setdefault(user.id, set())

    def blocked(self, a: int, b: int) -> bool:
        return (a, b) in self.blocks or (b, a) in self.blocks

    def expected(self, user: int) -> list[int]:
        authors = {a for a in self.follows[user] if not self.blocked(user, a) and a not in self.mutes[user]}
        authors.add(user)
        return sorted((p for p, a in self.posts.items() if a in authors and p not in self.deleted), reverse=True)

    def posts_shown(self, reader: int, author: int) -> bool:
        """Whether the reader's feed holds some post of the author's."""
        return any(self.posts.get(p) == author for p in self.expected(reader)) and reader != author

    def follower_count(self, user: int) -> int:
        return sum(1 for followees in self.follows.values() if user in followees)


def _not_found(exc: grpc.aio.AioRpcError) -> bool:
    return exc.code() == grpc.StatusCode.NOT_FOUND


async def test_every_feed_matches_the_reference(
    stubs, make_account, upload_photo, bus, database_url, namespace, fanout_settings
):
    rng = random.Random(20261121)
    users = [await make_account() for _ in range(14)]
    model = Model(users)
    by_id = {u.id: u for u in users}
    graph = stubs.graph
    redis = connect_redis(ENV.redis_url)
    keys = TimelineKeys(namespace)
    event_ids = IdGenerator(77)
    counts: dict[str, int] = {}

    def did(what: str) -> None:
        counts[what] = counts.get(what, 0) + 1

    async def do_follow(a: Account, b: Account) -> None:
        try:
            response = await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=b.id), metadata=a.metadata)
        except grpc.aio.AioRpcError as exc:
            assert _not_found(exc) and model.blocked(a.id, b.id), exc
            return did("follow refused (block)")
        assert not model.blocked(a.id, b.id)
        if b.id in model.follows[a.id] or b.id not in model.private:
            assert response.state == graph_pb2.FOLLOW_STATE_FOLLOWING
            model.follows[a.id].add(b.id)
            did("follow")
        else:
            assert response.state == graph_pb2.FOLLOW_STATE_REQUESTED
            model.requests[b.id].add(a.id)
            did("follow request")

    async def do_unfollow(a: Account, b: Account) -> None:
        try:
            await graph.UnfollowUser(graph_pb2.UnfollowUserRequest(target_user_id=b.id), metadata=a.metadata)
        except grpc.aio.AioRpcError as exc:
            assert _not_found(exc) and model.blocked(a.id, b.id), exc
            return did("unfollow refused (block)")
        model.follows[a.id].discard(b.id)
        model.requests[b.id].discard(a.id)
        did("unfollow")

    async def do_set_private(user: Account, private: bool) -> None:
        request = graph_pb2.UpdateUserRequest(
            user=graph_pb2.User(is_private=private), update_mask=field_mask_pb2.FieldMask(paths=["is_private"])
        )
        assert (await graph.UpdateUser(request, metadata=user.metadata)).is_private is private
        if private:
            model.private.add(user.id)
        else:
            model.private.discard(user.id)
            if model.requests[user.id]:
                did("public approving requests")
            for requester in model.requests[user.id]:  # going public approves every request
                model.follows[requester].add(user.id)
            model.requests[user.id].clear()
        did("private" if private else "public")

    async def do_answer_request(owner: Account, requester: int, approve: bool) -> None:
        if approve:
            request = graph_pb2.ApproveFollowRequestRequest(requester_id=requester)
            assert (await graph.ApproveFollowRequest(request, metadata=owner.metadata)).approved
            model.follows[requester].add(owner.id)
            if model.posts_shown(requester, owner.id):
                did("approval showing posts")
        else:
            request_ = graph_pb2.DenyFollowRequestRequest(requester_id=requester)
            assert (await graph.DenyFollowRequest(request_, metadata=owner.metadata)).denied
        model.requests[owner.id].discard(requester)
        did("approve" if approve else "deny")

    async def do_block(a: Account, b: Account) -> None:
        await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=b.id), metadata=a.metadata)
        if any(model.posts_shown(x, y) for x, y in ((a.id, b.id), (b.id, a.id))):
            did("block hiding posts")
        model.blocks.add((a.id, b.id))
        for x, y in ((a.id, b.id), (b.id, a.id)):  # follows and requests go, both ways
            model.follows[x].discard(y)
            model.requests[y].discard(x)
        did("block")

    async def do_unblock(a: Account, b: Account) -> None:
        await graph.UnblockUser(graph_pb2.UnblockUserRequest(target_user_id=b.id), metadata=a.metadata)
        model.blocks.discard((a.id, b.id))
        did("unblock")

    async def do_mute(a: Account, b: Account) -> None:
        try:
            await graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=b.id), metadata=a.metadata)
        except grpc.aio.AioRpcError as exc:
            assert _not_found(exc) and model.blocked(a.id, b.id), exc
            return did("mute refused (block)")
        assert not model.blocked(a.id, b.id)
        if model.posts_shown(a.id, b.id):
            did("mute hiding posts")
        model.mutes[a.id].add(b.id)
        did("mute")

    async def do_unmute(a: Account, b: Account) -> None:
        await graph.UnmuteUser(graph_pb2.UnmuteUserRequest(target_user_id=b.id), metadata=a.metadata)
        model.mutes[a.id].discard(b.id)
        did("unmute restoring posts" if model.posts_shown(a.id, b.id) else "unmute")

    async def do_post(author: Account) -> int:
        post_id = await create_post(stubs, upload_photo, author)
        model.posts[post_id] = author.id
        did("post")
        return post_id

    # A second fan-out worker sharing the durable consumers; it is killed mid-run below.
    extra = fanout_host(fanout_settings)
    extra_host = await extra.__aenter__()
    await extra_host.start()

    try:
        # Two celebrities (above the threshold) and a sparse random graph.
        stars = users[:2]
        for star in stars:
            for fan in rng.sample([u for u in users if u is not star], CELEBRITY_THRESHOLD + 2):
                await do_follow(fan, star)
        for _ in range(25):
            a, b = rng.sample(users, 2)
            if b.id not in model.follows[a.id]:
                await do_follow(a, b)
        # Half the users read now (live inboxes); the others' inboxes are built on their first read.
        for user in users[::2]:
            await feed_ids(stubs, user)

        # The threshold crossed both ways by `swing`: up by follows, a post, back down by unfollows.
        # It stays public and out of blocks, so that its follower count is the test's to move.
        swing = users[2]
        swing_fans = [u for u in users if u is not swing and swing.id not in model.follows[u.id]]
        others = [u for u in users if u is not swing]
        await do_post(swing)

        for step in range(200):
            roll = rng.random()
            if step == 60:
                for fan in swing_fans:
                    await do_follow(fan, swing)
                assert model.follower_count(swing.id) > CELEBRITY_THRESHOLD, "blocks kept fans from following"
                await drain(bus, database_url)
                await do_post(swing)  # pulled, not pushed
            elif step == 90:
                # The worker dies, whatever it was handling: in-flight events are never acked and are
                # delivered again (after the ack wait) to the surviving worker.
                await extra_host.stop()
                await extra.__aexit__(None, None, None)
                extra_host = None
            elif step == 120:
                for fan in swing_fans:
                    if swing.id in model.follows[fan.id]:
                        await do_unfollow(fan, swing)
                assert model.follower_count(swing.id) <= CELEBRITY_THRESHOLD
            elif roll < 0.22:
                await do_post(rng.choice(users))
            elif roll < 0.40:
                a, b = rng.sample(users, 2)
                if model.private and rng.random() < 0.4:  # often a request, to a private account
                    b = by_id[rng.choice(sorted(model.private))]
                if b is not a:
                    await do_follow(a, b)
            elif roll < 0.44:
                a = rng.choice(users)
                targets = model.follows[a.id] | {t for t, r in model.requests.items() if a.id in r}
                if targets:
                    await do_unfollow(a, by_id[rng.choice(sorted(targets))])
            elif roll < 0.49:
                live = sorted(set(model.posts) - model.deleted)
                if live:
                    post_id = rng.choice(live)
                    await delete_post(stubs, by_id[model.posts[post_id]], post_id)
                    model.deleted.add(post_id)
            elif roll < 0.53:
                user = rng.choice(others)
                await do_set_private(user, user.id not in model.private)
            elif roll < 0.60:
                asked = [owner for owner, requesters in model.requests.items() if requesters]
                if asked:
                    owner = by_id[rng.choice(sorted(asked))]
                    requester = rng.choice(sorted(model.requests[owner.id]))
                    await do_answer_request(owner, requester, approve=rng.random() < 0.5)
            elif roll < 0.65:
                # Mostly between users who follow one another, so that the block hides something.
                a = rng.choice(others)
                related = sorted(model.follows[a.id] | {f for f, fs in model.follows.items() if a.id in fs})
                related = [u for u in related if u != swing.id]
                b = by_id[rng.choice(related)] if related and rng.random() < 0.7 else rng.choice(others)
                if b is not a:
                    await do_block(a, b)
            elif roll < 0.69:
                if model.blocks:
                    blocker, blocked = rng.choice(sorted(model.blocks))
                    await do_unblock(by_id[blocker], by_id[blocked])
            elif roll < 0.75:
                a = rng.choice(users)
                followed = sorted(model.follows[a.id])
                b = by_id[rng.choice(followed)] if followed and rng.random() < 0.8 else rng.choice(users)
                if b is not a:
                    await do_mute(a, b)
            elif roll < 0.79:
                muters = [m for m, muted in model.mutes.items() if muted]
                if muters:
                    muter = rng.choice(sorted(muters))
                    await do_unmute(by_id[muter], by_id[rng.choice(sorted(model.mutes[muter]))])
            elif roll < 0.88:
                await feed_page(stubs, rng.choice(users), size=5)
            elif roll < 0.92:
                await redis.delete(keys.inbox(rng.choice(users).id))  # an inbox lost mid-run
            else:
                # The same post announced twice (a new event id, so JetStream does not drop it).
                post_id = rng.choice(sorted(model.posts))
                event = events_pb2.PostCreated(
                    event_id=event_ids.next_id(), post_id=post_id, author_id=model.posts[post_id]
                )
                await bus.publish_event(event)
            if step % 10 == 0:
                await asyncio.sleep(0)

        await drain(bus, database_url, within=60)
        mismatches = {}
        for user in users:
            got, want = await feed_ids(stubs, user, size=5), model.expected(user.id)
            if got != want:
                mismatches[user.user.username] = (
                    len(got),
                    len(want),
                    sorted(set(want) - set(got)),
                    sorted(set(got) - set(want)),
                )
        assert not mismatches, (mismatches, counts)
        assert len(model.posts) > 30 and model.deleted
        # The run did exercise every kind of change, and left some of each in place.
        for what in (
            "follow request",
            "approval showing posts",
            "deny",
            "private",
            "public approving requests",
            "block hiding posts",
            "unblock",
            "mute hiding posts",
            "unmute restoring posts",
        ):
            assert counts.get(what, 0) >= 1, (what, counts)
        assert model.private and model.blocks and any(model.mutes.values()), counts
    finally:
        if extra_host is not None:
            await extra_host.stop()
            await extra.__aexit__(None, None, None)
        await redis.aclose()
