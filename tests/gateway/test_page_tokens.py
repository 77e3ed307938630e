"""Every list route of the gateway refuses forged page tokens with a 400 in the error shape, never a 500.

The lists come from the app's route table (every GET route with a `page_token` query parameter), so
a new list is covered the day it is added: the test then asks for a value of any new required
parameter. For each list a real token is taken from a first page of one item, and forged the ways a
client could: each cursor value set to 2^64, -1, a float, a string or null, each field removed, a
field added, and tokens of the other lists (and of the same list for another user) sent instead.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from google.protobuf import field_mask_pb2

from gateway.app import create_app
from glimpse.engagement.v1 import engagement_pb2
from glimpse.graph.v1 import graph_pb2
from mesh.pagination import FOREIGN, MALFORMED
from tests.conftest import PASSWORD, RUN_ID, Account, Stubs
from tests.feed_svc.actions import create_post, drain, drain_signals, follow
from tests.gateway.test_app import assert_error, reasons, settings


def _query_params(dependant: Dependant) -> list[Any]:
    found = list(dependant.query_params)
    for sub in dependant.dependencies:
        found += _query_params(sub)
    return found


def _path_params(dependant: Dependant) -> list[Any]:
    found = list(dependant.path_params)
    for sub in dependant.dependencies:
        found += _path_params(sub)
    return found


@dataclass(frozen=True)
class ListRoute:
    path: str
    path_params: tuple[str, ...]
    # Required query parameters besides paging (a search's `q`).
    required_query: tuple[str, ...]

    def __str__(self) -> str:
        return self.path


def list_routes() -> list[ListRoute]:
    """Every GET route of the app that takes a `page_token`."""
    found = []
    for route in iter_route_contexts(create_app(settings()).routes):
        if not isinstance(route.original_route, APIRoute) or "GET" not in (route.methods or ()):
            continue
        query = _query_params(route.dependant)
        if "page_token" not in {param.alias for param in query}:
            continue
        found.append(
            ListRoute(
                path=route.path,
                path_params=tuple(param.alias for param in _path_params(route.dependant)),
                required_query=tuple(param.alias for param in query if param.field_info.is_required()),
            )
        )
    return found


LISTS = list_routes()


def test_the_route_table_yields_every_known_list():
    """Guards the discovery itself: if it found nothing, every test below would pass vacuously."""
    assert {
        "/v1/users/{user_id}/followers",
        "/v1/users/{user_id}/following",
        "/v1/users/{user_id}/posts",
        "/v1/feed",
        "/v1/search/users",
        "/v1/posts/{post_id}/likes",
        "/v1/posts/{post_id}/comments",
        "/v1/comments/{comment_id}/replies",
        "/v1/users/me/saved",
        "/v1/follow-requests",
        "/v1/blocks",
        "/v1/mutes",
        "/v1/notifications",
        "/v1/tags/{tag}/posts",
        "/v1/search/tags",
        "/v1/stories/{story_id}/viewers",
        "/v1/sessions",
    } <= {route.path for route in LISTS}


@dataclass(frozen=True)
class World:
    """Accounts with more than one page of everything: `owner` has 2 followers, 2 followees, 2
    posts, a feed of 4 posts, and shares a username prefix (`tag`) with 2 other users; the 4 posts carry
    the hashtags `tag` and `tag`s (another user's tag page is the latter's); the owner's
    first post has 2 likes and 2 comments, the first comment 2 replies, and the owner saved 2 posts; the
    owner's account is private, with 2 pending follow requests, and it blocks 2 users and mutes 2."""

    http: httpx.AsyncClient
    owner: Account
    other: Account
    tag: str
    tokens: dict[str, str]  # list path -> a real next_page_token of that list
    posts: dict[int, int]  # user id -> a post of theirs
    comments: dict[int, int]  # user id -> a top-level comment on that post
    stories: dict[int, int] = dataclasses.field(default_factory=dict)  # user id -> a story of theirs

    def values(self, user: Account | None = None) -> dict[str, str]:
        """A value for each parameter a list may require, lists of `user` (the owner by default)."""
        who = (user or self.owner).id
        return {
            "user_id": str(who),
            "q": self.tag,
            "post_id": str(self.posts[who]),
            "comment_id": str(self.comments[who]),
            "tag": self.tag if who == self.owner.id else f"{self.tag}s",
            "story_id": str(self.stories[who]),
        }

    def url(self, route: ListRoute, user: Account | None = None) -> str:
        values = self.values(user)
        missing = [name for name in (*route.path_params, *route.required_query) if name not in values]
        assert not missing, f"{route.path}: add a value for {missing} to World.values in this test"
        return route.path.format(**{name: values[name] for name in route.path_params})

    def query(self, route: ListRoute, **paging: Any) -> dict[str, Any]:
        values = self.values()
        return {**{name: values[name] for name in route.required_query}, **paging}

    async def get(self, route: ListRoute, token: str, user: Account | None = None) -> httpx.Response:
        return await self.http.get(
            self.url(route, user), params=self.query(route, page_size=1, page_token=token), headers=self.owner.headers
        )


