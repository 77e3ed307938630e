"""What every service process opens at start-up and closes at exit: bus, id generator, and the
database and Redis when it uses them.

    async with open_runtime(settings) as runtime:
        host = runtime.host("post_svc", settings.listen, settings.metrics_port)
        outbox = runtime.outbox(models.outbox, host)   # also runs its relay on the host
        ...
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, text

from mesh.bus import Bus
from mesh.config import MeshSettings
from mesh.db import Database
from mesh.ids import ID_SHARD_SEQUENCE, MAX_SHARD, IdGenerator
from mesh.outbox import Outbox, OutboxRelay
from mesh.redis_client import connect_redis
from mesh.server import ServiceHost


@dataclass(frozen=True)
class Runtime:
    settings: MeshSettings
    bus: Bus
    ids: IdGenerator
    _db: Database | None = None
    _redis: Any = None

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("opened without a database: open_runtime(settings, database=True)")
        return self._db

    @property
    def redis(self) -> Any:
        if self._redis is None:
            raise RuntimeError("opened without Redis: open_runtime(settings, redis=True)")
        return self._redis

    def host(self, name: str, listen: str, metrics_port: int | None = None) -> ServiceHost:
        return ServiceHost(name, listen, grace_seconds=self.settings.shutdown_grace_seconds, metrics_port=metrics_port)

    def outbox(self, table: Table, host: ServiceHost) -> Outbox:
        """An outbox writing to `table`, whose relay runs in the background of `host`."""
        host.add_background(OutboxRelay(self.db, table, self.bus).run)
        return Outbox(table, self.ids)


@contextlib.asynccontextmanager
async def open_runtime(settings: MeshSettings, *, database: bool = True, redis: bool = False) -> AsyncIterator[Runtime]:
    """Connects to NATS (making sure the streams exist) and, if asked, PostgreSQL and Redis; closes
    them all on exit."""
    async with contextlib.AsyncExitStack() as stack:
        db = None
        if database:
            db = Database(settings.database_url, pool_size=settings.database_pool_size)
            stack.push_async_callback(db.dispose)
        redis_client = None
        if redis:
            redis_client = connect_redis(settings.redis_url)
            stack.push_async_callback(redis_client.aclose)
        bus = await Bus.connect(settings.nats_url, settings.namespace, settings.stream_replicas)
        stack.push_async_callback(bus.close)
        await bus.ensure_streams()
        shard = settings.id_shard
        if shard is None and db is not None:
            shard = await lease_id_shard(db)
        yield Runtime(settings, bus, IdGenerator(shard), db, redis_client)


async def lease_id_shard(db: Database) -> int:
    """A shard no other running process uses (see mesh.ids.ID_SHARD_SEQUENCE)."""
    async with db.unit_of_work() as session:
        value = (await session.execute(text(f"SELECT nextval('public.{ID_SHARD_SEQUENCE}')"))).scalar_one()
    return int(value) & MAX_SHARD
