"""Notification settings through the running service: every type on by default, a type switched off
stops new notifications of it (and only it), and bad masks are refused with the field."""

from __future__ import annotations

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from glimpse.notification.v1 import notification_pb2
from mesh.identity import as_caller
from notification_svc.models import COMMENT, LIKE
from tests.engagement_svc.conftest import refused
from tests.notification_svc.conftest import activity, inbox

EVERY_TYPE = ["follow", "follow_request", "follow_accepted", "like", "comment", "reply", "mention"]


def update(**switches: bool) -> notification_pb2.UpdateNotificationSettingsRequest:
    return notification_pb2.UpdateNotificationSettingsRequest(
        settings=notification_pb2.NotificationSettings(**switches), update_mask=FieldMask(paths=list(switches))
    )


async def test_a_type_switched_off_stops_only_new_notifications_of_it(notifier, notifications, new_user_id):
    me, fan, post = new_user_id(), new_user_id(), 9_000_000
    settings = await notifications.GetNotificationSettings(
        notification_pb2.GetNotificationSettingsRequest(), metadata=as_caller(me)
    )
    assert all(getattr(settings, name) for name in EVERY_TYPE)
    await notifier.add(activity(me, LIKE, fan, post_id=post))
    settings = await notifications.UpdateNotificationSettings(update(like=False), metadata=as_caller(me))
    assert [name for name in EVERY_TYPE if not getattr(settings, name)] == ["like"]
    assert not await notifier.add(activity(me, LIKE, new_user_id(), post_id=post))
    assert not await notifier.add(activity(me, LIKE, new_user_id(), post_id=post + 1))
    assert await notifier.add(activity(me, COMMENT, fan, post_id=post, comment_id=9_000_001))
    # What was received before stays.
    assert [(n.type, n.actor_count) for n in (await inbox(notifications, me)).notifications] == [
        (notification_pb2.NOTIFICATION_TYPE_COMMENT, 1),
        (notification_pb2.NOTIFICATION_TYPE_LIKE, 1),
    ]
    # Only the masked fields change: `comment` is false in the message but not in the mask.
    request = update(like=True)
    request.update_mask.paths.append("mention")
    request.settings.mention = True
    settings = await notifications.UpdateNotificationSettings(request, metadata=as_caller(me))
    assert all(getattr(settings, name) for name in EVERY_TYPE)
    assert await notifier.add(activity(me, LIKE, new_user_id(), post_id=post))


async def test_bad_masks_are_refused(notifications, new_user_id):
    metadata = as_caller(new_user_id())
    empty = notification_pb2.UpdateNotificationSettingsRequest()
    bad = update(like=False)
    bad.update_mask.paths.append("likes")
    for request in (empty, bad):
        code, _, fields = await refused(notifications.UpdateNotificationSettings(request, metadata=metadata))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "update_mask" in fields, fields
    settings = await notifications.GetNotificationSettings(
        notification_pb2.GetNotificationSettingsRequest(), metadata=metadata
    )
    assert settings.like  # nothing changed
