"""Assembles engagement_svc: runtime, post and graph clients -> services -> servicer -> host (with the
engagement cache's drops after every commit, the outbox relay, the `posts.deleted`, `posts.created`,
`graph.blocked` (blocks) and `graph.user_deleted` (erasure) consumers and the `posts.deleted` watch
that keeps the post cache honest)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

from engagement_cache import EngagementCache
from engagement_svc import models
from engagement_svc.blocks import BLOCKS_DURABLE, BlockPurge
from engagement_svc.comments import CommentService
from engagement_svc.consumers import POSTS_CREATED_DURABLE, POSTS_DELETED_DURABLE, PostEvents
from engagement_svc.counts import CacheDrops, CountService
from engagement_svc.erasure import ERASURE_DURABLE, EngagementErasure
from engagement_svc.likes import LikeService
from engagement_svc.mentions import MentionResolver
from engagement_svc.posts import PostDirectory
from engagement_svc.saves import SaveService
from engagement_svc.servicer import EngagementServicer
from engagement_svc.settings import EngagementSettings
from glimpse.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from mesh.bus import ConsumerSpec, run_consumer
from mesh.channels import open_channel
from mesh.erasure import erasure_consumer
from mesh.events import POST_CREATED, POST_DELETED, USER_BLOCKED
from mesh.runtime import open_runtime
from mesh.server import ServiceHost
from visibility import Visibility


@contextlib.asynccontextmanager
async def engagement_host(settings: EngagementSettings) -> AsyncIterator[ServiceHost]:
    async with (
        open_runtime(settings, redis=True) as runtime,
        open_channel(settings.post_addr) as post_channel,
        open_channel(settings.graph_addr) as graph_channel,
    ):
        host = runtime.host("engagement_svc", settings.listen, settings.metrics_port)
        # Every commit that changes counts or someone's likes or saves drops them from feed_svc's cache.
        runtime.db.after_commit(CacheDrops(EngagementCache(runtime.redis, settings.namespace)))
        outbox = runtime.outbox(models.outbox, host)
        timeout = settings.upstream_timeout_seconds
        visibility = Visibility(graph_pb2_grpc.GraphServiceStub(graph_channel), timeout=timeout)
        await visibility.watch(runtime.bus)
        posts = PostDirectory(
            runtime.db,
            post_pb2_grpc.PostServiceStub(post_channel),
            visibility=visibility,
            ttl_seconds=settings.post_cache_seconds,
            max_items=settings.post_cache_items,
            timeout=timeout,
        )
        await runtime.bus.watch([POST_DELETED], posts.on_post_deleted)
        mentions = MentionResolver(graph_pb2_grpc.GraphServiceStub(graph_channel), visibility, timeout=timeout)
        shards = settings.counter_shards
        servicer = EngagementServicer(
            LikeService(runtime.db, outbox, posts, counter_shards=shards),
            CommentService(runtime.db, outbox, runtime.ids, posts, mentions, counter_shards=shards),
            SaveService(runtime.db, posts, counter_shards=shards),
            CountService(runtime.db),
        )
        host.add_servicer(
            engagement_pb2_grpc.add_EngagementServiceServicer_to_server,
            servicer,
            engagement_pb2.DESCRIPTOR.services_by_name["EngagementService"],
        )
        handlers = PostEvents(runtime.db, outbox, posts, mentions)
        consumer = functools.partial(
            ConsumerSpec, ack_wait_seconds=settings.ack_wait_seconds, max_deliver=settings.max_deliveries
        )
        blocks = BlockPurge(
            runtime.db, outbox, post_pb2_grpc.PostServiceStub(post_channel), counter_shards=shards, timeout=timeout
        )
        for spec in (
            consumer(POSTS_DELETED_DURABLE, [POST_DELETED], handlers.on_post_deleted),
            consumer(POSTS_CREATED_DURABLE, [POST_CREATED], handlers.on_post_created),
            consumer(BLOCKS_DURABLE, [USER_BLOCKED], blocks.on_user_blocked),
        ):
            host.add_background(functools.partial(run_consumer, runtime.bus, spec))
        erasure = EngagementErasure(runtime.db, outbox, counter_shards=shards)
        erasure_spec = erasure_consumer(
            ERASURE_DURABLE, erasure.on_user_deleted, ack_wait_seconds=settings.ack_wait_seconds
        )
        host.add_background(functools.partial(run_consumer, runtime.bus, erasure_spec))
        yield host
