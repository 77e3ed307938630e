"""The gateway's connection to the services: one gRPC channel per service, opened at start-up."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.settings import GatewaySettings
from glimpse.graph.v1.graph_pb2_grpc import GraphServiceStub
from glimpse.media.v1.media_pb2_grpc import MediaServiceStub
from glimpse.post.v1.post_pb2_grpc import PostServiceStub
from mesh.channels import open_channel


@dataclass(frozen=True)
class Upstream:
    graph: GraphServiceStub
    post: PostServiceStub
    media: MediaServiceStub
    # Passed as `timeout=` on every call: a deadline the services see and propagate.
    timeout: float


@contextlib.asynccontextmanager
async def connect_upstream(settings: GatewaySettings) -> AsyncIterator[Upstream]:
    """Channels to every service, closed on exit. Opened inside the server's loop, as grpc.aio needs."""
    async with (
        open_channel(settings.graph_addr) as graph,
        open_channel(settings.post_addr) as post,
        open_channel(settings.media_addr) as media,
    ):
        yield Upstream(
            graph=GraphServiceStub(graph),
            post=PostServiceStub(post),
            media=MediaServiceStub(media),
            timeout=settings.upstream_timeout_seconds,
        )


def upstream(request: Request) -> Upstream:
    """FastAPI dependency: the stubs opened by the app's lifespan."""
    connected: Upstream = request.app.state.upstream
    return connected


Services = Annotated[Upstream, Depends(upstream)]
