"""Assembles notification_svc: runtime, graph, post and engagement clients -> notifier, inbox reader,
preferences, watchers -> servicer -> host (with the outbox relay, one consumer per stream it reads,
the erasure consumer of `graph.user_deleted`, and two watches: `notifications.changed` wakes this
process's open streams, `graph.*` keeps the privacy cache honest)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import AsyncIterator

from glimpse.engagement.v1 import engagement_pb2_grpc
from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.notification.v1 import notification_pb2, notification_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from mesh.bus import ConsumerSpec, run_consumer
from mesh.channels import open_channel
from mesh.erasure import erasure_consumer
from mesh.events import (
    NOTIFICATION_CHANGED,
    POST_DELETED,
)
from mesh.runtime import open_runtime
from mesh.server import ServiceHost
from notification_svc import models
from notification_svc.consumers import (
    ENGAGEMENT_DURABLE,
    ENGAGEMENT_EVENTS,
    GRAPH_DURABLE,
    GRAPH_EVENTS,
    POSTS_DELETED_DURABLE,
    ActivityEvents,
)
from notification_svc.content import ContentDirectory
from notification_svc.erasure import ERASURE_DURABLE, NotificationErasure
from notification_svc.inbox import InboxReader
from notification_svc.notifier import Notifier
from notification_svc.preferences import Preferences
from notification_svc.privacy import Privacy
from notification_svc.servicer import NotificationServicer
from notification_svc.settings import NotificationSettings
from notification_svc.watchers import Watchers
from visibility import Visibility


@contextlib.asynccontextmanager
async def notification_host(settings: NotificationSettings) -> AsyncIterator[ServiceHost]:
    async with (
        open_runtime(settings) as runtime,
        open_channel(settings.graph_addr) as graph_channel,
        open_channel(settings.post_addr) as post_channel,
        open_channel(settings.engagement_addr) as engagement_channel,
    ):
        host = runtime.host("notification_svc", settings.listen, settings.metrics_port)
        outbox = runtime.outbox(models.outbox, host)
        timeout = settings.upstream_timeout_seconds
        reader = InboxReader(runtime.db)
        watchers = Watchers(reader, max_streams=settings.max_watch_streams)
        await runtime.bus.watch([NOTIFICATION_CHANGED], watchers.on_changed)
        visibility = Visibility(
            graph_pb2_grpc.GraphServiceStub(graph_channel),
            ttl_seconds=settings.privacy_cache_seconds,
            max_viewers=settings.privacy_cache_items,
            timeout=timeout,
        )
        await visibility.watch(runtime.bus)
        privacy = Privacy(visibility)
        content = ContentDirectory(
            post_pb2_grpc.PostServiceStub(post_channel),
            engagement_pb2_grpc.EngagementServiceStub(engagement_channel),
            max_authors=settings.post_author_cache_items,
            timeout=timeout,
        )
        notifier = Notifier(
            runtime.db, outbox, runtime.ids, group_window=dt.timedelta(seconds=settings.group_window_seconds)
        )
        host.add_servicer(
            notification_pb2_grpc.add_NotificationServiceServicer_to_server,
            NotificationServicer(reader, Preferences(runtime.db), watchers),
            notification_pb2.DESCRIPTOR.services_by_name["NotificationService"],
        )
        handlers = ActivityEvents(notifier, privacy, content)
        # batch=1: nats-py's fetch of a larger batch holds a message that reaches an idle consumer
        # until the batch fills or the fetch times out (1 s), and a like must reach its author's
        # stream within a second; the pull loops below keep several events in flight instead.
        consumer = functools.partial(
            ConsumerSpec, ack_wait_seconds=settings.ack_wait_seconds, max_deliver=settings.max_deliveries, batch=1
        )
        # Several pull loops share each busy durable, so that many events are written at once.
        loops = settings.consumer_concurrency
        specs = [consumer(GRAPH_DURABLE, GRAPH_EVENTS, handlers.handle)] * loops
        specs += [consumer(ENGAGEMENT_DURABLE, ENGAGEMENT_EVENTS, handlers.handle)] * loops
        specs += [consumer(POSTS_DELETED_DURABLE, [POST_DELETED], handlers.handle)]
        erasure = NotificationErasure(runtime.db, outbox)
        specs += [
            erasure_consumer(ERASURE_DURABLE, erasure.on_user_deleted, ack_wait_seconds=settings.ack_wait_seconds)
        ]
        for spec in specs:
            host.add_background(functools.partial(run_consumer, runtime.bus, spec))
        yield host
