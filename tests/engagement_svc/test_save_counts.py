"""Save counts (the ranked feed's saves term): exact under saves, repeats, unsaves and saves again, also
when they all run at once; gone with a purged post; repaired by ReconcileCounts; lowered by the
erasure of a user who saved posts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import grpc
import pytest

from engagement_svc import models
from engagement_svc.erasure import EngagementErasure
from glimpse.engagement.v1 import engagement_pb2
from glimpse.events.v1 import events_pb2
from mesh.db import Database
from mesh.identity import as_caller
from mesh.ids import IdGenerator
from mesh.outbox import Outbox
from tests.engagement_svc.conftest import refused, scalar, wait_purged
from tests.feed_svc.actions import delete_post

# Saves need no account: the caller's id is all engagement_svc reads (as for likes).
FIRST_SAVER = 9_500_000


async def save_count(engagement, post_id: int) -> int:
    request = engagement_pb2.BatchGetEngagementRequest(post_ids=[post_id])
    (found,) = (await engagement.BatchGetEngagement(request)).engagement
    return found.save_count


async def saved_rows(sql, post_id: int) -> int:
    return await scalar(sql, "SELECT count(*) FROM engagement.saves WHERE post_id = :p", p=post_id)


async def save(engagement, user_id: int, post_id: int) -> None:
    await engagement.SavePost(engagement_pb2.SavePostRequest(post_id=post_id), metadata=as_caller(user_id))


async def unsave(engagement, user_id: int, post_id: int) -> None:
    await engagement.UnsavePost(engagement_pb2.UnsavePostRequest(post_id=post_id), metadata=as_caller(user_id))


async def test_save_count_is_exact_under_save_unsave_and_save_again(engagement, make_account, new_post, sql):
    author = await make_account()
    post_id, other = await new_post(author), await new_post(author)
    ada, bob = FIRST_SAVER, FIRST_SAVER + 1
    steps = [
        (save, ada, 1),
        (save, ada, 1),  # a second save changes nothing
        (save, bob, 2),
        (unsave, ada, 1),
        (unsave, ada, 1),  # nor does a second unsave
        (save, ada, 2),  # saved again
        (unsave, bob, 1),
    ]
    for action, user, expected in steps:
        await action(engagement, user, post_id)
        assert await save_count(engagement, post_id) == expected == await saved_rows(sql, post_id)
    assert await save_count(engagement, other) == 0  # another post's count does not move
    # The caller's own save and the counts come in one answer; likes and comments are their own.
    request = engagement_pb2.BatchGetEngagementRequest(post_ids=[post_id, other])
    mine = (await engagement.BatchGetEngagement(request, metadata=as_caller(ada))).engagement
    assert [(e.save_count, e.viewer_has_saved, e.like_count, e.comment_count) for e in mine] == [
        (1, True, 0, 0),
        (0, False, 0, 0),
    ]


async def test_concurrent_saves_and_unsaves_count_each_change_once(engagement, make_account, new_post, sql):
    author = await make_account()
    post_id = await new_post(author)
    savers = [FIRST_SAVER + 10 + n for n in range(12)]
    # Every saver saves three times at once: 12 saves counted, not 36.
    await asyncio.gather(*(save(engagement, u, post_id) for u in savers for _ in range(3)))
    assert await save_count(engagement, post_id) == 12 == await saved_rows(sql, post_id)
    # A random mix of repeated saves and unsaves, all at once, ten rounds.
    rng = random.Random(7)
    for _ in range(10):
        calls = [rng.choice((save, unsave))(engagement, rng.choice(savers), post_id) for _ in range(16)]
        await asyncio.gather(*calls)
        assert await save_count(engagement, post_id) == await saved_rows(sql, post_id)


async def test_a_purged_post_takes_its_save_count_and_refuses_saves(engagement, make_account, new_post, stubs, sql):
    author = await make_account()
    post_id = await new_post(author)
    for n in range(3):
        await save(engagement, FIRST_SAVER + 30 + n, post_id)
    assert await save_count(engagement, post_id) == 3
    await delete_post(stubs, author, post_id)
    await wait_purged(sql, post_id)
    assert await save_count(engagement, post_id) == 0
    assert await saved_rows(sql, post_id) == 0
    assert await scalar(sql, "SELECT count(*) FROM engagement.post_counters WHERE post_id = :p", p=post_id) == 0
    code, reason, _ = await refused(save(engagement, FIRST_SAVER + 40, post_id))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "POST_NOT_FOUND")
    # The refused save was rolled back with its count.
    assert await save_count(engagement, post_id) == 0 == await saved_rows(sql, post_id)


async def test_reconcile_repairs_a_drifted_save_count(engagement, make_account, new_post, sql):
    author = await make_account()
    post_id = await new_post(author)
    for n in range(2):
        await save(engagement, FIRST_SAVER + 50 + n, post_id)
    async with sql.begin() as conn:
        # Saves made while counts were not kept (a process of the previous release during a rollout).
        await conn.exec_driver_sql(
            f"INSERT INTO engagement.post_counters (post_id, shard, saves) VALUES ({post_id}, 201, -2)"
        )
    assert await save_count(engagement, post_id) == 0
    response = await engagement.ReconcileCounts(engagement_pb2.ReconcileCountsRequest(post_ids=[post_id]))
    assert [(e.post_id, e.save_count) for e in response.engagement] == [(post_id, 2)]
    assert await save_count(engagement, post_id) == 2
    await save(engagement, FIRST_SAVER + 52, post_id)  # counting goes on from the repaired value
    assert await save_count(engagement, post_id) == 3


@pytest.fixture
async def erasure(database_url: str) -> AsyncIterator[EngagementErasure]:
    """engagement_svc's erasure on the test database, in batches of 2 (so one user's saves take
    several units of work)."""
    db = Database(database_url, pool_size=2)
    yield EngagementErasure(db, Outbox(models.outbox, IdGenerator()), counter_shards=4, batch_size=2)
    await db.dispose()


async def test_the_erasure_of_a_saver_lowers_each_post_s_save_count(engagement, erasure, make_account, new_post, sql):
    author = await make_account()
    posts = [await new_post(author) for _ in range(5)]
    leaving, staying = FIRST_SAVER + 60, FIRST_SAVER + 61
    for post_id in posts:
        await save(engagement, leaving, post_id)
    await save(engagement, staying, posts[0])
    assert [await save_count(engagement, p) for p in posts] == [2, 1, 1, 1, 1]
    await erasure.on_user_deleted(events_pb2.UserDeleted(user_id=leaving))
    assert [await save_count(engagement, p) for p in posts] == [1, 0, 0, 0, 0]
    assert [await saved_rows(sql, p) for p in posts] == [1, 0, 0, 0, 0]
    assert await scalar(sql, "SELECT count(*) FROM engagement.saves WHERE user_id = :u", u=leaving) == 0
    # A redelivered event finds nothing left: the counts stay.
    await erasure.on_user_deleted(events_pb2.UserDeleted(user_id=leaving))
    assert [await save_count(engagement, p) for p in posts] == [1, 0, 0, 0, 0]
