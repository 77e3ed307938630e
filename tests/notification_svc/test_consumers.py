"""What users do through the real services reaches the right inboxes as events: likes and unlikes,
comments, replies and mentions (with their previews), follows, follow requests and their approval;
blocks, mutes and visibility keep notifications away (and a block removes what was there); deleted
comments and posts take theirs with them; and a redelivered event changes nothing."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from glimpse.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.notification.v1 import notification_pb2
from glimpse.post.v1 import post_pb2_grpc
from mesh.events import PoisonMessage
from mesh.ids import IdGenerator
from notification_svc.consumers import ActivityEvents
from notification_svc.content import ContentDirectory
from notification_svc.privacy import Privacy
from tests.conftest import Account
from tests.feed_svc.actions import delete_post, follow
from tests.notification_svc.conftest import eventually, inbox
from visibility import Visibility

LIKE = notification_pb2.NOTIFICATION_TYPE_LIKE
COMMENT = notification_pb2.NOTIFICATION_TYPE_COMMENT
REPLY = notification_pb2.NOTIFICATION_TYPE_REPLY
MENTION = notification_pb2.NOTIFICATION_TYPE_MENTION
FOLLOW = notification_pb2.NOTIFICATION_TYPE_FOLLOW
FOLLOW_REQUEST = notification_pb2.NOTIFICATION_TYPE_FOLLOW_REQUEST
FOLLOW_ACCEPTED = notification_pb2.NOTIFICATION_TYPE_FOLLOW_ACCEPTED


def summary(found: notification_pb2.ListNotificationsResponse) -> list[tuple[int, int, tuple[int, ...]]]:
    return [(n.type, n.post_id, tuple(n.actor_ids)) for n in found.notifications]


async def settled(notifications, user: Account, expected: list[tuple[int, int, tuple[int, ...]]]):
    """Waits until the user's inbox summarises to `expected` (the events travel asynchronously)."""

    async def check() -> bool:
        return summary(await inbox(notifications, user.id)) == expected

    await eventually(check, what=f"inbox {expected}")
    return await inbox(notifications, user.id)


async def like(stubs, user: Account, post_id: int, undo: bool = False) -> None:
    if undo:
        await stubs.engagement.UnlikePost(engagement_pb2.UnlikePostRequest(post_id=post_id), metadata=user.metadata)
    else:
        await stubs.engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=user.metadata)


async def comment(stubs, user: Account, post_id: int, text: str, parent: int = 0) -> int:
    request = engagement_pb2.CreateCommentRequest(post_id=post_id, text=text, parent_comment_id=parent)
    return (await stubs.engagement.CreateComment(request, metadata=user.metadata)).id


@pytest.fixture
async def handlers(database_url, graph_addr, post_addr, engagement_addr, notifier):
    """The consumers' handlers of a second replica, called directly as a redelivery would call them."""
    async with (
        grpc.aio.insecure_channel(graph_addr) as graph,
        grpc.aio.insecure_channel(post_addr) as posts,
        grpc.aio.insecure_channel(engagement_addr) as engagement,
    ):
        privacy = Privacy(
            Visibility(graph_pb2_grpc.GraphServiceStub(graph), ttl_seconds=10, max_viewers=100, timeout=5)
        )
        content = ContentDirectory(
            post_pb2_grpc.PostServiceStub(posts),
            engagement_pb2_grpc.EngagementServiceStub(engagement),
            max_authors=100,
            timeout=5,
        )
        yield ActivityEvents(notifier, privacy, content)


async def test_likes_reach_the_author_grouped_and_an_unlike_before_reading_takes_one_out(
    stubs, notifications, make_account, new_post
):
    author, first, second = await make_account(), await make_account(), await make_account()
    post_id = await new_post(author)
    await like(stubs, author, post_id)  # one's own like tells nobody
    await like(stubs, first, post_id)
    await like(stubs, second, post_id)
    found = await settled(notifications, author, [(LIKE, post_id, (second.id, first.id))])
    assert found.notifications[0].actor_count == 2 and found.unread_count == 1
    await like(stubs, second, post_id, undo=True)
    await settled(notifications, author, [(LIKE, post_id, (first.id,))])


