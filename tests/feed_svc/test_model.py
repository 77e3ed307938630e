"""Model-based check of the whole feed pipeline against a reference computed in the test.

Reference: a user's feed is the posts of the people they follow and their own, not deleted, newest
first (FEED_MAX_ITEMS is far above this test's volume, so the cap never applies here).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest

from fanout_svc.app import fanout_host
from glimpse.events.v1 import events_pb2
from mesh.ids import IdGenerator
from mesh.redis_client import connect_redis
from tests.conftest import CELEBRITY_THRESHOLD, ENV, Account
from tests.feed_svc.actions import create_post, delete_post, drain, feed_ids, feed_page, follow, unfollow
from timelines.keys import TimelineKeys

pytestmark = pytest.mark.usefixtures("fanout")


@dataclass
class Model:
    users: list[Account]
    follows: dict[int, set[int]] = field(default_factory=dict)  # follower -> followees
    posts: dict[int, int] = field(default_factory=dict)  # post -> author
    deleted: set[int] = field(default_factory=set)

    def expected(self, user: int) -> list[int]:
        authors = self.follows[user] | {user}
        return sorted((p for p, a in self.posts.items() if a in authors and p not in self.deleted), reverse=True)

    def follower_count(self, user: int) -> int:
        return sum(1 for followees in self.follows.values() if user in followees)


async def test_every_feed_matches_the_reference(
    stubs, make_account, upload_photo, bus, database_url, namespace, fanout_settings
):
    rng = random.Random(20261121)
    users = [await make_account() for _ in range(14)]
    model = Model(users, {u.id: set() for u in users})
    by_id = {u.id: u for u in users}
    redis = connect_redis(ENV.redis_url)
    keys = TimelineKeys(namespace)
    event_ids = IdGenerator(77)

    async def do_follow(a: Account, b: Account) -> None:
        await follow(stubs, a, b)
        model.follows[a.id].add(b.id)

    async def do_unfollow(a: Account, b: Account) -> None:
        await unfollow(stubs, a, b)
        model.follows[a.id].discard(b.id)

    async def do_post(author: Account) -> int:
        post_id = await create_post(stubs, upload_photo, author)
        model.posts[post_id] = author.id
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
        swing = users[2]
        swing_fans = [u for u in users if u is not swing and swing.id not in model.follows[u.id]]
        await do_post(swing)

        for step in range(90):
            roll = rng.random()
            if step == 30:
                for fan in swing_fans:
                    await do_follow(fan, swing)
                assert model.follower_count(swing.id) > CELEBRITY_THRESHOLD
                await drain(bus, database_url)
                await do_post(swing)  # pulled, not pushed
            elif step == 45:
                # The worker dies, whatever it was handling: in-flight events are never acked and are
                # delivered again (after the ack wait) to the surviving worker.
                await extra_host.stop()
                await extra.__aexit__(None, None, None)
                extra_host = None
            elif step == 60:
                for fan in swing_fans:
                    if swing.id in model.follows[fan.id]:
                        await do_unfollow(fan, swing)
                assert model.follower_count(swing.id) <= CELEBRITY_THRESHOLD
            elif roll < 0.40:
                await do_post(rng.choice(users))
            elif roll < 0.55:
                a, b = rng.sample(users, 2)
                await do_follow(a, b)
            elif roll < 0.65:
                a = rng.choice(users)
                if model.follows[a.id]:
                    await do_unfollow(a, by_id[rng.choice(sorted(model.follows[a.id]))])
            elif roll < 0.75:
                live = sorted(set(model.posts) - model.deleted)
                if live:
                    post_id = rng.choice(live)
                    await delete_post(stubs, by_id[model.posts[post_id]], post_id)
                    model.deleted.add(post_id)
            elif roll < 0.85:
                await feed_page(stubs, rng.choice(users), size=5)
            elif roll < 0.90:
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
        assert not mismatches, mismatches
        assert len(model.posts) > 30 and model.deleted
    finally:
        if extra_host is not None:
            await extra_host.stop()
            await extra.__aexit__(None, None, None)
        await redis.aclose()
