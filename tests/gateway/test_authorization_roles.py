"""Authorization matrix: every route of the gateway x every role around one private account.

The routes come from the app's own route table, so a new route fails
`test_every_route_is_probed_or_classified` until it gets a probe in PROBES (what each role asks and
gets) or a line in NOT_ABOUT_OTHERS (why no other user's content is involved).

The world: the owner's account is private. The follower asked and was approved; the stranger does not
follow (it did, liked, saved and commented while the account was public); the owner blocks
`blocked`, and `blocker` blocks the owner (both followed, liked, saved and commented before); the
anonymous role sends no token. Each probe asks once per role and checks the exact status (and
reason), that a role allowed to see the content gets it (a marker of it is in the body) and that
nobody else gets any of it: not the caption, comment texts, photo ids and rendition URLs (outsiders
never), nor the owner's username or display name where the route is about the owner's content.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from google.protobuf import field_mask_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.app import create_app
from glimpse.engagement.v1 import engagement_pb2
from glimpse.graph.v1 import graph_pb2
from mesh.bus import Bus
from tests.conftest import PASSWORD, Account, Stubs
from tests.feed_svc.actions import FANOUT_CONSUMERS
from tests.gateway.test_app import settings

ROLES = ("owner", "follower", "stranger", "blocked", "blocker", "anonymous")
# Usernames start with these (and the world's tag), so none starts with the owner's.
PREFIX = {"owner": "own", "follower": "fol", "stranger": "str", "blocked": "bkd", "blocker": "bkr"}
# The roles that must learn nothing of the owner's content.
OUTSIDERS = frozenset({"stranger", "blocked", "blocker", "anonymous"})

Made = dict[str, str]
Request = tuple[str, str, dict[str, Any] | None]


def route_keys() -> set[str]:
    """ "METHOD /path" of every route the app serves (HEAD aside: Starlette adds it to every GET)."""
    return {
        f"{method} {route.path}"
        for route in iter_route_contexts(create_app(settings()).routes)
        for method in route.methods or ()
        if method != "HEAD"
    }


# Routes about the caller's own account or about no user's content, with the reason. Anonymous
# access to each signed-in one is tests/gateway/test_tokens.py's; another user's tokens, follows and
# posts are test_authorization.py's and test_authorization_posts.py's.
NOT_ABOUT_OTHERS = {
    "POST /v1/users": "sign-up: creates the caller's own account",
    "POST /v1/sessions": "log-in: answers only with the credentials' own account",
    "POST /v1/sessions/refresh": "the refresh token names its account (another's: test_authorization.py)",
    "GET /v1/sessions": "the caller's own sessions",
    "DELETE /v1/sessions/current": "ends the caller's own session (test_authorization.py: another's stay)",
    "DELETE /v1/sessions/{session_id}": "the caller's own sessions; another's is 404 (test_authorization.py)",
    "POST /v1/users/me/password": "the caller's own password (test_authorization.py: another's stays)",
    "DELETE /v1/users/me": "deletes the caller's own account (test_authorization.py: another's stays)",
    "POST /v1/media/upload-url": "a grant for a new media id owned by the caller",
    "GET /v1/users/me": "the caller's own account",
    "PATCH /v1/users/me": "the caller's own account settings",
    "PUT /v1/users/me/avatar": "the caller's own picture; another's upload is refused: test_authorization_avatars.py",
    "DELETE /v1/users/me/avatar": "the caller's own picture (test_authorization_avatars.py: another's stays)",
    "GET /v1/follow-requests": "the requests to follow the caller",
    "POST /v1/follow-requests/{user_id}/approve": "approves a request to follow the caller",
    "DELETE /v1/follow-requests/{user_id}": "drops a request to follow the caller",
    "GET /v1/blocks": "the users the caller blocks",
    "GET /v1/mutes": "the users the caller mutes",
    "GET /v1/notifications/unread-count": "a count of the caller's own inbox",
    "POST /v1/notifications/read": "moves the caller's own read marker",
    "GET /v1/users/me/notification-settings": "the caller's own settings",
    "POST /v1/users/me/exports": "exports the caller's own data (another's export is probed below: 404)",
    "PATCH /v1/users/me/notification-settings": "the caller's own settings",
    "GET /v1/notifications/stream": "the caller's own inbox, rendered like GET /v1/notifications (probed)",
    "GET /v1/tags/{tag}": "a tag's name and its count of live posts (every author's, documented): no post or user",
    "GET /v1/search/tags": "tags' names and counts: no post or user",
    "GET /healthz": "operations: no user data",
    "GET /readyz": "operations: no user data",
    "GET /metrics": "operations: no user data",
    "GET /openapi.json": "the API's description",
    "GET /docs": "the API's description",
    "GET /docs/oauth2-redirect": "the API's description",
    "GET /redoc": "the API's description",
}


@dataclass
class World:
    http: httpx.AsyncClient
    stubs: Stubs
    upload: Callable[..., Awaitable[int]]
    tag: str
    accounts: dict[str, Account]  # every role but anonymous
    friend: Account  # followed by the owner
    caption: str
    remark: str  # the owner's top-level comment on the post
    answer: str  # the owner's replies
    made: Made = field(default_factory=dict)  # post, post_media, scratch, scratch_media, comment
    _fresh: int = 0

    @property
    def owner(self) -> Account:
        return self.accounts["owner"]

    @property
    def content(self) -> list[str]:
        """What no outsider may ever receive: texts and photos of the owner's posts and comments."""
        return [self.caption, self.remark, self.answer, self.made["post_media"], self.made["scratch_media"]]

    @property
    def profile(self) -> list[str]:
        return [self.owner.user.username, self.owner.user.display_name]

    async def actor(self, role: str, fresh: bool) -> Account | None:
        """The role's account; with `fresh`, a new account in the role's relationship to the owner
        (for probes that change that relationship)."""
        if role == "anonymous":
            return None
        if not fresh or role == "owner":
            return self.accounts[role]
        self._fresh += 1
        actor = await register(self.stubs, f"{PREFIX[role]}{self.tag}{self._fresh}")
        graph, owner = self.stubs.graph, self.owner
        if role == "follower":
            await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=owner.id), metadata=actor.metadata)
            approve = graph_pb2.ApproveFollowRequestRequest(requester_id=actor.id)
            assert (await graph.ApproveFollowRequest(approve, metadata=owner.metadata)).approved
        elif role == "blocked":
            await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=actor.id), metadata=owner.metadata)
        elif role == "blocker":
            await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=owner.id), metadata=actor.metadata)
        return actor

    async def post(self, author: Account, caption: str) -> tuple[str, str]:
        """(post id, media id) of a new post by `author`, created through the gateway."""
        media_id = str(await self.upload(author))
        body = {"caption": caption, "media_ids": [media_id]}
        response = await self.http.post("/v1/posts", json=body, headers=author.headers)
        assert response.status_code == 201, response.text
        return response.json()["id"], media_id

    async def story(self, author: Account) -> str:
        """The id of a new story by `author`, shared through the gateway."""
        body = {"media_id": str(await self.upload(author))}
        response = await self.http.post("/v1/stories", json=body, headers=author.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def comment(self, author: Account, post_id: str, text: str, parent: str | None = None) -> str:
        body = {"text": text, "parent_comment_id": parent}
        response = await self.http.post(f"/v1/posts/{post_id}/comments", json=body, headers=author.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


async def register(stubs: Stubs, name: str, display_name: str = "") -> Account:
    request = graph_pb2.RegisterUserRequest(
        username=name, email=f"{name}@example.com", password=PASSWORD, display_name=display_name
    )
    await stubs.graph.RegisterUser(request)
    session = await stubs.graph.AuthenticateUser(graph_pb2.AuthenticateUserRequest(login=name, password=PASSWORD))
    return Account(session.user, session.access_token)


async def settle(bus: Bus, database_url: str, within: float = 30.0) -> None:
    """Waits until every outbox row is published and the fan-out and notification consumers have
    handled every event (twice in a row)."""
    consumers = {
        **FANOUT_CONSUMERS,
        "notification_graph": "GRAPH",
        "notification_engagement": "ENGAGEMENT",
        "notification_posts_deleted": "POSTS",
    }
    engine = create_async_engine(database_url)
    deadline = asyncio.get_running_loop().time() + within
    quiet = 0
    try:
        while quiet < 2:
            assert asyncio.get_running_loop().time() < deadline, f"events still pending after {within}s"
            busy = 0
            async with engine.connect() as conn:
                for schema in ("graph", "posts", "engagement"):
                    query = text(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")
                    busy += (await conn.execute(query)).scalar_one()
            for durable, stream in consumers.items():
                info = await bus.js.consumer_info(bus.stream(stream), f"{bus.namespace}_{durable}")
                busy += info.num_pending + info.num_ack_pending
            quiet = quiet + 1 if busy == 0 else 0
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


async def _eventually(what: str, probe: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, f"{what} did not happen within {within}s"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def world(
    stubs, upload_photo, fanout, media_worker, notification_addr, gateway_url, bus, database_url
) -> AsyncIterator[World]:
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        owner = await register(stubs, f"{PREFIX['owner']}{tag}", display_name=f"Owner{tag}")
        accounts = {"owner": owner}
        for role in ("follower", "stranger", "blocked", "blocker"):
            accounts[role] = await register(stubs, f"{PREFIX[role]}{tag}")
        friend = await register(stubs, f"fri{tag}")
        w = World(http, stubs, upload_photo, tag, accounts, friend, f"caption{tag}", f"remark{tag}", f"answer{tag}")
        graph = stubs.graph

        async def follows(follower: Account, followee: Account) -> None:
            request = graph_pb2.FollowUserRequest(target_user_id=followee.id)
            await graph.FollowUser(request, metadata=follower.metadata)

        # While the account is public: the post, and everyone's follows, likes, saves and comments.
        await follows(owner, w.friend)
        # A tag of the world's own (t<tag>), so that its page holds only the owner's post.
        w.made["post"], w.made["post_media"] = await w.post(owner, f"{w.caption} #glimpse #t{tag}")
        w.made["scratch"], w.made["scratch_media"] = await w.post(owner, f"{w.caption} again")
        for role in ("stranger", "blocked", "blocker"):
            await follows(w.accounts[role], owner)
        for role in ("blocked", "blocker"):
            await follows(owner, w.accounts[role])  # a follow notification of the owner's, to lose
        post = int(w.made["post"])
        for role in ("owner", "follower", "stranger", "blocked", "blocker"):
            metadata = w.accounts[role].metadata
            await stubs.engagement.LikePost(engagement_pb2.LikePostRequest(post_id=post), metadata=metadata)
            await stubs.engagement.SavePost(engagement_pb2.SavePostRequest(post_id=post), metadata=metadata)
        w.made["comment"] = await w.comment(owner, w.made["post"], w.remark)
        await w.comment(w.accounts["follower"], w.made["post"], "a reply", parent=w.made["comment"])
        await w.comment(owner, w.made["post"], w.answer, parent=w.made["comment"])
        for role in ("follower", "stranger", "blocked", "blocker"):
            theirs = await w.comment(w.accounts[role], w.made["post"], f"from the {role}")
            await w.comment(owner, w.made["post"], w.answer, parent=theirs)  # tells them, with the photo

        async def ready() -> bool:
            response = await http.get(f"/v1/posts/{w.made['post']}", headers=owner.headers)
            return all(m["status"] == "READY" for m in response.json()["media"])

        async def told(role: str, count: int) -> bool:
            response = await http.get("/v1/notifications", headers=w.accounts[role].headers)
            return len(response.json()["items"]) >= count

        await _eventually("the post's renditions", ready)
        # Each was told of the owner's reply (the blocked and the blocker of the follow, too) while
        # they could still see it: what they are shown later is decided when they read.
        for role, count in (("follower", 1), ("stranger", 1), ("blocked", 2), ("blocker", 2), ("owner", 2)):
            await _eventually(f"the {role}'s notifications", lambda r=role, c=count: told(r, c))

        # Then the account goes private, the follower is approved, and the blocks are made.
        await graph.UnfollowUser(
            graph_pb2.UnfollowUserRequest(target_user_id=owner.id), metadata=w.accounts["stranger"].metadata
        )
        private = graph_pb2.UpdateUserRequest(
            user=graph_pb2.User(is_private=True), update_mask=field_mask_pb2.FieldMask(paths=["is_private"])
        )
        await graph.UpdateUser(private, metadata=owner.metadata)
        await follows(w.accounts["follower"], owner)
        approve = graph_pb2.ApproveFollowRequestRequest(requester_id=w.accounts["follower"].id)
        assert (await graph.ApproveFollowRequest(approve, metadata=owner.metadata)).approved
        blocked, blocker = w.accounts["blocked"], w.accounts["blocker"]
        await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocked.id), metadata=owner.metadata)
        await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=owner.id), metadata=blocker.metadata)
        await settle(bus, database_url)
        # The owner's story, seen by the follower (a viewer for the owner's list).
        w.made["story"] = await w.story(owner)
        response = await http.post(f"/v1/stories/{w.made['story']}/view", headers=w.accounts["follower"].headers)
        assert response.status_code == 200, response.text
        yield w


