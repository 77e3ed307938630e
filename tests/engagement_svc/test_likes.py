"""Likes through the running engagement_svc: idempotent toggles under concurrent double-submits, exact
counts and one event per real change, the likers list, and refusals for unknown and deleted posts."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
from sqlalchemy import text

from engagement_svc.likes import LikeCursor
from glimpse.engagement.v1 import engagement_pb2
from mesh.events import POST_LIKED, POST_UNLIKED
from mesh.pagination import encode_cursor
from tests.engagement_svc.conftest import outbox_events, refused, scalar, wait_purged
from tests.feed_svc.actions import delete_post


def like(post_id: int) -> engagement_pb2.LikePostRequest:
    return engagement_pb2.LikePostRequest(post_id=post_id)


def unlike(post_id: int) -> engagement_pb2.UnlikePostRequest:
    return engagement_pb2.UnlikePostRequest(post_id=post_id)


async def like_rows(sql, post_id: int) -> int:
    return await scalar(sql, "SELECT count(*) FROM engagement.likes WHERE post_id = :p", p=post_id)


async def test_ten_concurrent_likes_make_one_like_one_count_and_one_event(engagement, make_account, new_post, sql):
    author, fan = await make_account(), await make_account()
    post_id = await new_post(author)
    states = await asyncio.gather(*(engagement.LikePost(like(post_id), metadata=fan.metadata) for _ in range(10)))
    # A call that lost the race waited for the winner's commit, so every answer shows the one like.
    assert {(s.post_id, s.liked, s.like_count) for s in states} == {(post_id, True, 1)}
    assert await like_rows(sql, post_id) == 1
    (event,) = await outbox_events(sql, POST_LIKED, post_id=post_id)
    assert (event.user_id, event.post_author_id) == (fan.id, author.id)

    states = await asyncio.gather(*(engagement.UnlikePost(unlike(post_id), metadata=fan.metadata) for _ in range(10)))
    assert {(s.liked, s.like_count) for s in states} == {(False, 0)}
    assert await like_rows(sql, post_id) == 0
    assert len(await outbox_events(sql, POST_UNLIKED, post_id=post_id)) == 1
    assert len(await outbox_events(sql, POST_LIKED, post_id=post_id)) == 1


async def test_counts_follow_every_user_including_the_author(engagement, make_account, new_post, sql):
    author = await make_account()
    fans = [await make_account() for _ in range(3)]
    post_id = await new_post(author)
    # The author's own like counts like anyone's (Pixelfed once lowered the count for it).
    assert (await engagement.LikePost(like(post_id), metadata=author.metadata)).like_count == 1
    for n, fan in enumerate(fans, start=2):
        assert (await engagement.LikePost(like(post_id), metadata=fan.metadata)).like_count == n
    # Unliking what one never liked changes nothing and announces nothing (Misskey's negative counts).
    stranger = await make_account()
    state = await engagement.UnlikePost(unlike(post_id), metadata=stranger.metadata)
    assert (state.liked, state.like_count) == (False, 4)
    assert await outbox_events(sql, POST_UNLIKED, post_id=post_id) == []
    state = await engagement.UnlikePost(unlike(post_id), metadata=author.metadata)
    assert (state.liked, state.like_count) == (False, 3)


async def test_likers_are_listed_newest_first_across_equal_times(engagement, make_account, new_post, sql):
    author = await make_account()
    post_id = await new_post(author)
    # Five likes at the same microsecond, one later, one earlier: by time, then user id, both descending.
    same = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    second = dt.timedelta(seconds=1)
    rows = [(1000 + n, same) for n in range(5)] + [(900, same + second), (2000, same - second)]
    async with sql.begin() as conn:
        for user_id, at in rows:
            await conn.execute(
                text("INSERT INTO engagement.likes (post_id, user_id, created_at) VALUES (:p, :u, :t)"),
                {"p": post_id, "u": user_id, "t": at},
            )
    seen: list[int] = []
    token = ""
    while True:
        page = await engagement.ListLikes(
            engagement_pb2.ListLikesRequest(parent=f"posts/{post_id}", page_size=2, page_token=token),
            metadata=author.metadata,
        )
        seen += [like.user_id for like in page.likes]
        token = page.next_page_token
        if not token:
            break
    assert seen == [900, 1004, 1003, 1002, 1001, 1000, 2000]
    first = await engagement.ListLikes(engagement_pb2.ListLikesRequest(parent=f"posts/{post_id}", page_size=1))
    assert first.likes[0].create_time.ToDatetime(dt.UTC) == same + dt.timedelta(seconds=1)


async def test_unknown_and_deleted_posts_are_not_found(engagement, make_account, new_post, stubs, sql):
    author, fan = await make_account(), await make_account()
    code, reason, _ = await refused(engagement.LikePost(like(7240392310784001), metadata=fan.metadata))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "POST_NOT_FOUND")
    post_id = await new_post(author)
    await engagement.LikePost(like(post_id), metadata=fan.metadata)
    await delete_post(stubs, author, post_id)
    await wait_purged(sql, post_id)
    for call in (
        engagement.LikePost(like(post_id), metadata=author.metadata),
        engagement.UnlikePost(unlike(post_id), metadata=fan.metadata),
        engagement.ListLikes(engagement_pb2.ListLikesRequest(parent=f"posts/{post_id}")),
    ):
        code, reason, _ = await refused(call)
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "POST_NOT_FOUND")


async def test_bad_requests_name_the_field(engagement, make_account):
    fan = await make_account()
    code, _, fields = await refused(engagement.LikePost(like(0), metadata=fan.metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "post_id" in fields
    code, _, fields = await refused(engagement.ListLikes(engagement_pb2.ListLikesRequest(parent="users/1")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "parent" in fields
    code, reason, _ = await refused(engagement.LikePost(like(1)))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "NO_CALLER")


async def test_a_forged_likes_token_is_invalid_argument(engagement, make_account, new_post):
    author = await make_account()
    post_id = await new_post(author)
    other_list = encode_cursor(LikeCursor(before_us=1, before_user=1), f"likes:{post_id + 1}")
    for token in ("not-a-token", other_list):
        code, _, fields = await refused(
            engagement.ListLikes(engagement_pb2.ListLikesRequest(parent=f"posts/{post_id}", page_token=token))
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in fields
