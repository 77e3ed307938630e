"""Notifications through the live gateway: the inbox rendered (actors, the post's 150 px rendition,
the comment), checked strictly against its resources; the read marker and unread count; settings;
and the Server-Sent Event stream: a like acknowledged to its client reaches the author's open stream
within a second, a reconnection with Last-Event-ID misses nothing, and one gateway process serves
every stream with one NATS watch."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from gateway.app import create_app
from gateway.auth import SESSION_RECHECK_SECONDS
from gateway.resources import Notification, NotificationPage, NotificationSettings, ReadResult, UnreadCount
from gateway.settings import GatewaySettings
from tests.conftest import Account
from tests.gateway.test_app import assert_error, short_lived_access

STREAM = "/v1/notifications/stream"


async def checked(response: httpx.Response, model: type[BaseModel], status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    model.model_validate(body, strict=True)
    return body


async def post_by(http: httpx.AsyncClient, author: Account, upload_photo) -> str:
    body = {"caption": "notify me", "media_ids": [str(await upload_photo(author))]}
    created = await http.post("/v1/posts", json=body, headers=author.headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def inbox_when(http: httpx.AsyncClient, user: Account, count: int, within: float = 15.0) -> dict[str, Any]:
    """The user's first page once it holds `count` notifications (events travel asynchronously)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        page = await checked(await http.get("/v1/notifications", headers=user.headers), NotificationPage)
        if len(page["items"]) >= count:
            return page
        assert asyncio.get_running_loop().time() < deadline, page
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Event:
    id: str
    event: str
    data: dict[str, Any]


