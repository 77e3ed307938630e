"""Assembles export_svc: runtime, the export store, clients of graph/post/media/engagement/story ->
services -> servicer -> host (with the outbox relay, the builder's consumers of `exports.requested`,
the expiry sweeper and the erasure consumer of `graph.user_deleted`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import AsyncIterator

from export_svc import models
from export_svc.builder import ExportBuilder, Upstreams
from export_svc.erasure import ERASURE_DURABLE, ExportErasure
from export_svc.exports import ExportService
from export_svc.servicer import ExportServicer
from export_svc.settings import ExportSettings
from export_svc.storage import ExportStore, OriginalReader
from export_svc.sweeper import Sweeper
from glimpse.engagement.v1 import engagement_pb2_grpc
from glimpse.export.v1 import export_pb2, export_pb2_grpc
from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.media.v1 import media_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from glimpse.story.v1 import story_pb2_grpc
from mesh.bus import ConsumerSpec, run_consumer
from mesh.channels import open_channel
from mesh.erasure import erasure_consumer
from mesh.events import EXPORT_REQUESTED
from mesh.runtime import open_runtime
from mesh.server import ServiceHost

BUILD_DURABLE = "export_builder"


@contextlib.asynccontextmanager
async def export_host(settings: ExportSettings) -> AsyncIterator[ServiceHost]:
    store = ExportStore(settings)
    await store.ensure_bucket()
    async with (
        open_runtime(settings) as runtime,
        open_channel(settings.graph_addr) as graph_channel,
        open_channel(settings.post_addr) as post_channel,
        open_channel(settings.media_addr) as media_channel,
        open_channel(settings.engagement_addr) as engagement_channel,
        open_channel(settings.story_addr) as story_channel,
    ):
        host = runtime.host("export_svc", settings.listen, settings.metrics_port)
        outbox = runtime.outbox(models.outbox, host)
        exports = ExportService(
            runtime.db,
            outbox,
            runtime.ids,
            store,
            lifetime=dt.timedelta(seconds=settings.export_lifetime_seconds),
            download_lifetime=dt.timedelta(seconds=settings.download_url_seconds),
            per_day=settings.exports_per_day,
        )
        host.add_servicer(
            export_pb2_grpc.add_ExportServiceServicer_to_server,
            ExportServicer(exports),
            export_pb2.DESCRIPTOR.services_by_name["ExportService"],
        )
        builder = ExportBuilder(
            runtime.db,
            store,
            Upstreams(
                graph=graph_pb2_grpc.GraphServiceStub(graph_channel),
                post=post_pb2_grpc.PostServiceStub(post_channel),
                media=media_pb2_grpc.MediaServiceStub(media_channel),
                engagement=engagement_pb2_grpc.EngagementServiceStub(engagement_channel),
                story=story_pb2_grpc.StoryServiceStub(story_channel),
            ),
            OriginalReader(),
            timeout=settings.upstream_timeout_seconds,
            part_size=settings.part_size_bytes,
            max_attempts=settings.build_max_attempts,
        )
        # The builder decides when an export has FAILED (after build_max_attempts); the bus's own
        # limit is one delivery more, for an attempt cut short before it could claim the export.
        build = ConsumerSpec(
            durable=BUILD_DURABLE,
            events=[EXPORT_REQUESTED],
            handler=builder.handle,
            max_deliver=settings.build_max_attempts + 1,
            backoff=settings.build_backoff_seconds,
            ack_wait_seconds=settings.build_ack_wait_seconds,
            batch=1,
            on_dead_letter=builder.on_dead_letter,
        )
        for _ in range(settings.build_concurrency):
            host.add_background(functools.partial(run_consumer, runtime.bus, build))
        erasure = erasure_consumer(ERASURE_DURABLE, ExportErasure(runtime.db, store).on_user_deleted)
        host.add_background(functools.partial(run_consumer, runtime.bus, erasure))
        sweeper = Sweeper(
            runtime.db,
            store,
            interval=dt.timedelta(seconds=settings.sweep_interval_seconds),
            batch_size=settings.sweep_batch_size,
        )
        host.add_background(sweeper.run)
        yield host
