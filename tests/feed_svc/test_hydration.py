"""The Hydrator's caches and its `fresh` read, against the real post, graph and media services (this
Hydrator listens to no events, so only its own reads change what it holds)."""

from __future__ import annotations

from google.protobuf.field_mask_pb2 import FieldMask

from feed_svc.hydration import Hydrator
from glimpse.post.v1 import post_pb2
from tests.conftest import Stubs
from tests.feed_svc.actions import create_post


def hydrator(stubs: Stubs) -> Hydrator:
    return Hydrator(stubs.post, stubs.graph, stubs.media, ttl_seconds=600, max_items=100, timeout=5)


async def test_a_fresh_read_shows_an_edit_the_cache_does_not_yet_and_refills_it(stubs, make_account, upload_photo):
    author = await make_account()
    post_id = await create_post(stubs, upload_photo, author, caption="before #old")
    cached = hydrator(stubs)
    assert (await cached.items([post_id]))[post_id].caption == "before #old"
    await stubs.post.UpdatePost(
        post_pb2.UpdatePostRequest(
            post=post_pb2.Post(id=post_id, caption="after #new"), update_mask=FieldMask(paths=["caption"])
        ),
        metadata=author.metadata,
    )
    assert (await cached.items([post_id]))[post_id].caption == "before #old"  # within the cache's TTL
    fresh = (await cached.items([post_id], fresh=True))[post_id]
    assert (fresh.caption, list(fresh.hashtags)) == ("after #new", ["new"])
    assert fresh.update_time.ToDatetime() > fresh.create_time.ToDatetime()
    assert (await cached.items([post_id]))[post_id].caption == "after #new"


async def test_a_forgotten_post_is_read_again(stubs, make_account, upload_photo):
    author = await make_account()
    post_id = await create_post(stubs, upload_photo, author)
    cached = hydrator(stubs)
    assert set(await cached.items([post_id, 1])) == {post_id}
    await stubs.post.DeletePost(post_pb2.DeletePostRequest(post_id=post_id), metadata=author.metadata)
    assert set(await cached.items([post_id])) == {post_id}  # still cached: the event would evict it
    cached.forget_post(post_id)
    assert await cached.items([post_id]) == {}
