"""Notifications: the caller's inbox (grouped, newest first, with the unread count), the read marker,
per-type settings, and the inbox in real time as Server-Sent Events.

notification_svc owns the inbox. A page is rendered with one graph_svc BatchGetUsers (the actors)
and one feed_svc BatchGetFeedItems (each post's 150 px rendition, as every other route renders
posts); a notification whose post the caller can no longer get (deleted, or no longer visible) is
left out.

Real time: each gateway process holds ONE watch of `notifications.changed` on NATS
(`NotificationStreams`, opened with the first stream), fanned out in memory to the process's open
streams of the recipient. A wake-up makes the stream read the inbox's changes after the last sequence
it sent (a unary ListNotificationChanges) and send them, each with that sequence as its SSE `id`;
so no stream holds a subscription or an upstream call of its own while idle, and a client that
reconnects with `Last-Event-ID` gets what it missed from the store before going live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Annotated, Any

import grpc
from fastapi import APIRouter, Header, Request
from prometheus_client import Gauge
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sse_starlette import EventSourceResponse, ServerSentEvent

from gateway import rate_limits
from gateway.auth import SESSION_RECHECK_SECONDS, CallerId, CallerSession, SessionChecks, VerifiedToken
from gateway.fields import NotificationId, PageSize, PageToken
from gateway.render import user_summary_json
from gateway.resources import (
    NOTIFICATION_TYPES,
    NotificationPage,
    NotificationSettings,
    ReadResult,
    UnreadCount,
    error_responses,
)
from gateway.settings import GatewaySettings
from gateway.upstream import Services, Upstream
from glimpse.events.v1 import events_pb2
from glimpse.feed.v1 import feed_pb2
from glimpse.graph.v1 import graph_pb2
from glimpse.notification.v1 import notification_pb2
from mesh.bus import Bus
from mesh.errors import Unavailable, invalid_field
from mesh.events import NOTIFICATION_CHANGED
from mesh.identity import as_caller

log = logging.getLogger("gateway.notifications")

router = APIRouter(tags=["notifications"])

OPEN_STREAMS = Gauge("glimpse_notification_streams_open", "Server-Sent Event streams of notifications open.")
# A page's notifications carry up to 3 actors each: 30 of them need one BatchGetUsers (at most 100).
_RENDER_BATCH = 30
_THUMBNAIL_SIZE = 150
# Milliseconds an EventSource waits before reconnecting after the stream ends (a deploy, an upstream
# restart): short, since reconnecting with Last-Event-ID costs one read and loses nothing.
_RECONNECT_MS = 2000
# Seconds between comment lines on an idle stream, so proxies and clients keep it open.
_PING_SECONDS = 15


class _Listener:
    def __init__(self) -> None:
        self._woken = asyncio.Event()
        # The highest sequence announced for the inbox since the listener was made.
        self.heard = 0

    def wake(self, sequence: int) -> None:
        self.heard = max(self.heard, sequence)
        self._woken.set()

    async def wait(self) -> None:
        await self._woken.wait()
        self._woken.clear()


class NotificationStreams:
    """This process's open notification streams by recipient, and the one watch that wakes them.

    The watch (mesh.bus.Bus.watch: an ordered consumer, resumed after a NATS reconnect) starts with the
    first stream, so a gateway nobody streams from holds no NATS connection. Wake-ups are at-most-once
    across a NATS restart: a stream then learns of a change with the next one, or on reconnecting.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        self._bus: Bus | None = None
        self._starting = asyncio.Lock()
        self._listeners: dict[int, set[_Listener]] = {}

    async def start(self) -> None:
        """Connects and watches, once. Unavailable (503) if NATS cannot be reached now."""
        if self._bus is not None:
            return
        async with self._starting:
            if self._bus is not None:
                return
            settings = self._settings
            try:
                bus = await Bus.connect(
                    settings.nats_url, settings.namespace, settings.stream_replicas, give_up_after=3
                )
            except ConnectionError as exc:
                raise Unavailable("real-time notifications are unavailable; retry shortly") from exc
            try:
                # Streams are created by whichever process starts first (notification_svc, usually).
                await bus.ensure_streams(give_up_after=5)
                await bus.watch([NOTIFICATION_CHANGED], self._on_changed)
            except Exception as exc:
                await bus.close()
                raise Unavailable("real-time notifications are unavailable; retry shortly") from exc
            self._bus = bus

    async def close(self) -> None:
        if self._bus is not None:
            await self._bus.close()
            self._bus = None

    @property
    def open_streams(self) -> int:
        return sum(len(listeners) for listeners in self._listeners.values())

    async def _on_changed(self, event: events_pb2.NotificationChanged) -> None:
        for listener in self._listeners.get(event.recipient_id, ()):
            listener.wake(event.sequence)

    @contextlib.contextmanager
    def listening(self, recipient_id: int) -> Iterator[_Listener]:
        listener = _Listener()
        self._listeners.setdefault(recipient_id, set()).add(listener)
        OPEN_STREAMS.inc()
        try:
            yield listener
        finally:
            OPEN_STREAMS.dec()
            listeners = self._listeners[recipient_id]
            listeners.discard(listener)
            if not listeners:
                del self._listeners[recipient_id]


