"""The gateway on its own (no graph_svc): health, authentication failures, request checks, the error
shape for routing errors and for an upstream that is down, slow or broken."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings
from mesh.tokens import ACCESS, REFRESH, IssuedToken, TokenSigner, signer_from
from tests.gateway.conftest import UNREACHABLE, ServeApp


def settings(**overrides: object) -> GatewaySettings:
    # A namespace of its own per gateway: rate-limit budgets live in Redis and outlast a test run.
    values: dict[str, object] = {
        "graph_addr": UNREACHABLE,
        "log_json": False,
        "namespace": f"app{uuid.uuid4().hex[:12]}",
        **overrides,
    }
    return GatewaySettings.model_validate(values)


def short_lived_access(user_id: int, *, seconds: int = 2, session_id: int | None = None) -> IssuedToken:
    """An access token the suite's gateways accept (their secret and issuer) that expires in `seconds`:
    sooner than any setting allows (access_token_ttl_seconds is at least 30)."""
    config = settings()
    signer = TokenSigner(
        config.jwt_secret,
        config.jwt_issuer,
        access_ttl=dt.timedelta(seconds=seconds),
        refresh_ttl=dt.timedelta(minutes=1),
    )
    return signer.issue(user_id, ACCESS, session_id=session_id)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The response is an error of `status` in the gateway's shape; returns its `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, object] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    return error


def reasons(error: dict[str, object]) -> list[str]:
    details = error["details"]
    assert isinstance(details, list)
    return [d["reason"] for d in details if d["type"] == "ErrorInfo"]


@pytest.fixture
async def client(serve_app: ServeApp) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(create_app(settings(max_body_bytes=4096))) as client:
        yield client


async def test_healthz_answers_without_upstream(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_unknown_route_is_404_in_the_error_shape(client):
    error = assert_error(await client.get("/v1/nothing/here"), 404, "NOT_FOUND")
    assert reasons(error) == ["ROUTE_NOT_FOUND"]


async def test_wrong_method_is_405_with_allow(client):
    response = await client.put("/healthz")
    assert_error(response, 405, "UNIMPLEMENTED")
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "TOKEN_MISSING"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "TOKEN_MISSING"),
        ({"Authorization": "Bearer"}, "TOKEN_MISSING"),
        (bearer("not.a.jwt"), "TOKEN_INVALID"),
        (bearer("garbage"), "TOKEN_INVALID"),
    ],
)
async def test_signed_in_routes_refuse_missing_or_garbage_tokens(client, headers, reason):
    for method, path in [
        ("GET", "/v1/search/users?q=ab"),
        ("GET", "/v1/users/1/followers"),
        ("GET", "/v1/users/1/following"),
        ("DELETE", "/v1/follow/1"),
        ("POST", "/v1/follow"),
    ]:
        response = await client.request(method, path, headers=headers, json={"target_user_id": "1"})
        error = assert_error(response, 401, "UNAUTHENTICATED")
        assert reasons(error) == [reason]
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_refresh_token_is_not_an_access_token(client):
    refresh = signer_from(settings()).issue(42, REFRESH).token
    error = assert_error(await client.get("/v1/users/42/followers", headers=bearer(refresh)), 401, "UNAUTHENTICATED")
    assert reasons(error) == ["TOKEN_WRONG_KIND"]


async def test_bad_input_is_400_with_field_violations(client):
    response = await client.post("/v1/users", json={"username": "ada", "password": 12345678})
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    violations = {v["field"] for d in error["details"] if d["type"] == "BadRequest" for v in d["field_violations"]}
    assert violations == {"email", "password"}
    assert "12345678" not in response.text


async def test_malformed_json_is_400(client):
    response = await client.post("/v1/sessions", content=b'{"login": ', headers={"content-type": "application/json"})
    assert_error(response, 400, "INVALID_ARGUMENT")


async def test_text_protobuf_cannot_carry_is_400_not_500(client):
    body = b'{"login": "\\ud800", "password": "x"}'
    response = await client.post("/v1/sessions", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "INVALID_ARGUMENT")


# The last id is written in full-width digits, which str.isdigit() accepts.
@pytest.mark.parametrize("user_id", ["abc", "0", "-5", "1.5", "99999999999999999999", "\uff11\uff12"])
async def test_a_malformed_user_id_is_400_before_any_upstream_call(client, user_id):
    token = signer_from(settings()).issue(7, ACCESS).token
    for path in [f"/v1/users/{user_id}/followers", f"/v1/users/{user_id}/following"]:
        assert_error(await client.get(path, headers=bearer(token)), 400, "INVALID_ARGUMENT")
    assert_error(await client.delete(f"/v1/follow/{user_id}", headers=bearer(token)), 400, "INVALID_ARGUMENT")
    response = await client.post("/v1/follow", headers=bearer(token), json={"target_user_id": user_id})
    assert_error(response, 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("target", [True, 1.0, None, [], 2**63])
async def test_follow_target_must_be_an_id(client, target):
    token = signer_from(settings()).issue(7, ACCESS).token
    response = await client.post("/v1/follow", headers=bearer(token), json={"target_user_id": target})
    assert_error(response, 400, "INVALID_ARGUMENT")


async def test_page_size_out_of_range_is_400(client):
    token = signer_from(settings()).issue(7, ACCESS).token
    for size in ["-1", "2147483648", "ten"]:
        response = await client.get(f"/v1/users/7/followers?page_size={size}", headers=bearer(token))
        assert_error(response, 400, "INVALID_ARGUMENT")


async def test_body_over_the_limit_is_413(client):
    response = await client.post("/v1/sessions", json={"login": "x" * 5000, "password": "y"})
    error = assert_error(response, 413, "RESOURCE_EXHAUSTED")
    assert reasons(error) == ["BODY_TOO_LARGE"]


async def test_chunked_body_over_the_limit_is_413(client):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"login": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'", "password": "y"}'

    response = await client.post("/v1/sessions", content=chunks(), headers={"content-type": "application/json"})
    assert_error(response, 413, "RESOURCE_EXHAUSTED")


async def test_upstream_down_is_503_without_internal_addresses(client):
    response = await client.get("/v1/users/someone")
    error = assert_error(response, 503, "UNAVAILABLE")
    assert "127.0.0.1" not in str(error["message"])


@pytest.mark.parametrize(
    ("upstream", "method", "path", "body"),
    [
        ("graph", "GET", "/v1/users/7/followers", None),
        ("post", "GET", "/v1/users/7/posts", None),
        ("feed", "GET", "/v1/posts/7", None),
        ("media", "POST", "/v1/media/upload-url", {"content_type": "image/png", "size_bytes": 10}),
    ],
)
async def test_every_upstream_that_hangs_is_504_within_its_deadline(serve_app, upstream, method, path, body):
    silent: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    app = create_app(settings(**{f"{upstream}_addr": address, "upstream_timeout_seconds": 0.3}))
    token = signer_from(settings()).issue(7, ACCESS).token
    try:
        # The upstream never answers, so a 504 proves the gateway's deadline fired; the outer
        # timeout turns a hung gateway into a failure instead of a stuck test.
        async with serve_app(app) as client, asyncio.timeout(10):
            response = await client.request(method, path, headers=bearer(token), json=body)
        assert_error(response, 504, "DEADLINE_EXCEEDED")
    finally:
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_unexpected_exception_is_a_generic_500(serve_app):
    app = create_app(settings())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    async with serve_app(app) as client:
        response = await client.get("/boom")
    error = assert_error(response, 500, "INTERNAL")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert error["details"] == []


async def test_openapi_documents_bodies_and_the_bearer_scheme(client):
    spec = (await client.get("/openapi.json")).json()
    scheme = spec["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    follow = spec["paths"]["/v1/follow"]["post"]
    assert follow["security"] == [{"bearer": []}]
    assert "requestBody" in follow and "401" in follow["responses"]
    assert "security" not in spec["paths"]["/v1/users"]["post"]
    schemas = spec["components"]["schemas"]
    assert {"RegisterUserBody", "LoginBody", "RefreshBody", "FollowBody", "User", "Session"} <= set(schemas)
    # Validation failures are 400 in the error shape; FastAPI's default 422 must not be advertised.
    assert "HTTPValidationError" not in schemas
    for operations in spec["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]


async def test_a_short_token_secret_stops_the_app_at_start():
    with pytest.raises(ValueError, match="at least 32"):
        create_app(settings(jwt_secret="short"))
