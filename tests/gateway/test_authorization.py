"""Authorization matrix, follow graph and sessions: user B acting on user A's follows or tokens through
the live gateway gets nowhere, and A's side is unchanged. (Posts and media: test_authorization_posts.py.)

Follows belong to the caller: B's requests can only ever change B's own follows, whatever B sends."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, Account
from tests.gateway.authorization import Made, Row, Stack, run_row


async def a_follows_c(s: Stack, a: Account, c: Account) -> Made:
    response = await s.http.post("/v1/follow", json={"target_user_id": str(c.id)}, headers=a.headers)
    assert response.status_code == 200, response.text
    return {"a": a, "followee": c}


async def a_logged_in(s: Stack, a: Account, c: Account) -> Made:
    session = await s.http.post("/v1/sessions", json={"login": a.user.username, "password": PASSWORD})
    assert session.status_code == 200, session.text
    return {"session": session.json()}


async def a_following(s: Stack, a: Account, made: Made) -> list[str]:
    page = await s.http.get(f"/v1/users/{a.id}/following", params={"page_size": 100}, headers=a.headers)
    assert page.status_code == 200, page.text
    return sorted(item["user"]["id"] for item in page.json()["items"])


async def a_following_and_followee_count(s: Stack, a: Account, made: Made) -> tuple[Any, ...]:
    followee = await s.http.get(f"/v1/users/{made['followee'].user.username}")
    return await a_following(s, a, made), followee.json()["follower_count"]


async def a_account(s: Stack, a: Account, made: Made) -> Any:
    return (await s.http.get(f"/v1/users/{a.user.username}")).json()


async def removed_nothing(s: Stack, response: httpx.Response, a: Account, made: Made) -> None:
    assert response.json() == {"deleted": False}


async def followed_as_b(s: Stack, response: httpx.Response, a: Account, made: Made) -> None:
    assert response.json()["created"] is True


async def session_of_a(s: Stack, response: httpx.Response, a: Account, made: Made) -> None:
    assert response.json()["user"]["id"] == str(a.id)


async def a_sessions(s: Stack, a: Account, made: Made) -> list[str]:
    headers = {"Authorization": f"Bearer {made['session']['access_token']}"}
    page = await s.http.get("/v1/sessions", params={"page_size": 100}, headers=headers)
    assert page.status_code == 200, page.text
    return [item["id"] for item in page.json()["items"]]


async def a_sessions_and_account(s: Stack, a: Account, made: Made) -> tuple[Any, ...]:
    return await a_sessions(s, a, made), await a_account(s, a, made)


async def a_still_there(s: Stack, response: httpx.Response, a: Account, made: Made) -> None:
    assert (await s.http.get(f"/v1/users/{a.user.username}")).status_code == 200


ROWS = [
    Row(
        "B unfollowing A's followee removes only B's own (absent) follow",
        arrange=a_follows_c,
        act=lambda s, b, made: s.http.delete(f"/v1/follow/{made['followee'].id}", headers=b.headers),
        status=200,
        observe=a_following_and_followee_count,
        check=removed_nothing,
    ),
    Row(
        "B naming A in a follow request still follows as B",
        arrange=a_follows_c,
        act=lambda s, b, made: s.http.post(
            "/v1/follow",
            json={"target_user_id": str(made["followee"].id), "user_id": str(made["a"].id), "follower_id": "1"},
            headers=b.headers,
        ),
        status=200,
        observe=a_following,
        check=followed_as_b,
    ),
    Row(
        "B cannot refresh with A's access token",
        arrange=a_logged_in,
        act=lambda s, b, made: s.http.post(
            "/v1/sessions/refresh", json={"refresh_token": made["session"]["access_token"]}, headers=b.headers
        ),
        status=401,
        reason="TOKEN_WRONG_KIND",
        observe=a_account,
    ),
    Row(
        "a refresh token yields its owner's session, whatever bearer token comes along",
        arrange=a_logged_in,
        act=lambda s, b, made: s.http.post(
            "/v1/sessions/refresh", json={"refresh_token": made["session"]["refresh_token"]}, headers=b.headers
        ),
        status=200,
        observe=a_account,
        check=session_of_a,
    ),
    Row(
        "B cannot end A's session",
        arrange=a_logged_in,
        act=lambda s, b, made: s.http.delete(f"/v1/sessions/{made['session']['session_id']}", headers=b.headers),
        status=404,
        reason="SESSION_NOT_FOUND",
        observe=a_sessions,
    ),
    Row(
        "B logging out ends only B's own session",
        arrange=a_logged_in,
        act=lambda s, b, made: s.http.delete("/v1/sessions/current", headers=b.headers),
        status=200,
        observe=a_sessions,
    ),
    Row(
        "B changing the password (A's and B's are the same text) changes only B's and ends only B's sessions",
        arrange=a_logged_in,
        act=lambda s, b, made: s.http.post(
            "/v1/users/me/password",
            json={
                "current_password": PASSWORD,
                "new_password": "a brand new passphrase",
                "user_id": str(made["session"]["user"]["id"]),
            },
            headers=b.headers,
        ),
        status=200,
        observe=a_sessions_and_account,
    ),
    Row(
        "B deleting the account with A's password (the same text) deletes B, never A",
        arrange=a_logged_in,
        act=lambda s, b, made: s.http.request(
            "DELETE",
            "/v1/users/me",
            json={"password": PASSWORD, "user_id": str(made["session"]["user"]["id"])},
            headers=b.headers,
        ),
        status=202,
        observe=a_sessions_and_account,
        check=a_still_there,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
async def test_b_acting_on_a_s_follows_or_sessions(http, make_account, row):
    a, b, c = await make_account(), await make_account(), await make_account()
    await run_row(row, Stack(http), a, b, c)