# --- probes -------------------------------------------------------------------------------------


def expect(
    owner: int, follower: int, stranger: int, blocked: int, blocker: int, anonymous: int = 401
) -> dict[str, int]:
    return dict(zip(ROLES, (owner, follower, stranger, blocked, blocker, anonymous), strict=True))


# The owner's content, as any role that may see it gets it; 404 (as if it did not exist) otherwise.
SEEN_BY_FOLLOWERS = expect(200, 200, 404, 404, 404)


@dataclass(frozen=True)
class Probe:
    """One request per role. `request(world, made)` builds it (`made`: the world's content, or what
    `arrange` made for this role alone, for requests that destroy it). `sees`: the roles whose 2xx
    body must hold one of `markers` (default: the owner's profile and content); every other outsider's
    body must hold none of `hidden` (default: the markers and the owner's profile), and no outsider's
    any of the content. `fresh_actor`: each role acts through a new account in its relationship, for
    requests that change it. `observe(world, made)` reads the owner's side, which no other role
    changes. `check` looks further at a role's answer."""

    request: Callable[[World, Made], Request]
    statuses: dict[str, int]
    sees: frozenset[str] = frozenset()
    reasons: dict[str, str] = field(default_factory=dict)
    name: str = ""
    markers: Callable[[World], list[str]] | None = None
    hidden: Callable[[World], list[str]] | None = None
    arrange: Callable[[World], Awaitable[Made]] | None = None
    fresh_actor: bool = False
    observe: Callable[[World, Made], Awaitable[Any]] | None = None
    check: Callable[[World, str, Account | None, httpx.Response], Awaitable[None]] | None = None


