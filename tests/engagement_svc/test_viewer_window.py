"""ListViewerEngagement: a reader's own likes and saves of recent posts, the window feed_svc caches
(engagement_cache)."""

from __future__ import annotations

import grpc

from glimpse.engagement.v1 import engagement_pb2
from tests.engagement_svc.conftest import refused


async def window(engagement, reader, since: int = 0, limit: int = 0) -> engagement_pb2.ListViewerEngagementResponse:
    request = engagement_pb2.ListViewerEngagementRequest(since_post_id=since, limit=limit)
    return await engagement.ListViewerEngagement(request, metadata=reader.metadata)


async def test_a_window_lists_likes_and_saves_newest_post_first(engagement, make_account, new_post):
    author, reader = await make_account(), await make_account()
    posts = [await new_post(author, f"window {n}") for n in range(4)]
    for post in posts[:3]:
        await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post), metadata=reader.metadata)
    await engagement.SavePost(engagement_pb2.SavePostRequest(post_id=posts[3]), metadata=reader.metadata)
    await engagement.UnlikePost(engagement_pb2.UnlikePostRequest(post_id=posts[1]), metadata=reader.metadata)
    whole = await window(engagement, reader)
    assert list(whole.liked_post_ids) == [posts[2], posts[0]]
    assert list(whole.saved_post_ids) == [posts[3]]
    assert whole.complete_since_post_id == 0
    # Posts older than `since` are left out; nothing was cut, so the window starts at `since`.
    recent = await window(engagement, reader, since=posts[1])
    assert list(recent.liked_post_ids) == [posts[2]] and recent.complete_since_post_id == posts[1]
    # A list cut at the limit is complete only from its last post, and so is the window.
    cut = await window(engagement, reader, limit=2)
    assert list(cut.liked_post_ids) == [posts[2], posts[0]] and cut.complete_since_post_id == posts[0]
    cut = await window(engagement, reader, limit=1)
    assert cut.complete_since_post_id == posts[3]
    assert list(cut.liked_post_ids) == [] and list(cut.saved_post_ids) == [posts[3]]
    assert list((await window(engagement, author)).liked_post_ids) == []


async def test_a_bad_limit_or_no_caller_is_refused(engagement, make_account):
    reader = await make_account()
    for limit in (-1, 10_001):
        code, _, fields = await refused(window(engagement, reader, limit=limit))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and list(fields) == ["limit"]
    request = engagement_pb2.ListViewerEngagementRequest()
    code, _, _ = await refused(engagement.ListViewerEngagement(request))
    assert code == grpc.StatusCode.UNAUTHENTICATED
