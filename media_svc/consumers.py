"""The rendition worker's event handlers: one per event type it consumes."""

from __future__ import annotations

import logging

from glimpse.events.v1 import events_pb2
from media_svc.renditions import Renditions
from media_svc.settings import MediaSettings
from mesh.bus import ConsumerSpec
from mesh.errors import Unavailable
from mesh.events import POST_CREATED, PoisonMessage

log = logging.getLogger("media_svc.consumers")

RENDITIONS_DURABLE = "media_renditions"


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
