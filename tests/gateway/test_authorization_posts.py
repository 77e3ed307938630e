"""Authorization matrix, posts and media: user B acting on user A's posts, photos or idempotency keys
through the live gateway (real post_svc and media_svc behind it) gets 403, and A's side is unchanged."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Account
from tests.gateway.authorization import Made, Row, Stack, run_row


async def upload(s: Stack, account: Account) -> str:
    assert s.upload is not None
    return str(await s.upload(account))


async def create_post(s: Stack, author: Account, media_id: str, key: str = "") -> httpx.Response:
    headers = {**author.headers, "Idempotency-Key": key} if key else author.headers
    return await s.http.post("/v1/posts", json={"caption": "mine #only", "media_ids": [media_id]}, headers=headers)


async def a_posted(s: Stack, a: Account, c: Account) -> Made:
    key = uuid.uuid4().hex
    media_id = await upload(s, a)
    response = await create_post(s, a, media_id, key)
    assert response.status_code == 201, response.text
    return {"post": response.json(), "media_id": media_id, "key": key}


async def a_uploaded(s: Stack, a: Account, c: Account) -> Made:
    return {"media_id": await upload(s, a)}


async def a_post(s: Stack, a: Account, made: Made) -> tuple[Any, ...]:
    """A's post as A reads it (not its photos' processing status, which a rendition worker may move on)."""
    response = await s.http.get(f"/v1/posts/{made['post']['id']}", headers=a.headers)
    post = response.json()
    return response.status_code, post["author"]["id"], post["caption"], post["update_time"]


async def a_grid(s: Stack, a: Account, made: Made) -> list[str]:
    response = await s.http.get(f"/v1/users/{a.id}/posts", params={"page_size": 100}, headers=a.headers)
    assert response.status_code == 200, response.text
    return [post["id"] for post in response.json()["items"]]


async def a_can_still_post_it(s: Stack, response: httpx.Response, a: Account, made: Made) -> None:
    posted = await create_post(s, a, made["media_id"])
    assert posted.status_code == 201, posted.text


async def b_got_a_post_of_its_own(s: Stack, response: httpx.Response, a: Account, made: Made) -> None:
    post = response.json()
    assert post["author"]["id"] != str(a.id) and post["id"] != made["post"]["id"]


async def b_posts_with_a_s_key(s: Stack, b: Account, made: Made) -> httpx.Response:
    return await create_post(s, b, await upload(s, b), made["key"])


ROWS = [
    Row(
        "B cannot edit A's caption",
        arrange=a_posted,
        act=lambda s, b, made: s.http.patch(
            f"/v1/posts/{made['post']['id']}", json={"caption": "pwned"}, headers=b.headers
        ),
        status=403,
        reason="NOT_AUTHOR",
        observe=a_post,
    ),
    Row(
        "B cannot delete A's post",
        arrange=a_posted,
        act=lambda s, b, made: s.http.delete(f"/v1/posts/{made['post']['id']}", headers=b.headers),
        status=403,
        reason="NOT_AUTHOR",
        observe=a_post,
    ),
    Row(
        "B cannot post A's unused photo, and A still can",
        arrange=a_uploaded,
        act=lambda s, b, made: create_post(s, b, made["media_id"]),
        status=403,
        reason="NOT_MEDIA_OWNER",
        observe=a_grid,
        check=a_can_still_post_it,
    ),
    Row(
        "B cannot post A's already posted photo",
        arrange=a_posted,
        act=lambda s, b, made: create_post(s, b, made["media_id"]),
        status=403,
        reason="NOT_MEDIA_OWNER",
        observe=a_post,
    ),
    Row(
        "B reusing A's Idempotency-Key gets a post of B's own, never A's",
        arrange=a_posted,
        act=b_posts_with_a_s_key,
        status=201,
        observe=a_post,
        check=b_got_a_post_of_its_own,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=str)
async def test_b_acting_on_a_s_posts_and_photos(http, make_account, upload_photo, row):
    a, b, c = await make_account(), await make_account(), await make_account()
    await run_row(row, Stack(http, upload_photo), a, b, c)
