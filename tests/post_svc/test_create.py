"""CreatePost against the real stack: bad text changes nothing, a failure after the photos were attached
hands them back (so a retry succeeds, with the same request id or with none), and a request id makes
a retry return the same post while refusing to reuse it for another one."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import httpx
import pytest
from sqlalchemy import MetaData

from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.channels import open_channel
from mesh.db import Database
from mesh.ids import IdGenerator
from mesh.outbox import Outbox, outbox_table
from mesh.runtime import lease_id_shard
from mesh.server import ServiceHost
from post_svc.service import PostService
from post_svc.servicer import PostServicer
from post_svc.tags import TagService
from tests.conftest import Account, Stubs
from tests.media_svc.conftest import error_details
from visibility import Visibility

Upload = Callable[[Account], Awaitable[int]]


async def media_of(stubs: Stubs, media_id: int) -> media_pb2.Media:
    (found,) = (await stubs.media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=[media_id]))).media
    return found


async def posts_of(stubs: Stubs, account: Account) -> list[post_pb2.Post]:
    request = post_pb2.ListPostsRequest(parent=f"users/{account.id}")
    return list((await stubs.post.ListPosts(request, metadata=account.metadata)).posts)


async def grid_of(http: httpx.AsyncClient, account: Account) -> list[dict]:
    response = await http.get(f"/v1/users/{account.id}/posts", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_nul_caption_is_a_400_and_the_photo_posts_right_after(http, make_account, upload_photo: Upload):
    """The issue's reproduction, through the gateway: before the fix the NUL reached PostgreSQL after
    the photo was attached (a 500, then 'already attached' on every retry)."""
    author = await make_account()
    for key in ("nul-caption-1", None):
        photo = await upload_photo(author)
        headers = {**author.headers, **({"Idempotency-Key": key} if key else {})}
        refused = await http.post(
            "/v1/posts", headers=headers, json={"caption": "hello\u0000world", "media_ids": [str(photo)]}
        )
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "INVALID_ARGUMENT"
        assert error["message"].startswith("caption: must not contain control characters: U+0000 at offset 5")
        created = await http.post(
            "/v1/posts", headers=headers, json={"caption": "hello world", "media_ids": [str(photo)]}
        )
        assert created.status_code == 201, created.text
        assert created.json()["caption"] == "hello world"
        assert [m["id"] for m in created.json()["media"]] == [str(photo)]
    assert [post["caption"] for post in await grid_of(http, author)] == ["hello world", "hello world"]


@pytest.fixture
async def failing_post(
    database_url: str, media_addr: str, graph: graph_pb2_grpc.GraphServiceStub
) -> AsyncIterator[post_pb2_grpc.PostServiceStub]:
    """post_svc as deployed except that its outbox table does not exist: every create attaches the
    photos, inserts the post and then fails on the event's insert (the unit of work rolls back)."""
    db = Database(database_url)
    ids = IdGenerator(await lease_id_shard(db))  # as a deployed replica: no id shared with the others
    broken = Outbox(outbox_table(MetaData(schema="no_such_schema")), ids)
    async with open_channel(media_addr) as media_channel:
        visibility = Visibility(graph, timeout=5.0)
        service = PostService(
            db,
            broken,
            ids,
            media_pb2_grpc.MediaServiceStub(media_channel),
            visibility=visibility,
            timeout=5.0,
        )
        host = ServiceHost("post_svc_failing", "127.0.0.1:0", grace_seconds=0.5)
        host.add_servicer(
            post_pb2_grpc.add_PostServiceServicer_to_server,
            PostServicer(service, TagService(db, visibility=visibility)),
            post_pb2.DESCRIPTOR.services_by_name["PostService"],
        )
        port = await host.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield post_pb2_grpc.PostServiceStub(channel)
        await host.stop()
    await db.dispose()


