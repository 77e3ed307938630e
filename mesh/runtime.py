"""What every service process opens at start-up and closes at exit: database, bus, id generator.

    async with open_runtime(settings) as runtime:
        host = runtime.host("post_svc", settings.listen, settings.metrics_port)
        outbox = runtime.outbox(models.outbox, host)   # also runs its relay on the host
        ...
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import Table

from mesh.bus import Bus
from mesh.config import MeshSettings
from mesh.db import Database
from mesh.ids import IdGenerator
from mesh.outbox import Outbox, OutboxRelay
from mesh.server import ServiceHost


@dataclass(frozen=True)
class Runtime:
    settings: MeshSettings
    db: Database
    bus: Bus
    ids: IdGenerator

    def host(self, name: str, listen: str, metrics_port: int | None = None) -> ServiceHost:
        return ServiceHost(name, listen, grace_seconds=self.settings.shutdown_grace_seconds, metrics_port=metrics_port)

    def outbox(self, table: Table, host: ServiceHost) -> Outbox:
        """An outbox writing to `table`, whose relay runs in the background of `host`."""
        host.add_background(OutboxRelay(self.db, table, self.bus).run)
        return Outbox(table, self.ids)


@contextlib.asynccontextmanager
async def open_runtime(settings: MeshSettings) -> AsyncIterator[Runtime]:
    """Connects to PostgreSQL and NATS (making sure the streams exist); closes both on exit."""
    db = Database(settings.database_url, pool_size=settings.database_pool_size)
    try:
        bus = await Bus.connect(settings.nats_url, settings.namespace, settings.stream_replicas)
        try:
            await bus.ensure_streams()
            yield Runtime(settings, db, bus, IdGenerator(settings.id_shard))
        finally:
            await bus.close()
    finally:
        await db.dispose()
