"""Settings shared by every process, read from `GLIMPSE_*` environment variables.

Each service extends `MeshSettings` with its own fields; a bad value stops the process at start-up
with a message naming the variable, instead of failing on first use.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


class MeshSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GLIMPSE_", extra="ignore")

    # Everything a deployment shares on the bus and in Redis is prefixed with the namespace, so
    # a test run (or a second environment) can use the same servers without seeing our data.
    namespace: str = "glimpse"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/glimpse"
    # Connections a process keeps (it may open as many again under a burst). Seven processes use
    # PostgreSQL in `make run`: 7 x (5 + 5) stays under PostgreSQL's default max_connections of 100,
    # which 10 per process did not; more would not help on a 2-core database anyway. In Kubernetes
    # the PgBouncer pooler multiplexes them.
    database_pool_size: int = Field(5, ge=1, le=200)
    redis_url: str = "redis://127.0.0.1:6379/0"
    nats_url: str = "nats://127.0.0.1:4222"
    # Replicas for JetStream streams: 1 on one server, 3 on a cluster.
    stream_replicas: int = Field(1, ge=1, le=5)

    # Shard bits of the 64-bit ids. Unset (the default): leased from PostgreSQL at start-up, so
    # concurrently running processes never share one.
    id_shard: int | None = Field(None, ge=0, le=8191)

    jwt_secret: str = "dev-only-change-me-0123456789abcdef"
    jwt_issuer: str = "glimpse"
    # Access tokens: 15 minutes, at most the hour the seeds allow. Refresh tokens: the seeds' 7 days,
    # counted from the latest rotation (each refresh issues a new one; graph_svc.sessions).
    access_token_ttl_seconds: int = Field(900, ge=30, le=3600)
    refresh_token_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)

    graph_addr: str = "127.0.0.1:50051"
    post_addr: str = "127.0.0.1:50052"
    media_addr: str = "127.0.0.1:50053"
    feed_addr: str = "127.0.0.1:50054"
    fanout_addr: str = "127.0.0.1:50055"
    engagement_addr: str = "127.0.0.1:50057"
    notification_addr: str = "127.0.0.1:50058"
    story_addr: str = "127.0.0.1:50059"
    export_addr: str = "127.0.0.1:50060"

    # The asyncio event loop every service runs on: uvloop (libuv, in C) by default, whose sockets and
    # callbacks cost less than asyncio's own loop written in Python; grpc.aio, redis-py, nats-py and
    # SQLAlchemy all run on either. "asyncio" for debugging with asyncio's own tools.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    log_level: str = "INFO"
    log_json: bool = True
    # Seconds in-flight RPCs get to finish after SIGTERM.
    shutdown_grace_seconds: float = Field(10.0, ge=0)

    @field_validator("namespace")
    @classmethod
    def _namespace_is_a_token(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError("must be lower-case letters, digits or '_', starting with a letter")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value
