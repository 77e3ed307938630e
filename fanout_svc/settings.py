from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class FanoutSettings(MeshSettings):
    # Serves health only (and metrics): the work arrives as events.
    listen: str = "127.0.0.1:50055"
    metrics_port: int | None = None
    # Authors with more followers than this are not pushed: followers pull their outbox at read time.
    celebrity_threshold: int = Field(10_000, ge=0)
    feed_max_items: int = Field(800, ge=1)
    outbox_max_items: int = Field(800, ge=1)
    # An inbox unread for this long expires; the fan-out skips it and the next read rebuilds it.
    feed_inbox_ttl_seconds: int = Field(30 * 24 * 3600, ge=60)
    # Follower ids per page of the follower stream (and per Redis pipeline).
    follower_batch: int = Field(1000, ge=1, le=5000)
    # posts.created messages handled at once by this process.
    concurrency: int = Field(4, ge=1, le=64)
    upstream_timeout_seconds: float = Field(10.0, gt=0)
    # An event not acked this long after delivery (its handler crashed or hung) is delivered again.
    ack_wait_seconds: float = Field(30.0, gt=0)
