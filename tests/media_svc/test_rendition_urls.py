"""Photo bytes follow the visibility rule: rendition URLs are signed and stop working within the bound
(two slots: one hour), the same for everyone within a slot; a viewer who is blocked or unfollows a
private account is handed no URL any more, and the ones they hold expire within the bound.

moto serves presigned URLs without checking signature or expiry, so the signature is checked here
against the SigV4 rule (tests/media_svc/signatures.py) and the expiry from the URL's own fields.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from glimpse.feed.v1 import feed_pb2
from glimpse.graph.v1 import graph_pb2
from glimpse.media.v1 import media_pb2
from glimpse.post.v1 import post_pb2
from media_svc.rendition_urls import RenditionUrls
from media_svc.settings import MediaSettings
from media_svc.storage import ObjectStore
from tests.conftest import Account, Stubs
from tests.feed_svc.actions import drain, feed_ids
from tests.media_svc import photos, signatures
from tests.media_svc.conftest import new_post_id, publish_post_created, wait_until_settled

SLOT = dt.timedelta(minutes=30)
NOON = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def store_of(settings: MediaSettings) -> ObjectStore:
    return ObjectStore(
        settings.s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key,
        settings.s3_region,
        settings.bucket,
        settings.s3_public_endpoint,
        settings.media_public_base_url,
    )


def signed_for_the_store(url: str, settings: MediaSettings) -> bool:
    """Whether the store (reached at the public endpoint) accepts the URL's signature."""
    return signatures.signature_holds(
        url,
        host=urlsplit(settings.s3_public_endpoint or settings.s3_endpoint).netloc,
        secret_key=settings.s3_secret_key,
    )


