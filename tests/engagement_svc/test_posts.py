"""What engagement_svc knows of posts: a post deleted here is refused without asking post_svc, and a
burst of requests for a post not yet cached asks post_svc once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import REGISTRY

from engagement_svc import repository as repo
from engagement_svc.posts import PostDirectory
from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from mesh.db import Database
from mesh.errors import InvalidArgument, NotFound
from visibility import Visibility

BATCH_GET_POSTS = "/glimpse.post.v1.PostService/BatchGetPosts"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=2)
    yield database
    await database.dispose()


def batch_gets_served() -> float:
    """BatchGetPosts calls the in-process post_svc has answered (mesh.interceptors counts them)."""
    value = REGISTRY.get_sample_value("glimpse_grpc_server_handled_total", {"method": BATCH_GET_POSTS, "code": "OK"})
    return value or 0.0


def directory(db: Database, channel: grpc.aio.Channel) -> PostDirectory:
    # No viewer is passed below (a service acting for no user), so graph_svc is never asked.
    visibility = Visibility(graph_pb2_grpc.GraphServiceStub(channel), timeout=2)
    return PostDirectory(
        db, post_pb2_grpc.PostServiceStub(channel), visibility=visibility, ttl_seconds=60, max_items=100, timeout=2
    )


async def test_a_post_deleted_here_is_refused_without_post_svc(db):
    async with grpc.aio.insecure_channel("127.0.0.1:1") as nowhere:  # nothing listens: any call fails
        posts = directory(db, nowhere)
        async with db.unit_of_work() as session:
            await repo.purge(session, 7240392310784777)
        with pytest.raises(NotFound) as refused:
            await posts.author_of(7240392310784777, None)
        assert refused.value.reason == "POST_NOT_FOUND"
        with pytest.raises(grpc.aio.AioRpcError) as asked:
            await posts.author_of(7240392310784778, None)
        assert asked.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(InvalidArgument):
            await posts.author_of(0, None)


async def test_a_burst_for_an_uncached_post_asks_post_svc_once(db, post_addr, make_account, new_post):
    author = await make_account()
    post_id = await new_post(author)
    async with grpc.aio.insecure_channel(post_addr) as channel:
        posts = directory(db, channel)
        before = batch_gets_served()
        authors = await asyncio.gather(*(posts.author_of(post_id, None) for _ in range(20)))
        assert set(authors) == {author.id}
        assert batch_gets_served() - before == 1
        await posts.author_of(post_id, None)  # cached
        assert batch_gets_served() - before == 1
        posts.forget(post_id)
        await posts.author_of(post_id, None)
        assert batch_gets_served() - before == 2
