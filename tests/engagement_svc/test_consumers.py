"""engagement_svc's consumers: a deleted post takes its likes, comments, saves and counts with it (and
later writes are refused), and @mentions in captions are announced once per existing user."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest

from engagement_svc import models
from engagement_svc.consumers import PostEvents
from engagement_svc.likes import LikeService
from engagement_svc.mentions import MentionResolver
from engagement_svc.posts import PostDirectory
from glimpse.engagement.v1 import engagement_pb2
from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from mesh.db import Database
from mesh.errors import NotFound
from mesh.events import USER_MENTIONED, PoisonMessage
from mesh.ids import IdGenerator
from mesh.outbox import Outbox
from tests.engagement_svc.conftest import outbox_events, refused, scalar, wait_purged
from tests.feed_svc.actions import delete_post
from visibility import Visibility


@dataclass(frozen=True)
class Replica:
    """One engagement_svc process's objects, built on the test database and the running post_svc and
    graph_svc: its own post cache, its likes and its event handlers (called directly, as a
    redelivery would call them)."""

    posts: PostDirectory
    likes: LikeService
    handlers: PostEvents


@pytest.fixture
async def replica(database_url: str, graph_addr: str, post_addr: str) -> AsyncIterator[Callable[[], Replica]]:
    db = Database(database_url, pool_size=2)
    outbox = Outbox(models.outbox, IdGenerator())
    async with grpc.aio.insecure_channel(post_addr) as posts, grpc.aio.insecure_channel(graph_addr) as graph:
        graph_stub = graph_pb2_grpc.GraphServiceStub(graph)
        visibility = Visibility(graph_stub, timeout=5)
        mentions = MentionResolver(graph_stub, visibility, timeout=5)

        def make() -> Replica:
            directory = PostDirectory(
                db,
                post_pb2_grpc.PostServiceStub(posts),
                visibility=visibility,
                ttl_seconds=60,
                max_items=100,
                timeout=5,
            )
            return Replica(
                directory,
                LikeService(db, outbox, directory, counter_shards=4),
                PostEvents(db, outbox, directory, mentions),
            )

        yield make
    await db.dispose()


@pytest.fixture
def handlers(replica: Callable[[], Replica]) -> PostEvents:
    return replica().handlers


async def rows_of(sql, post_id: int) -> dict[str, int]:
    counts = {}
    for table in ("likes", "comments", "saves", "post_counters", "comment_requests"):
        counts[table] = await scalar(sql, f"SELECT count(*) FROM engagement.{table} WHERE post_id = :p", p=post_id)
    return counts


async def test_a_deleted_post_is_purged_once_and_refuses_later_writes(
    engagement, make_account, new_post, stubs, sql, handlers
):
    author, fan = await make_account(), await make_account()
    post_id, other_post = await new_post(author), await new_post(author)
    for target in (post_id, other_post):
        await engagement.LikePost(engagement_pb2.LikePostRequest(post_id=target), metadata=fan.metadata)
        await engagement.SavePost(engagement_pb2.SavePostRequest(post_id=target), metadata=fan.metadata)
        thread = await engagement.CreateComment(
            engagement_pb2.CreateCommentRequest(post_id=target, text="nice", request_id=f"k{target}"),
            metadata=fan.metadata,
        )
        await engagement.CreateComment(
            engagement_pb2.CreateCommentRequest(post_id=target, text="thanks", parent_comment_id=thread.id),
            metadata=author.metadata,
        )
    before = await rows_of(sql, post_id)
    assert all(before.values()), before
    await delete_post(stubs, author, post_id)
    await wait_purged(sql, post_id)
    assert set((await rows_of(sql, post_id)).values()) == {0}
    # Nothing of the other post went with it (its counter rows are as many as the shards it drew).
    before.pop("post_counters")
    assert await rows_of(sql, other_post) | {"post_counters": None} == before | {"post_counters": None}
    # Delivered again: nothing more to remove, no error.
    await handlers.on_post_deleted(events_pb2.PostDeleted(event_id=1, post_id=post_id, author_id=author.id))
    assert set((await rows_of(sql, post_id)).values()) == {0}
    found = await engagement.BatchGetEngagement(
        engagement_pb2.BatchGetEngagementRequest(post_ids=[post_id]), metadata=fan.metadata
    )
    assert (found.engagement[0].like_count, found.engagement[0].comment_count) == (0, 0)
    code, reason, _ = await refused(
        engagement.CreateComment(
            engagement_pb2.CreateCommentRequest(post_id=post_id, text="late", request_id=f"k{post_id}"),
            metadata=fan.metadata,
        )
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "POST_NOT_FOUND")


async def test_a_write_racing_the_purge_is_refused_even_with_a_stale_cache(make_account, new_post, sql, replica):
    """Replica two purges the post while replica one still believes it alive (its watch missed the
    event): one's next like is refused by its own transaction, and leaves no row behind."""
    one, two = replica(), replica()
    author = await make_account()
    post_id = await new_post(author)
    assert (await one.likes.like(author.id, post_id)).like_count == 1  # one's cache now holds the post
    await two.handlers.on_post_deleted(events_pb2.PostDeleted(event_id=1, post_id=post_id, author_id=author.id))
    with pytest.raises(NotFound):
        await one.likes.like(author.id + 1, post_id)
    assert (await rows_of(sql, post_id))["likes"] == 0


async def test_caption_mentions_are_announced_once_per_existing_user(make_account, new_post, sql, handlers):
    author, ada, bob = await make_account(), await make_account(), await make_account()
    caption = f"with @{ada.user.username} and @{bob.user.username.upper()}, not @nobody_{author.id}"
    caption += f", me @{author.user.username}"
    post_id = await new_post(author, caption)
    deadline = asyncio.get_running_loop().time() + 15
    while len(mentions := await outbox_events(sql, USER_MENTIONED, post_id=post_id)) < 2:
        assert asyncio.get_running_loop().time() < deadline, mentions
        await asyncio.sleep(0.05)
    assert sorted((m.mentioned_user_id, m.actor_id, m.comment_id) for m in mentions) == sorted(
        [(ada.id, author.id, 0), (bob.id, author.id, 0)]
    )
    # Delivered again (or with a name added by a newer producer): each user is told once.
    again = events_pb2.PostCreated(
        event_id=1,
        post_id=post_id,
        author_id=author.id,
        mentioned_usernames=[ada.user.username, bob.user.username, "not a name!"],
    )
    await handlers.on_post_created(again)
    assert len(await outbox_events(sql, USER_MENTIONED, post_id=post_id)) == 2


async def test_events_without_ids_are_poison(handlers):
    with pytest.raises(PoisonMessage):
        await handlers.on_post_deleted(events_pb2.PostDeleted(event_id=1))
    with pytest.raises(PoisonMessage):
        await handlers.on_post_created(events_pb2.PostCreated(event_id=1, post_id=5))