class Clock:
    """The time RenditionUrls reads, set by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def test_everyone_in_a_slot_gets_the_same_url_working_one_to_two_slots(media_settings):
    clock = Clock(NOON)
    urls = RenditionUrls(store_of(media_settings), slot=SLOT, max_cached=10, clock=clock)
    assert urls.bound == dt.timedelta(hours=1)
    key = "u/1/r/2/1080.webp"

    first = urls.signed(key)
    clock.now = NOON + SLOT - dt.timedelta(seconds=1)  # the slot's last second
    last = urls.signed(key)
    assert last == first
    clock.now = NOON + SLOT  # the next slot
    following = urls.signed(key)
    assert following.url != first.url

    for handed_at, signed in ((NOON, first), (NOON + SLOT - dt.timedelta(seconds=1), last), (NOON + SLOT, following)):
        presigned = signatures.parse(signed.url)
        assert presigned.expires_at == signed.expires_at
        assert SLOT < signed.expires_at - handed_at <= urls.bound
        assert presigned.signed_at <= handed_at  # valid from the moment it is handed out
        assert parsedate_to_datetime(presigned.query["response-expires"]) == signed.expires_at
        assert signed_for_the_store(signed.url, media_settings)
    assert first.expires_at == NOON + 2 * SLOT
    assert following.expires_at == NOON + 3 * SLOT
    # Another rendition in the same slot: its own URL, the same expiry.
    other = urls.signed("u/1/r/2/640.webp")
    assert other.url != following.url and other.expires_at == following.expires_at


def test_a_slot_that_cannot_be_presigned_is_refused(media_settings):
    store = store_of(media_settings)
    for slot in (dt.timedelta(0), dt.timedelta(seconds=1.5), dt.timedelta(days=4)):
        with pytest.raises(ValueError, match="slot"):
            RenditionUrls(store, slot=slot, max_cached=10)


async def test_a_photo_s_urls_are_signed_and_expire_within_the_bound(
    media, bus, make_account, upload, media_settings, s3, media_worker
):
    user = await make_account()
    grant = await upload(user, photos.phone_jpeg(1600, 1200))
    post_id = new_post_id()
    attached = await media.AttachMedia(
        media_pb2.AttachMediaRequest(post_id=post_id, media_ids=[grant.media_id]), metadata=user.metadata
    )
    # Until the renditions exist: no URL at all (the worker's placeholder comes with the post's event).
    [processing] = attached.media
    assert (processing.status, list(processing.renditions)) == (media_pb2.MEDIA_STATUS_PROCESSING, [])
    await publish_post_created(bus, post_id, user.id, [grant.media_id])
    # The URLs were signed between these two instants: the bounds below need no tolerance.
    before = dt.datetime.now(dt.UTC)
    [ready] = await wait_until_settled(media, [grant.media_id])
    after = dt.datetime.now(dt.UTC)

    slot, bound = media_settings.rendition_url_slot, 2 * media_settings.rendition_url_slot
    assert len(ready.renditions) == 3
    for rendition in ready.renditions:
        expires_at = rendition.expire_time.ToDatetime(dt.UTC)
        assert signatures.parse(rendition.url).expires_at == expires_at
        assert before + slot <= expires_at <= after + bound
        assert signed_for_the_store(rendition.url, media_settings)
        signed = await s3.get(rendition.url)
        assert signed.status_code == 200
        assert parsedate_to_datetime(signed.headers["expires"]) == expires_at
        unsigned = rendition.url.split("?", 1)[0]
        assert (await s3.get(unsigned)).status_code == 403


async def _make_private(stubs: Stubs, owner: Account) -> None:
    await stubs.graph.UpdateUser(
        graph_pb2.UpdateUserRequest(user=graph_pb2.User(is_private=True), update_mask=FieldMask(paths=["is_private"])),
        metadata=owner.metadata,
    )


async def _items_for(stubs: Stubs, viewer: Account, post_id: int) -> list[feed_pb2.FeedItem]:
    response = await stubs.feed.BatchGetFeedItems(
        feed_pb2.BatchGetFeedItemsRequest(post_ids=[post_id]), metadata=viewer.metadata
    )
    return list(response.items)


async def _until_hidden(stubs: Stubs, viewer: Account, post_id: int, within: float = 15.0) -> None:
    """Waits until feed_svc hands `viewer` nothing of the post (its visibility cache is dropped by the
    graph event within moments, and lives 10 s at most)."""
    deadline = asyncio.get_running_loop().time() + within
    while await _items_for(stubs, viewer, post_id):
        assert asyncio.get_running_loop().time() < deadline, f"post {post_id} still handed out after {within}s"
        await asyncio.sleep(0.05)


@pytest.mark.usefixtures("fanout", "media_worker")
@pytest.mark.parametrize("removal", ["blocked", "unfollowed"])
async def test_a_viewer_who_loses_access_gets_no_url_and_theirs_expire_within_the_bound(
    stubs: Stubs, make_account, upload_photo, media_settings, bus, database_url, removal
):
    owner, viewer, stranger = [await make_account() for _ in range(3)]
    await _make_private(stubs, owner)
    await stubs.graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=owner.id), metadata=viewer.metadata)
    await stubs.graph.ApproveFollowRequest(
        graph_pb2.ApproveFollowRequestRequest(requester_id=viewer.id), metadata=owner.metadata
    )
    media_id = await upload_photo(owner)
    post = await stubs.post.CreatePost(post_pb2.CreatePostRequest(media_ids=[media_id]), metadata=owner.metadata)
    await wait_until_settled(stubs.media, [media_id])
    await drain(bus, database_url)

    [item] = await _items_for(stubs, viewer, post.id)
    held = [r.url for m in item.media for r in m.renditions]
    assert len(held) == 3
    assert post.id in await feed_ids(stubs, viewer)
    assert await _items_for(stubs, stranger, post.id) == []  # a stranger is never handed a URL

    removed_at = dt.datetime.now(dt.UTC)
    if removal == "blocked":
        await stubs.graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=viewer.id), metadata=owner.metadata)
    else:
        await stubs.graph.UnfollowUser(graph_pb2.UnfollowUserRequest(target_user_id=owner.id), metadata=viewer.metadata)

    await _until_hidden(stubs, viewer, post.id)
    await drain(bus, database_url)
    assert post.id not in await feed_ids(stubs, viewer)
    bound = 2 * media_settings.rendition_url_slot
    for url in held:
        assert signed_for_the_store(url, media_settings)
        assert signatures.parse(url).expires_at <= removed_at + bound
    # The owner still gets URLs for their own photo.
    [own] = await _items_for(stubs, owner, post.id)
    assert len([r for m in own.media for r in m.renditions]) == 3
