"""The proof of issue 16's right to erasure: a user who has done everything is deleted through the
gateway, and once the erasure has run no store (every schema, every Redis key of the deployment,
the media bucket) holds their id, except what is kept by design: a report about them keeps its
subject (the issue: "reports keep their snapshots"), and the gateway's rate-limit counters of the
deletion request itself expire with their window. What others see changes as for any deletion:
counts drop, their posts leave feeds and tags, the notifications they caused go.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import httpx
import pytest
from google.protobuf import field_mask_pb2, struct_pb2

from bench.references import Reference, find_references
from engagement_cache import EngagementCache
from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2
from glimpse.graph.v1 import graph_pb2
from glimpse.media.v1 import media_pb2
from glimpse.notification.v1 import notification_pb2, notification_pb2_grpc
from glimpse.post.v1 import post_pb2
from glimpse.story.v1 import story_pb2, story_pb2_grpc
from media_svc.settings import MediaSettings
from mesh.redis_client import connect_redis
from tests.conftest import PASSWORD, Account, Stubs, tiny_png
from timelines.keys import TimelineKeys
from timelines.store import member

pytestmark = pytest.mark.usefixtures("fanout", "media_worker")

# How long the erasure may take here (a handful of rows per service; events cross three streams).
ERASURE_WITHIN_SECONDS = 60.0


@pytest.fixture
async def notifications(notification_addr: str) -> AsyncIterator[notification_pb2_grpc.NotificationServiceStub]:
    async with grpc.aio.insecure_channel(notification_addr) as channel:
        yield notification_pb2_grpc.NotificationServiceStub(channel)


@pytest.fixture
async def stories(story_addr: str) -> AsyncIterator[story_pb2_grpc.StoryServiceStub]:
    async with grpc.aio.insecure_channel(story_addr) as channel:
        yield story_pb2_grpc.StoryServiceStub(channel)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g}s: {what}")
        await asyncio.sleep(0.1)


async def delete_account(http: httpx.AsyncClient, user: Account) -> None:
    """Deletes the account as its owner does: through the gateway, with their password."""
    deleted = await http.request("DELETE", "/v1/users/me", headers=user.headers, json={"password": PASSWORD})
    assert deleted.status_code == 202, deleted.text


def kept_by_design(ref: Reference, namespace: str) -> bool:
    """A reference the issue keeps: a report's subject, or a rate-limit counter that expires."""
    if ref.store == "postgres" and ref.where.startswith("graph.reports."):
        return True
    return (
        ref.store == "redis"
        and ref.where.startswith(f"{namespace}:rate")
        and ref.ttl_seconds is not None
        and ref.ttl_seconds <= 24 * 3600
    )


