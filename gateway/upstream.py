"""The gateway's connection to the services: one gRPC channel per service, opened at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from glimpse.graph.v1.graph_pb2_grpc import GraphServiceStub


@dataclass(frozen=True)
class Upstream:
    graph: GraphServiceStub
    # Passed as `timeout=` on every call: a deadline the services see and propagate.
    timeout: float


def upstream(request: Request) -> Upstream:
    """FastAPI dependency: the stubs opened by the app's lifespan."""
    connected: Upstream = request.app.state.upstream
    return connected


Services = Annotated[Upstream, Depends(upstream)]
