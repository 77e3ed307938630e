from __future__ import annotations

from pydantic import Field

from timelines.settings import TimelineSettings


class FeedSettings(TimelineSettings):
    listen: str = "127.0.0.1:50054"
    metrics_port: int | None = None
    # How long a reader's celebrity followee list, and hydrated posts and users, are reused.
    celebrity_cache_seconds: float = Field(30.0, ge=0)
    # How long a celebrity's newest posts are reused (a new celebrity post shows up this much later).
    celebrity_head_seconds: float = Field(1.0, ge=0)
    hydration_cache_seconds: float = Field(60.0, ge=0)
    hydration_cache_items: int = Field(100_000, ge=0)
    upstream_timeout_seconds: float = Field(5.0, gt=0)