async def _account(stubs: Stubs, name: str) -> Account:
    await stubs.graph.RegisterUser(
        graph_pb2.RegisterUserRequest(username=name, email=f"{name}@example.com", password=PASSWORD)
    )
    session = await stubs.graph.AuthenticateUser(graph_pb2.AuthenticateUserRequest(login=name, password=PASSWORD))
    return Account(session.user, session.access_token)


async def _comment(stubs: Stubs, author: Account, post_id: int, reply_to: int = 0) -> int:
    request = engagement_pb2.CreateCommentRequest(post_id=post_id, text="paging", parent_comment_id=reply_to)
    return (await stubs.engagement.CreateComment(request, metadata=author.metadata)).id


@pytest.fixture(scope="module")
async def world(stubs, upload_photo, fanout, gateway_url, bus, database_url) -> AsyncIterator[World]:
    tag = f"pt{RUN_ID[:6]}{uuid.uuid4().hex[:6]}"
    owner, first, second = [await _account(stubs, f"{tag}{suffix}") for suffix in ("o", "a", "b")]
    for fan in (first, second):
        await follow(stubs, fan, owner)
        await follow(stubs, owner, fan)
    caption = f"paging #{tag} #{tag}s"
    created = [await create_post(stubs, upload_photo, a, caption=caption) for a in (owner, owner, first, second)]
    posts = {owner.id: created[0], first.id: created[2]}
    comments = {}
    for user in (owner, first):
        threads = [await _comment(stubs, fan, posts[user.id]) for fan in (first, second)]
        comments[user.id] = threads[0]
    for fan in (first, second):
        await stubs.engagement.LikePost(engagement_pb2.LikePostRequest(post_id=posts[owner.id]), metadata=fan.metadata)
        await _comment(stubs, fan, posts[owner.id], reply_to=comments[owner.id])
    for post_id in created[:2]:
        await stubs.engagement.SavePost(engagement_pb2.SavePostRequest(post_id=post_id), metadata=owner.metadata)
    private = graph_pb2.UpdateUserRequest(
        user=graph_pb2.User(is_private=True), update_mask=field_mask_pb2.FieldMask(paths=["is_private"])
    )
    await stubs.graph.UpdateUser(private, metadata=owner.metadata)
    for suffix in ("r1", "r2"):
        await follow(stubs, await _account(stubs, f"{tag}{suffix}"), owner)
    for suffix in ("x1", "x2"):
        blocked = await _account(stubs, f"{tag}{suffix}")
        await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocked.id), metadata=owner.metadata)
    for suffix in ("m1", "m2"):
        muted = await _account(stubs, f"{tag}{suffix}")
        await stubs.graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=muted.id), metadata=owner.metadata)
    # Two posts trending in the owner's explore: by someone the owner does not follow, each liked by
    # FeedSettings.explore_min_interactions (5) others.
    stranger = await _account(stubs, f"{tag}t")
    trending = [await create_post(stubs, upload_photo, stranger) for _ in range(2)]
    for n in range(5):
        liker = await _account(stubs, f"{tag}l{n}")
        for post_id in trending:
            await stubs.engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post_id), metadata=liker.metadata)
    # A second session of the owner's (its list pages too).
    await stubs.graph.AuthenticateUser(graph_pb2.AuthenticateUserRequest(login=f"{tag}o", password=PASSWORD))
    await drain(bus, database_url)
    await drain_signals(bus, database_url)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        # The owner's notifications (a follow group, a like group, comments) arrive as events.
        deadline = asyncio.get_running_loop().time() + 30
        while len((await http.get("/v1/notifications", headers=owner.headers)).json()["items"]) < 2:
            assert asyncio.get_running_loop().time() < deadline, "the owner's notifications did not arrive"
            await asyncio.sleep(0.05)
        partial = World(http, owner, first, tag, {}, posts, comments)
        # A story of the owner's that both followers viewed, and one of another user's.
        for author in (owner, first):
            body = {"media_id": str(await upload_photo(author))}
            shared = await http.post("/v1/stories", json=body, headers=author.headers)
            assert shared.status_code == 201, shared.text
            partial.stories[author.id] = int(shared.json()["id"])
        for fan in (first, second):
            viewed = await http.post(f"/v1/stories/{partial.stories[owner.id]}/view", headers=fan.headers)
            assert viewed.status_code == 200, viewed.text
        for route in LISTS:
            response = await partial.get(route, "")
            assert response.status_code == 200, f"{route.path}: {response.text}"
            token = response.json()["next_page_token"]
            assert token, f"{route.path}: give the owner more than one item of this list in the `world` fixture"
            partial.tokens[route.path] = token
        yield partial