async def test_a_deleted_user_leaves_no_trace(
    stubs: Stubs,
    notifications: notification_pb2_grpc.NotificationServiceStub,
    stories: story_pb2_grpc.StoryServiceStub,
    make_account: Callable[[], Awaitable[Account]],
    upload_photo: Callable[..., Awaitable[int]],
    http: httpx.AsyncClient,
    database_url: str,
    namespace: str,
    media_settings: MediaSettings,
) -> None:
    user, friend, other, blocked, muted = [await make_account() for _ in range(5)]
    graph, engagement = stubs.graph, stubs.engagement

    async def follow(who: Account, target: Account) -> None:
        await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=target.id), metadata=who.metadata)

    async def post(who: Account, caption: str) -> int:
        media_id = await upload_photo(who)
        created = await stubs.post.CreatePost(
            post_pb2.CreatePostRequest(caption=caption, media_ids=[media_id], request_id=f"erasure-{media_id}"),
            metadata=who.metadata,
        )
        return created.id

    # The friend's inbox is live (read once), so the user's posts are pushed into it.
    await stubs.feed.GetHomeFeed(feed_pb2.GetHomeFeedRequest(page_size=5), metadata=friend.metadata)
    await follow(user, friend)
    await follow(friend, user)
    await follow(other, user)
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocked.id), metadata=user.metadata)
    await graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=muted.id), metadata=user.metadata)

    tag = f"erasure{user.id % 100000}"
    mine = [await post(user, f"Mine #{tag} with @{friend.user.username}") for _ in range(2)]
    friends_post = await post(friend, "the friend's photo")
    others_post = await post(other, "another photo")

    # Likes and saves both ways; comments, replies under theirs and theirs under others'.
    for post_id in (friends_post, others_post):
        await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=user.metadata)
    await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=mine[0]), metadata=friend.metadata)
    # The friend's like notification of their post groups two people: the user and the other.
    await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=friends_post), metadata=other.metadata)
    await engagement.SavePost(engagement_pb2.SavePostRequest(post_id=friends_post), metadata=user.metadata)
    await engagement.SavePost(engagement_pb2.SavePostRequest(post_id=mine[1]), metadata=friend.metadata)

    async def comment(who: Account, post_id: int, text: str, parent: int = 0) -> engagement_pb2.Comment:
        request = engagement_pb2.CreateCommentRequest(post_id=post_id, text=text, parent_comment_id=parent)
        return await engagement.CreateComment(request, metadata=who.metadata)

    theirs = await comment(user, friends_post, f"Lovely, @{friend.user.username}")
    await comment(friend, friends_post, "Thanks!", parent=theirs.id)
    others_comment = await comment(other, others_post, "my own photo")
    await comment(user, others_post, "nice one", parent=others_comment.id)
    await comment(friend, mine[0], "great shot")

    # Reports: one they made (it stays, without them) and one about them (it keeps its subject).
    snapshot = struct_pb2.Struct()
    snapshot.update({"caption": "the friend's photo"})
    profile = struct_pb2.Struct()
    profile.update({"id": str(user.id), "username": user.user.username})
    await graph.CreateReport(
        graph_pb2.CreateReportRequest(
            subject_type=graph_pb2.REPORT_SUBJECT_TYPE_POST,
            subject_id=friends_post,
            reported_user_id=friend.id,
            reason=graph_pb2.REPORT_REASON_SPAM,
            snapshot=snapshot,
        ),
        metadata=user.metadata,
    )
    await graph.CreateReport(
        graph_pb2.CreateReportRequest(
            subject_type=graph_pb2.REPORT_SUBJECT_TYPE_USER,
            subject_id=user.id,
            reported_user_id=user.id,
            reason=graph_pb2.REPORT_REASON_HARASSMENT,
            snapshot=profile,
        ),
        metadata=other.metadata,
    )

    # Stories: theirs viewed by the friend, the friend's viewed by them.
    their_story = await stories.CreateStory(
        story_pb2.CreateStoryRequest(media_id=await upload_photo(user), request_id="erasure-story"),
        metadata=user.metadata,
    )
    friends_story = await stories.CreateStory(
        story_pb2.CreateStoryRequest(media_id=await upload_photo(friend), request_id="erasure-story"),
        metadata=friend.metadata,
    )
    await stories.ViewStory(story_pb2.ViewStoryRequest(story_id=their_story.id), metadata=friend.metadata)
    await stories.ViewStory(story_pb2.ViewStoryRequest(story_id=friends_story.id), metadata=user.metadata)

    # Their notification settings and read marker, and notifications they caused and received.
    await notifications.UpdateNotificationSettings(
        notification_pb2.UpdateNotificationSettingsRequest(
            settings=notification_pb2.NotificationSettings(mention=False),
            update_mask=field_mask_pb2.FieldMask(paths=["mention"]),
        ),
        metadata=user.metadata,
    )

    async def inbox(who: Account) -> list[notification_pb2.Notification]:
        page = await notifications.ListNotifications(
            notification_pb2.ListNotificationsRequest(page_size=30), metadata=who.metadata
        )
        return list(page.notifications)

    async def caused_by_user(who: Account) -> int:
        return sum(1 for n in await inbox(who) if user.id in n.actor_ids)

    # follow, like, comment, mention in the comment, reply under the friend's reply... at least four.
    await eventually(lambda: _at_least(caused_by_user(friend), 4), "the friend is told what the user did")

    async def grouped_like() -> bool:
        return any(
            n.type == notification_pb2.NOTIFICATION_TYPE_LIKE and n.post_id == friends_post and n.actor_count == 2
            for n in await inbox(friend)
        )

    await eventually(grouped_like, "the user and the other share the friend's like notification")
    await eventually(lambda: _at_least(caused_by_user(other), 2), "the other user is told (follow, reply)")
    await eventually(lambda: _at_least(_count(inbox(user)), 3), "the user is told (follows, like, comment)")
    newest = (await inbox(user))[0].id
    await notifications.MarkNotificationsRead(
        notification_pb2.MarkNotificationsReadRequest(up_to_id=newest), metadata=user.metadata
    )

    # A profile picture (rendered into public squares under the avatars prefix).
    picture = tiny_png(7)
    grant = await http.post(
        "/v1/media/upload-url",
        json={"content_type": "image/png", "size_bytes": len(picture), "purpose": "avatar"},
        headers=user.headers,
    )
    assert grant.status_code == 201, grant.text
    async with httpx.AsyncClient(timeout=30) as store:
        sent = await store.post(
            grant.json()["url"], data=grant.json()["form_fields"], files={"file": ("a.png", picture, "image/png")}
        )
    assert sent.status_code in (200, 201, 204), sent.text
    shown = await http.put("/v1/users/me/avatar", json={"media_id": grant.json()["media_id"]}, headers=user.headers)
    assert shown.status_code == 202, shown.text

    async def has_avatar() -> bool:
        profile = await http.get("/v1/users/me", headers=user.headers)
        return profile.json()["avatar_url"] is not None

    await eventually(has_avatar, "the user's picture is rendered", within=30)

    # A data export of theirs: a zip under exports/{uid}/ in export_svc's bucket.
    requested = await http.post("/v1/users/me/exports", headers=user.headers)
    assert requested.status_code == 202, requested.text

    async def export_ready() -> bool:
        export = await http.get(f"/v1/users/me/exports/{requested.json()['export_id']}", headers=user.headers)
        return bool(export.json()["state"] == "READY")

    await eventually(export_ready, "the user's data export is built", within=30)

    async def renditions_ready() -> bool:
        got = await stubs.post.BatchGetPosts(post_pb2.BatchGetPostsRequest(post_ids=mine))
        media_ids = [m for p in got.posts for m in p.media_ids]
        found = await stubs.media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=media_ids))
        return all(m.status == media_pb2.MEDIA_STATUS_READY for m in found.media)

    await eventually(renditions_ready, "the user's photos are rendered")

    async def friends_feed() -> list[int]:
        page = await stubs.feed.GetHomeFeed(feed_pb2.GetHomeFeedRequest(page_size=20), metadata=friend.metadata)
        return [item.id for item in page.items]

    await eventually(lambda: _contains(friends_feed(), mine), "the user's posts reach the friend's feed")

    redis = connect_redis(media_settings.redis_url)
    try:
        # Their own home feed read: the engagement cache holds their window of likes and saves.
        viewer_key = EngagementCache(redis, namespace).viewer_key(user.id)

        async def window_cached() -> bool:
            await stubs.feed.GetHomeFeed(feed_pb2.GetHomeFeedRequest(page_size=20), metadata=user.metadata)
            return bool(await redis.exists(viewer_key))

        await eventually(window_cached, "the user's own likes and saves are cached")
        before = await find_references(database_url, redis, namespace, media_settings, user.id)
        assert {r.store for r in before} == {"postgres", "redis", "bucket"}, "the user should be everywhere first"
        assert any(r.where.startswith("avatars/") for r in before), "their picture is in the bucket"
        inbox_key = TimelineKeys(namespace).inbox(friend.id)
        assert {member(p).encode() for p in mine} <= set(await redis.zrange(inbox_key, 0, -1))
        assert any(r.where.startswith("exports/") for r in before), "their export is in its bucket"

        await delete_account(http, user)

        deadline = time.monotonic() + ERASURE_WITHIN_SECONDS
        while True:
            left = await find_references(database_url, redis, namespace, media_settings, user.id)
            unexpected = [str(r) for r in left if not kept_by_design(r, namespace)]
            if not unexpected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert not unexpected, f"still held {ERASURE_WITHIN_SECONDS:g}s after the deletion: {unexpected}"
        # The report about them is kept (evidence); the one they made stays without them.
        assert any(r.where == "graph.reports.reported_user_id" for r in left)
        # Their posts left the friend's inbox too (fanout_svc's pass over every inbox).
        held = await redis.zrange(inbox_key, 0, -1)
        assert not {member(p).encode() for p in mine} & set(held)
    finally:
        await redis.aclose()

    # What others see changed as for any deletion: counts, threads, feeds, tags, notifications, views.
    counts = await engagement.BatchGetEngagement(
        engagement_pb2.BatchGetEngagementRequest(post_ids=[friends_post, others_post]), metadata=friend.metadata
    )
    by_post = {e.post_id: e for e in counts.engagement}
    assert (by_post[friends_post].like_count, by_post[friends_post].comment_count) == (1, 0)
    assert (by_post[others_post].like_count, by_post[others_post].comment_count) == (0, 1)
    replies_left = await engagement.GetComment(
        engagement_pb2.GetCommentRequest(comment_id=others_comment.id), metadata=other.metadata
    )
    assert replies_left.reply_count == 0
    assert not set(mine) & set(await friends_feed())
    tag_now = await stubs.post.GetTag(post_pb2.GetTagRequest(tag=tag))
    assert tag_now.post_count == 0
    assert await caused_by_user(friend) == 0
    likes_group = [
        n
        for n in await inbox(friend)
        if n.type == notification_pb2.NOTIFICATION_TYPE_LIKE and n.post_id == friends_post
    ]
    assert [(list(n.actor_ids), n.actor_count) for n in likes_group] == [([other.id], 1)]
    assert await caused_by_user(other) == 0
    viewers = await stories.ListStoryViewers(
        story_pb2.ListStoryViewersRequest(parent=f"stories/{friends_story.id}"), metadata=friend.metadata
    )
    assert viewers.view_count == 0
    follower_count = await graph.GetFollowerCount(graph_pb2.GetFollowerCountRequest(user_id=friend.id))
    assert follower_count.follower_count == 0


async def _at_least(count: Awaitable[int], n: int) -> bool:
    return await count >= n


async def _count(items: Awaitable[list[notification_pb2.Notification]]) -> int:
    return len(await items)


async def _contains(found: Awaitable[list[int]], wanted: list[int]) -> bool:
    return set(wanted) <= set(await found)
