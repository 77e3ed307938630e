"""Saved posts through the running engagement_svc: idempotent and private toggles, the saver's list
newest first across equal times, and refusals for unknown and deleted posts."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
from sqlalchemy import text

from glimpse.engagement.v1 import engagement_pb2
from tests.engagement_svc.conftest import refused, scalar, wait_purged
from tests.feed_svc.actions import delete_post


async def saved_ids(engagement, account, size: int = 100) -> list[int]:
    seen, token = [], ""
    while True:
        page = await engagement.ListSavedPosts(
            engagement_pb2.ListSavedPostsRequest(page_size=size, page_token=token), metadata=account.metadata
        )
        seen += [s.post_id for s in page.saved_posts]
        if not (token := page.next_page_token):
            return seen


async def test_concurrent_saves_and_unsaves_are_idempotent_and_private(engagement, make_account, new_post, sql):
    author, ada = await make_account(), await make_account()
    post_id = await new_post(author)
    request = engagement_pb2.SavePostRequest(post_id=post_id)
    states = await asyncio.gather(*(engagement.SavePost(request, metadata=ada.metadata) for _ in range(10)))
    assert {(s.post_id, s.saved) for s in states} == {(post_id, True)}
    rows = "SELECT count(*) FROM engagement.saves WHERE post_id = :p"
    assert await scalar(sql, rows, p=post_id) == 1
    assert await saved_ids(engagement, ada) == [post_id]
    assert await saved_ids(engagement, author) == []  # the author does not see who saved it
    batch = engagement_pb2.BatchGetEngagementRequest(post_ids=[post_id])
    assert (await engagement.BatchGetEngagement(batch, metadata=ada.metadata)).engagement[0].viewer_has_saved
    assert not (await engagement.BatchGetEngagement(batch, metadata=author.metadata)).engagement[0].viewer_has_saved
    unsave = engagement_pb2.UnsavePostRequest(post_id=post_id)
    states = await asyncio.gather(*(engagement.UnsavePost(unsave, metadata=ada.metadata) for _ in range(10)))
    assert {s.saved for s in states} == {False}
    assert await scalar(sql, rows, p=post_id) == 0
    assert await saved_ids(engagement, ada) == []


async def test_saved_posts_page_newest_first_across_equal_times(engagement, make_account, new_post, sql):
    ada = await make_account()
    posts = [await new_post(ada) for _ in range(4)]
    same = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    times = [same, same, same + dt.timedelta(seconds=1), same]
    async with sql.begin() as conn:
        for post_id, at in zip(posts, times, strict=True):
            await conn.execute(
                text("INSERT INTO engagement.saves (user_id, post_id, created_at) VALUES (:u, :p, :t)"),
                {"u": ada.id, "p": post_id, "t": at},
            )
    expected = [posts[2], posts[3], posts[1], posts[0]]  # the later one, then by post id descending
    assert await saved_ids(engagement, ada, size=1) == expected
    assert await saved_ids(engagement, ada, size=3) == expected


async def test_saving_unknown_or_deleted_posts_is_not_found(engagement, make_account, new_post, stubs, sql):
    author = await make_account()
    code, reason, _ = await refused(
        engagement.SavePost(engagement_pb2.SavePostRequest(post_id=7240392310784001), metadata=author.metadata)
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "POST_NOT_FOUND")
    post_id = await new_post(author)
    await engagement.SavePost(engagement_pb2.SavePostRequest(post_id=post_id), metadata=author.metadata)
    await delete_post(stubs, author, post_id)
    await wait_purged(sql, post_id)
    assert await saved_ids(engagement, author) == []
    for call in (
        engagement.SavePost(engagement_pb2.SavePostRequest(post_id=post_id), metadata=author.metadata),
        engagement.UnsavePost(engagement_pb2.UnsavePostRequest(post_id=post_id), metadata=author.metadata),
    ):
        code, reason, _ = await refused(call)
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "POST_NOT_FOUND")