def _decode(token: str) -> dict[str, Any]:
    body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert isinstance(body, dict) and isinstance(body.get("c"), dict), body
    return body


def _encode(body: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()


def _assert_refused(response: httpx.Response, description: str, case: str) -> None:
    assert response.status_code == 400, f"{case}: {response.status_code} {response.text}"
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert error["message"] == f"page_token: {description}", case
    assert reasons(error) == ["INVALID_ARGUMENT"], case
    violations = [d for d in error["details"] if d["type"] == "BadRequest"]  # type: ignore[union-attr]
    assert violations == [
        {"type": "BadRequest", "field_violations": [{"field": "page_token", "description": description}]}
    ], case


def _forgeries(value: Any) -> list[Any]:
    """What a client might put in place of a cursor value."""
    forged: list[Any] = [2**64, 2**63, -1, 1.5, "not a cursor value!", None, [value], {"v": value}]
    if isinstance(value, int) and not isinstance(value, bool):
        forged += [float(value), str(value)]
    return forged


@pytest.mark.parametrize("route", LISTS, ids=str)
async def test_a_real_token_reads_the_next_page(world, route):
    response = await world.get(route, world.tokens[route.path])
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 1


@pytest.mark.parametrize("route", LISTS, ids=str)
async def test_every_forged_cursor_value_is_400(world, route):
    body = _decode(world.tokens[route.path])
    assert body["c"], f"{route.path}: the cursor has no fields to forge"
    for field, value in body["c"].items():
        for forged in _forgeries(value):
            token = _encode({**body, "c": {**body["c"], field: forged}})
            _assert_refused(await world.get(route, token), MALFORMED, f"{route.path} {field}={forged!r}")


@pytest.mark.parametrize("route", LISTS, ids=str)
async def test_missing_and_extra_cursor_fields_are_400(world, route):
    body = _decode(world.tokens[route.path])
    cases = {f"without {field}": {k: v for k, v in body["c"].items() if k != field} for field in body["c"]}
    cases["with an extra field"] = {**body["c"], "extra": 1}
    cases["empty"] = {}
    for case, cursor in cases.items():
        _assert_refused(await world.get(route, _encode({**body, "c": cursor})), MALFORMED, f"{route.path} {case}")
    for case, envelope in {
        "no cursor": {"s": body["s"]},
        "cursor not an object": {"s": body["s"], "c": list(body["c"].values())},
        "not base64 JSON": "!!not a token!!",
    }.items():
        token = envelope if isinstance(envelope, str) else _encode(envelope)
        _assert_refused(await world.get(route, token), MALFORMED, f"{route.path} {case}")


@pytest.mark.parametrize("route", LISTS, ids=str)
async def test_a_token_of_another_list_is_400(world, route):
    others = {path: token for path, token in world.tokens.items() if path != route.path}
    assert others, "only one list: nothing to cross-check"
    for path, token in others.items():
        _assert_refused(await world.get(route, token), FOREIGN, f"{path}'s token sent to {route.path}")
    if route.path_params:
        # The same list of another user is another list too.
        response = await world.get(route, world.tokens[route.path], user=world.other)
        _assert_refused(response, FOREIGN, f"{route.path} of another user")
