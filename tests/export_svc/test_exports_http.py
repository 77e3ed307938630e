"""Exports through the live gateway: a user who did a bit of everything asks for an export, waits for
READY, downloads the zip from its signed URL and finds every JSON file right and every photo's bytes
exactly as uploaded; the request is idempotent; another user's export is a 404; bad ids are 400s."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
import zipfile
from typing import Any

import httpx

from gateway.routes.exports import Export
from tests.conftest import Account
from tests.export_svc.conftest import Activity, MakeActivity


async def checked(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    Export.model_validate(body, strict=True)
    return body


async def ready(http: httpx.AsyncClient, account: Account, export_id: str, within: float = 60.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        body = await checked(await http.get(f"/v1/users/me/exports/{export_id}", headers=account.headers))
        if body["state"] not in ("PENDING", "RUNNING"):
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)


def ids(items: list[dict[str, Any]], key: str) -> list[str]:
    return [item[key] for item in items]


async def test_export_holds_every_file_and_the_original_photos(http, busy_user: MakeActivity):
    done: Activity = await busy_user()
    ada = done.user
    created = await checked(await http.post("/v1/users/me/exports", headers=ada.headers), 202)
    assert created["state"] in ("PENDING", "RUNNING") and created["download_url"] is None
    body = await ready(http, ada, created["export_id"])
    assert body["state"] == "READY", body
    assert body["failure_reason"] is None and body["attempts"] == 1

    async with httpx.AsyncClient(timeout=30) as store:
        download = await store.get(body["download_url"])
    assert download.status_code == 200
    assert len(download.content) == body["size_bytes"]
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert archive.testzip() is None

    def read(name: str) -> Any:
        return json.loads(archive.read(name))

    assert "posts.json" in archive.read("README.txt").decode()
    profile = read("profile.json")
    assert profile["user_id"] == str(ada.id) and profile["username"] == ada.user.username
    assert profile["export_id"] == created["export_id"] and profile["follower_count"] == 1
    assert profile["avatar_url"] is None  # no picture set

    posts = read("posts.json")
    assert ids(posts, "post_id") == [str(p) for p in reversed(done.posts)]
    assert posts[1]["caption"] == "post 0 #glimpse" and posts[1]["hashtags"] == ["glimpse"]
    assert posts[1]["location"]["name"] == "Reed College" and posts[0]["location"] is None
    stories = read("stories.json")
    assert ids(stories, "story_id") == [str(s) for s in done.stories] and stories[0]["expire_time"]
    files = {photo["media_id"]: photo["file"] for post in posts for photo in post["photos"]}
    files[stories[0]["photo"]["media_id"]] = stories[0]["photo"]["file"]
    assert set(files) == {str(m) for m in done.photos}
    for media_id, digest in done.photos.items():
        assert hashlib.sha256(archive.read(files[str(media_id)])).hexdigest() == digest
    assert sorted(n for n in archive.namelist() if n.startswith("media/")) == sorted(files.values())
    assert {f.rsplit(".", 1)[1] for f in files.values()} == {"jpg", "png"}

    comments = read("comments.json")
    assert ids(comments, "comment_id") == [str(c) for c in done.comments]
    assert comments[1]["parent_comment_id"] == str(done.comments[0]) and comments[0]["text"] == "Lovely, @nobody!"
    assert ids(read("likes.json"), "post_id") == [str(p) for p in done.liked]
    assert ids(read("saves.json"), "post_id") == [str(p) for p in done.saved]
    assert done.follower and done.followee and done.blocked and done.muted
    assert ids(read("followers.json"), "user_id") == [str(done.follower.id)]
    assert ids(read("following.json"), "user_id") == [str(done.followee.id)]
    assert ids(read("blocks.json"), "username") == [done.blocked.user.username]
    assert ids(read("mutes.json"), "username") == [done.muted.user.username]
    assert all(item["follow_time"] for item in read("followers.json"))


async def test_requests_are_idempotent_and_exports_private(http, make_account):
    ada, bob = await make_account(), await make_account()
    key = {"Idempotency-Key": f"export-{uuid.uuid4()}"}
    first = await checked(await http.post("/v1/users/me/exports", headers={**ada.headers, **key}), 202)
    # While it is in progress, any request returns it; once it is done, the same key still does.
    again = await checked(await http.post("/v1/users/me/exports", headers=ada.headers), 202)
    done = await ready(http, ada, first["export_id"])
    repeat = await checked(await http.post("/v1/users/me/exports", headers={**ada.headers, **key}), 202)
    assert done["state"] == "READY"
    if again["export_id"] != first["export_id"]:  # only if the build finished before the second request
        assert (await ready(http, ada, again["export_id"]))["state"] == "READY"
    assert repeat["export_id"] == first["export_id"] and repeat["state"] == "READY"

    theirs = await http.get(f"/v1/users/me/exports/{first['export_id']}", headers=bob.headers)
    assert theirs.status_code == 404
    assert theirs.json()["error"]["details"][0]["reason"] == "EXPORT_NOT_FOUND"
    unknown = await http.get("/v1/users/me/exports/123456789", headers=ada.headers)
    assert unknown.status_code == 404
    malformed = await http.get("/v1/users/me/exports/not-an-id", headers=ada.headers)
    assert malformed.status_code == 400 and "export_id" in malformed.text
    anonymous = await http.post("/v1/users/me/exports")
    assert anonymous.status_code == 401
