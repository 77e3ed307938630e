"""The one visibility rule, applied wherever a post leaves the system: a private account's post and
everything on it, and anything between users who block one another, answer as if it did not exist.

Roles around one private author: the owner, an approved follower, a stranger (not following), and a
user the owner blocks. Each asks for the post, the grid, the likers and comments, and acts on it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Account
from tests.feed_svc.actions import drain

pytestmark = pytest.mark.usefixtures("fanout")


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _reason(response: httpx.Response) -> str:
    return next(d["reason"] for d in response.json()["error"]["details"] if d["type"] == "ErrorInfo")


@pytest.fixture
async def world(http: httpx.AsyncClient, make_account, upload_photo, bus, database_url) -> dict[str, Any]:
    owner, follower, stranger, blocked = [await make_account() for _ in range(4)]
    await _ok(await http.patch("/v1/users/me", json={"is_private": True}, headers=owner.headers))
    asked = await _ok(await http.post("/v1/follow", json={"target_user_id": str(owner.id)}, headers=follower.headers))
    assert asked["state"] == "requested"
    await _ok(await http.post(f"/v1/follow-requests/{follower.id}/approve", headers=owner.headers))
    media_id = str(await upload_photo(owner))
    post = await _ok(await http.post("/v1/posts", json={"media_ids": [media_id]}, headers=owner.headers), 201)
    comment = await http.post(f"/v1/posts/{post['id']}/comments", json={"text": "mine"}, headers=follower.headers)
    await _ok(comment, 201)
    await _ok(await http.post("/v1/blocks", json={"target_user_id": str(blocked.id)}, headers=owner.headers))
    await drain(bus, database_url)
    return {"owner": owner, "follower": follower, "stranger": stranger, "blocked": blocked, "post": post["id"]}


async def test_who_sees_a_private_account_s_post(http: httpx.AsyncClient, world: dict[str, Any]):
    owner: Account = world["owner"]
    post_id = world["post"]
    for role in ("owner", "follower"):
        headers = world[role].headers
        assert (await http.get(f"/v1/posts/{post_id}", headers=headers)).status_code == 200
        grid = await _ok(await http.get(f"/v1/users/{owner.id}/posts", headers=headers))
        assert [p["id"] for p in grid["items"]] == [post_id]
        assert (await http.get(f"/v1/posts/{post_id}/comments", headers=headers)).status_code == 200
        assert (await http.get(f"/v1/posts/{post_id}/likes", headers=headers)).status_code == 200
    feed = await _ok(await http.get("/v1/feed", headers=world["follower"].headers))
    assert post_id in [p["id"] for p in feed["items"]]

    for role in ("stranger", "blocked"):
        headers = world[role].headers
        for method, path in (
            ("GET", f"/v1/posts/{post_id}"),
            ("GET", f"/v1/posts/{post_id}/comments"),
            ("GET", f"/v1/posts/{post_id}/likes"),
            ("POST", f"/v1/posts/{post_id}/like"),
            ("POST", f"/v1/posts/{post_id}/save"),
        ):
            response = await http.request(method, path, headers=headers)
            assert response.status_code == 404, (role, method, path, response.text)
            assert owner.user.username not in response.text  # nothing of the content leaks
        comment = await http.post(f"/v1/posts/{post_id}/comments", json={"text": "hi"}, headers=headers)
        assert comment.status_code == 404, (role, comment.text)
        saved = await _ok(await http.get("/v1/users/me/saved", headers=headers))
        assert saved["items"] == []
    private = await http.get(f"/v1/users/{owner.id}/posts", headers=world["stranger"].headers)
    assert private.status_code == 403 and _reason(private) == "ACCOUNT_PRIVATE"
    assert post_id not in private.text and "renditions" not in private.text
    hidden = await http.get(f"/v1/users/{owner.id}/posts", headers=world["blocked"].headers)
    assert hidden.status_code == 404


async def test_a_block_hides_each_one_s_likes_and_comments_from_the_other(
    http: httpx.AsyncClient, make_account, upload_photo, bus, database_url
):
    author, ann, bob = await make_account(), await make_account(), await make_account()
    media_id = str(await upload_photo(author))
    post = await _ok(await http.post("/v1/posts", json={"media_ids": [media_id]}, headers=author.headers), 201)
    for user in (ann, bob):
        await _ok(await http.post(f"/v1/posts/{post['id']}/like", headers=user.headers))
        text = {"text": f"from {user.user.username}"}
        await _ok(await http.post(f"/v1/posts/{post['id']}/comments", json=text, headers=user.headers), 201)
    await _ok(await http.post("/v1/blocks", json={"target_user_id": str(bob.id)}, headers=ann.headers))
    await drain(bus, database_url)

    for viewer, other in ((ann, bob), (bob, ann)):
        likers = await _ok(await http.get(f"/v1/posts/{post['id']}/likes", headers=viewer.headers))
        comments = await _ok(await http.get(f"/v1/posts/{post['id']}/comments", headers=viewer.headers))
        assert str(other.id) not in [u["id"] for u in likers["items"]]
        assert str(viewer.id) in [u["id"] for u in likers["items"]]
        assert other.user.username not in comments_text(comments)
    everyone = await _ok(await http.get(f"/v1/posts/{post['id']}/likes", headers=author.headers))
    assert {str(ann.id), str(bob.id)} <= {u["id"] for u in everyone["items"]}


def comments_text(page: dict[str, Any]) -> str:
    return " ".join(c["text"] for c in page["items"])
