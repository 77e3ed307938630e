"""Accounts, sessions and the follow graph through HTTP: a real uvicorn gateway in front of a real
graph_svc. Every error must come back in the gateway's error shape, and nothing may be a 5xx."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from gateway.settings import GatewaySettings
from tests.conftest import PASSWORD


@dataclass(frozen=True)
class Member:
    id: str
    username: str
    headers: dict[str, str]


@pytest.fixture(autouse=True)
async def no_server_errors(http: httpx.AsyncClient) -> AsyncIterator[None]:
    """Fails the test if any response it received was a 5xx."""
    seen: list[str] = []

    async def record(response: httpx.Response) -> None:
        if response.status_code >= 500:
            await response.aread()
            seen.append(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
            )

    http.event_hooks["response"].append(record)
    yield
    http.event_hooks["response"].remove(record)
    assert not seen, seen


@pytest.fixture
def member(http: httpx.AsyncClient, new_username: Callable[[], str]) -> Callable[[], Awaitable[Member]]:
    """Registers and logs in a fresh user through the gateway."""

    async def make() -> Member:
        name = new_username()
        registered = await http.post("/v1/users", json=registration(name))
        assert registered.status_code == 201, registered.text
        session = await http.post("/v1/sessions", json={"login": name, "password": PASSWORD})
        assert session.status_code == 200, session.text
        body = session.json()
        return Member(body["user"]["id"], name, {"Authorization": f"Bearer {body['access_token']}"})

    return make


def registration(name: str, **overrides: str) -> dict[str, str]:
    return {"username": name, "email": f"{name}@example.com", "password": PASSWORD, **overrides}


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The `error` object of a response that must be an error of `status` in the gateway's shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"]
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert error["message"]
    return error


def reason_of(error: dict[str, Any]) -> str:
    return next(d["reason"] for d in error["details"] if d["type"] == "ErrorInfo")


def rfc3339(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


def access_token(user_id: str, *, key: str | None = None, **claims: Any) -> str:
    """An access token signed like graph_svc signs them (the gateway reads the same GLIMPSE_* settings)."""
    settings = GatewaySettings()
    now = dt.datetime.now(dt.UTC)
    payload = {
        "sub": user_id,
        "typ": "access",
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + dt.timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, key or settings.jwt_secret, algorithm="HS256")


async def all_pages(
    http: httpx.AsyncClient, path: str, headers: dict[str, str], **params: str
) -> list[list[dict[str, Any]]]:
    """Every page of a list, one item per page."""
    pages, token = [], ""
    while True:
        response = await http.get(path, params={**params, "page_size": 1, "page_token": token}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_page_token"}
        assert len(body["items"]) <= 1
        pages.append(body["items"])
        token = body["next_page_token"]
        if not token:
            return pages
        assert len(pages) < 10, "pagination does not end"


# Accounts ---------------------------------------------------------------------------------------


async def test_register_returns_201_and_the_user_with_string_ids(http, new_username):
    name = new_username()
    response = await http.post("/v1/users", json=registration(name, display_name="Ada L."))
    assert response.status_code == 201, response.text
    user = response.json()
    assert set(user) == {
        "id",
        "username",
        "display_name",
        "bio",
        "follower_count",
        "following_count",
        "create_time",
        "is_private",
        "website",
        "avatar_url",
        "avatar_large_url",
    }
    assert isinstance(user["id"], str) and int(user["id"]) > 0 and user["is_private"] is False
    assert (user["website"], user["avatar_url"], user["avatar_large_url"]) == ("", None, None)
    assert user["username"] == name and user["display_name"] == "Ada L."
    assert user["follower_count"] == "0" and user["following_count"] == "0"
    assert rfc3339(user["create_time"]) <= dt.datetime.now(dt.UTC)
    assert PASSWORD not in response.text


async def test_a_taken_username_is_409(http, new_username):
    name = new_username()
    assert (await http.post("/v1/users", json=registration(name))).status_code == 201
    again = await http.post("/v1/users", json=registration(name.upper(), email=f"other.{name}@example.com"))
    error = error_of(again, 409, "ALREADY_EXISTS")
    assert reason_of(error) == "USERNAME_TAKEN"


@pytest.mark.parametrize("password", ["", "short", "password1", "aaaaaaaaaaaa"])
async def test_an_empty_or_weak_password_is_400(http, new_username, password):
    response = await http.post("/v1/users", json=registration(new_username(), password=password))
    error = error_of(response, 400, "INVALID_ARGUMENT")
    assert reason_of(error) == "WEAK_PASSWORD"
    bad_request = next(d for d in error["details"] if d["type"] == "BadRequest")
    assert [v["field"] for v in bad_request["field_violations"]] == ["password"]


async def test_a_missing_field_is_400_naming_it(http, new_username):
    response = await http.post("/v1/users", json={"username": new_username(), "password": PASSWORD})
    error = error_of(response, 400, "INVALID_ARGUMENT")
    assert "email" in error["message"]


async def test_login_by_username_or_email(http, new_username):
    name = new_username()
    registered = (await http.post("/v1/users", json=registration(name))).json()
    for login in (name, f"{name}@example.com"):
        response = await http.post("/v1/sessions", json={"login": login, "password": PASSWORD})
        assert response.status_code == 200, response.text
        session = response.json()
        assert set(session) == {
            "access_token",
            "access_token_expire_time",
            "refresh_token",
            "refresh_token_expire_time",
            "user",
            "session_id",
        }
        assert session["user"] == registered
        assert rfc3339(session["access_token_expire_time"]) < rfc3339(session["refresh_token_expire_time"])


@pytest.mark.parametrize("wrong", ["password", "user"])
async def test_a_wrong_password_or_unknown_user_is_401(http, new_username, wrong):
    name = new_username()
    await http.post("/v1/users", json=registration(name))
    login = {"login": name, "password": "not the passphrase"} if wrong == "password" else {"login": f"x{name}"}
    response = await http.post("/v1/sessions", json={"password": PASSWORD, **login})
    error_of(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_refresh_token_buys_a_new_pair_and_an_access_token_does_not(http, new_username):
    name = new_username()
    await http.post("/v1/users", json=registration(name))
    session = (await http.post("/v1/sessions", json={"login": name, "password": PASSWORD})).json()
    refreshed = await http.post("/v1/sessions/refresh", json={"refresh_token": session["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["user"]["id"] == session["user"]["id"]
    assert refreshed.json()["access_token"] != session["access_token"]
    for token in (session["access_token"], "garbage"):
        error_of(await http.post("/v1/sessions/refresh", json={"refresh_token": token}), 401, "UNAUTHENTICATED")


async def test_lookup_by_username(http, new_username):
    name = new_username()
    registered = (await http.post("/v1/users", json=registration(name))).json()
    response = await http.get(f"/v1/users/{name.upper()}")
    assert response.status_code == 200
    assert response.json() == registered


async def test_an_unknown_username_is_404(http, new_username):
    error = error_of(await http.get(f"/v1/users/nobody{new_username()}"), 404, "NOT_FOUND")
    assert reason_of(error) == "USER_NOT_FOUND"


async def test_a_numeric_username_is_still_a_username(http):
    digits = str(uuid.uuid4().int)[:25]
    registered = await http.post("/v1/users", json=registration(digits))
    assert registered.status_code == 201, registered.text
    response = await http.get(f"/v1/users/{digits}")
    assert response.status_code == 200
    assert response.json()["username"] == digits and response.json()["id"] != digits
    error_of(await http.get("/v1/users/4040404040404040404"), 404, "NOT_FOUND")


async def test_search_pages_through_a_prefix(http, member):
    me = await member()
    prefix = me.username
    names = [me.username]
    for suffix in ("a", "b"):
        name = f"{prefix}{suffix}"
        assert (await http.post("/v1/users", json=registration(name))).status_code == 201
        names.append(name)
    # The exact name, then the names starting with it, a page each; similar names of other tests'
    # users follow them (as many pages as there are such users).
    seen, token = [], ""
    for _ in names:
        params = {"q": prefix, "page_size": 1, "page_token": token}
        response = await http.get("/v1/search/users", params=params, headers=me.headers)
        assert response.status_code == 200, response.text
        seen += [user["username"] for user in response.json()["items"]]
        token = response.json()["next_page_token"]
    assert seen == names
    error_of(await http.get(f"/v1/search/users?q={prefix}"), 401, "UNAUTHENTICATED")


# Follow graph -----------------------------------------------------------------------------------


async def test_follow_and_unfollow_are_idempotent(http, member):
    me, them = await member(), await member()
    first = await http.post("/v1/follow", json={"target_user_id": them.id}, headers=me.headers)
    assert first.status_code == 200, first.text
    assert first.json()["created"] is True
    assert first.json()["target"]["id"] == them.id and first.json()["target"]["follower_count"] == "1"
    # A plain JSON integer is accepted too.
    again = await http.post("/v1/follow", json={"target_user_id": int(them.id)}, headers=me.headers)
    assert again.status_code == 200
    assert again.json()["created"] is False and again.json()["target"]["follower_count"] == "1"

    removed = await http.delete(f"/v1/follow/{them.id}", headers=me.headers)
    assert removed.status_code == 200 and removed.json() == {"deleted": True}
    removed = await http.delete(f"/v1/follow/{them.id}", headers=me.headers)
    assert removed.status_code == 200 and removed.json() == {"deleted": False}
    assert (await http.get(f"/v1/users/{them.username}")).json()["follower_count"] == "0"


async def test_following_oneself_is_400(http, member):
    me = await member()
    error = error_of(
        await http.post("/v1/follow", json={"target_user_id": me.id}, headers=me.headers), 400, "INVALID_ARGUMENT"
    )
    assert reason_of(error) == "SELF_FOLLOW"


async def test_following_an_unknown_user_is_404(http, member):
    me = await member()
    response = await http.post("/v1/follow", json={"target_user_id": str(2**62 + 12345)}, headers=me.headers)
    error_of(response, 404, "NOT_FOUND")


async def test_follow_lists_paginate(http, member):
    star, first, second = await member(), await member(), await member()
    for fan in (first, second):
        response = await http.post("/v1/follow", json={"target_user_id": star.id}, headers=fan.headers)
        assert response.json()["created"] is True
    for followed in (first, second):
        await http.post("/v1/follow", json={"target_user_id": followed.id}, headers=star.headers)

    for relation in ("followers", "following"):
        pages = await all_pages(http, f"/v1/users/{star.id}/{relation}", first.headers)
        items = [item for page in pages for item in page]
        assert sorted(item["user"]["id"] for item in items) == sorted([first.id, second.id]), relation
        assert [len(page) for page in pages[:2]] == [1, 1]
        for item in items:
            assert set(item) == {"user", "create_time"}
            rfc3339(item["create_time"])
        # Newest follow first.
        assert rfc3339(items[0]["create_time"]) >= rfc3339(items[1]["create_time"])


async def test_follow_lists_need_a_known_numeric_user_and_a_valid_token(http, member):
    me = await member()
    error_of(await http.get("/v1/users/abc/followers", headers=me.headers), 400, "INVALID_ARGUMENT")
    error_of(await http.get(f"/v1/users/{2**62 + 7}/following", headers=me.headers), 404, "NOT_FOUND")
    error_of(await http.get(f"/v1/users/{me.id}/followers"), 401, "UNAUTHENTICATED")
    for token in ("!!!", "bm90IGpzb24", base64.urlsafe_b64encode(b'{"s":"followers:1","c":{}}').decode()):
        response = await http.get(f"/v1/users/{me.id}/followers", params={"page_token": token}, headers=me.headers)
        error = error_of(response, 400, "INVALID_ARGUMENT")
        assert "page_token" in error["message"]


# Bearer tokens ----------------------------------------------------------------------------------


async def test_a_token_signed_with_the_shared_secret_is_accepted(http, member):
    # The control for the forged tokens below: if this fails, they would fail for the wrong reason.
    me = await member()
    response = await http.get(
        f"/v1/users/{me.id}/followers", headers={"Authorization": f"Bearer {access_token(me.id)}"}
    )
    assert response.status_code == 200, response.text


def _unsigned(user_id: str) -> str:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    settings = GatewaySettings()
    claims = {"sub": user_id, "typ": "access", "iss": settings.jwt_issuer, "iat": now, "exp": now + 300}

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize("kind", ["missing", "garbage", "expired", "wrong_signature", "alg_none", "not_bearer"])
async def test_a_bad_token_is_401(http, member, kind):
    me = await member()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    authorization = {
        "missing": None,
        "garbage": "Bearer garbage",
        "expired": f"Bearer {access_token(me.id, iat=past - dt.timedelta(hours=1), exp=past)}",
        "wrong_signature": f"Bearer {access_token(me.id, key='another-secret-that-is-32-chars-long!')}",
        "alg_none": f"Bearer {_unsigned(me.id)}",
        "not_bearer": f"Basic {base64.b64encode(f'{me.username}:{PASSWORD}'.encode()).decode()}",
    }[kind]
    headers = {"Authorization": authorization} if authorization else {}
    response = await http.post("/v1/follow", json={"target_user_id": me.id}, headers=headers)
    error = error_of(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"].startswith("Bearer")
    expected = {"missing": "TOKEN_MISSING", "not_bearer": "TOKEN_MISSING", "expired": "TOKEN_EXPIRED"}
    assert reason_of(error) == expected.get(kind, "TOKEN_INVALID")


async def test_an_unknown_route_is_404_in_the_error_shape(http):
    error = error_of(await http.get("/v1/no/such/route"), 404, "NOT_FOUND")
    assert reason_of(error) == "ROUTE_NOT_FOUND"
