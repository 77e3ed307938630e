"""GET /v1/explore through the real stack."""

from __future__ import annotations

import pytest

from feed_svc.frozen_pages import FrozenCursor
from mesh.pagination import encode_cursor
from tests.feed_svc.actions import create_post, drain_signals, like

pytestmark = pytest.mark.usefixtures("fanout")


async def test_explore_serves_trending_posts_as_feed_items_page_by_page(
    http, stubs, make_account, upload_photo, bus, database_url
):
    author, viewer = await make_account(), await make_account()
    fans = [await make_account() for _ in range(6)]
    hot, warm = await create_post(stubs, upload_photo, author), await create_post(stubs, upload_photo, author)
    for fan in fans:
        await like(stubs, fan, hot)
    for fan in fans[:5]:
        await like(stubs, fan, warm)
    await drain_signals(bus, database_url)
    ids: list[str] = []
    items = {}
    params: dict[str, str | int] = {"page_size": 1}
    while True:
        response = await http.get("/v1/explore", params=params, headers=viewer.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 1
        ids += [item["id"] for item in body["items"]]
        items.update({item["id"]: item for item in body["items"]})
        if not body["next_page_token"]:
            break
        params["page_token"] = body["next_page_token"]
    assert len(ids) == len(set(ids))
    assert [i for i in ids if i in (str(hot), str(warm))] == [str(hot), str(warm)]
    item = items[str(hot)]
    assert item["author"]["id"] == str(author.id)
    assert item["engagement"]["like_count"] == "6" and item["engagement"]["viewer_has_liked"] is False


async def test_explore_needs_a_token_and_refuses_bad_paging(http, make_account):
    viewer = await make_account()
    assert (await http.get("/v1/explore")).status_code == 401
    for params in ({"page_token": "garbage"}, {"page_size": -1}, {"pagesize": 3}):
        bad = await http.get("/v1/explore", params=params, headers=viewer.headers)
        assert bad.status_code == 400, (params, bad.text)
    other = encode_cursor(FrozenCursor(snapshot=9, offset=1), "explore:1")
    foreign = await http.get("/v1/explore", params={"page_token": other}, headers=viewer.headers)
    assert foreign.status_code == 400 and "page_token" in foreign.json()["error"]["message"]
    gone = encode_cursor(FrozenCursor(snapshot=9, offset=1), f"explore:{viewer.id}")
    expired = await http.get("/v1/explore", params={"page_token": gone}, headers=viewer.headers)
    assert expired.status_code == 400
    assert [d["reason"] for d in expired.json()["error"]["details"] if d["type"] == "ErrorInfo"] == [
        "PAGE_TOKEN_EXPIRED"
    ]
