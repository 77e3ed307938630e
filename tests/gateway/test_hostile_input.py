"""Hostile text at the gateway: NUL and other control characters in every body field, path segment and
query value of every route are a 400 naming the field, answered by the gateway itself (its upstreams
here are unreachable, so anything let through would be a 503). The routes come from the app's own
OpenAPI document, so a new route is covered the day it is added."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings
from mesh.tokens import ACCESS, signer_from
from tests.gateway.conftest import RATE_LIMIT_SETTINGS, UNREACHABLE, ServeApp

NUL_PROBLEM = (
    "must not contain control characters: U+0000 at offset 1 (only tab, line feed and carriage return are allowed)"
)
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def settings(namespace: str) -> GatewaySettings:
    return GatewaySettings(
        graph_addr=UNREACHABLE,
        post_addr=UNREACHABLE,
        media_addr=UNREACHABLE,
        feed_addr=UNREACHABLE,
        namespace=namespace,
        log_json=False,
        **{name: "100000/minute" for name in RATE_LIMIT_SETTINGS},
    )


@pytest.fixture(scope="module")
def spec(settings: GatewaySettings) -> dict[str, Any]:
    return create_app(settings).openapi()


@pytest.fixture
async def gateway(serve_app: ServeApp, settings: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_app(create_app(settings)) as client:
        # Signed like graph_svc signs (the gateway checks tokens itself), for a user that need not exist.
        client.headers["Authorization"] = f"Bearer {signer_from(settings).issue(42, ACCESS).token}"
        yield client


def violations(response: httpx.Response) -> dict[str, str]:
    """field -> description of a gateway error body's BadRequest detail (asserting the error shape)."""
    error = response.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT", response.text
    bad_requests = [d for d in error["details"] if d["type"] == "BadRequest"]
    assert len(bad_requests) == 1, response.text
    return {v["field"]: v["description"] for v in bad_requests[0]["field_violations"]}


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def concrete(path: str, **values: str) -> str:
    """`path` with each {parameter} replaced by its value in `values`, or by a valid id."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "7240392310784001"), path)


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    # An optional nested object (`location: LocationBody | None`) is anyOf [object, null].
    objects = [_resolve(spec, s) for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return objects[0] if len(objects) == 1 and objects[0].get("type") == "object" else schema


def body_fields(spec: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, bool]]:
    """(dotted field path, is it text) of every leaf field of a body schema, nested objects included."""
    for name, field in _resolve(spec, schema).get("properties", {}).items():
        resolved = _resolve(spec, field)
        if resolved.get("type") == "object" and "properties" in resolved:
            yield from body_fields(spec, resolved, f"{prefix}{name}.")
        elif resolved.get("type") == "array":
            yield f"{prefix}{name}.0", False
        else:
            yield prefix + name, resolved.get("type") == "string"


def nul_body(field: str) -> dict[str, Any]:
    """A body holding "a\\u0000b" at the dotted `field` path (".0" is the first item of a list)."""
    *parents, leaf = field.split(".")
    value: Any = ["a\x00b"] if leaf == "0" else "a\x00b"
    names = parents[:-1] if leaf == "0" else parents
    key = parents[-1] if leaf == "0" else leaf
    body: dict[str, Any] = {key: value}
    for name in reversed(names):
        body = {name: body}
    return body


async def test_nul_in_every_body_field_of_every_route_is_a_400_naming_it(gateway, spec):
    checked = set()
    for method, path, operation in operations(spec):
        if "requestBody" not in operation:
            continue
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        for field, is_text in body_fields(spec, schema):
            response = await gateway.request(method, concrete(path), json=nul_body(field))
            assert response.status_code == 400, (method, path, field, response.text)
            found = violations(response)
            assert field in found, (method, path, field, found)
            if is_text:
                assert found[field] == NUL_PROBLEM, (method, path, field)
            checked.add((method, path, field))
    # The document really was walked: the caption, a nested field, a list, anonymous routes.
    assert {
        ("post", "/v1/posts", "caption"),
        ("post", "/v1/posts", "location.name"),
        ("post", "/v1/posts", "media_ids.0"),
        ("patch", "/v1/posts/{post_id}", "caption"),
        ("post", "/v1/users", "password"),
        ("post", "/v1/sessions", "login"),
        ("post", "/v1/media/upload-url", "content_type"),
    } <= checked


@pytest.mark.parametrize(
    ("encoded", "problem"),
    [
        ("a%00b", NUL_PROBLEM),
        ("a%1B[2J", "must not contain control characters: U+001B at offset 1"),
        ("a%C2%85", "must not contain control characters: U+0085 at offset 1"),
        ("a%7F", "must not contain control characters: U+007F at offset 1"),
    ],
)
async def test_control_characters_in_every_path_parameter_are_a_400_naming_it(gateway, spec, encoded, problem):
    checked = 0
    for method, path, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "path":
                continue
            name = parameter["name"]
            response = await gateway.request(method, concrete(path, **{name: encoded}))
            assert response.status_code == 400, (method, path, response.text)
            assert violations(response).keys() == {name}
            assert violations(response)[name].startswith(problem)
            checked += 1
    assert checked >= 5  # post_id (get, patch, delete), user_id (posts, followers, ...), username


@pytest.mark.parametrize("encoded", ["a%00b", "%00", "a%1Fb", "a%C2%9Fb"])
async def test_control_characters_in_every_query_value_are_a_400_naming_it(gateway, spec, encoded):
    checked = 0
    for method, path, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            name = parameter["name"]
            response = await gateway.request(method, f"{concrete(path)}?{quote(name)}={encoded}")
            assert response.status_code == 400, (method, path, name, response.text)
            ((field, description),) = violations(response).items()
            assert field == name and description.startswith("must not contain control characters"), response.text
            checked += 1
    assert checked >= 8  # page_size, page_token on every list, q on search


async def test_a_control_character_in_a_query_name_or_a_fixed_path_segment_is_a_400(gateway):
    response = await gateway.get("/v1/feed?page%00size=5")
    assert response.status_code == 400
    assert list(violations(response)) == ["query"]
    assert "page" not in response.text  # the broken name is not echoed
    response = await gateway.get("/v1/po%00sts/1")
    assert response.status_code == 400
    assert violations(response) == {
        "path": "must not contain control characters: U+0000 at offset 6 "
        "(only tab, line feed and carriage return are allowed)"
    }


async def test_ordinary_text_passes_the_gateway(gateway):
    # Lines, tabs, emoji and other scripts are captions; the gateway hands them to post_svc (here
    # unreachable: 503), where a control character would have been refused with a 400.
    body = {"caption": "two\nlines\r\n\tand 👨\u200d👩\u200d👧 été 東京", "media_ids": ["7240392310784001"]}
    response = await gateway.post("/v1/posts", json=body)
    assert response.status_code == 503, response.text
    response = await gateway.get("/v1/users/ada.l%C3%A9")
    assert response.status_code == 503, response.text


async def test_the_live_gateway_refuses_percent_encoded_nul_in_path_and_query(http: httpx.AsyncClient):
    # Through uvicorn, as a client's bytes arrive (the ASGI transport above skips the HTTP parser).
    response = await http.get("/v1/users/ada%00")
    assert response.status_code == 400
    assert violations(response).keys() == {"username"}
    response = await http.get("/v1/users/ada/posts?page_token=%00")
    assert response.status_code == 400
    assert violations(response).keys() == {"page_token"}
