"""For operators and orchestrators: liveness, readiness (every upstream serving) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from gateway.metrics import exposition
from gateway.resources import ErrorResponse, Health, Readiness
from gateway.upstream import SERVING, Services
from mesh.errors import Unavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up and serving HTTP; upstream services are not checked."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness",
    response_description="Every upstream service reports SERVING.",
    responses={
        503: {
            "model": ErrorResponse,
            "description": "An upstream is not serving (reason UPSTREAM_NOT_READY; every upstream's status "
            "is in the ErrorInfo metadata).",
        }
    },
)
async def readyz(services: Services) -> dict[str, Any]:
    """Asks each upstream service for its grpc.health.v1 status, with a short deadline."""
    statuses = await services.health.statuses()
    not_ready = [f"{name} is {status}" for name, status in statuses.items() if status != SERVING]
    if not_ready:
        raise Unavailable("not ready: " + ", ".join(not_ready), reason="UPSTREAM_NOT_READY", metadata=statuses)
    return {"status": "ready", "upstreams": statuses}


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    response_description="Request counts and latencies by route template, method and status.",
    responses={200: {"content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """The Prometheus text format, or OpenMetrics if the scraper asks for it."""
    body, content_type = exposition(request.headers.get("accept", ""))
    return Response(body, media_type=content_type)
