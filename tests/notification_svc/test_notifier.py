"""The writing rules, through a Notifier on the test database and read back through the running
service: grouping by post and window with exact distinct counts, undo before read, never oneself,
redelivery and late delivery changing nothing, and one change sequence per inbox."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from glimpse.notification.v1 import notification_pb2
from mesh.events import NOTIFICATION_CHANGED
from mesh.identity import as_caller
from notification_svc.models import COMMENT, FOLLOW, FOLLOW_REQUEST, LIKE, MENTION, REPLY
from tests.notification_svc.conftest import EVENT_IDS, activity, inbox

T0 = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)


async def unread(notifications, user_id: int) -> notification_pb2.GetUnreadCountResponse:
    return await notifications.GetUnreadCount(notification_pb2.GetUnreadCountRequest(), metadata=as_caller(user_id))


async def mark_read(notifications, user_id: int, up_to_id: int) -> int:
    request = notification_pb2.MarkNotificationsReadRequest(up_to_id=up_to_id)
    return (await notifications.MarkNotificationsRead(request, metadata=as_caller(user_id))).unread_count


async def test_likes_of_a_post_by_distinct_people_are_one_group(notifier, notifications, new_user_id):
    author, post, other_post = new_user_id(), 7_000_001, 7_000_002
    fans = [new_user_id() for _ in range(5)]
    for n, fan in enumerate(fans):
        assert await notifier.add(activity(author, LIKE, fan, at=T0 + dt.timedelta(minutes=n), post_id=post))
    await notifier.add(activity(author, LIKE, fans[0], at=T0, post_id=other_post))
    found = (await inbox(notifications, author)).notifications
    assert [(n.type, n.post_id, n.actor_count) for n in found] == [
        (notification_pb2.NOTIFICATION_TYPE_LIKE, other_post, 1),
        (notification_pb2.NOTIFICATION_TYPE_LIKE, post, 5),
    ]
    group = found[1]
    # The three most recent people, most recent first; created at the first like, updated at the last.
    assert list(group.actor_ids) == [fans[4], fans[3], fans[2]]
    assert group.create_time.ToDatetime(dt.UTC) == T0
    assert group.update_time.ToDatetime(dt.UTC) == T0 + dt.timedelta(minutes=4)
    assert group.unread and group.group_key


async def test_one_person_liking_unliking_and_liking_again_counts_once(notifier, notifications, new_user_id):
    author, fan, other, post = new_user_id(), new_user_id(), new_user_id(), 7_000_010
    await notifier.add(activity(author, LIKE, other, post_id=post))
    for _ in range(3):
        await notifier.add(activity(author, LIKE, fan, post_id=post))
        await notifier.undo(activity(author, LIKE, fan, post_id=post))
    await notifier.add(activity(author, LIKE, fan, post_id=post))
    (group,) = (await inbox(notifications, author)).notifications
    assert group.actor_count == 2 and list(group.actor_ids) == [fan, other]


async def test_an_undone_like_leaves_the_group_before_it_is_read_and_the_empty_group_goes(
    notifier, notifications, new_user_id
):
    author, first, second, post = new_user_id(), new_user_id(), new_user_id(), 7_000_020
    await notifier.add(activity(author, LIKE, first, post_id=post))
    await notifier.add(activity(author, LIKE, second, post_id=post))
    (group,) = (await inbox(notifications, author)).notifications
    assert await notifier.undo(activity(author, LIKE, second, post_id=post))
    (after,) = (await inbox(notifications, author)).notifications
    # The group keeps its key; its position falls back to the remaining like.
    assert (after.group_key, after.actor_count, list(after.actor_ids)) == (group.group_key, 1, [first])
    assert after.id < group.id
    assert await notifier.undo(activity(author, LIKE, first, post_id=post))
    assert list((await inbox(notifications, author)).notifications) == []
    assert (await unread(notifications, author)).unread_count == 0
    # Undoing what is not there changes nothing.
    assert not await notifier.undo(activity(author, LIKE, first, post_id=post))


async def test_a_like_undone_after_it_was_read_stays(notifier, notifications, new_user_id):
    author, fan, later, post = new_user_id(), new_user_id(), new_user_id(), 7_000_030
    await notifier.add(activity(author, LIKE, fan, post_id=post))
    (group,) = (await inbox(notifications, author)).notifications
    assert await mark_read(notifications, author, group.id) == 0
    assert not await notifier.undo(activity(author, LIKE, fan, post_id=post))
    await notifier.add(activity(author, LIKE, later, post_id=post))
    (group,) = (await inbox(notifications, author)).notifications
    assert group.actor_count == 2 and group.unread
    # The later like was not read: undoing it takes it out again.
    assert await notifier.undo(activity(author, LIKE, later, post_id=post))
    (group,) = (await inbox(notifications, author)).notifications
    assert (group.actor_count, list(group.actor_ids), group.unread) == (1, [fan], False)


async def test_nobody_is_told_about_themselves(notifier, notifications, new_user_id):
    author = new_user_id()
    for kind in (LIKE, FOLLOW, COMMENT, REPLY, MENTION):
        assert not await notifier.add(activity(author, kind, author, post_id=7_000_040, comment_id=7_000_041))
    assert list((await inbox(notifications, author)).notifications) == []
    assert (await unread(notifications, author)).last_sequence == 0


async def test_a_redelivered_event_changes_nothing_and_a_late_one_cannot_undo_a_newer(
    notifier, notifications, new_user_id
):
    author, fan, post = new_user_id(), new_user_id(), 7_000_050
    like = activity(author, LIKE, fan, post_id=post)
    assert await notifier.add(like)
    before = await unread(notifications, author)
    assert not await notifier.add(like)
    assert await unread(notifications, author) == before
    unlike = activity(author, LIKE, fan, post_id=post)
    assert await notifier.undo(unlike)
    # The like delivered again after its unlike (a redelivery after a failed ack) stays undone.
    assert not await notifier.add(like)
    assert not await notifier.undo(unlike)
    assert list((await inbox(notifications, author)).notifications) == []
    # Ungrouped notifications are idempotent by their natural key too.
    comment = activity(author, COMMENT, fan, post_id=post, comment_id=7_000_051, comment_preview="hi")
    assert await notifier.add(comment)
    assert not await notifier.add(comment)
    # A mention in the same comment is the same notification (the comment's).
    assert not await notifier.add(activity(author, MENTION, fan, post_id=post, comment_id=7_000_051))
    (only,) = (await inbox(notifications, author)).notifications
    assert (only.type, only.comment_id, only.comment_preview) == (
        notification_pb2.NOTIFICATION_TYPE_COMMENT,
        7_000_051,
        "hi",
    )


async def test_a_group_takes_likes_for_twelve_hours_from_its_first(notifier, notifications, new_user_id):
    author, post = new_user_id(), 7_000_060
    fans = [new_user_id() for _ in range(4)]
    offsets = [dt.timedelta(0), dt.timedelta(hours=11, minutes=59), dt.timedelta(hours=12, minutes=1)]
    for fan, offset in zip(fans, offsets, strict=False):
        await notifier.add(activity(author, LIKE, fan, at=T0 + offset, post_id=post))
    # Late delivery: an activity from before the newest group's start joins that group.
    await notifier.add(activity(author, LIKE, fans[3], at=T0 + dt.timedelta(hours=1), post_id=post))
    found = (await inbox(notifications, author)).notifications
    assert [n.actor_count for n in found] == [2, 2]
    assert [n.create_time.ToDatetime(dt.UTC) for n in found] == [T0 + offsets[2], T0]


async def test_follows_are_grouped_and_requests_are_not(notifier, notifications, new_user_id):
    me = new_user_id()
    followers = [new_user_id() for _ in range(3)]
    for follower in followers:
        await notifier.add(activity(me, FOLLOW, follower))
        await notifier.add(activity(me, FOLLOW_REQUEST, follower))
    found = (await inbox(notifications, me)).notifications
    kinds = [n.type for n in found]
    assert kinds.count(notification_pb2.NOTIFICATION_TYPE_FOLLOW) == 1
    assert kinds.count(notification_pb2.NOTIFICATION_TYPE_FOLLOW_REQUEST) == 3
    (follows,) = [n for n in found if n.type == notification_pb2.NOTIFICATION_TYPE_FOLLOW]
    assert follows.actor_count == 3 and follows.post_id == 0
    # A withdrawn request goes whether read or not.
    await mark_read(notifications, me, found[0].id)
    assert await notifier.retract(me, f"follow_request:{followers[0]}", EVENT_IDS.next_id())
    assert len((await inbox(notifications, me)).notifications) == 3


async def test_comments_replies_and_mentions_are_never_grouped(notifier, notifications, new_user_id):
    me, fan, post = new_user_id(), new_user_id(), 7_000_070
    for n, kind in enumerate([COMMENT, COMMENT, REPLY, MENTION]):
        await notifier.add(activity(me, kind, fan, post_id=post, comment_id=7_000_071 + n))
    await notifier.add(activity(me, MENTION, fan, post_id=post))  # in the caption
    assert [n.actor_count for n in (await inbox(notifications, me)).notifications] == [1] * 5


async def test_every_change_takes_the_inbox_s_next_sequence(notifier, notifications, new_user_id):
    author, fan, post = new_user_id(), new_user_id(), 7_000_080
    await notifier.add(activity(author, LIKE, fan, post_id=post))
    await notifier.add(activity(author, COMMENT, fan, post_id=post, comment_id=7_000_081))
    await notifier.undo(activity(author, LIKE, fan, post_id=post))
    assert (await unread(notifications, author)).last_sequence == 3
    request = notification_pb2.ListNotificationChangesRequest(after_sequence=0)
    found = await notifications.ListNotificationChanges(request, metadata=as_caller(author))
    # Each notification once, in its latest state: the like group was removed at 3.
    assert [(c.sequence, c.notification.type, c.removed_group_key != "") for c in found.changes] == [
        (2, notification_pb2.NOTIFICATION_TYPE_COMMENT, False),
        (3, notification_pb2.NOTIFICATION_TYPE_UNSPECIFIED, True),
    ]
    assert (found.last_sequence, found.unread_count) == (3, 1)


async def test_a_post_s_deletion_removes_its_notifications_everywhere_and_later_ones(
    notifier, notifications, new_user_id
):
    author, fan, mentioned, post = new_user_id(), new_user_id(), new_user_id(), 7_000_090
    await notifier.add(activity(author, LIKE, fan, post_id=post))
    await notifier.add(activity(mentioned, MENTION, fan, post_id=post, comment_id=7_000_091))
    deleted = activity(author, LIKE, fan, post_id=post)
    assert await notifier.forget_post(post, deleted.event_id) == 2
    assert await notifier.forget_post(post, deleted.event_id) == 0
    late = activity(author, COMMENT, fan, post_id=post, comment_id=7_000_092)
    assert not await notifier.add(late)
    for user in (author, mentioned):
        assert list((await inbox(notifications, user)).notifications) == []


async def test_a_block_removes_what_each_caused_in_the_other_s_inbox(notifier, notifications, new_user_id):
    me, blocked, friend, post = new_user_id(), new_user_id(), new_user_id(), 7_000_100
    await notifier.add(activity(me, LIKE, blocked, post_id=post))
    await notifier.add(activity(me, LIKE, friend, post_id=post))
    await notifier.add(activity(me, FOLLOW, blocked))
    await notifier.add(activity(blocked, REPLY, me, post_id=post, comment_id=7_000_101))
    (read,) = [n for n in (await inbox(notifications, me)).notifications if n.type == 1]
    await mark_read(notifications, me, read.id)  # read or not, it goes
    block = activity(me, FOLLOW, blocked)
    assert await notifier.forget_between(me, blocked, block.event_id) == 3
    found = (await inbox(notifications, me)).notifications
    assert [(n.type, n.actor_count, list(n.actor_ids)) for n in found] == [
        (notification_pb2.NOTIFICATION_TYPE_LIKE, 1, [friend])
    ]
    assert list((await inbox(notifications, blocked)).notifications) == []
    # The follow from before the block, delivered late, does not come back.
    assert not await notifier.add(dataclasses.replace(block, event_id=block.event_id - 1))


async def test_concurrent_writes_to_one_inbox_share_transactions(notifier, notifications, new_user_id, database_url):
    author, post = new_user_id(), 7_000_110
    fans = [new_user_id() for _ in range(50)]
    assert all(await asyncio.gather(*(notifier.add(activity(author, LIKE, fan, post_id=post)) for fan in fans)))
    (group,) = (await inbox(notifications, author)).notifications
    assert group.actor_count == 50
    # One notifications.changed per transaction: the 49 likes that waited for the first one's
    # transaction were written together.
    announced = await outbox_count(database_url, author)
    assert 1 <= announced < 50


async def test_a_write_that_fails_fails_alone(notifier, notifications, new_user_id):
    me, post = new_user_id(), 7_000_120
    good = [activity(me, COMMENT, new_user_id(), post_id=post, comment_id=7_000_121 + n) for n in range(3)]
    # PostgreSQL text cannot hold NUL: this write fails inside the batch it joins.
    bad = activity(me, COMMENT, new_user_id(), post_id=post, comment_id=7_000_130, comment_preview="a\x00b")
    outcomes = await asyncio.gather(
        *(notifier.add(a) for a in (good[0], bad, good[1], good[2])), return_exceptions=True
    )
    assert outcomes[0] is True and outcomes[2:] == [True, True]
    assert isinstance(outcomes[1], Exception)
    assert sorted(n.comment_id for n in (await inbox(notifications, me)).notifications) == [
        7_000_121,
        7_000_122,
        7_000_123,
    ]


async def outbox_count(database_url: str, recipient_id: int) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT payload FROM notifications.outbox WHERE subject = :s"), {"s": NOTIFICATION_CHANGED.subject}
            )
            events = [NOTIFICATION_CHANGED.message.FromString(row.payload) for row in rows]
    finally:
        await engine.dispose()
    return sum(1 for e in events if e.recipient_id == recipient_id)
