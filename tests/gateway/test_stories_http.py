"""Stories through the live gateway: the JSON of each route (checked strictly against its resource),
the Idempotency-Key, the tray's order, views and the author's viewers, delete, expiry, and errors in
the gateway's shape (400 naming the field, 403, 404)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.resources import Story, StoryList, StoryTray, StoryViewerPage, ViewResult
from glimpse.graph.v1 import graph_pb2
from tests.conftest import Account
from tests.gateway.test_app import assert_error, reasons


async def checked(response: httpx.Response, model: type[BaseModel], status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    model.model_validate(body, strict=True)
    return body


async def share(http: httpx.AsyncClient, author: Account, upload_photo, key: str = "") -> dict[str, Any]:
    body = {"media_id": str(await upload_photo(author))}
    headers = {**author.headers, **({"Idempotency-Key": key} if key else {})}
    return await checked(await http.post("/v1/stories", json=body, headers=headers), Story, 201)


async def test_share_view_list_and_delete_a_story(http, make_account, upload_photo, stubs, media_worker):
    author, reader = await make_account(), await make_account()
    await stubs.graph.FollowUser(_follow(author), metadata=reader.metadata)
    key = f"story-{uuid.uuid4()}"
    media_id = str(await upload_photo(author))
    headers = {**author.headers, "Idempotency-Key": key}
    first = await checked(await http.post("/v1/stories", json={"media_id": media_id}, headers=headers), Story, 201)
    again = await checked(await http.post("/v1/stories", json={"media_id": media_id}, headers=headers), Story, 201)
    assert first["id"] == again["id"]
    assert first["author"]["username"] == author.user.username
    assert first["media"]["id"] == media_id and first["viewed"] is True

    listed = await checked(await http.get(f"/v1/users/{author.id}/stories", headers=reader.headers), StoryList)
    assert [(s["id"], s["viewed"]) for s in listed["items"]] == [(first["id"], False)]
    tray = await checked(await http.get("/v1/stories/tray", headers=reader.headers), StoryTray)
    assert [(e["author"]["id"], e["story_count"], e["has_unseen"]) for e in tray["items"]] == [
        (str(author.id), 1, True)
    ]

    for _ in range(2):
        viewed = await http.post(f"/v1/stories/{first['id']}/view", headers=reader.headers)
        assert await checked(viewed, ViewResult) == {"story_id": first["id"], "viewed": True}
    viewers = await checked(
        await http.get(f"/v1/stories/{first['id']}/viewers", headers=author.headers), StoryViewerPage
    )
    assert viewers["view_count"] == "1"
    assert [v["user"]["username"] for v in viewers["items"]] == [reader.user.username]
    error = assert_error(
        await http.get(f"/v1/stories/{first['id']}/viewers", headers=reader.headers), 403, "PERMISSION_DENIED"
    )
    assert reasons(error) == ["NOT_STORY_AUTHOR"]
    tray = await checked(await http.get("/v1/stories/tray", headers=reader.headers), StoryTray)
    assert [e["has_unseen"] for e in tray["items"]] == [False]

    error = assert_error(
        await http.delete(f"/v1/stories/{first['id']}", headers=reader.headers), 403, "PERMISSION_DENIED"
    )
    assert reasons(error) == ["NOT_STORY_AUTHOR"]
    for _ in range(2):
        assert (await http.delete(f"/v1/stories/{first['id']}", headers=author.headers)).status_code == 204
    error = assert_error(await http.post(f"/v1/stories/{first['id']}/view", headers=reader.headers), 404, "NOT_FOUND")
    assert reasons(error) == ["STORY_NOT_FOUND"]
    assert (await checked(await http.get("/v1/stories/tray", headers=reader.headers), StoryTray))["items"] == []


async def test_bad_input_is_a_400_naming_the_field(http, make_account, upload_photo):
    author, other = await make_account(), await make_account()
    for body in ({}, {"media_id": "abc"}, {"media_id": "-3"}):
        error = assert_error(await http.post("/v1/stories", json=body, headers=author.headers), 400, "INVALID_ARGUMENT")
        assert "media_id" in str(error["details"])
    error = assert_error(await http.post("/v1/stories/x/view", headers=author.headers), 400, "INVALID_ARGUMENT")
    assert "story_id" in str(error["details"])
    theirs = str(await upload_photo(other))
    error = assert_error(
        await http.post("/v1/stories", json={"media_id": theirs}, headers=author.headers), 403, "PERMISSION_DENIED"
    )
    assert reasons(error) == ["NOT_MEDIA_OWNER"]
    story = await share(http, author, upload_photo, key="reused")
    error = assert_error(
        await http.post(
            "/v1/stories",
            json={"media_id": str(await upload_photo(author))},
            headers={**author.headers, "Idempotency-Key": "reused"},
        ),
        400,
        "FAILED_PRECONDITION",
    )
    assert reasons(error) == ["IDEMPOTENCY_KEY_REUSED"]
    error = assert_error(
        await http.get(f"/v1/stories/{story['id']}/viewers?page_token=forged", headers=author.headers),
        400,
        "INVALID_ARGUMENT",
    )
    assert (await http.get("/v1/stories/tray")).status_code == 401


async def test_an_expired_story_is_gone_from_every_route(http, make_account, upload_photo, database_url):
    author = await make_account()
    story = await share(http, author, upload_photo)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE stories.stories SET created_at = now() - interval '25 hours', "
                    "expire_at = now() - interval '1 hour' WHERE id = :id"
                ),
                {"id": int(story["id"])},
            )
    finally:
        await engine.dispose()
    listed = await checked(await http.get(f"/v1/users/{author.id}/stories", headers=author.headers), StoryList)
    assert listed["items"] == []
    assert (await checked(await http.get("/v1/stories/tray", headers=author.headers), StoryTray))["items"] == []
    error = assert_error(await http.get(f"/v1/stories/{story['id']}/viewers", headers=author.headers), 404, "NOT_FOUND")
    assert reasons(error) == ["STORY_NOT_FOUND"]


def _follow(user: Account) -> graph_pb2.FollowUserRequest:
    return graph_pb2.FollowUserRequest(target_user_id=user.id)