class EventStream:
    """An open `text/event-stream` response, read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, within: float = 5.0) -> Event:
        return await asyncio.wait_for(self._next(), within)

    async def _next(self) -> Event:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if not line:
                if "data" in fields:
                    return Event(fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"]))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")


@contextlib.asynccontextmanager
async def open_stream(http: httpx.AsyncClient, user: Account, last_event_id: str = "") -> AsyncIterator[EventStream]:
    headers = {**user.headers, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    async with http.stream("GET", STREAM, headers=headers, timeout=httpx.Timeout(10, read=30)) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


async def test_the_inbox_renders_people_posts_and_comments(http, make_account, upload_photo):
    author, ada, bob = await make_account(), await make_account(), await make_account()
    post_id = await post_by(http, author, upload_photo)
    for fan in (ada, bob):
        assert (await http.post(f"/v1/posts/{post_id}/like", headers=fan.headers)).status_code == 200
    text = "Lovely light! " * 10
    comment = await http.post(f"/v1/posts/{post_id}/comments", json={"text": text}, headers=ada.headers)
    assert comment.status_code == 201, comment.text
    page = await inbox_when(http, author, 2)
    assert page["unread_count"] == "2" and page["next_page_token"] == ""
    said, liked = page["items"]
    assert (said["type"], said["actor_count"], said["comment"]) == (
        "comment",
        "1",
        {"id": comment.json()["id"], "text": text.strip()[:100]},
    )
    assert (liked["type"], liked["actor_count"], liked["comment"]) == ("like", "2", None)
    assert [a["username"] for a in liked["actors"]] == [bob.user.username, ada.user.username]
    assert liked["post"]["id"] == post_id and said["post"]["id"] == post_id
    thumbnail = liked["post"]["thumbnail_url"]
    # Rendition URLs are signed: the path names the size, the query carries the signature.
    assert thumbnail is None or urlsplit(thumbnail).path.endswith("/150.webp")
    assert all(item["unread"] for item in page["items"])
    # Read up to the newest: nothing unread; the one-item pages carry tokens.
    read = await http.post("/v1/notifications/read", json={"up_to_id": said["id"]}, headers=author.headers)
    assert (await checked(read, ReadResult)) == {"unread_count": "0"}
    count = await checked(await http.get("/v1/notifications/unread-count", headers=author.headers), UnreadCount)
    assert count["unread_count"] == "0" and int(count["last_sequence"]) >= 3
    first = await checked(await http.get("/v1/notifications?page_size=1", headers=author.headers), NotificationPage)
    assert first["items"] == [{**said, "unread": False}] and first["next_page_token"]


async def test_settings_switch_types_off_and_bad_bodies_are_400(http, make_account, upload_photo):
    me, fan = await make_account(), await make_account()
    path = "/v1/users/me/notification-settings"
    settings = await checked(await http.get(path, headers=me.headers), NotificationSettings)
    assert set(settings.values()) == {True}
    changed = await checked(await http.patch(path, json={"like": False}, headers=me.headers), NotificationSettings)
    assert [name for name, on in changed.items() if not on] == ["like"]
    for body, field in (({}, "body"), ({"likes": False}, "likes"), ({"like": "no"}, "like"), ({"like": None}, "like")):
        error = assert_error(await http.patch(path, json=body, headers=me.headers), 400, "INVALID_ARGUMENT")
        fields = [v["field"] for d in error["details"] if d["type"] == "BadRequest" for v in d["field_violations"]]
        assert field in fields, (body, error)
    post_id = await post_by(http, me, upload_photo)
    await http.post(f"/v1/posts/{post_id}/like", headers=fan.headers)
    await http.post(f"/v1/posts/{post_id}/comments", json={"text": "hi"}, headers=fan.headers)
    page = await inbox_when(http, me, 1)
    await asyncio.sleep(0.3)  # the like went first on the same stream; give it time to show if it would
    page = await checked(await http.get("/v1/notifications", headers=me.headers), NotificationPage)
    assert [item["type"] for item in page["items"]] == ["comment"]
    assert_error(await http.get(path), 401, "UNAUTHENTICATED")


async def test_marking_read_needs_an_id(http, make_account):
    me = await make_account()
    for body in ({}, {"up_to_id": "0"}, {"up_to_id": "abc"}, {"up_to_id": 1.5}, {"up_to_id": "1", "extra": 1}):
        response = await http.post("/v1/notifications/read", json=body, headers=me.headers)
        assert_error(response, 400, "INVALID_ARGUMENT")


async def test_a_like_reaches_the_open_stream_within_a_second_and_a_reconnection_misses_nothing(
    http, make_account, upload_photo
):
    author = await make_account()
    fans = [await make_account() for _ in range(4)]
    post_id = await post_by(http, author, upload_photo)
    other_post = await post_by(http, author, upload_photo)
    async with open_stream(http, author) as stream:
        ready = await stream.next()
        assert (ready.event, ready.data) == ("ready", {"unread_count": "0", "last_sequence": ready.id})
        for n, fan in enumerate(fans[:2], start=1):
            liked = await http.post(f"/v1/posts/{post_id}/like", headers=fan.headers)
            acknowledged = time.monotonic()
            assert liked.status_code == 200
            event = await stream.next()
            took = time.monotonic() - acknowledged
            assert took < 1.0, f"the like reached the stream after {took:.3f}s"
            Notification.model_validate(event.data["notification"], strict=True)
            assert event.event == "notification" and event.data["notification"]["actor_count"] == str(n)
            assert event.data["notification"]["actors"][0]["id"] == str(fan.id)
        last = event
    # Disconnected: a new like on the same post, a new group, and that group undone (a removal).
    await http.post(f"/v1/posts/{post_id}/like", headers=fans[2].headers)
    await http.post(f"/v1/posts/{other_post}/like", headers=fans[3].headers)
    await http.delete(f"/v1/posts/{other_post}/like", headers=fans[3].headers)
    target = int(last.id) + 3
    deadline = time.monotonic() + 15
    while (
        int((await http.get("/v1/notifications/unread-count", headers=author.headers)).json()["last_sequence"]) < target
    ):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    async with open_stream(http, author, last_event_id=last.id) as stream:
        grown, removed = await stream.next(), await stream.next()
        assert (grown.event, grown.id) == ("notification", str(target - 2))
        assert grown.data["notification"]["group_key"] == last.data["notification"]["group_key"]
        assert grown.data["notification"]["actor_count"] == "3"
        assert (removed.event, removed.id, set(removed.data)) == (
            "notification_removed",
            str(target),
            {"group_key", "unread_count"},
        )
        # Then live again.
        await http.post(f"/v1/posts/{other_post}/like", headers=fans[0].headers)
        live = await stream.next()
        assert (live.id, live.data["notification"]["post"]["id"]) == (str(target + 1), other_post)


async def test_the_stream_refuses_what_it_did_not_send_and_needs_a_token(http, make_account):
    me = await make_account()
    assert_error(await http.get(STREAM), 401, "UNAUTHENTICATED")
    for bad in ("abc", "-1", "1.5", str(2**63), "9" * 21):
        response = await http.get(STREAM, headers={**me.headers, "Last-Event-ID": bad})
        error = assert_error(response, 400, "INVALID_ARGUMENT")
        assert "Last-Event-ID" in error["message"], error
    # An id above the inbox's last (a restored database) starts from now.
    async with open_stream(http, me, last_event_id="12345") as stream:
        ready = await stream.next()
        assert (ready.event, ready.id) == ("ready", "0")


async def test_the_stream_ends_when_its_session_does(http, make_account):
    """A stream is a request that lasts: logging out ends it within the session recheck period, as the
    token's next request is refused (an EventSource reconnecting then gets the 401)."""
    me = await make_account()
    async with open_stream(http, me) as stream:
        assert (await stream.next()).event == "ready"
        logged_out = await http.delete("/v1/sessions/current", headers=me.headers)
        assert logged_out.status_code == 200, logged_out.text
        # It ends by itself (without the check it would stay open until the client left): at the
        # stream's next check, at most SESSION_RECHECK_SECONDS away; the margin is for a loaded machine.
        with pytest.raises(AssertionError, match="the stream ended"):
            await stream.next(within=SESSION_RECHECK_SECONDS + 10)
    assert_error(await http.get(STREAM, headers=me.headers), 401, "UNAUTHENTICATED")


