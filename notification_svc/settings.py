from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class NotificationSettings(MeshSettings):
    listen: str = "127.0.0.1:50058"
    metrics_port: int | None = None
    # Deadline for each call to graph_svc, post_svc and engagement_svc.
    upstream_timeout_seconds: float = Field(5.0, gt=0)
    # Likes of a post (and follows) within this many seconds of a group's first activity join it
    # (Mastodon groups for up to 12 hours).
    group_window_seconds: float = Field(12 * 3600.0, gt=0)
    # How long a user's blocks and mutes (graph_svc's GetViewerFilters) and a viewer's visibility of an
    # author (CheckVisibility) are reused. The `graph.*` watch drops an entry as soon as a block, mute,
    # follow or privacy change names its user; only a missed message leaves it stale this long.
    privacy_cache_seconds: float = Field(10.0, ge=0)
    privacy_cache_items: int = Field(100_000, ge=1)
    # Posts whose author is remembered (an author never changes; used for mentions in comments).
    post_author_cache_items: int = Field(100_000, ge=1)
    # Open WatchNotifications streams one process serves; past it a new one is RESOURCE_EXHAUSTED.
    max_watch_streams: int = Field(10_000, ge=1)
    # Pull loops of the graph and engagement consumers in one process: events of different inboxes
    # are written at once, and those of one inbox share a transaction (notification_svc.notifier).
    consumer_concurrency: int = Field(8, ge=1, le=64)
    # The event consumers (see mesh.bus.ConsumerSpec).
    ack_wait_seconds: float = Field(10.0, ge=1)
    max_deliveries: int = Field(20, ge=1)
