from __future__ import annotations

from pydantic import Field

from timelines.settings import TimelineSettings


class FanoutSettings(TimelineSettings):
    # Serves health only (and metrics): the work arrives as events.
    listen: str = "127.0.0.1:50055"
    metrics_port: int | None = None
    # Follower ids per page of the follower stream (and per Redis pipeline).
    follower_batch: int = Field(1000, ge=1, le=5000)
    # posts.created messages handled at once by this process.
    concurrency: int = Field(4, ge=1, le=64)
    upstream_timeout_seconds: float = Field(10.0, gt=0)
    # An event of a process that died is delivered again after at most this long; a live process
    # extends the deadline of the events it holds (mesh.bus), so short is safe.
    ack_wait_seconds: float = Field(3.0, ge=1)
    # Deliveries before an event is dead-lettered. A dead-lettered post never reaches the inboxes, so
    # the fan-out outlasts long outages: 50 deliveries with waits capped at 30 s is about 25 minutes.
    max_deliveries: int = Field(50, ge=1)
