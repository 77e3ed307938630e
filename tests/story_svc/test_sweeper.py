"""The expiry sweeper and the story photo's life in media_svc: `stories.created` renders the photo
as a post's, and a story deleted (by its author, or swept once expired) takes its photo's record and
objects with it. The sweeper deletes in bounded batches, skips active stories and is idempotent."""

from __future__ import annotations

import asyncio
import datetime as dt

from glimpse.media.v1 import media_pb2
from mesh.events import STORY_DELETED
from mesh.runtime import open_runtime
from story_svc import models
from story_svc.sweeper import Sweeper
from tests.story_svc.conftest import age, execute, outbox_events

READY = media_pb2.MEDIA_STATUS_READY


async def media_status(stubs, media_id: int) -> int | None:
    found = (await stubs.media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=[media_id]))).media
    return found[0].status if found else None


async def eventually(check, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.1)


async def test_sweeper_deletes_expired_stories_in_batches_and_their_photos(
    story_settings, stories, stubs, make_account, new_story, media_worker, sql
):
    author = await make_account()
    expired = [await new_story(author) for _ in range(5)]
    active = await new_story(author)
    # stories.created: the worker renders a story's photo as it does a post's.
    for story in (*expired, active):
        await eventually(lambda s=story: _is(stubs, s.media_id, READY))
    sizes = {
        r.size
        for r in (await stubs.media.BatchGetMedia(media_pb2.BatchGetMediaRequest(media_ids=[active.media_id])))
        .media[0]
        .renditions
    }
    assert {1080, 150} <= sizes
    for story in expired:
        await age(sql, story.id)

    async with open_runtime(story_settings) as runtime:
        outbox = runtime.outbox(models.outbox, runtime.host("sweeper-test", "127.0.0.1:0"))
        sweeper = Sweeper(runtime.db, outbox, interval=dt.timedelta(hours=1), batch_size=2, max_batches=2)
        # Bounded: two batches of two per pass; expired stories of other tests may be among them.
        first = await sweeper.sweep()
        assert first == 4
        while await sweeper.sweep():
            pass
        assert await sweeper.sweep() == 0  # idempotent: nothing is deleted twice

    ids = [s.id for s in expired]
    left = await execute(sql, "SELECT count(*) FROM stories.stories WHERE id = ANY(:ids)", ids=ids)
    assert left == 0
    assert await execute(sql, "SELECT count(*) FROM stories.stories WHERE id = :id", id=active.id) == 1
    for story in expired:
        assert [e.media_id for e in await outbox_events(sql, STORY_DELETED, story_id=story.id)] == [story.media_id]
    # stories.deleted: media_svc deletes the swept stories' photos, and only theirs.
    for story in expired:
        await eventually(lambda s=story: _gone(stubs, s.media_id))
    assert await media_status(stubs, active.media_id) == READY


async def _is(stubs, media_id: int, status: int) -> bool:
    return await media_status(stubs, media_id) == status


async def _gone(stubs, media_id: int) -> bool:
    return await media_status(stubs, media_id) is None
