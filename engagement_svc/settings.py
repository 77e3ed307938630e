from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class EngagementSettings(MeshSettings):
    listen: str = "127.0.0.1:50057"
    metrics_port: int | None = None
    # Deadline for each call to post_svc and graph_svc.
    upstream_timeout_seconds: float = Field(5.0, gt=0)
    # How long a post's existence and author are reused without asking post_svc. A deleted post is
    # dropped at once by the `posts.deleted` watch; only if that message were missed could a write
    # to it be answered as a success for this long (the write is then purged with the post).
    post_cache_seconds: float = Field(60.0, ge=0)
    post_cache_items: int = Field(100_000, ge=1)
    # Rows each post's counts are spread over: concurrent likes of one post wait for each other only
    # when they pick the same shard. 1 is the unsharded design (bench/engagement.py compares both).
    counter_shards: int = Field(16, ge=1, le=256)
    # The `posts.created` and `posts.deleted` consumers (see mesh.bus.ConsumerSpec).
    ack_wait_seconds: float = Field(10.0, ge=1)
    max_deliveries: int = Field(20, ge=1)