def sees(*roles: str) -> frozenset[str]:
    return frozenset(roles)


def get(path: str) -> Callable[[World, Made], Request]:
    """GET `path`, formatted with the world's ids (`{post}`, `{comment}`, `{owner}`, ...)."""
    return lambda w, made: ("GET", path.format(**made, owner=w.owner.id, username=w.owner.user.username), None)


def call(method: str, path: str, body: Callable[[World, Made], dict[str, Any]] | None = None):
    def build(w: World, made: Made) -> Request:
        url = path.format(**made, owner=w.owner.id)
        return method, url, body(w, made) if body is not None else None

    return build


async def fresh_post(w: World) -> Made:
    post, media = await w.post(w.owner, f"{w.caption} fresh")
    return {**w.made, "post": post, "post_media": media}


async def fresh_comment(w: World) -> Made:
    return {**w.made, "comment": await w.comment(w.owner, w.made["post"], w.remark)}


async def fresh_media(w: World) -> Made:
    return {**w.made, "media": str(await w.upload(w.owner))}


async def owner_reads_post(w: World, made: Made) -> tuple[int, str]:
    response = await w.http.get(f"/v1/posts/{made['post']}", headers=w.owner.headers)
    return response.status_code, response.json().get("caption", "")


async def owner_reads_comments(w: World, made: Made) -> list[str]:
    response = await w.http.get(f"/v1/posts/{made['post']}/comments?page_size=100", headers=w.owner.headers)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


