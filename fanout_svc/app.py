"""Assembles fanout_svc: Redis, graph/post clients -> handlers -> durable consumers on a health-only host."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

from fanout_svc.consumers import FanoutHandlers
from fanout_svc.erasure import ERASURE_DURABLE, TimelineErasure
from fanout_svc.settings import FanoutSettings
from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from mesh.bus import ConsumerSpec, run_consumer
from mesh.channels import open_channel
from mesh.erasure import erasure_consumer
from mesh.events import (
    POST_CREATED,
    POST_DELETED,
    USER_BLOCKED,
    USER_FOLLOWED,
    USER_MUTED,
    USER_UNBLOCKED,
    USER_UNFOLLOWED,
    USER_UNMUTED,
)
from mesh.runtime import open_runtime
from mesh.server import ServiceHost
from timelines.outboxes import OutboxLoader
from timelines.store import Timelines


@contextlib.asynccontextmanager
async def fanout_host(settings: FanoutSettings) -> AsyncIterator[ServiceHost]:
    async with (
        open_runtime(settings, database=False, redis=True) as runtime,
        open_channel(settings.graph_addr) as graph,
        open_channel(settings.post_addr) as posts,
    ):
        timelines = Timelines.from_settings(runtime.redis, settings)
        timeout = settings.upstream_timeout_seconds
        handlers = FanoutHandlers(
            timelines,
            OutboxLoader(timelines, post_pb2_grpc.PostServiceStub(posts), timeout=timeout),
            graph_pb2_grpc.GraphServiceStub(graph),
            celebrity_threshold=settings.celebrity_threshold,
            follower_batch=settings.follower_batch,
            timeout=timeout,
        )
        host = runtime.host("fanout_svc", settings.listen, settings.metrics_port)
        consumer = functools.partial(
            ConsumerSpec, ack_wait_seconds=settings.ack_wait_seconds, max_deliver=settings.max_deliveries
        )
        # Several pull loops share the posts.created durable, so that many posts fan out at once.
        specs = [consumer("fanout_posts_created", [POST_CREATED], handlers.on_post_created, batch=16)]
        specs *= settings.concurrency
        specs += [
            consumer("fanout_posts_deleted", [POST_DELETED], handlers.on_post_deleted),
            # One consumer for every relationship event, handled in stream order.
            consumer(
                "fanout_graph",
                [USER_FOLLOWED, USER_UNFOLLOWED, USER_BLOCKED, USER_UNBLOCKED, USER_MUTED, USER_UNMUTED],
                handlers.on_relationship_changed,
            ),
            erasure_consumer(
                ERASURE_DURABLE,
                TimelineErasure(timelines).on_user_deleted,
                ack_wait_seconds=settings.ack_wait_seconds,
            ),
        ]
        for spec in specs:
            host.add_background(functools.partial(run_consumer, runtime.bus, spec))
        yield host
