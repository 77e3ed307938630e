"""Discovery through the live gateway: a hashtag's page under every spelling of the tag, its posts
newest first (rendered as in the feed, only what the caller may see), counts after creates, edits and
deletes, tags by prefix, and user search ranked and typo tolerant."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from gateway import resources
from tests.conftest import Account
from tests.gateway.test_accounts_http import error_of
from tests.gateway.test_resources import checked

pytestmark = pytest.mark.usefixtures("fanout")


def unique(stem: str) -> str:
    return f"{stem}{uuid.uuid4().hex[:8]}"


async def post(http: httpx.AsyncClient, upload_photo: Any, author: Account, caption: str) -> str:
    body = {"caption": caption, "media_ids": [str(await upload_photo(author))]}
    response = await http.post("/v1/posts", json=body, headers=author.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def tag(http: httpx.AsyncClient, name: str, viewer: Account) -> dict[str, Any]:
    return await checked(await http.get(f"/v1/tags/{quote(name)}", headers=viewer.headers), resources.Tag)


async def tag_post_ids(http: httpx.AsyncClient, name: str, viewer: Account, page_size: int = 2) -> list[str]:
    """Every post of the tag's page as `viewer` reads it, following the tokens; each page checked
    against the PostPage resource."""
    ids, token = [], ""
    while True:
        params = {"page_size": page_size, "page_token": token}
        response = await http.get(f"/v1/tags/{quote(name)}/posts", params=params, headers=viewer.headers)
        page = await checked(response, resources.PostPage)
        ids += [item["id"] for item in page["items"]]
        token = page["next_page_token"]
        if not token:
            return ids


async def test_every_spelling_of_a_tag_is_one_page(http, make_account, upload_photo):
    author, reader = await make_account(), await make_account()
    stem = unique("Café")  # letters, then hex digits: one tag
    decomposed = stem.replace("é", "e\u0301")  # e + combining acute
    first = await post(http, upload_photo, author, f"Morning at the #{stem}")
    second = await post(http, upload_photo, author, f"again #{decomposed.upper()}")
    name = stem.lower()
    for spelling in (stem, f"#{stem}", name, stem.upper(), decomposed, f"\uff03{name}"):
        assert await tag(http, spelling, reader) == {"name": name, "post_count": "2"}, spelling
        assert await tag_post_ids(http, spelling, reader) == [second, first], spelling
    # Rendered as the feed renders them: the author, the photos, the hashtags in their one spelling.
    page = (await http.get(f"/v1/tags/{quote(name)}/posts", headers=reader.headers)).json()
    assert [item["author"]["id"] for item in page["items"]] == [str(author.id)] * 2
    assert all(name in item["hashtags"] and item["media"] for item in page["items"])


@pytest.mark.parametrize("bad", ["not-a-tag", "two words", "café!", "#", "##café", "x" * 101])
async def test_what_is_not_a_tag_is_a_400_naming_it(http, make_account, bad):
    reader = await make_account()
    for path in (f"/v1/tags/{quote(bad)}", f"/v1/tags/{quote(bad)}/posts"):
        error = error_of(await http.get(path, headers=reader.headers), 400, "INVALID_ARGUMENT")
        fields = [v["field"] for d in error["details"] if d["type"] == "BadRequest" for v in d["field_violations"]]
        assert fields == ["tag"], (path, error)
        assert "must be a hashtag" in error["message"]


async def test_tag_routes_need_a_signed_in_caller(http):
    for path in ("/v1/tags/café", "/v1/tags/café/posts", "/v1/search/tags?q=caf"):
        error_of(await http.get(path), 401, "UNAUTHENTICATED")


async def test_a_tag_page_is_newest_first_and_its_count_follows_edits_and_deletes(http, make_account, upload_photo):
    author, reader = await make_account(), await make_account()
    name, other = unique("sunset"), unique("dawn")
    posts = [await post(http, upload_photo, author, f"#{name} number {n}") for n in range(3)]
    assert await tag_post_ids(http, name, reader, page_size=2) == posts[::-1]
    assert (await tag(http, name, reader))["post_count"] == "3"
    edited = await http.patch(f"/v1/posts/{posts[1]}", json={"caption": f"now #{other}"}, headers=author.headers)
    assert edited.status_code == 200, edited.text
    deleted = await http.delete(f"/v1/posts/{posts[0]}", headers=author.headers)
    assert deleted.status_code == 204, deleted.text
    assert await tag_post_ids(http, name, reader) == [posts[2]]
    assert [(await tag(http, t, reader))["post_count"] for t in (name, other)] == ["1", "1"]
    assert await tag_post_ids(http, other, reader) == [posts[1]]


async def test_private_and_blocked_authors_posts_are_not_on_a_stranger_s_tag_page(http, make_account, upload_photo):
    public, private, blocker, stranger, follower = [await make_account() for _ in range(5)]
    name = unique("hidden")
    assert (await http.patch("/v1/users/me", json={"is_private": True}, headers=private.headers)).status_code == 200
    await http.post("/v1/follow", json={"target_user_id": str(private.id)}, headers=follower.headers)
    approved = await http.post(f"/v1/follow-requests/{follower.id}/approve", headers=private.headers)
    assert approved.status_code == 200, approved.text
    blocked = await http.post("/v1/blocks", json={"target_user_id": str(stranger.id)}, headers=blocker.headers)
    assert blocked.status_code == 200, blocked.text
    by_public = await post(http, upload_photo, public, f"#{name}")
    by_private = await post(http, upload_photo, private, f"#{name}")
    by_blocker = await post(http, upload_photo, blocker, f"#{name}")
    assert await tag_post_ids(http, name, stranger) == [by_public]
    assert await tag_post_ids(http, name, follower) == [by_blocker, by_private, by_public]
    assert await tag_post_ids(http, name, private) == [by_blocker, by_private, by_public]
    page = await http.get(f"/v1/tags/{name}/posts", headers=stranger.headers)
    assert private.user.username not in page.text and blocker.user.username not in page.text
    # The count is of every live post, whoever may see it.
    assert (await tag(http, name, stranger))["post_count"] == "3"


async def test_tags_by_prefix_most_used_first(http, make_account, upload_photo):
    author = await make_account()
    stem = unique("Ünï")
    once, thrice, twice = f"{stem}a", f"{stem}b", f"{stem}c"
    await post(http, upload_photo, author, f"#{once} #{thrice} #{twice}")
    await post(http, upload_photo, author, f"#{thrice} #{twice}")
    await post(http, upload_photo, author, f"#{thrice}")
    expected = [{"name": t.lower(), "post_count": n} for t, n in ((thrice, "3"), (twice, "2"), (once, "1"))]
    response = await http.get("/v1/search/tags", params={"q": f"#{stem.upper()}"}, headers=author.headers)
    assert (await checked(response, resources.TagPage)) == {"items": expected, "next_page_token": ""}
    pages, token = [], ""
    while True:
        params = {"q": stem, "page_size": 1, "page_token": token}
        body = (await http.get("/v1/search/tags", params=params, headers=author.headers)).json()
        pages += body["items"]
        token = body["next_page_token"]
        if not token:
            break
    assert pages == expected
    error = error_of(await http.get("/v1/search/tags?q=a-b", headers=author.headers), 400, "INVALID_ARGUMENT")
    assert error["message"].startswith("q: ")  # the parameter the client sent (the RPC calls it query)


async def test_one_typo_ranks_above_two_when_display_names_tie(http, make_account):
    """A newcomer's report on the demo graph: every Reed98 user is "Reed N", so the display names'
    similarity tied every name within two typos of "reed0", and follower count put reed102 (two
    edits) above reed9 (one). One typo now ranks above two, whatever the followers."""
    me, fan = await make_account(), await make_account()
    stem = f"r{uuid.uuid4().hex[:7]}"
    ids = {}
    for suffix in ("0", "9", "102"):
        name = f"{stem}{suffix}"
        body = {"username": name, "email": f"{name}@example.com", "password": "a long enough passphrase"}
        created = await http.post("/v1/users", json=body)
        assert created.status_code == 201, created.text
        ids[suffix] = created.json()["id"]
        login = await http.post("/v1/sessions", json={"login": name, "password": body["password"]})
        token = {"Authorization": f"Bearer {login.json()['access_token']}"}
        named = await http.patch("/v1/users/me", json={"display_name": f"{stem} {suffix}"}, headers=token)
        assert named.status_code == 200, named.text
    followed = await http.post("/v1/follow", json={"target_user_id": ids["102"]}, headers=fan.headers)
    assert followed.status_code == 200, followed.text
    found = await http.get("/v1/search/users", params={"q": f"{stem}0"}, headers=me.headers)
    ranked = [user["username"] for user in found.json()["items"] if user["username"].startswith(stem)]
    assert ranked == [f"{stem}0", f"{stem}9", f"{stem}102"]  # exact, one edit, two edits


async def test_user_search_is_ranked_and_typo_tolerant(http, make_account):
    me = await make_account()
    stem = f"w{uuid.uuid4().hex[:7]}"
    names = [f"{stem}grace", f"{stem}grace_h", f"{stem}grcae"]
    for name in names:
        body = {"username": name, "email": f"{name}@example.com", "password": "a long enough passphrase"}
        assert (await http.post("/v1/users", json=body)).status_code == 201
    found = await checked(
        await http.get("/v1/search/users", params={"q": names[0]}, headers=me.headers), resources.UserPage
    )
    assert [user["username"] for user in found["items"]][:3] == names  # exact, prefix, two edits
    for typo in (f"{stem}grcae", f"{stem}graec", f"{stem}gracee"):
        response = await http.get("/v1/search/users", params={"q": typo}, headers=me.headers)
        assert names[0] in [user["username"] for user in response.json()["items"]], typo
    error_of(await http.get("/v1/search/users", params={"q": "  "}, headers=me.headers), 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize(
    ("path", "q"),
    [("/v1/search/tags", " "), ("/v1/search/tags", "a-b"), ("/v1/search/users", "   "), ("/v1/search/users", "@")],
)
async def test_a_query_the_service_refuses_names_q_not_the_rpc_field(http, make_account, path, q):
    """The services call the parameter `query`; the client sent `q` (a newcomer's report:
    `/v1/search/tags?q=%20` named `query`)."""
    me = await make_account()
    error = error_of(await http.get(path, params={"q": q}, headers=me.headers), 400, "INVALID_ARGUMENT")
    fields = [v["field"] for d in error["details"] if d["type"] == "BadRequest" for v in d["field_violations"]]
    assert fields == ["q"], error
    assert error["message"].startswith("q: "), error