async def owner_grid(w: World, made: Made) -> list[str]:
    response = await w.http.get(f"/v1/users/{w.owner.id}/posts?page_size=100", headers=w.owner.headers)
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["items"]]


async def still_blocked(w: World, role: str, actor: Account | None, response: httpx.Response) -> None:
    """Lifting a block is the blocker's alone: the owner's block of a blocked actor stands."""
    if role == "blocked" and actor is not None:
        request = graph_pb2.CheckVisibilityRequest(viewer_id=actor.id, author_ids=[w.owner.id])
        verdicts = await w.stubs.graph.CheckVisibility(request)
        assert [v.visibility for v in verdicts.results] == [graph_pb2.VISIBILITY_BLOCKED]


async def fresh_story(w: World) -> Made:
    return {**w.made, "story": await w.story(w.owner)}


async def owner_reads_stories(w: World, made: Made) -> list[str]:
    response = await w.http.get(f"/v1/users/{w.owner.id}/stories", headers=w.owner.headers)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["items"]]


async def owners_export(w: World) -> Made:
    """The owner's data export (the same one for every role: its idempotency key is the world's)."""
    headers = {**w.owner.headers, "Idempotency-Key": f"export-{w.tag}"}
    response = await w.http.post("/v1/users/me/exports", headers=headers)
    assert response.status_code == 202, response.text
    return {**w.made, "export": response.json()["export_id"]}