def open_notification_streams(settings: GatewaySettings) -> NotificationStreams:
    """For the app's lifespan: the streams of this process (close() them on shutdown)."""
    return NotificationStreams(settings)


async def _users(services: Upstream, caller: int, user_ids: Iterable[int]) -> dict[int, graph_pb2.User]:
    """The accounts that still exist among `user_ids` (at most 100), from one BatchGetUsers call."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    request = graph_pb2.BatchGetUsersRequest(user_ids=ids)
    response = await services.graph.BatchGetUsers(request, timeout=services.timeout, metadata=as_caller(caller))
    return {user.id: user for user in response.users}


async def _posts(services: Upstream, caller: int, post_ids: Iterable[int]) -> dict[int, feed_pb2.FeedItem]:
    """The posts the caller can get among `post_ids` (at most 100), rendered by feed_svc in one call."""
    ids = list(dict.fromkeys(post_ids))
    if not ids:
        return {}
    request = feed_pb2.BatchGetFeedItemsRequest(post_ids=ids)
    response = await services.feed.BatchGetFeedItems(request, timeout=services.timeout, metadata=as_caller(caller))
    return {item.id: item for item in response.items}


def _thumbnail(item: feed_pb2.FeedItem) -> str | None:
    """The URL of the post's first photo at 150 px; None until it is ready."""
    for media in item.media[:1]:
        for rendition in media.renditions:
            if rendition.size == _THUMBNAIL_SIZE:
                return str(rendition.url)
    return None


async def render(
    services: Upstream, caller: int, notifications: Sequence[notification_pb2.Notification]
) -> dict[int, dict[str, Any]]:
    """group key's notification -> its JSON (the Notification resource), for at most _RENDER_BATCH of
    them; those whose post the caller cannot get, or whose every actor is gone, are left out."""
    users, posts = await asyncio.gather(
        _users(services, caller, (a for n in notifications for a in n.actor_ids)),
        _posts(services, caller, (n.post_id for n in notifications if n.post_id)),
    )
    rendered: dict[int, dict[str, Any]] = {}
    for n in notifications:
        actors = [users[a] for a in n.actor_ids if a in users]
        post = posts.get(n.post_id)
        if not actors or (n.post_id and post is None):
            continue
        rendered[n.id] = {
            "id": str(n.id),
            "group_key": n.group_key,
            "type": NOTIFICATION_TYPES[n.type],
            "actors": [user_summary_json(a) for a in actors],
            "actor_count": str(n.actor_count),
            "post": {"id": str(n.post_id), "thumbnail_url": _thumbnail(post)} if post is not None else None,
            "comment": {"id": str(n.comment_id), "text": n.comment_preview} if n.comment_id else None,
            "create_time": n.create_time.ToJsonString(),
            "update_time": n.update_time.ToJsonString(),
            "unread": n.unread,
        }
    return rendered


