"""Assembles story_svc: runtime, graph and media clients -> services -> servicer -> host (with the
outbox relay, the visibility cache's `graph.*` watch, the expiry sweeper and the erasure consumer of
`graph.user_deleted`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import AsyncIterator

from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.media.v1 import media_pb2_grpc
from glimpse.story.v1 import story_pb2, story_pb2_grpc
from mesh.bus import run_consumer
from mesh.channels import open_channel
from mesh.erasure import erasure_consumer
from mesh.runtime import open_runtime
from mesh.server import ServiceHost
from story_svc import models
from story_svc.erasure import ERASURE_DURABLE, StoryErasure
from story_svc.servicer import StoryServicer
from story_svc.settings import StorySettings
from story_svc.stories import StoryService
from story_svc.sweeper import Sweeper
from story_svc.tray import TrayService
from visibility import Visibility


@contextlib.asynccontextmanager
async def story_host(settings: StorySettings) -> AsyncIterator[ServiceHost]:
    async with (
        open_runtime(settings) as runtime,
        open_channel(settings.graph_addr) as graph_channel,
        open_channel(settings.media_addr) as media_channel,
    ):
        host = runtime.host("story_svc", settings.listen, settings.metrics_port)
        outbox = runtime.outbox(models.outbox, host)
        timeout = settings.upstream_timeout_seconds
        graph = graph_pb2_grpc.GraphServiceStub(graph_channel)
        visibility = Visibility(
            graph,
            ttl_seconds=settings.privacy_cache_seconds,
            max_viewers=settings.privacy_cache_items,
            timeout=timeout,
        )
        await visibility.watch(runtime.bus)
        stories = StoryService(
            runtime.db,
            outbox,
            runtime.ids,
            media_pb2_grpc.MediaServiceStub(media_channel),
            visibility,
            lifetime=dt.timedelta(seconds=settings.story_lifetime_seconds),
            cache_items=settings.story_cache_items,
            timeout=timeout,
        )
        host.add_servicer(
            story_pb2_grpc.add_StoryServiceServicer_to_server,
            StoryServicer(stories, TrayService(runtime.db, graph, visibility, timeout=timeout)),
            story_pb2.DESCRIPTOR.services_by_name["StoryService"],
        )
        sweeper = Sweeper(
            runtime.db,
            outbox,
            interval=dt.timedelta(seconds=settings.sweep_interval_seconds),
            batch_size=settings.sweep_batch_size,
            max_batches=settings.sweep_max_batches,
        )
        host.add_background(sweeper.run)
        erasure = erasure_consumer(ERASURE_DURABLE, StoryErasure(runtime.db, outbox).on_user_deleted)
        host.add_background(functools.partial(run_consumer, runtime.bus, erasure))
        yield host