def report(kind: str) -> Callable[[World, Made], Request]:
    subject = {"post_id": "post", "comment_id": "comment"}
    return lambda w, made: (
        "POST",
        "/v1/reports",
        {kind: made[subject[kind]] if kind in subject else str(w.owner.id), "reason": "spam"},
    )


def target_owner(w: World, made: Made) -> dict[str, Any]:
    return {"target_user_id": str(w.owner.id)}


PROBES: dict[str, list[Probe]] = {
    # Accounts and the follow graph: a private account's profile is public, its lists are not.
    "GET /v1/users/{username}": [
        Probe(
            get("/v1/users/{username}"),
            expect(200, 200, 200, 404, 404, 200),
            sees("owner", "follower", "stranger", "anonymous"),
            markers=lambda w: [w.owner.user.display_name],
            # The username is the request's own: the 404 may repeat it.
            hidden=lambda w: [w.owner.user.display_name],
        )
    ],
    "GET /v1/search/users": [
        Probe(
            get("/v1/search/users?q={username}"),
            expect(200, 200, 200, 200, 200),
            sees("owner", "follower", "stranger"),
            # The query is the request's own: only the display name tells the owner was found.
            markers=lambda w: [w.owner.user.display_name],
        )
    ],
    "POST /v1/follow": [
        Probe(
            call("POST", "/v1/follow", target_owner),
            expect(400, 200, 200, 404, 404),
            sees("follower", "stranger"),
            fresh_actor=True,
            markers=lambda w: [w.owner.user.display_name],
        )
    ],
    "DELETE /v1/follow/{user_id}": [
        Probe(call("DELETE", "/v1/follow/{owner}"), expect(400, 200, 200, 404, 404), fresh_actor=True)
    ],
    "GET /v1/users/{user_id}/followers": [
        Probe(
            get("/v1/users/{owner}/followers"),
            expect(200, 200, 403, 404, 404),
            sees("owner", "follower"),
            reasons={"stranger": "ACCOUNT_PRIVATE"},
            markers=lambda w: [w.accounts["follower"].user.username],
        )
    ],
    "GET /v1/users/{user_id}/following": [
        Probe(
            get("/v1/users/{owner}/following"),
            expect(200, 200, 403, 404, 404),
            sees("owner", "follower"),
            reasons={"stranger": "ACCOUNT_PRIVATE"},
            markers=lambda w: [w.friend.user.username],
        )
    ],
    # Posts.
    "POST /v1/posts": [
        Probe(
            call("POST", "/v1/posts", lambda w, made: {"caption": "taken", "media_ids": [made["media"]]}),
            expect(201, 403, 403, 403, 403),
            reasons={role: "NOT_MEDIA_OWNER" for role in ("follower", "stranger", "blocked", "blocker")},
            name="with the owner's photo",
            arrange=fresh_media,
            observe=owner_grid,
        )
    ],
    "GET /v1/posts/{post_id}": [Probe(get("/v1/posts/{post}"), SEEN_BY_FOLLOWERS, sees("owner", "follower"))],
    "PATCH /v1/posts/{post_id}": [
        Probe(
            call("PATCH", "/v1/posts/{post}", lambda w, made: {"caption": "edited"}),
            expect(200, 403, 404, 404, 404),
            reasons={"follower": "NOT_AUTHOR", "stranger": "POST_NOT_FOUND", "blocked": "POST_NOT_FOUND"},
            arrange=fresh_post,
            observe=owner_reads_post,
        )
    ],
    "DELETE /v1/posts/{post_id}": [
        Probe(
            call("DELETE", "/v1/posts/{post}"),
            expect(204, 403, 404, 404, 404),
            reasons={"follower": "NOT_AUTHOR", "stranger": "POST_NOT_FOUND", "blocker": "POST_NOT_FOUND"},
            arrange=fresh_post,
            observe=owner_reads_post,
        )
    ],
    "GET /v1/users/{user_id}/posts": [
        Probe(
            get("/v1/users/{owner}/posts"),
            expect(200, 200, 403, 404, 404),
            sees("owner", "follower"),
            reasons={"stranger": "ACCOUNT_PRIVATE", "blocked": "USER_NOT_FOUND"},
        )
    ],
    "GET /v1/tags/{tag}/posts": [
        Probe(
            lambda w, made: ("GET", f"/v1/tags/t{w.tag}/posts", None),
            expect(200, 200, 200, 200, 200),
            sees("owner", "follower"),
            name="(the owner's post's tag)",
        )
    ],
    "GET /v1/feed": [
        Probe(get("/v1/feed"), expect(200, 200, 200, 200, 200), sees("owner", "follower"), name="(theirs)")
    ],
    # Explore leaves out the viewer's own posts, followed authors and private accounts: nobody here.
    "GET /v1/explore": [Probe(get("/v1/explore"), expect(200, 200, 200, 200, 200), name="(nobody's)")],
    # Engagement: actions on the scratch post (so the owner's own unlike leaves the post's likes be).
    "POST /v1/posts/{post_id}/like": [
        Probe(call("POST", "/v1/posts/{scratch}/like"), SEEN_BY_FOLLOWERS, reasons={"blocked": "POST_NOT_FOUND"})
    ],
    "DELETE /v1/posts/{post_id}/like": [
        Probe(call("DELETE", "/v1/posts/{scratch}/like"), SEEN_BY_FOLLOWERS, reasons={"blocker": "POST_NOT_FOUND"})
    ],
    "GET /v1/posts/{post_id}/likes": [
        Probe(get("/v1/posts/{post}/likes"), SEEN_BY_FOLLOWERS, sees("owner", "follower"))
    ],
    "POST /v1/posts/{post_id}/comments": [
        Probe(
            call("POST", "/v1/posts/{scratch}/comments", lambda w, made: {"text": "hello"}),
            expect(201, 201, 404, 404, 404),
            reasons={"stranger": "POST_NOT_FOUND"},
        )
    ],
    "GET /v1/posts/{post_id}/comments": [
        Probe(get("/v1/posts/{post}/comments"), SEEN_BY_FOLLOWERS, sees("owner", "follower"))
    ],
    "GET /v1/comments/{comment_id}/replies": [
        Probe(
            get("/v1/comments/{comment}/replies"),
            SEEN_BY_FOLLOWERS,
            sees("owner", "follower"),
            # Named as asked: the answer does not tell them which post the comment was on.
            reasons=dict.fromkeys(("stranger", "blocked", "blocker"), "COMMENT_NOT_FOUND"),
        )
    ],
    "DELETE /v1/comments/{comment_id}": [
        Probe(
            call("DELETE", "/v1/comments/{comment}"),
            expect(204, 403, 404, 404, 404),
            reasons={"follower": "NOT_COMMENT_OR_POST_AUTHOR", "blocked": "COMMENT_NOT_FOUND"},
            name="the owner's",
            arrange=fresh_comment,
            observe=owner_reads_comments,
        )
    ],
    "POST /v1/posts/{post_id}/save": [Probe(call("POST", "/v1/posts/{scratch}/save"), SEEN_BY_FOLLOWERS)],
    "DELETE /v1/posts/{post_id}/save": [Probe(call("DELETE", "/v1/posts/{scratch}/save"), SEEN_BY_FOLLOWERS)],
    "GET /v1/users/me/saved": [
        # Everyone saved the post while the account was public: only who may see it now still does.
        Probe(get("/v1/users/me/saved"), expect(200, 200, 200, 200, 200), sees("owner", "follower"), name="(theirs)")
    ],
    # Privacy: blocking and muting the owner are each one's own, and never undo the owner's block.
    "POST /v1/blocks": [
        Probe(call("POST", "/v1/blocks", target_owner), expect(400, 200, 200, 200, 200), fresh_actor=True)
    ],
    "DELETE /v1/blocks/{user_id}": [
        Probe(
            call("DELETE", "/v1/blocks/{owner}"),
            expect(400, 200, 200, 200, 200),
            fresh_actor=True,
            check=still_blocked,
        )
    ],
    "POST /v1/mutes": [
        Probe(call("POST", "/v1/mutes", target_owner), expect(400, 200, 200, 404, 404), fresh_actor=True)
    ],
    "DELETE /v1/mutes/{user_id}": [
        # Nothing to lift, and no telling whether a block stands: the same answer for everyone.
        Probe(call("DELETE", "/v1/mutes/{owner}"), expect(400, 200, 200, 200, 200), fresh_actor=True)
    ],
    # A report keeps a snapshot of what the reporter sees, and answers with it: nothing more.
    "POST /v1/reports": [
        Probe(report("post_id"), expect(201, 201, 404, 404, 404), sees("owner", "follower"), name="a post"),
        Probe(report("comment_id"), expect(201, 201, 404, 404, 404), sees("owner", "follower"), name="a comment"),
        Probe(
            report("user_id"),
            # One may report an account one blocks or that blocks one, but is not shown it.
            expect(201, 201, 201, 201, 201),
            sees("follower", "stranger"),
            name="the owner",
            markers=lambda w: [w.owner.user.display_name],
        ),
    ],
    # Stories: the owner's, for approved followers only.
    "POST /v1/stories": [
        Probe(
            call("POST", "/v1/stories", lambda w, made: {"media_id": made["media"]}),
            expect(201, 403, 403, 403, 403),
            reasons={role: "NOT_MEDIA_OWNER" for role in ("follower", "stranger", "blocked", "blocker")},
            name="with the owner's photo",
            arrange=fresh_media,
            observe=owner_reads_stories,
        )
    ],
    "GET /v1/stories/tray": [
        Probe(get("/v1/stories/tray"), expect(200, 200, 200, 200, 200), sees("owner", "follower"), name="(theirs)")
    ],
    "GET /v1/users/{user_id}/stories": [
        Probe(
            get("/v1/users/{owner}/stories"),
            expect(200, 200, 403, 404, 404),
            sees("owner", "follower"),
            reasons={"stranger": "ACCOUNT_PRIVATE", "blocked": "USER_NOT_FOUND"},
        )
    ],
    "POST /v1/stories/{story_id}/view": [
        Probe(call("POST", "/v1/stories/{story}/view"), SEEN_BY_FOLLOWERS, reasons={"stranger": "STORY_NOT_FOUND"})
    ],
    "GET /v1/stories/{story_id}/viewers": [
        Probe(
            get("/v1/stories/{story}/viewers"),
            expect(200, 403, 404, 404, 404),
            sees("owner"),
            reasons={"follower": "NOT_STORY_AUTHOR", "stranger": "STORY_NOT_FOUND", "blocker": "STORY_NOT_FOUND"},
            markers=lambda w: [w.accounts["follower"].user.username],
        )
    ],
    "DELETE /v1/stories/{story_id}": [
        Probe(
            call("DELETE", "/v1/stories/{story}"),
            expect(204, 403, 404, 404, 404),
            reasons={"follower": "NOT_STORY_AUTHOR", "stranger": "STORY_NOT_FOUND", "blocked": "STORY_NOT_FOUND"},
            arrange=fresh_story,
            observe=owner_reads_stories,
        )
    ],
    # Data exports: the owner's alone; to anyone else it does not exist.
    "GET /v1/users/me/exports/{export_id}": [
        Probe(
            get("/v1/users/me/exports/{export}"),
            expect(200, 404, 404, 404, 404),
            sees("owner"),
            reasons={role: "EXPORT_NOT_FOUND" for role in ("follower", "stranger", "blocked", "blocker")},
            arrange=owners_export,
            # Only an export's own JSON has these keys (a 404 names the id it was asked for).
            markers=lambda w: ['"download_url"', '"expire_time"'],
        )
    ],
    # Notifications: each was told of the owner's reply while they could see the post.
    "GET /v1/notifications": [
        Probe(get("/v1/notifications"), expect(200, 200, 200, 200, 200), sees("owner", "follower"), name="(theirs)")
    ],
}


