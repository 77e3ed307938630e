"""Every signed-in route refuses every kind of bad bearer token with 401, before any upstream call.

The routes come from the app itself (a route is signed in if it depends on `caller_id`), so a new
route is covered the day it is added; a new anonymous route must be listed in ANONYMOUS on purpose.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from gateway.app import create_app
from gateway.auth import caller_id, caller_session
from tests.gateway.conftest import ServeApp
from tests.gateway.test_app import assert_error, reasons, settings

# Routes anyone may call, by decision: signing up, logging in, refreshing, and looking a user up.
ANONYMOUS = {
    ("POST", "/v1/users"),
    ("POST", "/v1/sessions"),
    ("POST", "/v1/sessions/refresh"),
    ("GET", "/v1/users/{username}"),
}
SETTINGS = settings()
USER_ID = "7"


def _needs_caller(dependant: Dependant) -> bool:
    return any(dep.call in (caller_id, caller_session) or _needs_caller(dep) for dep in dependant.dependencies)


def api_routes() -> list[tuple[str, str, bool]]:
    """(method, path template, signed in) for every /v1 operation of the app."""
    found = []
    # Included routers hold the app's routes; iter_route_contexts flattens them.
    for route in iter_route_contexts(create_app(SETTINGS).routes):
        if isinstance(route.original_route, APIRoute) and route.path and route.path.startswith("/v1/"):
            for method in sorted(route.methods or ()):
                found.append((method, route.path, _needs_caller(route.dependant)))
    return found


SIGNED_IN = [(method, path) for method, path, signed_in in api_routes() if signed_in]


def test_every_route_is_signed_in_or_anonymous_by_decision():
    anonymous = {(method, path) for method, path, signed_in in api_routes() if not signed_in}
    assert anonymous == ANONYMOUS
    assert len(SIGNED_IN) >= 10


def _claims(**overrides: Any) -> dict[str, Any]:
    """Valid access-token claims with `overrides` applied; an override of None removes the claim."""
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": USER_ID,
        "typ": "access",
        "iss": SETTINGS.jwt_issuer,
        "iat": now,
        "exp": now + dt.timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
    }
    merged = {**claims, **overrides}
    return {name: value for name, value in merged.items() if value is not None}


def _signed(key: str | None = None, algorithm: str = "HS256", **overrides: Any) -> str:
    with warnings.catch_warnings():
        # HS512 with the real (shorter than 64 bytes) secret is the point of one case.
        warnings.simplefilter("ignore")
        return jwt.encode(_claims(**overrides), key or SETTINGS.jwt_secret, algorithm=algorithm)


def _unsigned() -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value, default=str).encode()).rstrip(b"=").decode()

    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"sub": USER_ID, "typ": "access", "iss": SETTINGS.jwt_issuer, "iat": now, "exp": now + 300}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


_PAST = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)

# kind -> (Authorization header or None, the ErrorInfo reason the gateway must give)
BAD_TOKENS: dict[str, Callable[[], tuple[str | None, str]]] = {
    "missing": lambda: (None, "TOKEN_MISSING"),
    "empty bearer": lambda: ("Bearer", "TOKEN_MISSING"),
    "basic credentials": lambda: ("Basic dXNlcjpwYXNz", "TOKEN_MISSING"),
    "garbage": lambda: ("Bearer garbage", "TOKEN_INVALID"),
    "three garbage parts": lambda: ("Bearer not.a.jwt", "TOKEN_INVALID"),
    "expired": lambda: (f"Bearer {_signed(iat=_PAST - dt.timedelta(hours=1), exp=_PAST)}", "TOKEN_EXPIRED"),
    "wrong signature": lambda: (f"Bearer {_signed(key='another-secret-that-is-32-chars-long!')}", "TOKEN_INVALID"),
    "alg none": lambda: (f"Bearer {_unsigned()}", "TOKEN_INVALID"),
    "another algorithm": lambda: (f"Bearer {_signed(algorithm='HS512')}", "TOKEN_INVALID"),
    "wrong issuer": lambda: (f"Bearer {_signed(iss='someone-else')}", "TOKEN_INVALID"),
    "no expiry": lambda: (f"Bearer {_signed(exp=None)}", "TOKEN_INVALID"),
    "refresh token": lambda: (f"Bearer {_signed(typ='refresh')}", "TOKEN_WRONG_KIND"),
    "non-numeric subject": lambda: (f"Bearer {_signed(sub='admin')}", "TOKEN_INVALID"),
}


@pytest.fixture
async def client(serve_app: ServeApp) -> AsyncIterator[httpx.AsyncClient]:
    # Nothing upstream: a token that got through would show up as a 503, not a 401.
    async with serve_app(create_app(SETTINGS)) as client:
        yield client


@pytest.mark.parametrize("kind", BAD_TOKENS)
@pytest.mark.parametrize(("method", "path"), SIGNED_IN)
async def test_a_bad_token_is_401_on_every_signed_in_route(client, method, path, kind):
    authorization, reason = BAD_TOKENS[kind]()
    headers = {"Authorization": authorization} if authorization else {}
    url = re.sub(r"\{[^}]+\}", "1", path)
    body = {} if method in {"POST", "PATCH", "PUT"} else None
    response = await client.request(method, url, headers=headers, json=body)
    error = assert_error(response, 401, "UNAUTHENTICATED")
    assert reasons(error) == [reason]
    challenge = response.headers["www-authenticate"]
    assert challenge == ("Bearer" if reason == "TOKEN_MISSING" else 'Bearer error="invalid_token"')


@pytest.mark.parametrize(("method", "path"), SIGNED_IN)
async def test_a_valid_token_gets_past_authentication_on_every_signed_in_route(client, method, path):
    # The control for the cases above: with a good token the request goes on (to a 400 for the empty
    # body, or a 503 from the missing upstream), so their 401s were for the token.
    token = _signed()
    url = re.sub(r"\{[^}]+\}", "1", path)
    body = {} if method in {"POST", "PATCH", "PUT"} else None
    response = await client.request(method, url, headers={"Authorization": f"Bearer {token}"}, json=body)
    assert response.status_code in {400, 503}, response.text
