"""NotificationService gRPC servicer: converts between protobuf and the domain, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from glimpse.notification.v1 import notification_pb2, notification_pb2_grpc
from mesh.identity import caller_id
from notification_svc.inbox import InboxChanges, InboxReader
from notification_svc.preferences import TYPE_NAMES, Preferences
from notification_svc.repository import NotificationRecord
from notification_svc.watchers import Watchers


def notification_message(record: NotificationRecord, read_up_to: int) -> notification_pb2.Notification:
    message = notification_pb2.Notification(
        id=record.latest_id,
        group_key=str(record.id),
        type=record.kind,  # type: ignore[arg-type]  # the stored kind is a NotificationType number
        actor_ids=record.recent_actor_ids,
        actor_count=record.actor_count,
        post_id=record.post_id,
        comment_id=record.comment_id,
        comment_preview=record.comment_preview,
        unread=record.latest_id > read_up_to,
    )
    message.create_time.FromDatetime(record.created_at)
    message.update_time.FromDatetime(record.updated_at)
    return message


def change_messages(found: InboxChanges) -> list[notification_pb2.NotificationChange]:
    """One message per change; a page without changes is one position message (its last sequence)."""
    if not found.changes:
        return [notification_pb2.NotificationChange(sequence=found.last_sequence, unread_count=found.unread_count)]
    messages = []
    for record in found.changes:
        change = notification_pb2.NotificationChange(sequence=record.sequence, unread_count=found.unread_count)
        if record.live:
            change.notification.CopyFrom(notification_message(record, found.read_up_to))
        else:
            change.removed_group_key = str(record.id)
        messages.append(change)
    return messages


def settings_message(switches: dict[str, bool]) -> notification_pb2.NotificationSettings:
    return notification_pb2.NotificationSettings(**switches)


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self, reader: InboxReader, preferences: Preferences, watchers: Watchers) -> None:
        self._reader = reader
        self._preferences = preferences
        self._watchers = watchers

    async def ListNotifications(
        self, request: notification_pb2.ListNotificationsRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.ListNotificationsResponse:
        found = await self._reader.page(caller_id(context), request.page_size, request.page_token)
        return notification_pb2.ListNotificationsResponse(
            notifications=[notification_message(n, found.read_up_to) for n in found.page.items],
            next_page_token=found.page.next_page_token,
            unread_count=found.unread_count,
        )

    async def GetUnreadCount(
        self, request: notification_pb2.GetUnreadCountRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.GetUnreadCountResponse:
        unread, last_sequence = await self._reader.unread(caller_id(context))
        return notification_pb2.GetUnreadCountResponse(unread_count=unread, last_sequence=last_sequence)

    async def MarkNotificationsRead(
        self, request: notification_pb2.MarkNotificationsReadRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.MarkNotificationsReadResponse:
        unread = await self._reader.mark_read(caller_id(context), request.up_to_id)
        return notification_pb2.MarkNotificationsReadResponse(unread_count=unread)

    async def GetNotificationSettings(
        self, request: notification_pb2.GetNotificationSettingsRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.NotificationSettings:
        return settings_message(await self._preferences.get(caller_id(context)))

    async def UpdateNotificationSettings(
        self, request: notification_pb2.UpdateNotificationSettingsRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.NotificationSettings:
        user_id = caller_id(context)
        # Unknown paths are kept (and refused by Preferences, which names them).
        switches = {
            path: bool(getattr(request.settings, path)) if path in TYPE_NAMES else False
            for path in request.update_mask.paths
        }
        return settings_message(await self._preferences.update(user_id, switches))

    async def ListNotificationChanges(
        self, request: notification_pb2.ListNotificationChangesRequest, context: grpc.aio.ServicerContext
    ) -> notification_pb2.ListNotificationChangesResponse:
        found = await self._reader.changes(caller_id(context), request.after_sequence, request.page_size)
        return notification_pb2.ListNotificationChangesResponse(
            changes=change_messages(found) if found.changes else [],
            last_sequence=found.last_sequence,
            unread_count=found.unread_count,
        )

    async def WatchNotifications(
        self, request: notification_pb2.WatchNotificationsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[notification_pb2.NotificationChange]:
        async for found in self._watchers.follow(caller_id(context), request.after_sequence):
            for message in change_messages(found):
                yield message