def _pattern(key: str) -> tuple[str, re.Pattern[str]]:
    method, path = key.split(" ", 1)
    return method, re.compile(re.sub(r"\\\{\w+\\\}", "[^/?]+", re.escape(path)) + r"(\?.*)?")


CASES = [
    pytest.param(key, probe, id=f"{key} {probe.name}".strip()) for key, probes in PROBES.items() for probe in probes
]


def test_every_route_is_probed_or_classified():
    routes = route_keys()
    assert len(routes) > 40, routes  # the route table was really read
    unclassified = sorted(routes - PROBES.keys() - NOT_ABOUT_OTHERS.keys())
    assert not unclassified, (
        f"new routes {unclassified}: add each to PROBES in {__name__} (what every role asks and gets) or, if "
        "it is about no other user's content, to NOT_ABOUT_OTHERS with the reason"
    )
    assert not sorted((PROBES.keys() | NOT_ABOUT_OTHERS.keys()) - routes), "entries for routes that are gone"
    assert not PROBES.keys() & NOT_ABOUT_OTHERS.keys(), "a route is both probed and classified as not about others"


@pytest.mark.parametrize(("key", "probe"), CASES)
async def test_every_role_gets_exactly_what_it_may_see(world: World, key: str, probe: Probe):
    method, pattern = _pattern(key)
    problems: list[str] = []
    for role in ROLES:
        made = await probe.arrange(world) if probe.arrange is not None else world.made
        actor = await world.actor(role, probe.fresh_actor)
        watched = probe.observe is not None and role != "owner"
        before = await probe.observe(world, made) if watched else None  # type: ignore[misc]
        verb, url, body = probe.request(world, made)
        assert verb == method and pattern.fullmatch(url), f"the probe of {key} asks {verb} {url}"
        headers = actor.headers if actor is not None else {}
        response = await world.http.request(verb, url, json=body, headers=headers)
        problems += _judge(world, probe, role, response)
        if watched and await probe.observe(world, made) != before:  # type: ignore[misc]
            problems.append(f"{role}: the owner's side changed")
        if probe.check is not None:
            await probe.check(world, role, actor, response)
    assert not problems, "\n".join(problems)


def _judge(w: World, probe: Probe, role: str, response: httpx.Response) -> list[str]:
    body = response.text
    want = probe.statuses[role]
    if response.status_code != want:
        return [f"{role}: {response.status_code} instead of {want}: {body[:300]}"]
    problems = []
    if role in probe.reasons:
        details = response.json()["error"]["details"]
        got = [d["reason"] for d in details if d["type"] == "ErrorInfo"]
        if got != [probe.reasons[role]]:
            problems.append(f"{role}: reasons {got} instead of {[probe.reasons[role]]}")
    markers = probe.markers(w) if probe.markers is not None else w.profile + w.content
    if role in probe.sees:
        if not any(marker in body for marker in markers):
            problems.append(f"{role} should see the owner's {markers} but got {body[:300]}")
    elif role in OUTSIDERS:
        hidden = probe.hidden(w) if probe.hidden is not None else markers + w.profile
        problems += [f"{role} was shown {marker!r}: {body[:300]}" for marker in hidden if marker in body]
    if role in OUTSIDERS:
        problems += [f"{role} was shown content {marker!r}: {body[:300]}" for marker in w.content if marker in body]
    return problems
