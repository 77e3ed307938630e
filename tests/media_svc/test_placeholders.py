"""Placeholders: the worker stores a blurhash on each attached photo from its post's (or story's)
event, apart from renditions: upright like them, only on the post's own PROCESSING photos, never
replacing one already shown, and none for an upload that is not a photo."""

from __future__ import annotations

from glimpse.events.v1 import events_pb2
from glimpse.media.v1 import media_pb2
from media_svc.consumers import PLACEHOLDERS_DURABLE, PlaceholderConsumer
from tests.media_svc import photos
from tests.media_svc.conftest import new_post_id, publish_post_created, wait_until_consumed


async def attach(media, account, post_id, media_ids):
    return await media.AttachMedia(
        media_pb2.AttachMediaRequest(post_id=post_id, media_ids=media_ids), metadata=account.metadata
    )


async def found(media, ids) -> list[media_pb2.Media]:
    return list((await media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=ids))).media)


async def test_every_photo_of_a_post_gets_an_upright_blurhash_before_any_rendition(
    media, make_account, upload, placeholders
):
    """No posts.created is published here, so no rendition can exist: the blurhashes are the placeholders'."""
    user = await make_account()
    uploads = [
        await upload(user, photos.phone_jpeg(3000, 2000), "image/jpeg"),
        await upload(user, photos.transparent_png(), "image/png"),
        await upload(user, photos.phone_heic(1200, 800, thumbnail=160), "image/heic"),
        await upload(user, photos.encoded(photos.quadrants(900, 600), "AVIF", quality=80), "image/avif"),
    ]
    ids = [g.media_id for g in uploads]
    post = new_post_id()
    await attach(media, user, post, ids)

    assert await placeholders.make(post, user.id, ids) == 4
    made = await found(media, ids)
    assert all(m.status == media_pb2.MEDIA_STATUS_PROCESSING and len(m.blurhash) == 28 for m in made)
    assert all(not m.renditions for m in made)
    # The sideways phone photos' placeholders are upright: portrait (3 by 4 components, "T"), like
    # their renditions; the others landscape (4 by 3, "L").
    assert [m.blurhash[0] for m in made] == ["T", "L", "T", "L"]
    # A redelivered event changes nothing.
    assert await placeholders.make(post, user.id, ids) == 0
    assert [m.blurhash for m in await found(media, ids)] == [m.blurhash for m in made]


async def test_only_the_post_s_own_processing_photos_get_one(media, make_account, upload, placeholders):
    """An event never grants access to other media: another post's, another owner's, an unattached one."""
    user, other = await make_account(), await make_account()
    mine, elsewhere, unattached = [(await upload(user, photos.tiny_jpeg())).media_id for _ in range(3)]
    theirs = (await upload(other, photos.tiny_jpeg())).media_id
    post, other_post, their_post = new_post_id(), new_post_id(), new_post_id()
    await attach(media, user, post, [mine])
    await attach(media, user, other_post, [elsewhere])
    await attach(media, other, their_post, [theirs])

    assert await placeholders.make(post, user.id, [mine, elsewhere, unattached, theirs, 424242]) == 1
    hashes = {m.id: m.blurhash for m in await found(media, [mine, elsewhere, unattached, theirs])}
    assert len(hashes.pop(mine)) == 28 and set(hashes.values()) == {""}
    assert await placeholders.make(their_post, user.id, [theirs]) == 0  # not the author's photo


async def test_an_upload_that_is_not_a_photo_gets_none(media, make_account, upload, placeholders):
    """The rendition consumer, not the placeholder, tells the uploader what is wrong with the file."""
    user = await make_account()
    grant = await upload(user, photos.NOT_AN_IMAGE)
    post = new_post_id()
    await attach(media, user, post, [grant.media_id])
    assert await placeholders.make(post, user.id, [grant.media_id]) == 0
    [kept] = await found(media, [grant.media_id])
    assert (kept.status, kept.blurhash) == (media_pb2.MEDIA_STATUS_PROCESSING, "")


async def test_a_story_s_photo_gets_one_from_stories_created(media, make_account, upload, placeholders):
    user = await make_account()
    grant = await upload(user, photos.phone_jpeg(1600, 1200))
    story = new_post_id()  # story_svc attaches a story's photo to the story id as post_svc does
    await attach(media, user, story, [grant.media_id])
    event = events_pb2.StoryCreated(story_id=story, author_id=user.id, media_id=grant.media_id)
    await PlaceholderConsumer(placeholders).on_story_created(event)
    assert len((await found(media, [grant.media_id]))[0].blurhash) == 28


async def test_the_worker_makes_them_from_posts_created(media, make_account, upload, bus, media_worker):
    """The running worker's placeholder consumer takes the event like the fan-out does."""
    user = await make_account()
    grant = await upload(user, photos.phone_jpeg(1600, 1200))
    post = new_post_id()
    await attach(media, user, post, [grant.media_id])
    await publish_post_created(bus, post, user.id, [grant.media_id])
    await wait_until_consumed(bus, PLACEHOLDERS_DURABLE)  # acked once the placeholder is stored
    assert len((await found(media, [grant.media_id]))[0].blurhash) == 28
