"""Assembles feed_svc: Redis and graph/post/media clients -> hydrator + service -> servicer -> host.

Each process also watches (Bus.watch: an ordered consumer, resumed within about a second of a NATS
reconnect or restart, missing nothing):
- `posts.deleted` and `posts.updated`, to drop deleted or edited posts from its hydration cache;
- `graph.followed` and `graph.unfollowed`, to drop the follower's cached celebrity followees, so a
  new follower of a celebrity sees the celebrity's posts on the next page, not
  celebrity_cache_seconds later.
The caches' TTLs bound the staleness if a message is still missed (this process was not running
when it was published, and it starts with empty caches).

And durable consumers (shared by every feed_svc process, at-least-once) keep feed_svc.signals:
engagement events (likes, comments and their removal) for explore and readers' affinity,
`posts.deleted` to drop a deleted post from explore, and `graph.user_deleted` to erase a user's
affinity and rankings (feed_svc.erasure).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable

from engagement_cache import EngagementCache
from feed_svc.consumers import SignalHandlers
from feed_svc.engagement import EngagementReader
from feed_svc.erasure import ERASURE_DURABLE, SignalErasure
from feed_svc.explore import ExploreFeed
from feed_svc.frozen_pages import FrozenPages
from feed_svc.hydration import Hydrator
from feed_svc.service import FeedService
from feed_svc.servicer import FeedServicer, add_to_server
from feed_svc.settings import FeedSettings
from feed_svc.signals import SignalStore
from glimpse.engagement.v1 import engagement_pb2_grpc
from glimpse.events.v1 import events_pb2
from glimpse.feed.v1 import feed_pb2
from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.media.v1 import media_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from mesh.bus import ConsumerSpec, run_consumer
from mesh.channels import open_channel
from mesh.erasure import erasure_consumer
from mesh.events import (
    COMMENT_CREATED,
    COMMENT_DELETED,
    POST_DELETED,
    POST_LIKED,
    POST_UNLIKED,
    POST_UPDATED,
    USER_FOLLOWED,
    USER_UNFOLLOWED,
)
from mesh.runtime import open_runtime
from mesh.server import ServiceHost
from timelines.outboxes import OutboxLoader
from timelines.store import Timelines
from visibility import Visibility


@contextlib.asynccontextmanager
async def feed_host(
    settings: FeedSettings, *, make_service: Callable[..., FeedService] = FeedService
) -> AsyncIterator[ServiceHost]:
    """feed_svc's host. `make_service` builds the service from FeedService's arguments: the feed
    benchmark passes a variant reading candidate posts from PostgreSQL, with everything else shared."""
    async with (
        open_runtime(settings, database=False, redis=True) as runtime,
        open_channel(settings.graph_addr) as graph_channel,
        open_channel(settings.post_addr) as post_channel,
        open_channel(settings.media_addr) as media_channel,
        open_channel(settings.engagement_addr) as engagement_channel,
    ):
        graph = graph_pb2_grpc.GraphServiceStub(graph_channel)
        posts = post_pb2_grpc.PostServiceStub(post_channel)
        timelines = Timelines.from_settings(runtime.redis, settings)
        timeout = settings.upstream_timeout_seconds
        hydrator = Hydrator(
            posts,
            graph,
            media_pb2_grpc.MediaServiceStub(media_channel),
            ttl_seconds=settings.hydration_cache_seconds,
            max_items=settings.hydration_cache_items,
            timeout=timeout,
        )

        async def forget_post(event: events_pb2.PostDeleted | events_pb2.PostUpdated) -> None:
            hydrator.forget_post(event.post_id)

        await runtime.bus.watch([POST_DELETED, POST_UPDATED], forget_post)
        visibility = Visibility(graph, ttl_seconds=settings.visibility_cache_seconds, timeout=timeout)
        await visibility.watch(runtime.bus)
        engagement = (
            engagement_pb2_grpc.EngagementServiceStub(engagement_channel) if settings.serve_engagement else None
        )
        signals = SignalStore(runtime.redis, settings.namespace, min_interactions=settings.explore_min_interactions)
        cache = (
            EngagementCache(
                runtime.redis,
                settings.namespace,
                counts_max_age_seconds=settings.engagement_counts_max_age_seconds,
                viewer_max_age_seconds=settings.engagement_viewer_max_age_seconds,
            )
            if settings.engagement_cache
            else None
        )
        engagement_reader = EngagementReader(
            engagement,
            timeout=timeout,
            cache=cache,
            viewer_window_seconds=settings.engagement_viewer_window_days * 86_400.0,
        )
        service = make_service(
            timelines,
            OutboxLoader(timelines, posts, timeout=timeout),
            hydrator,
            engagement_reader,
            graph,
            visibility=visibility,
            signals=signals,
            celebrity_threshold=settings.celebrity_threshold,
            celebrity_cache_seconds=settings.celebrity_cache_seconds,
            celebrity_head_seconds=settings.celebrity_head_seconds,
            ranking_counts_cache_seconds=settings.ranking_counts_cache_seconds,
            timeout=timeout,
        )

        async def forget_followees(event: events_pb2.UserFollowed | events_pb2.UserUnfollowed) -> None:
            service.forget_celebrity_followees(event.follower_id)

        await runtime.bus.watch([USER_FOLLOWED, USER_UNFOLLOWED], forget_followees)
        explore = ExploreFeed(
            signals,
            FrozenPages(signals, hydrator, engagement_reader),
            graph,
            visibility=visibility,
            timeout=timeout,
        )
        host = runtime.host("feed_svc", settings.listen, settings.metrics_port)
        handlers = SignalHandlers(signals, cache)
        consumer = functools.partial(
            ConsumerSpec, ack_wait_seconds=settings.ack_wait_seconds, max_deliver=settings.max_deliveries
        )
        for spec in (
            consumer(
                "feed_engagement",
                [POST_LIKED, POST_UNLIKED, COMMENT_CREATED, COMMENT_DELETED],
                handlers.on_engagement,
            ),
            consumer("feed_posts_deleted", [POST_DELETED], handlers.on_post_deleted),
            erasure_consumer(
                ERASURE_DURABLE, SignalErasure(signals).on_user_deleted, ack_wait_seconds=settings.ack_wait_seconds
            ),
        ):
            host.add_background(functools.partial(run_consumer, runtime.bus, spec))
        host.add_servicer(
            add_to_server,
            FeedServicer(service, explore),
            feed_pb2.DESCRIPTOR.services_by_name["FeedService"],
        )
        yield host
