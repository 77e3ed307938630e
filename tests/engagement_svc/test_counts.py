"""Counts: after any mix of concurrent likes, unlikes, comments, replies and deletions they equal a
recount of the rows; one batch call serves a page; reconciling repairs a drift, even under load."""

from __future__ import annotations

import asyncio
import random

import grpc

from glimpse.engagement.v1 import engagement_pb2
from mesh.identity import as_caller
from tests.engagement_svc.conftest import refused, scalar

# Likes need no account: the caller's id is all engagement_svc reads (graph_svc is not asked).
FIRST_FAN = 9_000_000


async def engagement_of(engagement, post_ids: list[int], viewer: int = 0) -> list[engagement_pb2.PostEngagement]:
    request = engagement_pb2.BatchGetEngagementRequest(post_ids=post_ids)
    metadata = as_caller(viewer) if viewer else None
    return list((await engagement.BatchGetEngagement(request, metadata=metadata)).engagement)


async def recount(sql, post_id: int) -> tuple[int, int]:
    likes = await scalar(sql, "SELECT count(*) FROM engagement.likes WHERE post_id = :p", p=post_id)
    comments = await scalar(sql, "SELECT count(*) FROM engagement.comments WHERE post_id = :p AND state = 1", p=post_id)
    return likes, comments


async def reply_counts_are_true(sql, post_id: int) -> bool:
    wrong = await scalar(
        sql,
        "SELECT count(*) FROM engagement.comments c WHERE c.post_id = :p AND c.parent_id IS NULL AND c.state = 1 "
        "AND c.reply_count <> (SELECT count(*) FROM engagement.comments r WHERE r.parent_id = c.id AND r.state = 1)",
        p=post_id,
    )
    return wrong == 0


async def test_counts_match_a_recount_after_a_random_concurrent_mix(engagement, make_account, new_post, sql):
    author = await make_account()
    post_id = await new_post(author)
    users = [author.id] + [FIRST_FAN + n for n in range(7)]
    rng = random.Random(11)
    live: list[engagement_pb2.Comment] = []

    async def act() -> None:
        user = rng.choice(users)
        metadata = as_caller(user)
        kind = rng.choice(["like", "like", "unlike", "comment", "reply", "delete"])
        if kind == "like":
            await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=metadata)
        elif kind == "unlike":
            await engagement.UnlikePost(engagement_pb2.UnlikePostRequest(post_id=post_id), metadata=metadata)
        elif kind in ("comment", "reply"):
            target = rng.choice(live).id if kind == "reply" and live else 0
            request = engagement_pb2.CreateCommentRequest(
                post_id=post_id, text=f"{kind} by {user}", parent_comment_id=target
            )
            try:
                live.append(await engagement.CreateComment(request, metadata=metadata))
            except grpc.aio.AioRpcError as exc:  # its thread was deleted by a concurrent step
                assert exc.code() == grpc.StatusCode.NOT_FOUND
        elif live:
            victim = live.pop(rng.randrange(len(live)))
            # The post's author may delete any comment; repeats and gone threads answer deleted=False.
            await engagement.DeleteComment(
                engagement_pb2.DeleteCommentRequest(comment_id=victim.id), metadata=author.metadata
            )

    for _ in range(12):
        await asyncio.gather(*(act() for _ in range(10)))
        (counted,) = await engagement_of(engagement, [post_id])
        assert (counted.like_count, counted.comment_count) == await recount(sql, post_id)
    assert await reply_counts_are_true(sql, post_id)
    for user in users:
        liked = await scalar(
            sql, "SELECT count(*) FROM engagement.likes WHERE post_id = :p AND user_id = :u", p=post_id, u=user
        )
        (mine,) = await engagement_of(engagement, [post_id], viewer=user)
        assert mine.viewer_has_liked == bool(liked)


async def test_one_batch_answers_a_page_in_request_order(engagement, make_account, new_post):
    author = await make_account()
    liked, plain = await new_post(author), await new_post(author)
    await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=liked), metadata=author.metadata)
    await engagement.SavePost(engagement_pb2.SavePostRequest(post_id=plain), metadata=author.metadata)
    unknown = 7240392310784001
    found = await engagement_of(engagement, [plain, unknown, liked, plain], viewer=author.id)
    assert [(e.post_id, e.like_count, e.viewer_has_liked, e.viewer_has_saved) for e in found] == [
        (plain, 0, False, True),
        (unknown, 0, False, False),
        (liked, 1, True, False),
        (plain, 0, False, True),
    ]
    anonymous = await engagement_of(engagement, [liked])
    assert (anonymous[0].like_count, anonymous[0].viewer_has_liked) == (1, False)
    assert await engagement_of(engagement, []) == []
    code, _, fields = await refused(engagement_of(engagement, list(range(1, 102))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "post_ids" in fields


async def test_reconcile_repairs_drifted_counters_and_reply_counts(engagement, make_account, new_post, sql):
    author = await make_account()
    post_id = await new_post(author)
    for n in range(3):
        await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=as_caller(FIRST_FAN + n))
    thread = await engagement.CreateComment(
        engagement_pb2.CreateCommentRequest(post_id=post_id, text="t"), metadata=author.metadata
    )
    await engagement.CreateComment(
        engagement_pb2.CreateCommentRequest(post_id=post_id, text="r", parent_comment_id=thread.id),
        metadata=author.metadata,
    )
    async with sql.begin() as conn:
        # A stray shard (a bug, a restore from backup, a hand edit): the sum drifts.
        await conn.exec_driver_sql(
            f"INSERT INTO engagement.post_counters (post_id, shard, likes, comments) VALUES ({post_id}, 200, 40, -9)"
        )
        await conn.exec_driver_sql(f"UPDATE engagement.comments SET reply_count = 5 WHERE id = {thread.id}")
    (drifted,) = await engagement_of(engagement, [post_id])
    assert (drifted.like_count, drifted.comment_count) == (43, -7)
    response = await engagement.ReconcileCounts(engagement_pb2.ReconcileCountsRequest(post_ids=[post_id]))
    assert [(e.post_id, e.like_count, e.comment_count) for e in response.engagement] == [(post_id, 3, 2)]
    (repaired,) = await engagement_of(engagement, [post_id])
    assert (repaired.like_count, repaired.comment_count) == (3, 2)
    assert await reply_counts_are_true(sql, post_id)
    # Counting goes on from the repaired value.
    state = await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=author.metadata)
    assert state.like_count == 4


async def test_reconciling_while_likes_arrive_loses_none(engagement, make_account, new_post, sql):
    author = await make_account()
    post_id = await new_post(author)
    request = engagement_pb2.LikePostRequest(post_id=post_id)
    likes = [engagement.LikePost(request, metadata=as_caller(FIRST_FAN + n)) for n in range(60)]
    reconciles = [
        engagement.ReconcileCounts(engagement_pb2.ReconcileCountsRequest(post_ids=[post_id])) for _ in range(6)
    ]
    calls = likes + reconciles
    random.Random(5).shuffle(calls)
    await asyncio.gather(*calls)
    (counted,) = await engagement_of(engagement, [post_id])
    assert counted.like_count == 60 == (await recount(sql, post_id))[0]
