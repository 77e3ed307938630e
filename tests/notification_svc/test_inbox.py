"""Reading an inbox through the running service: pages newest first without gaps or repeats while
groups move, the unread count and the read marker (forward only, never past the newest), the change
feed paged by sequence, and refusals of bad input."""

from __future__ import annotations

import grpc
import pytest

from glimpse.notification.v1 import notification_pb2
from mesh.identity import as_caller
from mesh.pagination import encode_cursor
from notification_svc.inbox import NotificationCursor
from notification_svc.models import COMMENT, LIKE
from tests.engagement_svc.conftest import refused
from tests.notification_svc.conftest import activity, inbox


async def mark_read(notifications, user_id: int, up_to_id: int) -> int:
    request = notification_pb2.MarkNotificationsReadRequest(up_to_id=up_to_id)
    return (await notifications.MarkNotificationsRead(request, metadata=as_caller(user_id))).unread_count


async def unread_count(notifications, user_id: int) -> int:
    request = notification_pb2.GetUnreadCountRequest()
    return (await notifications.GetUnreadCount(request, metadata=as_caller(user_id))).unread_count


async def test_pages_are_newest_first_without_gaps_or_repeats(notifier, notifications, new_user_id):
    me, fan = new_user_id(), new_user_id()
    for n in range(45):
        await notifier.add(activity(me, COMMENT, fan, post_id=8_000_000, comment_id=8_000_001 + n))
    seen, token, sizes = [], "", []
    while True:
        page = await inbox(notifications, me, size=20, token=token)
        sizes.append(len(page.notifications))
        seen += [n.comment_id for n in page.notifications]
        assert page.unread_count == 45
        token = page.next_page_token
        if not token:
            break
    assert sizes == [20, 20, 5]
    assert seen == [8_000_001 + n for n in reversed(range(45))]
    # Above the maximum is clamped to 30 (a page's actors fit one user lookup).
    assert len((await inbox(notifications, me, size=1000)).notifications) == 30


async def test_a_group_that_gains_a_like_moves_to_the_top_with_a_new_id(notifier, notifications, new_user_id):
    me, post = new_user_id(), 8_000_100
    await notifier.add(activity(me, LIKE, new_user_id(), post_id=post))
    await notifier.add(activity(me, COMMENT, new_user_id(), post_id=post, comment_id=8_000_101))
    before = (await inbox(notifications, me)).notifications
    assert [n.type for n in before] == [
        notification_pb2.NOTIFICATION_TYPE_COMMENT,
        notification_pb2.NOTIFICATION_TYPE_LIKE,
    ]
    await notifier.add(activity(me, LIKE, new_user_id(), post_id=post))
    after = (await inbox(notifications, me)).notifications
    assert [n.group_key for n in after] == [before[1].group_key, before[0].group_key]
    assert after[0].id > before[0].id > before[1].id


async def test_the_read_marker_moves_forward_only_and_not_past_the_newest(notifier, notifications, new_user_id):
    me, post = new_user_id(), 8_000_200
    for n in range(3):
        await notifier.add(activity(me, COMMENT, new_user_id(), post_id=post, comment_id=8_000_201 + n))
    _, middle, oldest = (await inbox(notifications, me)).notifications
    assert await unread_count(notifications, me) == 3
    assert await mark_read(notifications, me, middle.id) == 1
    assert [n.unread for n in (await inbox(notifications, me)).notifications] == [True, False, False]
    # Back is ignored; far in the future stops at the newest notification.
    assert await mark_read(notifications, me, oldest.id) == 1
    assert await mark_read(notifications, me, 2**62) == 0
    await notifier.add(activity(me, COMMENT, new_user_id(), post_id=post, comment_id=8_000_210))
    assert await unread_count(notifications, me) == 1
    # A read group that gains someone is unread again.
    await notifier.add(activity(me, LIKE, new_user_id(), post_id=post))
    page = await inbox(notifications, me)
    assert await mark_read(notifications, me, page.notifications[0].id) == 0
    await notifier.add(activity(me, LIKE, new_user_id(), post_id=post))
    page = await inbox(notifications, me)
    assert (page.unread_count, page.notifications[0].actor_count, page.notifications[0].unread) == (1, 2, True)


async def test_changes_are_paged_by_sequence(notifier, notifications, new_user_id):
    me = new_user_id()
    for n in range(5):
        await notifier.add(activity(me, COMMENT, new_user_id(), post_id=8_000_300, comment_id=8_000_301 + n))
    sequences, after = [], 0
    while True:
        request = notification_pb2.ListNotificationChangesRequest(after_sequence=after, page_size=2)
        found = await notifications.ListNotificationChanges(request, metadata=as_caller(me))
        if not found.changes:
            break
        sequences += [c.sequence for c in found.changes]
        after = found.changes[-1].sequence
    assert sequences == [1, 2, 3, 4, 5] and found.last_sequence == 5


async def test_bad_input_is_refused_with_the_field(notifications, new_user_id):
    me = new_user_id()
    metadata = as_caller(me)
    cases = [
        (
            notifications.MarkNotificationsRead(
                notification_pb2.MarkNotificationsReadRequest(up_to_id=0), metadata=metadata
            ),
            "up_to_id",
        ),
        (
            notifications.ListNotifications(notification_pb2.ListNotificationsRequest(page_size=-1), metadata=metadata),
            "page_size",
        ),
        (
            notifications.ListNotificationChanges(
                notification_pb2.ListNotificationChangesRequest(after_sequence=-1), metadata=metadata
            ),
            "after_sequence",
        ),
    ]
    for call, field in cases:
        code, _, fields = await refused(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in fields
    # Another inbox's token (or a forged one) is refused, not read.
    foreign = encode_cursor(NotificationCursor(before_id=5), f"notifications:{me + 1}")
    request = notification_pb2.ListNotificationsRequest(page_token=foreign)
    code, _, fields = await refused(notifications.ListNotifications(request, metadata=metadata))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in fields


@pytest.mark.parametrize(
    "call",
    [
        "ListNotifications",
        "GetUnreadCount",
        "MarkNotificationsRead",
        "GetNotificationSettings",
        "ListNotificationChanges",
    ],
)
async def test_every_method_needs_a_caller(notifications, call):
    request_type = {
        "ListNotifications": notification_pb2.ListNotificationsRequest,
        "GetUnreadCount": notification_pb2.GetUnreadCountRequest,
        "MarkNotificationsRead": notification_pb2.MarkNotificationsReadRequest,
        "GetNotificationSettings": notification_pb2.GetNotificationSettingsRequest,
        "ListNotificationChanges": notification_pb2.ListNotificationChangesRequest,
    }[call]
    code, reason, _ = await refused(getattr(notifications, call)(request_type()))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "NO_CALLER")
