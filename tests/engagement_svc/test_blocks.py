"""A block takes each user's likes, comments and saves off the other's posts (engagement_svc.blocks):
counts drop exactly, a third party's engagement stays, and a redelivered event changes nothing."""

from __future__ import annotations

import asyncio

import grpc

from engagement_svc import models
from engagement_svc.blocks import BlockPurge
from glimpse.engagement.v1 import engagement_pb2
from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2
from glimpse.post.v1 import post_pb2_grpc
from mesh.db import Database
from mesh.events import COMMENT_DELETED, POST_UNLIKED
from mesh.ids import IdGenerator
from mesh.outbox import Outbox
from tests.engagement_svc.conftest import outbox_events, scalar


async def counts(engagement, viewer, post_ids: list[int]) -> dict[int, tuple[int, int, int]]:
    request = engagement_pb2.BatchGetEngagementRequest(post_ids=post_ids)
    answer = await engagement.BatchGetEngagement(request, metadata=viewer.metadata)
    return {e.post_id: (e.like_count, e.comment_count, e.save_count) for e in answer.engagement}


async def rows(sql, table: str, user_id: int, post_id: int) -> int:
    column = "author_id" if table == "comments" else "user_id"
    query = f"SELECT count(*) FROM engagement.{table} WHERE {column} = :u AND post_id = :p"
    return await scalar(sql, query, u=user_id, p=post_id)


async def test_a_block_takes_each_ones_engagement_off_the_others_posts(
    engagement, stubs, make_account, new_post, sql, database_url, post_addr
):
    blocker, blocked, third = await make_account(), await make_account(), await make_account()
    theirs, mine, elsewhere = await new_post(blocker), await new_post(blocked), await new_post(third)

    async def like(user, post_id: int) -> None:
        await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=user.metadata)

    async def save(user, post_id: int) -> None:
        await engagement.SavePost(engagement_pb2.SavePostRequest(post_id=post_id), metadata=user.metadata)

    async def comment(user, post_id: int, parent: int = 0) -> int:
        request = engagement_pb2.CreateCommentRequest(post_id=post_id, text="hi", parent_comment_id=parent)
        return (await engagement.CreateComment(request, metadata=user.metadata)).id

    # The blocked user likes, saves and comments on the blocker's post; a third user replies to that
    # comment and likes the post too; the blocker likes and comments on the blocked user's post; the
    # blocked user also likes a third party's post.
    for user, post_id in ((blocked, theirs), (third, theirs), (blocker, mine), (blocked, elsewhere)):
        await like(user, post_id)
    await save(blocked, theirs)
    thread = await comment(blocked, theirs)
    await comment(third, theirs, parent=thread)
    kept = await comment(third, theirs)
    await comment(blocker, mine)
    assert await counts(engagement, third, [theirs, mine, elsewhere]) == {
        theirs: (2, 3, 1),
        mine: (1, 1, 0),
        elsewhere: (1, 0, 0),
    }

    await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocked.id), metadata=blocker.metadata)
    deadline = asyncio.get_running_loop().time() + 15
    while await rows(sql, "likes", blocker.id, mine) or await rows(sql, "likes", blocked.id, theirs):
        assert asyncio.get_running_loop().time() < deadline, "the block's purge did not run"
        await asyncio.sleep(0.05)

    # Only the third user's like and own comment stay on the blocker's post (the reply went with the
    # blocked user's thread); nothing stays on the blocked user's; the third party's post is untouched.
    assert await counts(engagement, third, [theirs, mine, elsewhere]) == {
        theirs: (1, 1, 0),
        mine: (0, 0, 0),
        elsewhere: (1, 0, 0),
    }
    for table in ("likes", "saves", "comments"):
        assert await rows(sql, table, blocked.id, theirs) == 0, table
        assert await rows(sql, table, blocker.id, mine) == 0, table
    assert await rows(sql, "comments", third.id, theirs) == 1
    comments_left = await engagement.ListComments(
        engagement_pb2.ListCommentsRequest(parent=f"posts/{theirs}"), metadata=blocker.metadata
    )
    assert [c.id for c in comments_left.comments] == [kept]
    # Announced as an unlike and a deletion are.
    assert await outbox_events(sql, POST_UNLIKED, post_id=theirs, user_id=blocked.id)
    assert await outbox_events(sql, POST_UNLIKED, post_id=mine, user_id=blocker.id)
    assert await outbox_events(sql, COMMENT_DELETED, comment_id=thread, author_id=blocked.id)

    # A redelivered event finds nothing left: nothing changes, nothing more is announced.
    db = Database(database_url, pool_size=1)
    try:
        async with grpc.aio.insecure_channel(post_addr) as channel:
            purge = BlockPurge(
                db,
                Outbox(models.outbox, IdGenerator()),
                post_pb2_grpc.PostServiceStub(channel),
                counter_shards=4,
                timeout=5,
            )
            before = len(await outbox_events(sql, POST_UNLIKED, post_id=theirs))
            await purge.on_user_blocked(events_pb2.UserBlocked(blocker_id=blocker.id, blocked_id=blocked.id))
            assert len(await outbox_events(sql, POST_UNLIKED, post_id=theirs)) == before
    finally:
        await db.dispose()
    assert await counts(engagement, third, [theirs, mine, elsewhere]) == {
        theirs: (1, 1, 0),
        mine: (0, 0, 0),
        elsewhere: (1, 0, 0),
    }
    # The counters agreed with the rows they count: recounting from the rows finds the same.
    reconciled = await engagement.ReconcileCounts(engagement_pb2.ReconcileCountsRequest(post_ids=[theirs, mine]))
    assert [(e.like_count, e.comment_count, e.save_count) for e in reconciled.engagement] == [(1, 1, 0), (0, 0, 0)]
