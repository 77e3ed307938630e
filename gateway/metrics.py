"""The gateway's Prometheus metrics, the middleware that records requests, and their exposition.

Requests are labelled by route template ("/v1/posts/{post_id}"), never by raw path: a path holds ids,
and one label value per id would both leak them and grow the series without bound.
"""

from __future__ import annotations

import time

from fastapi.routing import iter_route_contexts
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUESTS = Counter(
    "glimpse_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "glimpse_http_request_duration_seconds",
    "Time to answer one HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
RATE_LIMIT_CHECKS = Counter(
    "glimpse_http_rate_limit_checks_total",
    "Rate-limit checks by budget and outcome: allowed, limited, failed_open or failed_closed (Redis down).",
    ["budget", "outcome"],
)

EXCLUDED_ROUTES = frozenset({"/metrics"})
UNMATCHED = "unmatched"
# Anything else would let a client mint label values (and series) at will.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """ASGI middleware: one count and one latency sample per HTTP request (the outermost one, so
    requests refused early, such as an oversized body, are counted too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # What the client gets if the app raises: the error handler outside us answers 500.
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = route_template(scope)
            if route not in EXCLUDED_ROUTES:
                method = scope["method"] if scope["method"] in _METHODS else "other"
                labels = (method, route, str(status))
                HTTP_REQUESTS.labels(*labels).inc()
                HTTP_LATENCY.labels(*labels).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The path template of the route that handled (or would have handled) the request."""
    route = scope.get("route")
    if route is None:
        # Refused before routing (body too large): find the route it was meant for.
        partial = None
        # Included routers are flattened into the routes they hold.
        for candidate in iter_route_contexts(scope["app"].routes):
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def exposition(accept: str) -> tuple[bytes, str]:
    """This process's metrics in the format the scraper asked for (Prometheus text or OpenMetrics)."""
    encode, content_type = choose_encoder(accept)
    return encode(REGISTRY), content_type
