"""Redis: one client per process, a single server or a cluster (comma-separated `redis_url`s).

Every key carries a hash tag (`feed:{42}`) so multi-key operations on one user stay in one slot.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster


def connect_redis(url: str) -> Any:
    """A Redis (or RedisCluster, for "redis+cluster://" URLs) client with decoded-bytes replies."""
    if url.startswith("redis+cluster://"):
        return RedisCluster.from_url("redis://" + url.removeprefix("redis+cluster://"))
    return Redis.from_url(url, health_check_interval=30)


class Keys:
    """Builds this deployment's Redis keys: "<namespace>:<kind>:{<id>}". The package that owns a
    layout names its keys with it (e.g. timelines.keys)."""

    def __init__(self, namespace: str) -> None:
        self._ns = namespace

    def named(self, kind: str, ident: int | str) -> str:
        return f"{self._ns}:{kind}:{{{ident}}}"
