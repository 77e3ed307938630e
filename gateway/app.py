"""The gateway's FastAPI application: routes, error handlers, metrics, body limit, rate limits and
upstream channels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from gateway.auth import AccessTokens, SessionChecks, live_sessions
from gateway.body_limit import BodySizeLimit
from gateway.errors import install_error_handlers
from gateway.fields import known_query_parameters
from gateway.metrics import RequestMetrics
from gateway.rate_limits import RateLimiter
from gateway.request_target import RequestTargetText
from gateway.routes import (
    accounts,
    discovery,
    engagement,
    exports,
    feed,
    graph,
    media,
    notifications,
    operations,
    posts,
    privacy,
    profile,
    sessions,
    stories,
)
from gateway.settings import GatewaySettings
from gateway.upstream import connect_upstream
from gateway.web import web_client
from mesh.tokens import signer_from


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway app. Its lifespan opens the gRPC channels to the services and the rate limiter's
    Redis client, and closes them on shutdown.

    Raises ValueError if the token secret is too short to verify tokens safely.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with connect_upstream(settings) as connected:
            app.state.upstream = connected
            app.state.session_checks = SessionChecks(live_sessions(connected))
            app.state.rate_limiter = RateLimiter(settings)
            app.state.notification_streams = notifications.open_notification_streams(settings)
            try:
                yield
            finally:
                await app.state.notification_streams.close()
                await app.state.rate_limiter.close()

    app = FastAPI(
        title="Glimpse API",
        version="1",
        summary="Share photos with the people who follow you.",
        lifespan=lifespan,
        dependencies=[Depends(known_query_parameters)],
    )
    # The same secret, issuer and lifetimes graph_svc signs with (both read GLIMPSE_JWT_*).
    app.state.access_tokens = AccessTokens(signer_from(settings))
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Before routing, authentication and rate limits: a control character in the path or query is a 400.
    app.add_middleware(RequestTargetText)
    # Added last, so outermost: it also counts what the body limit refuses.
    app.add_middleware(RequestMetrics)
    # A request is matched against the routes in this order, each candidate costing FastAPI a few
    # microseconds (twice: once to find it, once to run it), so the most requested come first: the
    # feed, posts and engagement (bench gateway_feed: the home feed was 6th of 14 routers, and routing
    # was 16% of the gateway's CPU per feed read). None of their paths matches another router's.
    app.include_router(feed.router)
    app.include_router(posts.router)
    app.include_router(engagement.router)
    # Before accounts: /v1/users/me is not GET /v1/users/{username} ("me" is too short for a username).
    app.include_router(profile.router)
    app.include_router(accounts.router)
    app.include_router(sessions.router)
    app.include_router(graph.router)
    app.include_router(media.router)
    app.include_router(privacy.router)
    app.include_router(notifications.router)
    app.include_router(discovery.router)
    app.include_router(stories.router)
    app.include_router(exports.router)
    app.include_router(operations.router)
    # The client's files at /: it matches only their paths, so no API answer changes.
    app.router.routes.append(web_client())
    return app
