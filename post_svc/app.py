"""Assembles post_svc: runtime and media client -> service -> servicer -> host (with the outbox relay and
the erasure consumer of `graph.user_deleted`)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.media.v1 import media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.bus import run_consumer
from mesh.channels import open_channel
from mesh.erasure import erasure_consumer
from mesh.runtime import open_runtime
from mesh.server import ServiceHost
from post_svc import models
from post_svc.erasure import ERASURE_DURABLE, PostErasure
from post_svc.service import PostService
from post_svc.servicer import PostServicer
from post_svc.settings import PostSettings
from post_svc.tags import TagService
from visibility import Visibility


@contextlib.asynccontextmanager
async def post_host(settings: PostSettings) -> AsyncIterator[ServiceHost]:
    async with (
        open_runtime(settings) as runtime,
        open_channel(settings.media_addr) as media_channel,
        open_channel(settings.graph_addr) as graph_channel,
    ):
        host = runtime.host("post_svc", settings.listen, settings.metrics_port)
        visibility = Visibility(
            graph_pb2_grpc.GraphServiceStub(graph_channel), timeout=settings.upstream_timeout_seconds
        )
        await visibility.watch(runtime.bus)
        outbox = runtime.outbox(models.outbox, host)
        service = PostService(
            runtime.db,
            outbox,
            runtime.ids,
            media_pb2_grpc.MediaServiceStub(media_channel),
            visibility=visibility,
            timeout=settings.upstream_timeout_seconds,
        )
        host.add_servicer(
            post_pb2_grpc.add_PostServiceServicer_to_server,
            PostServicer(service, TagService(runtime.db, visibility=visibility)),
            post_pb2.DESCRIPTOR.services_by_name["PostService"],
        )
        erasure = erasure_consumer(ERASURE_DURABLE, PostErasure(runtime.db, outbox).on_user_deleted)
        host.add_background(functools.partial(run_consumer, runtime.bus, erasure))
        yield host
