"""Assembles media_svc's two processes: runtime and object store -> service -> servicer -> API host
(with the outbox relay and the erasure consumer of `graph.user_deleted`), and runtime, object store
and a post_svc client -> renditions, placeholders and sweeper -> worker host (health, the
`posts.created` and `stories.*` consumers, the sweeper and its own outbox relay)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import AsyncIterator

from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from media_svc import models
from media_svc.consumers import avatar_consumers, placeholder_consumers, rendition_consumer, story_consumers
from media_svc.erasure import ERASURE_DURABLE, MediaErasure
from media_svc.images import free_decoded_pixels_at_once, refuse_decompression_bombs
from media_svc.placeholders import Placeholders
from media_svc.rendition_urls import RenditionUrls
from media_svc.renditions import Renditions
from media_svc.service import MediaService
from media_svc.servicer import MediaServicer
from media_svc.settings import MediaSettings
from media_svc.storage import ObjectStore
from media_svc.sweeper import Sweeper
from mesh.bus import run_consumer
from mesh.channels import open_channel
from mesh.erasure import erasure_consumer
from mesh.runtime import open_runtime
from mesh.server import ServiceHost


async def open_store(settings: MediaSettings) -> ObjectStore:
    """The media bucket's store, the bucket created if missing."""
    store = ObjectStore(
        settings.s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key,
        settings.s3_region,
        settings.bucket,
        settings.s3_public_endpoint,
        settings.media_public_base_url,
    )
    await store.ensure_bucket()
    return store


@contextlib.asynccontextmanager
async def media_host(settings: MediaSettings) -> AsyncIterator[ServiceHost]:
    async with open_runtime(settings) as runtime:
        store = await open_store(settings)
        host = runtime.host("media_svc", settings.listen, settings.metrics_port)
        # The API writes `media.avatar_attached`; its relay also publishes rows other media processes left.
        outbox = runtime.outbox(models.outbox, host)
        service = MediaService(
            runtime.db,
            store,
            runtime.ids,
            outbox,
            max_bytes=settings.media_max_bytes,
            grant_ttl=dt.timedelta(seconds=settings.upload_grant_ttl_seconds),
        )
        host.add_servicer(
            media_pb2_grpc.add_MediaServiceServicer_to_server,
            MediaServicer(
                service,
                RenditionUrls(store, slot=settings.rendition_url_slot, max_cached=settings.rendition_url_cache_items),
            ),
            media_pb2.DESCRIPTOR.services_by_name["MediaService"],
        )
        erasure = erasure_consumer(ERASURE_DURABLE, MediaErasure(runtime.db, store).on_user_deleted)
        host.add_background(functools.partial(run_consumer, runtime.bus, erasure))
        yield host


@contextlib.asynccontextmanager
async def worker_host(settings: MediaSettings) -> AsyncIterator[ServiceHost]:
    refuse_decompression_bombs(settings.media_max_pixels)
    # Its memory bound (media_svc.renditions.memory_bound) assumes freed pixels leave the process.
    free_decoded_pixels_at_once()
    async with open_runtime(settings) as runtime, open_channel(settings.post_addr) as post_channel:
        store = await open_store(settings)
        # No servicer: the host serves health (for probes) and runs the consumer and the relay.
        host = runtime.host("media_svc.worker", settings.worker_listen, settings.worker_metrics_port)
        # The worker relays its own media.ready/failed events, so they go out even without the API.
        outbox = runtime.outbox(models.outbox, host)
        renditions = Renditions(
            runtime.db,
            store,
            outbox,
            max_bytes=settings.media_max_bytes,
            max_pixels=settings.media_max_pixels,
            concurrency=settings.rendition_concurrency,
        )
        spec = rendition_consumer(renditions, settings)

        async def consume_posts_created() -> None:
            await run_consumer(runtime.bus, spec)

        host.add_background(consume_posts_created)
        placeholders = Placeholders(
            runtime.db,
            store,
            max_bytes=settings.media_max_bytes,
            max_pixels=settings.media_max_pixels,
            concurrency=settings.placeholder_concurrency,
            pixels=renditions.pixels,
        )
        for placeholder_spec in placeholder_consumers(placeholders, settings):
            for _ in range(settings.placeholder_concurrency):
                host.add_background(functools.partial(run_consumer, runtime.bus, placeholder_spec))
        for story_spec in story_consumers(renditions, runtime.db, store, settings):
            host.add_background(functools.partial(run_consumer, runtime.bus, story_spec))
        for avatar_spec in avatar_consumers(renditions, runtime.db, store, settings):
            host.add_background(functools.partial(run_consumer, runtime.bus, avatar_spec))
        sweeper = Sweeper.from_settings(settings, runtime.db, store, post_pb2_grpc.PostServiceStub(post_channel))
        host.add_background(sweeper.run)
        yield host