async def test_comments_replies_and_mentions_tell_each_person_once(stubs, notifications, make_account, new_post):
    author, fan, friend = await make_account(), await make_account(), await make_account()
    post_id = await new_post(author)
    text = f"Lovely light, @{friend.user.username}! " + "x" * 150
    thread = await comment(stubs, fan, post_id, text)
    reply = await comment(stubs, author, post_id, f"Thanks @{fan.user.username}", parent=thread)
    found = await settled(notifications, author, [(COMMENT, post_id, (fan.id,))])
    assert (found.notifications[0].comment_id, found.notifications[0].comment_preview) == (thread, text[:100])
    # The friend is mentioned in the comment (with its preview); the fan is replied to AND mentioned
    # in that reply: one notification, the reply.
    found = await settled(notifications, friend, [(MENTION, post_id, (fan.id,))])
    assert (found.notifications[0].comment_id, found.notifications[0].comment_preview) == (thread, text[:100])
    found = await settled(notifications, fan, [(REPLY, post_id, (author.id,))])
    assert found.notifications[0].comment_id == reply
    # Deleting the comment takes its thread's notifications with it.
    await stubs.engagement.DeleteComment(engagement_pb2.DeleteCommentRequest(comment_id=thread), metadata=fan.metadata)
    for user in (author, friend, fan):
        await settled(notifications, user, [])


async def test_follows_group_and_a_private_account_s_requests_and_approvals(stubs, notifications, make_account):
    me, first, second, asker = [await make_account() for _ in range(4)]
    await follow(stubs, first, me)
    await follow(stubs, second, me)
    await settled(notifications, me, [(FOLLOW, 0, (second.id, first.id))])
    # Unfollowing before it was read leaves the group.
    await stubs.graph.UnfollowUser(graph_pb2.UnfollowUserRequest(target_user_id=me.id), metadata=second.metadata)
    await settled(notifications, me, [(FOLLOW, 0, (first.id,))])
    await stubs.graph.UpdateUser(
        graph_pb2.UpdateUserRequest(user=graph_pb2.User(is_private=True), update_mask=FieldMask(paths=["is_private"])),
        metadata=me.metadata,
    )
    await follow(stubs, asker, me)
    await settled(notifications, me, [(FOLLOW_REQUEST, 0, (asker.id,)), (FOLLOW, 0, (first.id,))])
    await stubs.graph.ApproveFollowRequest(
        graph_pb2.ApproveFollowRequestRequest(requester_id=asker.id), metadata=me.metadata
    )
    await settled(notifications, asker, [(FOLLOW_ACCEPTED, 0, (me.id,))])
    await settled(notifications, me, [(FOLLOW, 0, (first.id,))])


async def test_a_withdrawn_or_denied_request_leaves_the_inbox(stubs, notifications, make_account):
    me, withdrawer, denied, kept = [await make_account() for _ in range(4)]
    await stubs.graph.UpdateUser(
        graph_pb2.UpdateUserRequest(user=graph_pb2.User(is_private=True), update_mask=FieldMask(paths=["is_private"])),
        metadata=me.metadata,
    )
    for asker in (withdrawer, denied, kept):
        await follow(stubs, asker, me)
    await settled(
        notifications,
        me,
        [(FOLLOW_REQUEST, 0, (kept.id,)), (FOLLOW_REQUEST, 0, (denied.id,)), (FOLLOW_REQUEST, 0, (withdrawer.id,))],
    )
    # Withdrawn by the requester (an unfollow of a pending request), denied by the account: both go
    # (they stayed, and approving them answered 404); the third stays.
    await stubs.graph.UnfollowUser(graph_pb2.UnfollowUserRequest(target_user_id=me.id), metadata=withdrawer.metadata)
    await stubs.graph.DenyFollowRequest(
        graph_pb2.DenyFollowRequestRequest(requester_id=denied.id), metadata=me.metadata
    )
    await settled(notifications, me, [(FOLLOW_REQUEST, 0, (kept.id,))])


