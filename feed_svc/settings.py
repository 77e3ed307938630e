from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class FeedSettings(MeshSettings):
    listen: str = "127.0.0.1:50054"
    metrics_port: int | None = None
    # Must match fanout_svc's: authors above it are merged in at read time instead of pushed.
    celebrity_threshold: int = Field(10_000, ge=0)
    feed_max_items: int = Field(800, ge=1)
    outbox_max_items: int = Field(800, ge=1)
    feed_inbox_ttl_seconds: int = Field(30 * 24 * 3600, ge=60)
    # How long a reader's celebrity followee list, and hydrated posts and users, are reused.
    celebrity_cache_seconds: float = Field(30.0, ge=0)
    hydration_cache_seconds: float = Field(60.0, ge=0)
    hydration_cache_items: int = Field(100_000, ge=0)
    upstream_timeout_seconds: float = Field(5.0, gt=0)
