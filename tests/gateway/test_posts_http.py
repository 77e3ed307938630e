"""Posts through the live gateway (real post, media, feed services, fan-out and rendition worker behind
it): one post has one JSON, byte for byte, in the home feed, at /v1/posts/{id} and in the profile grid,
and the responses to a write show the write."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import httpx
import pytest

from tests.conftest import Account
from tests.feed_svc.actions import drain

pytestmark = pytest.mark.usefixtures("fanout", "media_worker")

FINAL = ("READY", "FAILED")


async def post_photos(http: httpx.AsyncClient, upload_photo, author: Account, **body: Any) -> dict[str, Any]:
    media_ids = [str(await upload_photo(author)) for _ in range(2)]
    response = await http.post("/v1/posts", json={"media_ids": media_ids, **body}, headers=author.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def until_processed(http: httpx.AsyncClient, reader: Account, post_id: str, within: float = 30) -> bytes:
    """The body of GET /v1/posts/{id} once every photo is READY or FAILED (the worker is asynchronous)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await http.get(f"/v1/posts/{post_id}", headers=reader.headers)
        assert response.status_code == 200, response.text
        if all(m["status"] in FINAL for m in response.json()["media"]):
            return response.content
        assert asyncio.get_running_loop().time() < deadline, f"photos still processing: {response.text}"
        await asyncio.sleep(0.1)


def compact(value: Any) -> bytes:
    """JSON as the gateway writes it (FastAPI's JSONResponse): compact, UTF-8, keys in order."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def test_one_post_has_the_same_json_in_the_feed_the_post_and_the_grid(
    http, make_account, upload_photo, bus, database_url
):
    author = await make_account()
    location = {"name": "Café Eliot", "latitude": 45.48, "longitude": -122.63}
    created = await post_photos(http, upload_photo, author, caption="Crème brûlée ☕ #Dessert", location=location)
    single = await until_processed(http, author, created["id"])
    await drain(bus, database_url)  # the post reaches the author's outbox, read by their own feed

    feed = await http.get("/v1/feed", headers=author.headers)
    grid = await http.get(f"/v1/users/{author.id}/posts", headers=author.headers)
    assert feed.status_code == grid.status_code == 200
    [in_feed] = feed.json()["items"]
    [in_grid] = grid.json()["items"]
    assert compact(in_feed) == single == compact(in_grid)
    assert single in feed.content and single in grid.content
    post = json.loads(single)
    assert list(post) == [
        "id",
        "author",
        "caption",
        "hashtags",
        "media",
        "create_time",
        "location",
        "update_time",
        "engagement",
    ]
    assert post["engagement"] == {
        "post_id": created["id"],
        "like_count": "0",
        "comment_count": "0",
        "viewer_has_liked": False,
        "viewer_has_saved": False,
    }
    assert post["id"] == created["id"]
    assert post["author"] == {
        "id": str(author.id),
        "username": author.user.username,
        "display_name": author.user.display_name,
        "avatar_url": None,
    }
    assert post["hashtags"] == ["dessert"] and post["location"] == location
    assert [m["status"] for m in post["media"]] == ["READY", "READY"]
    assert [r["size"] for r in post["media"][0]["renditions"]] == [1080, 640, 150]


async def test_the_create_response_is_the_post_as_read_later(http, make_account, upload_photo):
    author = await make_account()
    created = await post_photos(http, upload_photo, author, caption="first #one")
    assert created["caption"] == "first #one" and created["hashtags"] == ["one"]
    assert created["author"]["id"] == str(author.id)
    assert created["location"] is None
    assert created["update_time"] == created["create_time"]
    assert all(m["status"] in ("PROCESSING", *FINAL) for m in created["media"])
    read = (await http.get(f"/v1/posts/{created['id']}", headers=author.headers)).json()
    assert {k: v for k, v in read.items() if k != "media"} == {k: v for k, v in created.items() if k != "media"}
    assert [m["id"] for m in read["media"]] == [m["id"] for m in created["media"]]


async def test_an_edit_response_shows_the_new_caption_even_after_a_cached_read(http, make_account, upload_photo):
    author = await make_account()
    created = await post_photos(http, upload_photo, author, caption="before #old")
    await until_processed(http, author, created["id"])  # a finished item: now in feed_svc's item cache
    edited = await http.patch(f"/v1/posts/{created['id']}", json={"caption": "after #new"}, headers=author.headers)
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["caption"] == "after #new" and body["hashtags"] == ["new"]
    assert dt.datetime.fromisoformat(body["update_time"]) > dt.datetime.fromisoformat(body["create_time"])
    assert [m["status"] for m in body["media"]] == ["READY", "READY"]


def assert_post_not_found(response: httpx.Response, post_id: str) -> None:
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "NOT_FOUND" and error["message"] == f"post {post_id} does not exist"
    assert [d["reason"] for d in error["details"] if d["type"] == "ErrorInfo"] == ["POST_NOT_FOUND"]


async def test_a_missing_or_deleted_post_is_404_post_not_found(http, make_account, upload_photo):
    author = await make_account()
    assert_post_not_found(await http.get("/v1/posts/1", headers=author.headers), "1")
    created = await post_photos(http, upload_photo, author)  # its create response cached it in feed_svc
    assert (await http.delete(f"/v1/posts/{created['id']}", headers=author.headers)).status_code == 204
    # post_svc answers writes at once; feed_svc drops its cached copy when posts.deleted reaches it.
    edited = await http.patch(f"/v1/posts/{created['id']}", json={"caption": "x"}, headers=author.headers)
    assert_post_not_found(edited, created["id"])
    deadline = asyncio.get_running_loop().time() + 10
    while (read := await http.get(f"/v1/posts/{created['id']}", headers=author.headers)).status_code == 200:
        assert asyncio.get_running_loop().time() < deadline, "the deleted post is still served after 10 s"
        await asyncio.sleep(0.05)
    assert_post_not_found(read, created["id"])


async def test_the_grid_pages_rendered_posts_newest_first_without_deleted_ones(http, make_account, upload_photo):
    author, viewer = await make_account(), await make_account()
    ids = [(await post_photos(http, upload_photo, author, caption=f"n{n}"))["id"] for n in range(3)]
    assert (await http.delete(f"/v1/posts/{ids[1]}", headers=author.headers)).status_code == 204
    first = await http.get(f"/v1/users/{author.id}/posts", params={"page_size": 1}, headers=viewer.headers)
    assert first.status_code == 200, first.text
    [newest] = first.json()["items"]
    assert newest["id"] == ids[2] and newest["author"]["username"] == author.user.username
    token = first.json()["next_page_token"]
    rest = await http.get(f"/v1/users/{author.id}/posts", params={"page_token": token}, headers=viewer.headers)
    assert [p["id"] for p in rest.json()["items"]] == [ids[0]]
    empty = await http.get(f"/v1/users/{viewer.id}/posts", headers=viewer.headers)
    assert empty.json() == {"items": [], "next_page_token": ""}