async def test_a_block_removes_what_the_blocked_caused(stubs, notifications, make_account, new_post):
    me, pest, fan = [await make_account() for _ in range(3)]
    post_id = await new_post(me)
    for user in (pest, fan):
        await like(stubs, user, post_id)
    await comment(stubs, pest, post_id, "first!")
    await settled(notifications, me, [(COMMENT, post_id, (pest.id,)), (LIKE, post_id, (fan.id, pest.id))])
    await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=pest.id), metadata=me.metadata)
    found = await settled(notifications, me, [(LIKE, post_id, (fan.id,))])
    assert found.notifications[0].actor_count == 1


async def test_nobody_is_told_about_someone_they_mute(stubs, notifications, make_account, new_post):
    me, bore, fan = [await make_account() for _ in range(3)]
    # Muted before anything reached this inbox: no cached answer predates it (a mute made later is
    # heard through the graph.* watch within the event's delivery time).
    await stubs.graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=bore.id), metadata=me.metadata)
    post_id = await new_post(me)
    await like(stubs, bore, post_id)
    await comment(stubs, bore, post_id, "hello?")
    await comment(stubs, fan, post_id, "marker")  # handled after bore's: they travel on the same stream
    await settled(notifications, me, [(COMMENT, post_id, (fan.id,))])


async def test_nobody_is_told_about_a_post_they_cannot_see(stubs, notifications, make_account, new_post):
    private, outsider, follower = [await make_account() for _ in range(3)]
    await follow(stubs, follower, private)
    await stubs.graph.UpdateUser(
        graph_pb2.UpdateUserRequest(user=graph_pb2.User(is_private=True), update_mask=FieldMask(paths=["is_private"])),
        metadata=private.metadata,
    )
    post_id = await new_post(private, f"hi @{outsider.user.username} and @{follower.user.username}")
    await settled(notifications, follower, [(MENTION, post_id, (private.id,))])
    # Told nothing, although mentioned (the outbox has long been drained for the follower's mention).
    assert list((await inbox(notifications, outsider.id)).notifications) == []


async def test_a_deleted_post_takes_its_notifications_with_it(stubs, notifications, make_account, new_post):
    author, fan = await make_account(), await make_account()
    post_id = await new_post(author)
    await like(stubs, fan, post_id)
    await comment(stubs, fan, post_id, "nice")
    await settled(notifications, author, [(COMMENT, post_id, (fan.id,)), (LIKE, post_id, (fan.id,))])
    await delete_post(stubs, author, post_id)
    await settled(notifications, author, [])


async def test_a_redelivered_like_changes_nothing(stubs, notifications, make_account, new_post, handlers):
    author, fan = await make_account(), await make_account()
    post_id = await new_post(author)
    event = events_pb2.PostLiked(
        event_id=IdGenerator(77).next_id(), post_id=post_id, post_author_id=author.id, user_id=fan.id
    )
    event.occur_time.GetCurrentTime()
    for _ in range(3):
        await handlers.handle(event)
    found = await settled(notifications, author, [(LIKE, post_id, (fan.id,))])
    sequence = (
        await notifications.GetUnreadCount(notification_pb2.GetUnreadCountRequest(), metadata=author.metadata)
    ).last_sequence
    await asyncio.gather(*(handlers.handle(event) for _ in range(5)))
    assert (await inbox(notifications, author.id)) == found
    again = await notifications.GetUnreadCount(notification_pb2.GetUnreadCountRequest(), metadata=author.metadata)
    assert again.last_sequence == sequence == 1


async def test_events_without_their_ids_are_poison(handlers):
    for event in (
        events_pb2.PostLiked(event_id=1, post_id=5),
        events_pb2.UserFollowed(event_id=1, follower_id=5),
        events_pb2.CommentCreated(event_id=1, comment_id=5, post_id=6),
        events_pb2.UserMentioned(event_id=1, mentioned_user_id=5),
        events_pb2.PostDeleted(event_id=1),
    ):
        with pytest.raises(PoisonMessage):
            await handlers.handle(event)
