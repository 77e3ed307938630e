"""What operators and orchestrators see: /readyz against the real services (and against ones that are
down, not serving, or silent), /metrics labelled by route template, and the OpenAPI document and docs."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.gateway.conftest import UNREACHABLE, ServeApp
from tests.gateway.test_app import assert_error, reasons

POST_SERVICE = "glimpse.post.v1.PostService"


def stack(graph_addr: str, post_addr: str, media_addr: str, **overrides: object) -> GatewaySettings:
    """Settings with post_svc at `post_addr` (the upstream a test breaks) and the others real."""
    values = {
        "graph_addr": graph_addr,
        "post_addr": post_addr,
        "media_addr": media_addr,
        "feed_addr": REAL["feed"],
        "engagement_addr": REAL["engagement"],
        "notification_addr": REAL["notification"],
        "story_addr": REAL["story"],
        "export_addr": REAL["export"],
        "log_json": False,
        # A namespace of its own: rate-limit budgets live in Redis and outlast a test run.
        "namespace": f"ops{uuid.uuid4().hex[:12]}",
    }
    return GatewaySettings.model_validate({**values, **overrides})


REAL: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _real_upstreams(
    feed_addr: str, engagement_addr: str, notification_addr: str, story_addr: str, export_addr: str
) -> None:
    REAL["feed"] = feed_addr
    REAL["engagement"] = engagement_addr
    REAL["notification"] = notification_addr
    REAL["story"] = story_addr
    REAL["export"] = export_addr


@pytest.fixture
async def stand_in_post() -> AsyncIterator[tuple[str, health.aio.HealthServicer]]:
    """A server that only answers health checks, as post_svc would; the test sets its status."""
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(None)


async def test_ready_when_every_upstream_serves(http):
    response = await http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "upstreams": {
            "engagement": "SERVING",
            "export": "SERVING",
            "feed": "SERVING",
            "graph": "SERVING",
            "media": "SERVING",
            "notification": "SERVING",
            "post": "SERVING",
            "story": "SERVING",
        },
    }


async def test_not_ready_while_an_upstream_is_down(serve_app: ServeApp, graph_addr, media_addr):
    async with serve_app(create_app(stack(graph_addr, UNREACHABLE, media_addr))) as client:
        response = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200
    error = assert_error(response, 503, "UNAVAILABLE")
    assert reasons(error) == ["UPSTREAM_NOT_READY"]
    assert error["message"] == "not ready: post is UNAVAILABLE"
    assert error["details"][0]["metadata"] == {
        "engagement": "SERVING",
        "export": "SERVING",
        "feed": "SERVING",
        "graph": "SERVING",
        "media": "SERVING",
        "notification": "SERVING",
        "post": "UNAVAILABLE",
        "story": "SERVING",
    }


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (health_pb2.HealthCheckResponse.NOT_SERVING, "NOT_SERVING"),
        # Registered under no name the gateway asks for: the address points at the wrong service.
        (None, "NOT_FOUND"),
    ],
)
async def test_not_ready_while_an_upstream_is_not_serving(
    serve_app: ServeApp, graph_addr, media_addr, stand_in_post, status, shown
):
    address, servicer = stand_in_post
    if status is not None:
        await servicer.set(POST_SERVICE, status)
    async with serve_app(create_app(stack(graph_addr, address, media_addr))) as client:
        error = assert_error(await client.get("/readyz"), 503, "UNAVAILABLE")
        assert error["details"][0]["metadata"]["post"] == shown
        await servicer.set(POST_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        assert (await client.get("/readyz")).status_code == 200


async def test_a_silent_upstream_fails_readiness_within_its_deadline(serve_app: ServeApp, graph_addr, media_addr):
    silent: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        settings = stack(graph_addr, address, media_addr, readiness_timeout_seconds=0.3)
        async with serve_app(create_app(settings)) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            error = assert_error(await client.get("/readyz"), 503, "UNAVAILABLE")
            assert loop.time() - started < 2
        assert error["details"][0]["metadata"]["post"] == "DEADLINE_EXCEEDED"
    finally:
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_metrics_label_requests_by_route_template_without_ids(http, make_account):
    account = await make_account()
    assert (await http.get(f"/v1/users/{account.id}/followers", headers=account.headers)).status_code == 200
    assert (await http.get(f"/v1/no/such/{account.id}")).status_code == 404
    await http.get("/metrics")

    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert re.search(
        r'glimpse_http_requests_total\{method="GET",route="/v1/users/\{user_id\}/followers",status="200"\} \d',
        text,
    )
    histogram_line = r'glimpse_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="/v1/users/'
    assert re.search(histogram_line, text)
    assert 'route="unmatched",status="404"' in text
    assert str(account.id) not in text
    assert 'route="/metrics"' not in text


async def test_metrics_speak_openmetrics_when_asked(http):
    response = await http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_openapi_documents_operations_rate_limits_and_readiness(http):
    spec = (await http.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    readyz = spec["paths"]["/readyz"]["get"]["responses"]
    assert readyz["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert readyz["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Readiness"}
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "summary" in operation and operation["responses"], f"{method} {path}"
            if path.startswith("/v1/"):
                too_many = operation["responses"]["429"]
                assert too_many["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
                assert too_many["headers"]["Retry-After"]["schema"]["type"] == "integer"


async def test_interactive_docs_are_served(http):
    response = await http.get("/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "/openapi.json" in response.text
