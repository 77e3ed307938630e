"""The story tray through the running story_svc: yourself first, then followees with unseen stories,
then by most recent story; counts and `has_unseen`; expired stories, blocks, mutes and private accounts
no longer followed leave it."""

from __future__ import annotations

import grpc

from glimpse.graph.v1 import graph_pb2
from glimpse.story.v1 import story_pb2
from tests.story_svc.conftest import age, follow, make_private


async def tray(stories, reader) -> list[tuple[int, int, bool]]:
    response = await stories.GetStoryTray(story_pb2.GetStoryTrayRequest(), metadata=reader.metadata)
    return [(e.author_id, e.story_count, e.has_unseen) for e in response.entries]


async def test_tray_order_self_first_then_unseen_then_most_recent(stories, stubs, make_account, new_story, sql):
    me = await make_account()
    a, b, c, quiet = [await make_account() for _ in range(4)]
    for followee in (a, b, c, quiet):
        await follow(stubs, me, followee)
    assert await tray(stories, me) == []

    await new_story(a)
    a_latest = await new_story(a)
    b_story = await new_story(b)
    c_story = await new_story(c)
    await new_story(me)
    # Newest first among unseen; the caller's own entry first, never "unseen".
    assert await tray(stories, me) == [(me.id, 1, False), (c.id, 1, True), (b.id, 1, True), (a.id, 2, True)]
    # Seen entries go after every unseen one; one unseen story of two keeps an entry unseen.
    await stories.ViewStory(story_pb2.ViewStoryRequest(story_id=c_story.id), metadata=me.metadata)
    await stories.ViewStory(story_pb2.ViewStoryRequest(story_id=a_latest.id), metadata=me.metadata)
    assert await tray(stories, me) == [(me.id, 1, False), (b.id, 1, True), (a.id, 2, True), (c.id, 1, False)]
    # An expired story leaves the tray though no sweeper ran; the latest time is then the other's.
    await age(sql, b_story.id)
    entries = (await stories.GetStoryTray(story_pb2.GetStoryTrayRequest(), metadata=me.metadata)).entries
    assert [e.author_id for e in entries] == [me.id, a.id, c.id]
    assert entries[1].latest_story_time == a_latest.create_time
    # Not following means not in the tray.
    stranger = await make_account()
    await new_story(stranger)
    assert stranger.id not in [author for author, _, _ in await tray(stories, me)]


async def test_blocked_muted_and_private_unfollowed_authors_leave_the_tray(stories, stubs, make_account, new_story):
    me = await make_account()
    muted, blocks_me, blocked, private = [await make_account() for _ in range(4)]
    for followee in (muted, blocks_me, blocked, private):
        await follow(stubs, me, followee)
        await new_story(followee)
    await stubs.graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=muted.id), metadata=me.metadata)
    await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=me.id), metadata=blocks_me.metadata)
    await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocked.id), metadata=me.metadata)
    await make_private(stubs, private)
    assert await tray(stories, me) == [(private.id, 1, True)]
    # A muted account's stories can still be opened; only the tray leaves them out.
    listed = await stories.ListStories(story_pb2.ListStoriesRequest(parent=f"users/{muted.id}"), metadata=me.metadata)
    assert len(listed.stories) == 1
    await stubs.graph.UnfollowUser(graph_pb2.UnfollowUserRequest(target_user_id=private.id), metadata=me.metadata)
    assert await tray(stories, me) == []


async def test_tray_needs_a_caller(stories):
    try:
        await stories.GetStoryTray(story_pb2.GetStoryTrayRequest())
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
    else:
        raise AssertionError("the tray of nobody was served")