async def _render_all(
    services: Upstream, caller: int, notifications: Sequence[notification_pb2.Notification]
) -> dict[int, dict[str, Any]]:
    rendered: dict[int, dict[str, Any]] = {}
    for start in range(0, len(notifications), _RENDER_BATCH):
        rendered |= await render(services, caller, notifications[start : start + _RENDER_BATCH])
    return rendered


@router.get(
    "/v1/notifications",
    response_model=NotificationPage,
    summary="List the caller's notifications",
    response_description="One page of notifications, newest first, and the unread count.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_notifications(
    caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """Likes of one post, and follows, within 12 hours of a group's first are one notification ("A, B
    and 10 others": `actors` are the 3 most recent, `actor_count` is exact). A group that gains someone
    moves to the top with a new `id`; `group_key` stays. At most 30 per page. A notification about a
    post the caller can no longer see is left out (a page may then hold fewer; keep following
    `next_page_token`). 400 for a malformed `page_token`."""
    request = notification_pb2.ListNotificationsRequest(page_size=page_size, page_token=page_token)
    response = await services.notification.ListNotifications(
        request, timeout=services.timeout, metadata=as_caller(caller)
    )
    rendered = await _render_all(services, caller, response.notifications)
    return {
        "items": [rendered[n.id] for n in response.notifications if n.id in rendered],
        "next_page_token": response.next_page_token,
        "unread_count": str(response.unread_count),
    }


@router.get(
    "/v1/notifications/unread-count",
    response_model=UnreadCount,
    summary="Count the caller's unread notifications",
    response_description="Unread notifications (a group counts once) and the inbox's last sequence.",
    responses=error_responses(401, 429),
    dependencies=[rate_limits.user_reads],
)
async def unread_count(caller: CallerId, services: Services) -> dict[str, Any]:
    """`last_sequence` is the position of the inbox's last change (what `GET /v1/notifications/stream`
    sends as the `id` of each event)."""
    response = await services.notification.GetUnreadCount(
        notification_pb2.GetUnreadCountRequest(), timeout=services.timeout, metadata=as_caller(caller)
    )
    return {"unread_count": str(response.unread_count), "last_sequence": str(response.last_sequence)}


class ReadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_to_id: NotificationId = Field(description="The `id` of the newest notification the caller has shown.")


@router.post(
    "/v1/notifications/read",
    response_model=ReadResult,
    summary="Mark notifications read",
    response_description="The unread count after marking.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def mark_read(body: ReadBody, caller: CallerId, services: Services) -> dict[str, Any]:
    """Every notification whose `id` is at most `up_to_id` is read. The marker never moves back, and
    never past the newest notification: anything that arrives later is unread, and so is a group that
    gains someone. 400 naming `up_to_id` for a value that is not an id."""
    request = notification_pb2.MarkNotificationsReadRequest(up_to_id=body.up_to_id)
    response = await services.notification.MarkNotificationsRead(
        request, timeout=services.timeout, metadata=as_caller(caller)
    )
    return {"unread_count": str(response.unread_count)}


class SettingsBody(BaseModel):
    """Any of the types, each true (receive it) or false (switch it off); the others do not change."""

    model_config = ConfigDict(extra="forbid")

    follow: StrictBool = True
    follow_request: StrictBool = True
    follow_accepted: StrictBool = True
    like: StrictBool = True
    comment: StrictBool = True
    reply: StrictBool = True
    mention: StrictBool = True


def _settings_json(settings: notification_pb2.NotificationSettings) -> dict[str, bool]:
    return {name: bool(getattr(settings, name)) for name in SettingsBody.model_fields}


@router.get(
    "/v1/users/me/notification-settings",
    response_model=NotificationSettings,
    summary="Read the caller's notification settings",
    response_description="Whether the caller receives each type of notification.",
    responses=error_responses(401, 429),
    dependencies=[rate_limits.user_reads],
)
async def get_settings(caller: CallerId, services: Services) -> dict[str, bool]:
    """Every type is on until switched off."""
    response = await services.notification.GetNotificationSettings(
        notification_pb2.GetNotificationSettingsRequest(), timeout=services.timeout, metadata=as_caller(caller)
    )
    return _settings_json(response)


@router.patch(
    "/v1/users/me/notification-settings",
    response_model=NotificationSettings,
    summary="Switch types of notification on or off",
    response_description="Every type's setting after the change.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def update_settings(body: SettingsBody, caller: CallerId, services: Services) -> dict[str, bool]:
    """Only the types in the body change. A type switched off stops new notifications of it; those
    already received stay. 400 for an empty body, an unknown type or a value that is not a boolean."""
    names = sorted(body.model_fields_set)
    if not names:
        raise invalid_field("body", f"name at least one type to change: {', '.join(SettingsBody.model_fields)}")
    request = notification_pb2.UpdateNotificationSettingsRequest(
        settings=notification_pb2.NotificationSettings(**{name: getattr(body, name) for name in names})
    )
    request.update_mask.paths.extend(names)
    response = await services.notification.UpdateNotificationSettings(
        request, timeout=services.timeout, metadata=as_caller(caller)
    )
    return _settings_json(response)


LastEventId = Annotated[
    str,
    Header(
        alias="Last-Event-ID",
        max_length=20,
        description="The `id` of the last event received: the stream resumes after it (EventSource sends it "
        "when it reconnects). Without it the stream starts from now.",
    ),
]


def _sequence(last_event_id: str) -> int:
    if not last_event_id:
        return 0
    if not (last_event_id.isascii() and last_event_id.isdigit()) or int(last_event_id) >= 2**63:
        raise invalid_field("Last-Event-ID", "must be the id of an event this stream sent (a sequence number)")
    return int(last_event_id)


def _event(change: notification_pb2.NotificationChange, rendered: dict[int, dict[str, Any]]) -> ServerSentEvent:
    unread = str(change.unread_count)
    if change.HasField("notification") and change.notification.id in rendered:
        data = {"notification": rendered[change.notification.id], "unread_count": unread}
        return ServerSentEvent(json.dumps(data), event="notification", id=str(change.sequence))
    # Removed, or no longer shown to the caller (its post is gone): either way, drop it.
    key = change.removed_group_key or change.notification.group_key
    data = {"group_key": key, "unread_count": unread}
    return ServerSentEvent(json.dumps(data), event="notification_removed", id=str(change.sequence))


async def _signed_in(session: VerifiedToken, checks: SessionChecks) -> bool:
    """Whether the stream's access token is still good: not expired, and its session live (as
    SessionChecks knows it: at most SESSION_RECHECK_SECONDS old). False too when graph_svc cannot say."""
    if time.time() >= session.expires_at:
        return False
    if session.session_id is None:
        return True
    try:
        return await checks.is_live(session.session_id)
    except grpc.aio.AioRpcError as exc:
        log.warning("notification stream ended: session not checked", extra={"code": exc.code().name})
        return False


async def _events(
    streams: NotificationStreams,
    services: Upstream,
    session: VerifiedToken,
    checks: SessionChecks,
    cursor: int,
    ready: dict[str, str] | None,
) -> AsyncIterator[ServerSentEvent]:
    """The stream's events: `ready` (when starting from now), then every change after `cursor` as it
    commits. Ends (the client reconnects with Last-Event-ID) if notification_svc stops answering, and
    within SESSION_RECHECK_SECONDS of the access token's expiry or its session's end (logged out,
    revoked): a stream is a request that lasts, and is held to what every request is."""
    caller = session.user_id
    with streams.listening(caller) as listener:
        if ready is not None:
            yield ServerSentEvent(json.dumps(ready), event="ready", id=str(cursor), retry=_RECONNECT_MS)
        # The newest sequence known to exist. Read once after listening: a change committed before
        # the listener was registered is in the store, though its wake-up was missed.
        target = cursor + 1
        while await _signed_in(session, checks):
            if cursor >= max(target, listener.heard):
                # Woken by a change, or at the next check of the token and session.
                wait = min(SESSION_RECHECK_SECONDS, session.expires_at - time.time())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(listener.wait(), max(wait, 0.0))
                continue
            request = notification_pb2.ListNotificationChangesRequest(after_sequence=cursor)
            try:
                found = await services.notification.ListNotificationChanges(
                    request, timeout=services.timeout, metadata=as_caller(caller)
                )
                changes = list(found.changes)
                shown = [c.notification for c in changes if c.HasField("notification")]
                rendered = await _render_all(services, caller, shown)
            except grpc.aio.AioRpcError as exc:
                log.warning("notification stream ended", extra={"code": exc.code().name, "detail": exc.details()})
                return
            target = found.last_sequence
            for change in changes:
                yield _event(change, rendered)
                cursor = change.sequence
            if not changes:
                cursor = max(cursor, found.last_sequence)


# One event of the stream (OpenAPI 3.1: a text/event-stream `schema` describes each event).
_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["ready", "notification", "notification_removed"]},
        "id": {"type": "string", "pattern": "^[0-9]{1,19}$", "description": "The inbox sequence after this event."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": 'JSON. ready: {"unread_count", "last_sequence"}; notification: {"notification": '
            '<Notification>, "unread_count"}; notification_removed: {"group_key", "unread_count"}.',
        },
        "retry": {"type": "integer", "description": "Milliseconds to wait before reconnecting (on `ready`)."},
    },
    "required": ["event", "id", "data"],
}


