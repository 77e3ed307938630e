"""Likes, comments and saves through the live gateway: the JSON of each route (checked strictly against
its resource), idempotency, 400s naming the field for bad comment text, 403/404 in the error shape,
saved posts rendered exactly as the post itself, and the engagement budget."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from gateway.app import create_app
from gateway.resources import Post
from gateway.routes.engagement import Comment, CommentPage, LikeResult, LikerPage, SavedPage, SaveResult
from gateway.settings import GatewaySettings
from tests.conftest import Account
from tests.gateway.conftest import ServeApp
from tests.gateway.test_app import assert_error, reasons
from tests.gateway.test_rate_limits import assert_rate_limited

UNKNOWN_POST = "7240392310784001"


async def checked(response: httpx.Response, model: type[BaseModel], status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    model.model_validate(body, strict=True)
    return body


async def post_by(http: httpx.AsyncClient, author: Account, upload_photo, caption: str = "engage") -> str:
    media_id = str(await upload_photo(author))
    body = {"caption": caption, "media_ids": [media_id]}
    created = await http.post("/v1/posts", json=body, headers=author.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def field_violations(response: httpx.Response) -> dict[str, str]:
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    bad = [d for d in error["details"] if d["type"] == "BadRequest"]
    return {v["field"]: v["description"] for v in bad[0]["field_violations"]}


async def test_like_and_unlike_are_idempotent_and_list_the_likers(http, make_account, upload_photo):
    author, ada, bob = await make_account(), await make_account(), await make_account()
    post_id = await post_by(http, author, upload_photo)
    for _ in range(2):
        liked = await checked(await http.post(f"/v1/posts/{post_id}/like", headers=ada.headers), LikeResult)
        assert liked == {"post_id": post_id, "liked": True, "like_count": "1"}
    liked = await checked(await http.post(f"/v1/posts/{post_id}/like", headers=bob.headers), LikeResult)
    assert liked["like_count"] == "2"
    first = await checked(await http.get(f"/v1/posts/{post_id}/likes?page_size=1", headers=ada.headers), LikerPage)
    assert [u["username"] for u in first["items"]] == [bob.user.username]
    assert first["items"][0]["id"] == str(bob.id)
    rest = await checked(
        await http.get(
            f"/v1/posts/{post_id}/likes", params={"page_token": first["next_page_token"]}, headers=ada.headers
        ),
        LikerPage,
    )
    assert ([u["username"] for u in rest["items"]], rest["next_page_token"]) == ([ada.user.username], "")
    for _ in range(2):
        unliked = await checked(await http.delete(f"/v1/posts/{post_id}/like", headers=bob.headers), LikeResult)
        assert unliked == {"post_id": post_id, "liked": False, "like_count": "1"}


async def test_writes_need_a_token_and_a_post_that_exists(http, make_account):
    ada = await make_account()
    for method, path in (("POST", "like"), ("DELETE", "like"), ("POST", "save"), ("DELETE", "save")):
        assert_error(await http.request(method, f"/v1/posts/{UNKNOWN_POST}/{path}"), 401, "UNAUTHENTICATED")
        error = assert_error(
            await http.request(method, f"/v1/posts/{UNKNOWN_POST}/{path}", headers=ada.headers), 404, "NOT_FOUND"
        )
        assert reasons(error) == ["POST_NOT_FOUND"]
    for path in ("likes", "comments"):
        error = assert_error(await http.get(f"/v1/posts/{UNKNOWN_POST}/{path}", headers=ada.headers), 404, "NOT_FOUND")
        assert reasons(error) == ["POST_NOT_FOUND"]
    response = await http.post(f"/v1/posts/{UNKNOWN_POST}/comments", json={"text": "hi"}, headers=ada.headers)
    assert reasons(assert_error(response, 404, "NOT_FOUND")) == ["POST_NOT_FOUND"]
    error = assert_error(await http.get(f"/v1/comments/{UNKNOWN_POST}/replies", headers=ada.headers), 404, "NOT_FOUND")
    assert reasons(error) == ["COMMENT_NOT_FOUND"]
    assert_error(await http.post("/v1/posts/abc/like", headers=ada.headers), 400, "INVALID_ARGUMENT")


async def test_comments_replies_and_their_json(http, make_account, upload_photo):
    author, ada = await make_account(), await make_account()
    post_id = await post_by(http, author, upload_photo)
    url = f"/v1/posts/{post_id}/comments"
    top = await checked(await http.post(url, json={"text": "  hello @nobody  "}, headers=ada.headers), Comment, 201)
    assert top["text"] == "hello @nobody"
    assert top["author"] == {
        "id": str(ada.id),
        "username": ada.user.username,
        "display_name": ada.user.display_name,
        "avatar_url": None,
    }
    assert (top["post_id"], top["parent_comment_id"], top["reply_to_comment_id"], top["reply_count"]) == (
        post_id,
        None,
        None,
        "0",
    )
    reply = await checked(
        await http.post(url, json={"text": "hi!", "parent_comment_id": top["id"]}, headers=author.headers), Comment, 201
    )
    nested = await checked(
        await http.post(url, json={"text": "again", "parent_comment_id": reply["id"]}, headers=ada.headers),
        Comment,
        201,
    )
    assert (nested["parent_comment_id"], nested["reply_to_comment_id"]) == (top["id"], reply["id"])
    page = await checked(await http.get(url, headers=ada.headers), CommentPage)
    assert [(c["id"], c["reply_count"]) for c in page["items"]] == [(top["id"], "2")]
    replies = await checked(await http.get(f"/v1/comments/{top['id']}/replies", headers=ada.headers), CommentPage)
    assert [c["id"] for c in replies["items"]] == [reply["id"], nested["id"]]
    response = await http.get(f"/v1/comments/{reply['id']}/replies", headers=ada.headers)
    assert "parent" in field_violations(response)


async def test_a_comment_key_replays_and_refuses_other_text(http, make_account, upload_photo):
    ada = await make_account()
    post_id = await post_by(http, ada, upload_photo)
    url = f"/v1/posts/{post_id}/comments"
    key = {**ada.headers, "Idempotency-Key": f"c-{uuid.uuid4()}"}
    made = await asyncio.gather(*(http.post(url, json={"text": "once"}, headers=key) for _ in range(5)))
    assert {r.status_code for r in made} == {201}
    assert len({r.json()["id"] for r in made}) == 1
    refused = assert_error(await http.post(url, json={"text": "twice"}, headers=key), 400, "FAILED_PRECONDITION")
    assert reasons(refused) == ["IDEMPOTENCY_KEY_REUSED"]
    # Without a key each call is a new comment.
    await http.post(url, json={"text": "once"}, headers=ada.headers)
    assert len((await http.get(url, headers=ada.headers)).json()["items"]) == 2


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"text": "   \n "}, "text", "must not be empty"),
        ({"text": "x" * 2201}, "text", "must be at most 2200 characters"),
        ({"text": "a\u0000b"}, "text", "U+0000 at offset 1"),
        ({"text": "a\u001bb"}, "text", "U+001B at offset 1"),
        ({"text": "tab\tbed"}, "text", "U+0009 at offset 3"),
        # JSON can spell a lone surrogate ("\\ud800"); it is not text.
        ('{"text": "half \\ud800 a pair"}', "text", "valid Unicode"),
        ({}, "text", "Field required"),
        ({"text": 5}, "text", "string"),
        ({"text": "ok", "parent_comment_id": "x1"}, "parent_comment_id", "comment id"),
    ],
)
async def test_bad_comment_text_is_a_400_naming_the_field(http, make_account, upload_photo, body, field, problem):
    ada = await make_account()
    post_id = await post_by(http, ada, upload_photo)
    url = f"/v1/posts/{post_id}/comments"
    if isinstance(body, str):
        response = await http.post(url, content=body, headers={**ada.headers, "content-type": "application/json"})
    else:
        response = await http.post(url, json=body, headers=ada.headers)
    violations = field_violations(response)
    assert problem in violations[field], violations
    assert (await http.get(f"/v1/posts/{post_id}/comments", headers=ada.headers)).json()["items"] == []


async def test_2200_characters_after_trimming_are_accepted(http, make_account, upload_photo):
    ada = await make_account()
    post_id = await post_by(http, ada, upload_photo)
    text = "\n " + "ü" * 2200 + " \n"
    made = await http.post(f"/v1/posts/{post_id}/comments", json={"text": text}, headers=ada.headers)
    assert made.status_code == 201 and made.json()["text"] == "ü" * 2200


async def test_only_the_comment_or_post_author_deletes(http, make_account, upload_photo):
    author, ada, stranger = await make_account(), await make_account(), await make_account()
    post_id = await post_by(http, author, upload_photo)
    url = f"/v1/posts/{post_id}/comments"
    top = (await http.post(url, json={"text": "thread"}, headers=ada.headers)).json()
    await http.post(url, json={"text": "reply", "parent_comment_id": top["id"]}, headers=stranger.headers)
    error = assert_error(
        await http.delete(f"/v1/comments/{top['id']}", headers=stranger.headers), 403, "PERMISSION_DENIED"
    )
    assert reasons(error) == ["NOT_COMMENT_OR_POST_AUTHOR"]
    assert len((await http.get(url, headers=ada.headers)).json()["items"]) == 1
    for _ in range(2):  # the post's author removes it, with its reply; again is also 204
        assert (await http.delete(f"/v1/comments/{top['id']}", headers=author.headers)).status_code == 204
    assert (await http.get(url, headers=ada.headers)).json()["items"] == []
    error = assert_error(await http.get(f"/v1/comments/{top['id']}/replies", headers=ada.headers), 404, "NOT_FOUND")
    assert reasons(error) == ["COMMENT_NOT_FOUND"]


async def test_saved_posts_are_private_and_rendered_as_the_post(http, make_account, upload_photo):
    author, ada = await make_account(), await make_account()
    kept, gone = await post_by(http, author, upload_photo, "kept"), await post_by(http, author, upload_photo, "gone")
    for post_id in (kept, gone, gone):
        saved = await checked(await http.post(f"/v1/posts/{post_id}/save", headers=ada.headers), SaveResult)
        assert saved == {"post_id": post_id, "saved": True}
    page = await checked(await http.get("/v1/users/me/saved", headers=ada.headers), SavedPage)
    assert [p["id"] for p in page["items"]] == [gone, kept]
    as_post = await checked(await http.get(f"/v1/posts/{kept}", headers=ada.headers), Post)
    assert page["items"][1] == as_post
    assert (await http.get("/v1/users/me/saved", headers=author.headers)).json()["items"] == []
    assert (await http.delete(f"/v1/posts/{gone}", headers=author.headers)).status_code == 204
    # Gone once feed_svc and engagement_svc have heard of the deletion (milliseconds; bounded here).
    deadline = asyncio.get_running_loop().time() + 15
    while [p["id"] for p in (await http.get("/v1/users/me/saved", headers=ada.headers)).json()["items"]] != [kept]:
        assert asyncio.get_running_loop().time() < deadline, "the deleted post is still listed"
        await asyncio.sleep(0.05)
    unsaved = await checked(await http.delete(f"/v1/posts/{kept}/save", headers=ada.headers), SaveResult)
    assert unsaved == {"post_id": kept, "saved": False}
    assert (await http.get("/v1/users/me/saved", headers=ada.headers)).json() == {"items": [], "next_page_token": ""}


async def test_engagement_bursts_are_limited_per_user(
    serve_app: ServeApp, make_account, upload_photo, http, graph_addr, post_addr, media_addr, feed_addr, engagement_addr
):
    ada, bob = await make_account(), await make_account()
    post_id = await post_by(http, ada, upload_photo)
    settings = GatewaySettings.model_validate(
        {
            "graph_addr": graph_addr,
            "post_addr": post_addr,
            "media_addr": media_addr,
            "feed_addr": feed_addr,
            "engagement_addr": engagement_addr,
            "namespace": f"rl{uuid.uuid4().hex[:12]}",
            "log_json": False,
            "rate_limit_engagement_per_user": "2/minute",
        }
    )
    async with serve_app(create_app(settings)) as client:
        assert (await client.post(f"/v1/posts/{post_id}/like", headers=bob.headers)).status_code == 200
        assert (await client.post(f"/v1/posts/{post_id}/save", headers=bob.headers)).status_code == 200
        refused = await client.post(f"/v1/posts/{post_id}/comments", json={"text": "3rd"}, headers=bob.headers)
        assert_rate_limited(refused, "engagement_per_user")
        assert (await client.get(f"/v1/posts/{post_id}/comments", headers=bob.headers)).json()["items"] == []
        assert (await client.post(f"/v1/posts/{post_id}/like", headers=ada.headers)).status_code == 200
