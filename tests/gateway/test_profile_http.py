"""The caller's account over HTTP: GET/PATCH /v1/users/me (each bad field a 400 naming it, nothing
changed; only the fields sent change) and the profile picture (an upload with purpose avatar, PUT and
DELETE /v1/users/me/avatar), whose URL every user summary carries: the feed's authors, likers,
comment authors, notification actors, story authors (and the tray) and search results."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from PIL import Image

from gateway import resources
from gateway.app import create_app
from gateway.routes.profile import AvatarChange, AvatarRemoval
from tests.conftest import Account
from tests.gateway.test_app import settings
from tests.gateway.test_engagement_http import checked, field_violations
from tests.gateway.test_notifications_http import inbox_when

pytestmark = pytest.mark.usefixtures("fanout", "media_worker")

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "photos"


def test_every_profile_route_is_covered_here():
    """A new route of the router fails this until this file tests it."""
    found = {
        (method, route.path)
        for route in iter_route_contexts(create_app(settings()).routes)
        if isinstance(route.original_route, APIRoute) and "profile" in route.original_route.tags
        for method in route.methods or ()
    }
    assert found == {
        ("GET", "/v1/users/me"),
        ("PATCH", "/v1/users/me"),
        ("PUT", "/v1/users/me/avatar"),
        ("DELETE", "/v1/users/me/avatar"),
    }


async def me(http: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    return await checked(await http.get("/v1/users/me", headers=account.headers), resources.User)


async def test_patch_changes_only_the_fields_sent(http, make_account):
    account = await make_account()
    fresh = await me(http, account)
    assert (fresh["id"], fresh["website"], fresh["avatar_url"], fresh["avatar_large_url"]) == (
        str(account.id),
        "",
        None,
        None,
    )

    body = {"display_name": "Ada Lovelace", "bio": "Analyst.\nPoet.", "website": "Ada.Example/notes"}
    changed = await checked(await http.patch("/v1/users/me", json=body, headers=account.headers), resources.User)
    assert (changed["display_name"], changed["bio"], changed["website"]) == (
        "Ada Lovelace",
        "Analyst.\nPoet.",
        "https://ada.example/notes",
    )
    only_bio = await checked(
        await http.patch("/v1/users/me", json={"bio": ""}, headers=account.headers), resources.User
    )
    assert (only_bio["display_name"], only_bio["bio"], only_bio["website"]) == ("Ada Lovelace", "", changed["website"])
    assert await me(http, account) == only_bio
    # Anyone reading the profile sees the same fields.
    public = await checked(await http.get(f"/v1/users/{account.user.username}"), resources.User)
    assert public["display_name"] == "Ada Lovelace" and public["website"] == changed["website"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": None}, "display_name"),
        ({"display_name": "x" * 65}, "display_name"),
        ({"display_name": "line\nbreak"}, "display_name"),
        ({"display_name": 7}, "display_name"),
        ({"bio": "b" * 151}, "bio"),
        ({"bio": "nul\u0000"}, "bio"),
        ({"website": "javascript:alert(1)"}, "website"),
        ({"website": "https://user:pw@example.com"}, "website"),
        ({"website": "not a url"}, "website"),
        ({"username": "renamed"}, "username"),
        ({"is_private": "yes"}, "is_private"),
    ],
)
async def test_a_bad_field_is_a_400_naming_it_and_nothing_changes(http, make_account, body, field):
    account = await make_account()
    before = await checked(
        await http.patch("/v1/users/me", json={"display_name": "Before", "bio": "Old"}, headers=account.headers),
        resources.User,
    )
    # With a good value of another field in the same request: all or none.
    response = await http.patch("/v1/users/me", json={"is_private": True, **body}, headers=account.headers)
    assert field in field_violations(response), response.text
    assert await me(http, account) == before


async def test_an_empty_patch_names_what_can_be_sent(http, make_account):
    account = await make_account()
    violations = field_violations(await http.patch("/v1/users/me", json={}, headers=account.headers))
    assert set(violations) == {"display_name", "bio", "website", "is_private"}


async def upload_avatar(http: httpx.AsyncClient, account: Account, data: bytes, purpose: str = "avatar") -> str:
    body = {"content_type": "image/jpeg", "size_bytes": len(data), "purpose": purpose}
    grant = await checked(
        await http.post("/v1/media/upload-url", json=body, headers=account.headers), resources.UploadGrant, 201
    )
    async with httpx.AsyncClient(timeout=30) as store:
        sent = await store.post(grant["url"], data=grant["form_fields"], files={"file": ("a.jpg", data, "image/jpeg")})
    assert sent.status_code in (200, 201, 204), sent.text
    return str(grant["media_id"])


async def avatar_changed(http: httpx.AsyncClient, account: Account, old: str | None, within: float = 30) -> str | None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        url = (await me(http, account))["avatar_url"]
        if url != old:
            return url
        assert asyncio.get_running_loop().time() < deadline, f"avatar still {old!r}"
        await asyncio.sleep(0.1)


async def test_an_avatar_is_set_shown_in_every_summary_replaced_and_removed(http, make_account, upload_photo):
    ada, reader = await make_account(), await make_account()
    photo = (DATASET / "hubble_deep_field.jpg").read_bytes()
    media_id = await upload_avatar(http, ada, photo)
    answer = await checked(
        await http.put("/v1/users/me/avatar", json={"media_id": media_id}, headers=ada.headers), AvatarChange, 202
    )
    assert answer["applied"] is False and answer["user"]["avatar_url"] is None

    url = await avatar_changed(http, ada, None)
    assert url is not None and media_id in url
    async with httpx.AsyncClient(timeout=30) as anyone:
        small = await anyone.get(url)
        large = await anyone.get((await me(http, ada))["avatar_large_url"])
    assert small.status_code == 200 and large.status_code == 200
    for response, side in ((small, 150), (large, 320)):
        picture = Image.open(io.BytesIO(response.content))
        assert (picture.format, picture.size) == ("WEBP", (side, side))
        assert dict(picture.getexif()) == {}

    # Every summary of ada carries it: her post in the feed, the likers, a comment's author, search.
    post = await http.post(
        "/v1/posts", json={"media_ids": [str(await upload_photo(ada))], "caption": "hi"}, headers=ada.headers
    )
    assert post.status_code == 201, post.text
    post_id = post.json()["id"]
    assert post.json()["author"]["avatar_url"] == url
    feed = await checked(await http.get("/v1/feed", headers=ada.headers), resources.FeedPage)
    assert [item["author"]["avatar_url"] for item in feed["items"] if item["id"] == post_id] == [url]
    assert (await http.post(f"/v1/posts/{post_id}/like", headers=ada.headers)).status_code == 200
    likers = (await http.get(f"/v1/posts/{post_id}/likes", headers=reader.headers)).json()
    assert [u["avatar_url"] for u in likers["items"]] == [url]
    comment = await http.post(f"/v1/posts/{post_id}/comments", json={"text": "mine"}, headers=ada.headers)
    assert comment.status_code == 201, comment.text
    comments = (await http.get(f"/v1/posts/{post_id}/comments", headers=reader.headers)).json()
    assert [c["author"]["avatar_url"] for c in comments["items"]] == [url]
    found = (await http.get("/v1/search/users", params={"q": ada.user.username}, headers=reader.headers)).json()
    assert found["items"][0]["avatar_url"] == url
    # ... a notification's actor (ada likes reader's post) and a story tray's author (reader follows ada).
    reader_post = await http.post(
        "/v1/posts", json={"media_ids": [str(await upload_photo(reader))]}, headers=reader.headers
    )
    assert reader_post.status_code == 201, reader_post.text
    await http.post(f"/v1/posts/{reader_post.json()['id']}/like", headers=ada.headers)
    assert (await inbox_when(http, reader, 1))["items"][0]["actors"][0]["avatar_url"] == url
    story_photo = str(await upload_photo(ada))
    story = await http.post(
        "/v1/stories", json={"media_id": story_photo}, headers={**ada.headers, "Idempotency-Key": story_photo}
    )
    assert story.status_code == 201, story.text
    assert story.json()["author"]["avatar_url"] == url
    followed = await http.post("/v1/follow", json={"target_user_id": str(ada.id)}, headers=reader.headers)
    assert followed.status_code == 200, followed.text
    tray = (await http.get("/v1/stories/tray", headers=reader.headers)).json()
    assert [e["author"]["avatar_url"] for e in tray["items"] if e["author"]["id"] == str(ada.id)] == [url]
    # A user without a picture says null, not "".
    assert (await me(http, reader))["avatar_url"] is None

    replacement = await upload_avatar(http, ada, (DATASET / "rocket.jpg").read_bytes())
    await http.put("/v1/users/me/avatar", json={"media_id": replacement}, headers=ada.headers)
    new_url = await avatar_changed(http, ada, url)
    assert new_url is not None and new_url != url and replacement in new_url

    removed = await checked(await http.delete("/v1/users/me/avatar", headers=ada.headers), AvatarRemoval)
    assert removed["deleted"] is True and removed["user"]["avatar_url"] is None
    assert (await me(http, ada))["avatar_url"] is None
    again = await checked(await http.delete("/v1/users/me/avatar", headers=ada.headers), AvatarRemoval)
    assert again["deleted"] is False


async def test_an_avatar_must_be_the_callers_upload_for_an_avatar(http, make_account, upload_photo):
    ada, bob = await make_account(), await make_account()
    photo = str(await upload_photo(ada))
    wrong = await http.put("/v1/users/me/avatar", json={"media_id": photo}, headers=ada.headers)
    assert wrong.status_code == 400 and wrong.json()["error"]["details"][0]["reason"] == "WRONG_PURPOSE", wrong.text
    bobs = await upload_avatar(http, bob, (DATASET / "rocket.jpg").read_bytes())
    theirs = await http.put("/v1/users/me/avatar", json={"media_id": bobs}, headers=ada.headers)
    assert theirs.status_code == 403, theirs.text
    missing = await http.put("/v1/users/me/avatar", json={}, headers=ada.headers)
    assert "media_id" in field_violations(missing)
    grant = await http.post(
        "/v1/media/upload-url",
        json={"content_type": "image/jpeg", "size_bytes": 10, "purpose": "banner"},
        headers=ada.headers,
    )
    assert "purpose" in field_violations(grant)
    assert (await me(http, ada))["avatar_url"] is None
