"""GET /v1/feed through the real stack."""

from __future__ import annotations

import pytest

from feed_svc.frozen_pages import FrozenCursor
from mesh.pagination import encode_cursor
from tests.feed_svc.actions import create_post, drain, drain_signals, follow, like

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
    assert error["message"] == "unknown query parameter 'pagesize' (this route takes: order, page_size, page_token)"


async def test_the_ranked_feed_pages_through_every_post_once(
    http, stubs, make_account, upload_photo, bus, database_url
):
    author, reader, fan = await make_account(), await make_account(), await make_account()
    await follow(stubs, reader, author)
    assert (await http.get("/v1/feed", params={"order": "ranked"}, headers=reader.headers)).json() == {
        "items": [],
        "next_page_token": "",
    }
    posts = [await create_post(stubs, upload_photo, author) for _ in range(3)]
    await drain(bus, database_url)
    await like(stubs, fan, posts[0])
    await drain_signals(bus, database_url)
    seen: list[str] = []
    params = {"order": "ranked", "page_size": 2}
    while True:
        response = await http.get("/v1/feed", params=params, headers=reader.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        if not body["next_page_token"]:
            break
        params["page_token"] = body["next_page_token"]
    # The liked post first (one like is worth hours of recency), then the other two newest first.
    assert seen == [str(posts[0]), str(posts[2]), str(posts[1])]


async def test_the_ranked_feed_refuses_a_bad_order_and_expired_or_foreign_tokens(http, make_account):
    reader = await make_account()
    assert (await http.get("/v1/feed", params={"order": "ranked"})).status_code == 401
    bad = await http.get("/v1/feed", params={"order": "popular"}, headers=reader.headers)
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"]["message"].startswith("order:")
    chronological = encode_cursor(FrozenCursor(snapshot=5, offset=2), f"feed:{reader.id}")
    foreign = await http.get(
        "/v1/feed", params={"order": "ranked", "page_token": chronological}, headers=reader.headers
    )
    assert foreign.status_code == 400 and foreign.json()["error"]["code"] == "INVALID_ARGUMENT"
    gone = encode_cursor(FrozenCursor(snapshot=5, offset=2), f"feed:{reader.id}:ranked")
    expired = await http.get("/v1/feed", params={"order": "ranked", "page_token": gone}, headers=reader.headers)
    assert expired.status_code == 400, expired.text
    error = expired.json()["error"]
    assert error["code"] == "FAILED_PRECONDITION" and error["message"].startswith("page_token:")
    assert [d["reason"] for d in error["details"] if d["type"] == "ErrorInfo"] == ["PAGE_TOKEN_EXPIRED"]


async def test_the_openapi_states_the_ranking_formula(http):
    operation = (await http.get("/openapi.json")).json()["paths"]["/v1/feed"]["get"]
    assert "2^(-age_hours / 6)" in operation["description"]
    [order] = [p for p in operation["parameters"] if p["name"] == "order"]
    assert order["schema"]["enum"] == ["chronological", "ranked"]
