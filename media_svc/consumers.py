"""The rendition worker's event handlers: one per event type it consumes.

A story's photo takes the posts' pipeline: story_svc attaches it to the story id as post_svc attaches
a post's photos to the post id, and `stories.created` renders it exactly as `posts.created` does.
`stories.deleted` (a story deleted by its author or swept once expired) deletes the photo's objects
and record: a story's photo belongs to that story alone.

An avatar (media_svc AttachAvatar) is rendered on `media.avatar_attached` into square renditions;
`graph.avatar_discarded` (graph_svc no longer shows it: replaced, removed, superseded) deletes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from glimpse.events.v1 import events_pb2
from media_svc import repository as repo
from media_svc.models import MediaPurpose
from media_svc.placeholders import Placeholders
from media_svc.renditions import Renditions
from media_svc.settings import MediaSettings
from media_svc.storage import ObjectStore
from media_svc.sweeper import object_keys
from mesh.bus import ConsumerSpec, DeadLetterHandler, Handler
from mesh.db import Database
from mesh.errors import Unavailable
from mesh.events import (
    AVATAR_ATTACHED,
    AVATAR_DISCARDED,
    POST_CREATED,
    STORY_CREATED,
    STORY_DELETED,
    EventType,
    PoisonMessage,
)

log = logging.getLogger("media_svc.consumers")

RENDITIONS_DURABLE = "media_renditions"
PLACEHOLDERS_DURABLE = "media_placeholders"
STORY_PLACEHOLDERS_DURABLE = "media_story_placeholders"
STORY_RENDITIONS_DURABLE = "media_story_renditions"
STORY_DELETIONS_DURABLE = "media_story_deletions"
AVATAR_RENDITIONS_DURABLE = "media_avatar_renditions"
AVATAR_DISCARDS_DURABLE = "media_avatar_discards"


async def delete_media_if(
    db: Database, store: ObjectStore, media_id: int, belongs: Callable[[repo.MediaRecord], bool]
) -> bool:
    """Deletes media `media_id`'s objects, then its record, in the row's lock (as the sweeper deletes
    abandoned uploads), if it exists and `belongs(record)`; whether it did. Unavailable if the store
    is down (the caller's event is retried)."""
    async with db.unit_of_work() as session:
        record = (await repo.lock_media(session, [media_id])).get(media_id)
        if record is None or not belongs(record):
            return False
        await store.delete(object_keys(record))
        await repo.delete_media(session, [record.id])
    return True


def _render_and_delete(
    settings: MediaSettings,
    *,
    render: tuple[str, EventType[Any], Handler],
    on_dead_letter: DeadLetterHandler,
    delete: tuple[str, EventType[Any], Handler],
) -> list[ConsumerSpec]:
    """A pair of consumers for one kind of media, each (durable, event, handler): its renditions (the
    worker's retries, ack wait and a small batch; dead letters mark it FAILED) and its deletion."""
    max_deliver, backoff = settings.rendition_max_deliveries, settings.rendition_backoff_seconds
    return [
        ConsumerSpec(
            render[0],
            [render[1]],
            render[2],
            max_deliver=max_deliver,
            backoff=backoff,
            ack_wait_seconds=settings.rendition_ack_wait_seconds,
            batch=4,
            on_dead_letter=on_dead_letter,
        ),
        ConsumerSpec(delete[0], [delete[1]], delete[2], max_deliver=max_deliver, backoff=backoff),
    ]


def _check(event: events_pb2.PostCreated) -> None:
    if event.post_id <= 0 or event.author_id <= 0:
        raise PoisonMessage("PostCreated without post_id or author_id")


class RenditionConsumer:
    """`posts.created` -> renditions of the post's media."""

    def __init__(self, renditions: Renditions, *, max_deliveries: int) -> None:
        self._renditions = renditions
        self._max_deliveries = max_deliveries

    async def on_post_created(self, event: events_pb2.PostCreated) -> None:
        _check(event)
        await self._renditions.render_post(event.post_id, event.author_id, list(event.media_ids))

    async def on_dead_letter(self, event: events_pb2.PostCreated | None, error: str) -> None:
        """The event failed every delivery: its unfinished media become FAILED, so clients stop waiting."""
        if event is None or event.post_id <= 0:
            return  # no media to name; the dead-letter subject keeps the bytes
        # The technical error is logged by the bus; the uploader gets its kind and what to do.
        kind = error.split(":", 1)[0]
        reason = (
            f"the photo could not be processed after {self._max_deliveries} attempts ({kind}); "
            "upload it again, and contact support if this keeps happening"
        )
        try:
            await self._renditions.fail_post(event.post_id, list(event.media_ids), reason)
        except Unavailable:
            # Must not raise (that would stop the consumer); the media stay PROCESSING.
            log.error("could not mark dead-lettered media as failed", extra={"post_id": event.post_id})


def rendition_consumer(renditions: Renditions, settings: MediaSettings) -> ConsumerSpec:
    consumer = RenditionConsumer(renditions, max_deliveries=settings.rendition_max_deliveries)
    return ConsumerSpec(
        durable=RENDITIONS_DURABLE,
        events=[POST_CREATED],
        handler=consumer.on_post_created,
        max_deliver=settings.rendition_max_deliveries,
        backoff=settings.rendition_backoff_seconds,
        # The bus extends the deadline while a post is rendered, however long it takes; a worker
        # killed mid-render has its post redelivered to another one within this many seconds.
        ack_wait_seconds=settings.rendition_ack_wait_seconds,
        batch=4,
        on_dead_letter=consumer.on_dead_letter,
    )


class PlaceholderConsumer:
    """`posts.created` and `stories.created` -> a blurhash on each of their photos, before and apart
    from renditions (media_svc.placeholders)."""

    def __init__(self, placeholders: Placeholders) -> None:
        self._placeholders = placeholders

    async def on_post_created(self, event: events_pb2.PostCreated) -> None:
        _check(event)
        await self._placeholders.make(event.post_id, event.author_id, list(event.media_ids))

    async def on_story_created(self, event: events_pb2.StoryCreated) -> None:
        if event.story_id <= 0 or event.author_id <= 0 or event.media_id <= 0:
            raise PoisonMessage("StoryCreated without story_id, author_id or media_id")
        await self._placeholders.make(event.story_id, event.author_id, [event.media_id])


def placeholder_consumers(placeholders: Placeholders, settings: MediaSettings) -> list[ConsumerSpec]:
    """One consumer per stream (posts, stories), taking one message per fetch: the worker runs
    `placeholder_concurrency` of each at once, so a burst of posts is not made one after another.
    A few quick retries only: once they are spent, the photo's blurhash comes with its renditions."""
    consumer = PlaceholderConsumer(placeholders)
    return [
        ConsumerSpec(
            durable=durable,
            events=[event],
            handler=handler,
            max_deliver=3,
            backoff=(0.5, 2.0),
            ack_wait_seconds=settings.rendition_ack_wait_seconds,
            batch=1,
        )
        for durable, event, handler in (
            (PLACEHOLDERS_DURABLE, POST_CREATED, consumer.on_post_created),
            (STORY_PLACEHOLDERS_DURABLE, STORY_CREATED, consumer.on_story_created),
        )
    ]


class StoryMediaConsumer:
    """`stories.created` -> renditions of the story's photo; `stories.deleted` -> the photo deleted."""

    def __init__(self, renditions: Renditions, db: Database, store: ObjectStore, *, max_deliveries: int) -> None:
        self._renditions = renditions
        self._db = db
        self._store = store
        self._max_deliveries = max_deliveries

    async def on_story_created(self, event: events_pb2.StoryCreated) -> None:
        if event.story_id <= 0 or event.author_id <= 0 or event.media_id <= 0:
            raise PoisonMessage("StoryCreated without story_id, author_id or media_id")
        await self._renditions.render_post(event.story_id, event.author_id, [event.media_id])

    async def on_story_created_dead_letter(self, event: events_pb2.StoryCreated | None, error: str) -> None:
        """The event failed every delivery: the photo becomes FAILED, so clients stop waiting."""
        if event is None or event.story_id <= 0:
            return
        kind = error.split(":", 1)[0]
        reason = (
            f"the photo could not be processed after {self._max_deliveries} attempts ({kind}); "
            "share it again, and contact support if this keeps happening"
        )
        try:
            await self._renditions.fail_post(event.story_id, [event.media_id], reason)
        except Unavailable:
            log.error("could not mark dead-lettered media as failed", extra={"story_id": event.story_id})

    async def on_story_deleted(self, event: events_pb2.StoryDeleted) -> None:
        """Deletes the photo attached to the story (objects first, then the record, in the row's lock,
        as the sweeper deletes abandoned uploads). Idempotent: a media already gone, or not the
        author's photo of that story, is left alone. Unavailable (retried) if the store is down."""
        if event.story_id <= 0 or event.author_id <= 0 or event.media_id <= 0:
            raise PoisonMessage("StoryDeleted without story_id, author_id or media_id")

        def is_the_story_s(record: repo.MediaRecord) -> bool:
            return record.post_id == event.story_id and record.owner_id == event.author_id

        if await delete_media_if(self._db, self._store, event.media_id, is_the_story_s):
            log.info("story photo deleted", extra={"story_id": event.story_id, "media_id": event.media_id})


def story_consumers(
    renditions: Renditions, db: Database, store: ObjectStore, settings: MediaSettings
) -> list[ConsumerSpec]:
    consumer = StoryMediaConsumer(renditions, db, store, max_deliveries=settings.rendition_max_deliveries)
    return _render_and_delete(
        settings,
        render=(STORY_RENDITIONS_DURABLE, STORY_CREATED, consumer.on_story_created),
        on_dead_letter=consumer.on_story_created_dead_letter,
        delete=(STORY_DELETIONS_DURABLE, STORY_DELETED, consumer.on_story_deleted),
    )


class AvatarConsumer:
    """`media.avatar_attached` -> the avatar's square renditions; `graph.avatar_discarded` -> its
    objects and record deleted."""

    def __init__(self, renditions: Renditions, db: Database, store: ObjectStore, *, max_deliveries: int) -> None:
        self._renditions = renditions
        self._db = db
        self._store = store
        self._max_deliveries = max_deliveries

    async def on_avatar_attached(self, event: events_pb2.AvatarAttached) -> None:
        if event.media_id <= 0 or event.owner_id <= 0:
            raise PoisonMessage("AvatarAttached without media_id or owner_id")
        await self._renditions.render_avatar(event.media_id, event.owner_id)

    async def on_avatar_attached_dead_letter(self, event: events_pb2.AvatarAttached | None, error: str) -> None:
        """The event failed every delivery: the avatar becomes FAILED (graph_svc then stops waiting)."""
        if event is None or event.media_id <= 0:
            return
        kind = error.split(":", 1)[0]
        reason = (
            f"the picture could not be processed after {self._max_deliveries} attempts ({kind}); "
            "upload it again, and contact support if this keeps happening"
        )
        try:
            await self._renditions.fail_avatar(event.media_id, reason)
        except Unavailable:
            log.error("could not mark a dead-lettered avatar as failed", extra={"media_id": event.media_id})

    async def on_avatar_discarded(self, event: events_pb2.AvatarDiscarded) -> None:
        """Deletes the avatar's objects, then its record, in the row's lock (as on_story_deleted).
        Idempotent: a media already gone, or not that user's avatar, is left alone. A render in
        flight finds the record gone and deletes what it wrote (renditions). Unavailable (retried)
        if the store is down."""
        if event.user_id <= 0 or event.media_id <= 0:
            raise PoisonMessage("AvatarDiscarded without user_id or media_id")

        def is_the_user_s_avatar(record: repo.MediaRecord) -> bool:
            return record.owner_id == event.user_id and record.purpose == MediaPurpose.AVATAR

        if await delete_media_if(self._db, self._store, event.media_id, is_the_user_s_avatar):
            log.info("avatar deleted", extra={"user_id": event.user_id, "media_id": event.media_id})


def avatar_consumers(
    renditions: Renditions, db: Database, store: ObjectStore, settings: MediaSettings
) -> list[ConsumerSpec]:
    consumer = AvatarConsumer(renditions, db, store, max_deliveries=settings.rendition_max_deliveries)
    return _render_and_delete(
        settings,
        render=(AVATAR_RENDITIONS_DURABLE, AVATAR_ATTACHED, consumer.on_avatar_attached),
        on_dead_letter=consumer.on_avatar_attached_dead_letter,
        delete=(AVATAR_DISCARDS_DURABLE, AVATAR_DISCARDED, consumer.on_avatar_discarded),
    )