async def test_the_stream_ends_when_its_token_expires(http, make_account):
    """An access token that expires while its stream is open ends the stream (the stream checks at its
    `exp`): the client refreshes its token and reconnects with Last-Event-ID."""
    me = await make_account()
    short_lived = short_lived_access(me.id)
    async with open_stream(http, Account(me.user, short_lived.token)) as stream:
        assert (await stream.next()).event == "ready"
        with pytest.raises(AssertionError, match="the stream ended"):
            await stream.next(within=15)


@pytest.fixture
async def own_gateway(
    graph_addr, post_addr, media_addr, feed_addr, engagement_addr, notification_addr, namespace, database_url
) -> AsyncIterator[tuple[str, FastAPI]]:
    """A gateway process of this test's own (its app's state can be inspected), on the suite's stack."""
    settings = GatewaySettings(
        graph_addr=graph_addr,
        post_addr=post_addr,
        media_addr=media_addr,
        feed_addr=feed_addr,
        engagement_addr=engagement_addr,
        notification_addr=notification_addr,
        namespace=namespace,
        database_url=database_url,
        log_json=False,
        **{name: "100000/minute" for name in GatewaySettings.model_fields if "_per_" in name},
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            # uvicorn logs a failed start-up (lifespan) and returns instead of raising.
            raise RuntimeError("the gateway did not start; its start-up error is logged above")
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", app
    server.should_exit = True
    await task


async def test_one_watch_serves_every_stream_of_a_gateway_process(own_gateway, make_account, upload_photo):
    url, app = own_gateway
    users = [await make_account() for _ in range(12)]
    async with httpx.AsyncClient(base_url=url, timeout=10) as http, contextlib.AsyncExitStack() as stack:
        streams = [await stack.enter_async_context(open_stream(http, users[0]))]
        assert (await streams[0].next()).event == "ready"
        hub = app.state.notification_streams
        subscriptions = dict(hub._bus.nc._subs)
        for user in users[1:]:
            streams.append(await stack.enter_async_context(open_stream(http, user)))
            assert (await streams[-1].next()).event == "ready"
        assert hub.open_streams == 12
        # One NATS connection whose subscriptions (JetStream's reply inbox and the ordered consumer of
        # notifications.changed) are the same for 12 streams as for one: a stream holds none of its own.
        assert hub._bus.nc._subs == subscriptions and len(subscriptions) <= 2, subscriptions
        post_id = await post_by(http, users[0], upload_photo)
        assert (await http.post(f"/v1/posts/{post_id}/like", headers=users[1].headers)).status_code == 200
        event = await streams[0].next()
        assert event.data["notification"]["actors"][0]["id"] == str(users[1].id)
    # Closed streams leave nothing behind.
    deadline = time.monotonic() + 5
    while hub.open_streams:
        assert time.monotonic() < deadline, hub.open_streams
        await asyncio.sleep(0.05)
