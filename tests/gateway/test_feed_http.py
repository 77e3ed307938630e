"""GET /v1/feed through the real stack."""

from __future__ import annotations

import pytest

from tests.feed_svc.actions import create_post, drain, follow

pytestmark = pytest.mark.usefixtures("fanout")


async def test_the_feed_lists_followed_posts_with_string_ids_and_photos(
    http, stubs, make_account, upload_photo, bus, database_url
):
    author, reader = await make_account(), await make_account()
    await follow(stubs, reader, author)
    assert (await http.get("/v1/feed", headers=reader.headers)).json() == {"items": [], "next_page_token": ""}
    post_id = await create_post(stubs, upload_photo, author, caption="at the #beach")
    await drain(bus, database_url)
    response = await http.get("/v1/feed", params={"page_size": 5}, headers=reader.headers)
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    assert item["id"] == str(post_id)
    assert item["author"] == {
        "id": str(author.id),
        "username": author.user.username,
        "display_name": author.user.display_name,
        "avatar_url": None,
    }
    assert item["hashtags"] == ["beach"]
    assert item["media"][0]["status"] in ("PROCESSING", "READY", "FAILED")
    assert item["create_time"].endswith("Z")


async def test_the_feed_needs_a_token_and_a_valid_page_token(http, make_account):
    reader = await make_account()
    assert (await http.get("/v1/feed")).status_code == 401
    bad = await http.get("/v1/feed", params={"page_token": "garbage"}, headers=reader.headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_ARGUMENT"


async def test_an_unknown_query_parameter_is_named_in_a_400(http, make_account):
    reader = await make_account()
    response = await http.get("/v1/feed", params={"pagesize": 5}, headers=reader.headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "unknown query parameter 'pagesize' (this route takes: page_size, page_token)"
