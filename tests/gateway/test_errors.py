"""The one gRPC -> HTTP mapping, against a scripted graph service that fails on demand: every status
code, google.rpc details carried through, and nothing internal leaking out of a 5xx."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from mesh.errors import AlreadyExists, Unavailable
from mesh.interceptors import ErrorInterceptor
from tests.gateway.conftest import ServeApp


class ScriptedGraph(graph_pb2_grpc.GraphServiceServicer):
    """LookupUser fails as the username says: a status code name ("permission_denied"), a domain
    error ("taken", "draining") or a bug ("crash")."""

    async def LookupUser(self, request: graph_pb2.LookupUserRequest, context: grpc.aio.ServicerContext) -> None:
        if request.username == "taken":
            raise AlreadyExists("that username is taken", reason="USERNAME_TAKEN", fields={"username": "taken"})
        if request.username == "draining":
            raise Unavailable("graph_svc is restarting; retry in a second", reason="DRAINING")
        if request.username == "crash":
            raise RuntimeError("secret internals at /srv/graph_svc")
        await context.abort(grpc.StatusCode[request.username.upper()], f"scripted {request.username}")


@pytest.fixture
async def client(serve_app: ServeApp) -> AsyncIterator[httpx.AsyncClient]:
    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    graph_pb2_grpc.add_GraphServiceServicer_to_server(ScriptedGraph(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        settings = GatewaySettings(
            graph_addr=f"127.0.0.1:{port}", log_json=False, namespace=f"err{uuid.uuid4().hex[:12]}"
        )
        async with serve_app(create_app(settings)) as client:
            yield client
    finally:
        await server.stop(None)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("NOT_FOUND", 404),
        ("ALREADY_EXISTS", 409),
        ("INVALID_ARGUMENT", 400),
        ("FAILED_PRECONDITION", 400),
        ("OUT_OF_RANGE", 400),
        ("UNAUTHENTICATED", 401),
        ("PERMISSION_DENIED", 403),
        ("RESOURCE_EXHAUSTED", 429),
    ],
)
async def test_client_errors_keep_their_code_and_message(client, code, status):
    response = await client.get(f"/v1/users/{code.lower()}")
    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": f"scripted {code.lower()}", "details": []}}
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("code", "status"), [("UNAVAILABLE", 503), ("DEADLINE_EXCEEDED", 504)])
async def test_transport_errors_say_try_again_without_upstream_text(client, code, status):
    response = await client.get(f"/v1/users/{code.lower()}")
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert "scripted" not in error["message"] and "try again" in error["message"]


@pytest.mark.parametrize("code", ["INTERNAL", "UNKNOWN", "DATA_LOSS", "UNIMPLEMENTED", "ABORTED", "CANCELLED"])
async def test_every_other_code_is_a_generic_500(client, code):
    response = await client.get(f"/v1/users/{code.lower()}")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": code, "message": "internal error; it has been logged", "details": []}}


async def test_a_bug_upstream_is_a_generic_500(client):
    response = await client.get("/v1/users/crash")
    assert response.status_code == 500
    assert "secret" not in response.text and "/srv" not in response.text


async def test_rich_details_are_rendered(client):
    response = await client.get("/v1/users/taken")
    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "code": "ALREADY_EXISTS",
            "message": "that username is taken",
            "details": [
                {"type": "ErrorInfo", "reason": "USERNAME_TAKEN", "domain": "glimpse.dev", "metadata": {}},
                {"type": "BadRequest", "field_violations": [{"field": "username", "description": "taken"}]},
            ],
        }
    }


async def test_a_service_that_explains_its_unavailability_is_heard(client):
    response = await client.get("/v1/users/draining")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["message"] == "graph_svc is restarting; retry in a second"
    assert error["details"][0]["reason"] == "DRAINING"
