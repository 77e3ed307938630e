"""The gateway's connection to the services: one gRPC channel per service, opened at start-up, and
the readiness check that asks each of them for its grpc.health.v1 status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Annotated

import grpc
from fastapi import Depends, Request
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2
from grpc_health.v1.health_pb2_grpc import HealthStub

from gateway.settings import GatewaySettings
from glimpse.engagement.v1 import engagement_pb2
from glimpse.engagement.v1.engagement_pb2_grpc import EngagementServiceStub
from glimpse.export.v1 import export_pb2
from glimpse.export.v1.export_pb2_grpc import ExportServiceStub
from glimpse.feed.v1 import feed_pb2
from glimpse.feed.v1.feed_pb2_grpc import FeedServiceStub
from glimpse.graph.v1 import graph_pb2
from glimpse.graph.v1.graph_pb2_grpc import GraphServiceStub
from glimpse.media.v1 import media_pb2
from glimpse.media.v1.media_pb2_grpc import MediaServiceStub
from glimpse.notification.v1 import notification_pb2
from glimpse.notification.v1.notification_pb2_grpc import NotificationServiceStub
from glimpse.post.v1 import post_pb2
from glimpse.post.v1.post_pb2_grpc import PostServiceStub
from glimpse.story.v1 import story_pb2
from glimpse.story.v1.story_pb2_grpc import StoryServiceStub
from mesh.channels import open_channel

SERVING = health_pb2.HealthCheckResponse.ServingStatus.Name(health_pb2.HealthCheckResponse.SERVING)


@dataclass(frozen=True)
class HealthCheck:
    stub: HealthStub
    service: str  # the gRPC service the channel must serve, e.g. "glimpse.graph.v1.GraphService"


@dataclass(frozen=True, kw_only=True)
class UpstreamHealth:
    """One health check per upstream channel."""

    checks: Mapping[str, HealthCheck]
    timeout: float

    async def statuses(self) -> dict[str, str]:
        """Each upstream's status by name: "SERVING", "NOT_SERVING", ..., or, when the check itself
        failed, its gRPC code ("UNAVAILABLE", "DEADLINE_EXCEEDED", "NOT_FOUND" for a wrong service)."""
        names = sorted(self.checks)
        found = await asyncio.gather(*(self._status(self.checks[name]) for name in names))
        return dict(zip(names, found, strict=True))

    async def _status(self, check: HealthCheck) -> str:
        request = health_pb2.HealthCheckRequest(service=check.service)
        try:
            response = await check.stub.Check(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


@dataclass(frozen=True)
class Upstream:
    graph: GraphServiceStub
    post: PostServiceStub
    media: MediaServiceStub
    feed: FeedServiceStub
    engagement: EngagementServiceStub
    notification: NotificationServiceStub
    story: StoryServiceStub
    export: ExportServiceStub
    # Passed as `timeout=` on every call: a deadline the services see and propagate.
    timeout: float
    health: UpstreamHealth


@contextlib.asynccontextmanager
async def connect_upstream(settings: GatewaySettings) -> AsyncIterator[Upstream]:
    """Channels to every service, closed on exit. Opened inside the server's loop, as grpc.aio needs.
    Every channel opened through `connect` is also checked by /readyz."""
    async with contextlib.AsyncExitStack() as stack:
        checks: dict[str, HealthCheck] = {}

        async def connect(name: str, address: str, service: ServiceDescriptor) -> grpc.aio.Channel:
            channel = await stack.enter_async_context(open_channel(address))
            checks[name] = HealthCheck(HealthStub(channel), service.full_name)
            return channel

        # A new upstream is one line here (its /readyz check comes with it) and its stub below.
        graph = await connect("graph", settings.graph_addr, graph_pb2.DESCRIPTOR.services_by_name["GraphService"])
        post = await connect("post", settings.post_addr, post_pb2.DESCRIPTOR.services_by_name["PostService"])
        media = await connect("media", settings.media_addr, media_pb2.DESCRIPTOR.services_by_name["MediaService"])
        feed = await connect("feed", settings.feed_addr, feed_pb2.DESCRIPTOR.services_by_name["FeedService"])
        engagement = await connect(
            "engagement", settings.engagement_addr, engagement_pb2.DESCRIPTOR.services_by_name["EngagementService"]
        )
        notification = await connect(
            "notification",
            settings.notification_addr,
            notification_pb2.DESCRIPTOR.services_by_name["NotificationService"],
        )
        story = await connect("story", settings.story_addr, story_pb2.DESCRIPTOR.services_by_name["StoryService"])
        export = await connect("export", settings.export_addr, export_pb2.DESCRIPTOR.services_by_name["ExportService"])
        yield Upstream(
            graph=GraphServiceStub(graph),
            post=PostServiceStub(post),
            media=MediaServiceStub(media),
            feed=FeedServiceStub(feed),
            engagement=EngagementServiceStub(engagement),
            notification=NotificationServiceStub(notification),
            story=StoryServiceStub(story),
            export=ExportServiceStub(export),
            timeout=settings.upstream_timeout_seconds,
            health=UpstreamHealth(checks=checks, timeout=settings.readiness_timeout_seconds),
        )


async def upstream(request: Request) -> Upstream:
    """FastAPI dependency: the stubs opened by the app's lifespan (async only so that FastAPI calls it
    inline: a plain `def` dependency is run on a worker thread, a thread hop on every request)."""
    connected: Upstream = request.app.state.upstream
    return connected


Services = Annotated[Upstream, Depends(upstream)]
