"""Authorization matrix, profile pictures: user B naming user A's avatar upload (pending or shown) through
the live gateway gets nowhere: B's own picture is unchanged and A's picture and upload stay A's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Account
from tests.gateway.authorization import Made, Row, Stack, run_row
from tests.gateway.test_profile_http import upload_avatar

pytestmark = pytest.mark.usefixtures("media_worker")

PHOTO = (Path(__file__).resolve().parents[3] / "shared" / "datasets" / "photos" / "rocket.jpg").read_bytes()


async def a_uploaded(s: Stack, a: Account, c: Account) -> Made:
    return {"media_id": await upload_avatar(s.http, a, PHOTO)}


async def a_shows_it(s: Stack, a: Account, c: Account) -> Made:
    made = await a_uploaded(s, a, c)
    response = await s.http.put("/v1/users/me/avatar", json={"media_id": made["media_id"]}, headers=a.headers)
    assert response.status_code == 202, response.text
    deadline = asyncio.get_running_loop().time() + 30
    while (await a_account(s, a, made))["avatar_url"] is None:
        assert asyncio.get_running_loop().time() < deadline, "A's picture never appeared"
        await asyncio.sleep(0.1)
    return made


async def a_account(s: Stack, a: Account, made: Made) -> Any:
    return (await s.http.get("/v1/users/me", headers=a.headers)).json()


async def b_has_no_picture(s: Stack, response: httpx.Response, a: Account, made: Made) -> None:
    # B's side: nothing pending either (a later DELETE removes nothing).
    b_headers = response.request.headers
    removed = await s.http.delete("/v1/users/me/avatar", headers={"Authorization": b_headers["Authorization"]})
    assert removed.json()["deleted"] is False


ROWS = [
    Row(
        "B setting A's pending avatar upload as B's picture is refused",
        arrange=a_uploaded,
        act=lambda s, b, made: s.http.put(
            "/v1/users/me/avatar", json={"media_id": made["media_id"]}, headers=b.headers
        ),
        status=403,
        reason="NOT_MEDIA_OWNER",
        observe=a_account,
        check=b_has_no_picture,
    ),
    Row(
        "B setting A's shown picture as B's is refused, and A keeps it",
        arrange=a_shows_it,
        act=lambda s, b, made: s.http.put(
            "/v1/users/me/avatar", json={"media_id": made["media_id"], "user_id": "1"}, headers=b.headers
        ),
        status=400,  # a field the body does not take (user_id) is refused before anything is asked
        observe=a_account,
    ),
    Row(
        "B setting A's shown picture as B's (a well-formed request) is refused, and A keeps it",
        arrange=a_shows_it,
        act=lambda s, b, made: s.http.put(
            "/v1/users/me/avatar", json={"media_id": made["media_id"]}, headers=b.headers
        ),
        status=403,
        reason="NOT_MEDIA_OWNER",
        observe=a_account,
        check=b_has_no_picture,
    ),
    Row(
        "B removing its picture leaves A's",
        arrange=a_shows_it,
        act=lambda s, b, made: s.http.delete("/v1/users/me/avatar", headers=b.headers),
        status=200,
        observe=a_account,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
async def test_b_acting_on_a_s_avatar(http, make_account, row):
    a, b, c = await make_account(), await make_account(), await make_account()
    await run_row(row, Stack(http), a, b, c)
