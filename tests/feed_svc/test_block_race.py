"""A block racing the fan-out. While the author's posts are being pushed to the reader (new posts, and
a flood of PostCreated events announcing the same posts again), one of them blocks the other, and the
reader keeps reading (filling feed_svc's caches at racy moments). Once the block's events are
handled, no page of the reader's feed shows the author's posts, read after read.

A push that read the followers before the block committed may write after the block's purge. That
window is a few milliseconds and the flood rarely hits it, so each round then makes that exact write
itself (the posts pushed into the reader's live inbox after the purge): feed_svc's read-time guard
must hide them. Each round first proves the posts were in the feed (following again after an unblock).
"""

from __future__ import annotations

import asyncio
import random

import pytest

from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2
from mesh.ids import IdGenerator
from mesh.redis_client import connect_redis
from tests.conftest import CELEBRITY_THRESHOLD, ENV, Account, Stubs
from tests.feed_svc.actions import create_post, drain, feed_ids, follow
from timelines.store import Timelines

pytestmark = pytest.mark.usefixtures("fanout")

_event_ids = IdGenerator(78)
ROUNDS = 2
# PostCreated events announced during each round's race, in bursts.
FLOOD = 200
BURST = 20


async def _block(stubs: Stubs, blocker: Account, blocked: Account) -> None:
    await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocked.id), metadata=blocker.metadata)


async def _unblock(stubs: Stubs, blocker: Account, blocked: Account) -> None:
    await stubs.graph.UnblockUser(graph_pb2.UnblockUserRequest(target_user_id=blocked.id), metadata=blocker.metadata)


@pytest.mark.parametrize(
    ("reader_blocks", "celebrity"),
    [(True, False), (False, False), (True, True)],
    ids=["the reader blocks the author", "the author blocks the reader", "the reader blocks a celebrity"],
)
async def test_a_block_racing_the_fan_out_keeps_the_author_out_of_the_reader_s_feed(
    stubs, make_account, upload_photo, bus, database_url, fanout_settings, reader_blocks, celebrity
):
    rng = random.Random(1113)
    reader, author = await make_account(), await make_account()
    # A pushed author has fewer followers than the threshold; a celebrity's posts are pulled at read time.
    for _ in range(CELEBRITY_THRESHOLD if celebrity else 2):
        await follow(stubs, await make_account(), author)
    posts = [await create_post(stubs, upload_photo, author) for _ in range(4)]
    blocker, blocked = (reader, author) if reader_blocks else (author, reader)
    redis = connect_redis(ENV.redis_url)
    timelines = Timelines.from_settings(redis, fanout_settings)

    async def flood() -> None:
        for _ in range(0, FLOOD, BURST):
            for post_id in rng.choices(posts, k=BURST):
                event = events_pb2.PostCreated(event_id=_event_ids.next_id(), post_id=post_id, author_id=author.id)
                await bus.publish_event(event)
            await asyncio.sleep(0.005)

    async def post_meanwhile() -> None:
        for _ in range(2):
            posts.append(await create_post(stubs, upload_photo, author))

    async def block_midway() -> None:
        await asyncio.sleep(rng.uniform(0.02, 0.15))
        await _block(stubs, blocker, blocked)

    async def keep_reading(raced: asyncio.Event) -> None:
        while not raced.is_set():
            await feed_ids(stubs, reader, size=3)

    try:
        for round_ in range(ROUNDS):
            await follow(stubs, reader, author)
            await drain(bus, database_url)
            shown = await feed_ids(stubs, reader)
            assert set(posts) <= set(shown), f"round {round_}: the author's posts are not in the feed before the block"

            raced = asyncio.Event()
            reading = asyncio.create_task(keep_reading(raced))
            try:
                await asyncio.gather(flood(), post_meanwhile(), block_midway())
            finally:
                raced.set()
                await reading
            await drain(bus, database_url)

            # The write of a push that lost the race, landing after the purge.
            assert await timelines.push(posts, [reader.id]) == 1, "the reader's inbox is not live"
            for attempt in range(5):
                leaked = set(await feed_ids(stubs, reader, size=2)) & set(posts)
                assert not leaked, f"round {round_}, read {attempt}: the feed shows {sorted(leaked)} after the block"
                await asyncio.sleep(0.05)

            await _unblock(stubs, blocker, blocked)
    finally:
        await redis.aclose()
