"""Assembles graph_svc: engines and clients -> service -> servicer -> host (with the outbox relay)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc import models
from graph_svc.credentials import Passwords
from graph_svc.service import GraphService
from graph_svc.servicer import GraphServicer
from graph_svc.settings import GraphSettings
from mesh.bus import Bus
from mesh.db import Database
from mesh.ids import IdGenerator
from mesh.outbox import Outbox, OutboxRelay
from mesh.server import ServiceHost
from mesh.tokens import signer_from


@contextlib.asynccontextmanager
async def graph_host(settings: GraphSettings) -> AsyncIterator[ServiceHost]:
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
    bus = await Bus.connect(settings.nats_url, settings.namespace, settings.stream_replicas)
    try:
        await bus.ensure_streams()
        ids = IdGenerator(settings.id_shard)
        passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
        service = GraphService(
            db, Outbox(models.outbox, ids), ids, signer_from(settings), passwords, settings.max_following
        )
        host = ServiceHost(
            "graph_svc",
            settings.listen,
            grace_seconds=settings.shutdown_grace_seconds,
            metrics_port=settings.metrics_port,
        )
        host.add_servicer(
            graph_pb2_grpc.add_GraphServiceServicer_to_server,
            GraphServicer(service),
            graph_pb2.DESCRIPTOR.services_by_name["GraphService"],
        )
        host.add_background(OutboxRelay(db, models.outbox, bus).run)
        yield host
    finally:
        await bus.close()
        await db.dispose()