@router.get(
    "/v1/notifications/stream",
    response_class=EventSourceResponse,
    summary="Receive the caller's notifications as they happen",
    response_description="`text/event-stream`: `ready` (when starting from now), then `notification` and "
    "`notification_removed` events, each with `id:` (resume after it with Last-Event-ID).",
    responses={
        200: {"content": {"text/event-stream": {"schema": _EVENT_SCHEMA}}},
        **error_responses(400, 401, 429, 503),
    },
    dependencies=[rate_limits.user_reads],
)
async def stream(request: Request, session: CallerSession, services: Services, last_event_id: LastEventId = "") -> Any:
    """Server-Sent Events. Each `notification` event's data is `{"notification": <Notification>,
    "unread_count"}`: show it in place of the one with the same `group_key`; `notification_removed`
    (`{"group_key", "unread_count"}`) drops one. Every event has an `id:`; an EventSource that
    reconnects sends it back as `Last-Event-ID` and gets what it missed first, so open the stream
    before loading the list and nothing falls between. Without Last-Event-ID (or with one above the
    inbox's last, after a restore) the stream starts from now with a `ready` event carrying the position
    and the unread count. Comment lines keep an idle stream open. Needs the bearer token, so a browser
    client uses an EventSource that sends headers. The stream ends when the access token expires or
    its session ends (within a few seconds): reconnect with a fresh token and the Last-Event-ID. 400
    for a Last-Event-ID this stream did not send; 503 while notifications or real-time delivery are
    unavailable."""
    caller = session.user_id
    after = _sequence(last_event_id)
    position = await services.notification.GetUnreadCount(
        notification_pb2.GetUnreadCountRequest(), timeout=services.timeout, metadata=as_caller(caller)
    )
    streams: NotificationStreams = request.app.state.notification_streams
    await streams.start()
    ready = None
    if after == 0 or after > position.last_sequence:
        after = position.last_sequence
        ready = {"unread_count": str(position.unread_count), "last_sequence": str(after)}
    checks: SessionChecks = request.app.state.session_checks
    events = _events(streams, services, session, checks, after, ready)
    return EventSourceResponse(events, ping=_PING_SECONDS)