async def test_a_failure_after_attach_hands_the_photos_back_for_a_retry(
    stubs: Stubs, failing_post, make_account, upload_photo: Upload, caplog
):
    author = await make_account()
    tag = f"attach{uuid.uuid4().hex[:8]}"
    for created, request_id in enumerate(("after-attach-1", "")):
        photos = [await upload_photo(author), await upload_photo(author)]
        request = post_pb2.CreatePostRequest(caption=f"two photos #{tag}", media_ids=photos, request_id=request_id)
        with caplog.at_level(logging.INFO, logger="post_svc.service"), pytest.raises(grpc.aio.AioRpcError) as caught:
            await failing_post.CreatePost(request, metadata=author.metadata)
        assert caught.value.code() == grpc.StatusCode.INTERNAL
        for photo in photos:
            media = await media_of(stubs, photo)
            assert (media.status, media.post_id) == (media_pb2.MEDIA_STATUS_PENDING, 0), "the photo stayed attached"
        assert "create failed; its media were detached" in caplog.messages
        caplog.clear()
        # The post's tag rows were rolled back with it: the tag counts only the posts that exist.
        assert (await stubs.post.GetTag(post_pb2.GetTagRequest(tag=tag))).post_count == created
        # The retry, on the real post_svc: same request id (the reserved post id is reused) or none.
        post = await stubs.post.CreatePost(request, metadata=author.metadata)
        assert list(post.media_ids) == photos
        for photo in photos:
            assert (await media_of(stubs, photo)).post_id == post.id
    listed = await stubs.post.ListPosts(
        post_pb2.ListPostsRequest(parent=f"users/{author.id}"), metadata=author.metadata
    )
    assert len(listed.posts) == 2
    assert (await stubs.post.GetTag(post_pb2.GetTagRequest(tag=tag))).post_count == 2


async def test_a_refused_attach_changes_nothing(stubs: Stubs, failing_post, make_account, upload_photo: Upload):
    author, other = await make_account(), await make_account()
    mine, theirs = await upload_photo(author), await upload_photo(other)
    request = post_pb2.CreatePostRequest(caption="not all mine", media_ids=[mine, theirs], request_id="refused-1")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await failing_post.CreatePost(request, metadata=author.metadata)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await media_of(stubs, mine)).status == media_pb2.MEDIA_STATUS_PENDING
    assert (await media_of(stubs, theirs)).status == media_pb2.MEDIA_STATUS_PENDING
    post = await stubs.post.CreatePost(
        post_pb2.CreatePostRequest(caption="mine only", media_ids=[mine]), metadata=author.metadata
    )
    assert list(post.media_ids) == [mine]


async def test_the_same_request_id_returns_the_same_post_and_refuses_another_body(
    stubs: Stubs, make_account, upload_photo: Upload
):
    author = await make_account()
    photo = await upload_photo(author)
    request = post_pb2.CreatePostRequest(caption="once", media_ids=[photo], request_id="same-key-1")
    first = await stubs.post.CreatePost(request, metadata=author.metadata)
    again = await stubs.post.CreatePost(request, metadata=author.metadata)
    assert again == first
    other_photo = await upload_photo(author)
    for changed in (
        post_pb2.CreatePostRequest(caption="twice", media_ids=[photo], request_id="same-key-1"),
        post_pb2.CreatePostRequest(caption="once", media_ids=[other_photo], request_id="same-key-1"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.post.CreatePost(changed, metadata=author.metadata)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_details(caught.value)[0] == "IDEMPOTENCY_KEY_REUSED"
    # The refused request took nothing: the other photo is still free, and one post exists.
    assert (await media_of(stubs, other_photo)).status == media_pb2.MEDIA_STATUS_PENDING
    listed = await stubs.post.ListPosts(
        post_pb2.ListPostsRequest(parent=f"users/{author.id}"), metadata=author.metadata
    )
    assert [p.id for p in listed.posts] == [first.id]
    # Keys are per author: another author's same key is a new post.
    someone = await make_account()
    theirs = await stubs.post.CreatePost(
        post_pb2.CreatePostRequest(caption="once", media_ids=[await upload_photo(someone)], request_id="same-key-1"),
        metadata=someone.metadata,
    )
    assert theirs.id != first.id
