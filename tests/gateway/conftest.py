"""Fixtures for gateway tests: the app served in-process through httpx's ASGI transport (lifespan
included), in front of whatever upstream address a test chooses; and generous rate limits for the
shared gateway (`gateway_url`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from gateway.settings import GatewaySettings

# Nothing listens on port 1, so calls there fail at once with UNAVAILABLE.
UNREACHABLE = "127.0.0.1:1"

ServeApp = Callable[[FastAPI], AbstractAsyncContextManager[httpx.AsyncClient]]

# Every budget: rate_limit_<what>_per_<whom>.
RATE_LIMIT_SETTINGS = [name for name in GatewaySettings.model_fields if "_per_" in name]


@pytest.fixture
def serve_app() -> ServeApp:
    """Runs an app's lifespan and returns a client for it. Exceptions the app lets escape become
    responses (as they would under uvicorn) instead of being raised into the test."""

    @asynccontextmanager
    async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
                yield client

    return serve
