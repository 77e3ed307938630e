from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class StorySettings(MeshSettings):
    listen: str = "127.0.0.1:50059"
    metrics_port: int | None = None
    # Deadline for each call to graph_svc and media_svc.
    upstream_timeout_seconds: float = Field(5.0, gt=0)
    # How long a story is served after it is shared (the product's 24 hours).
    story_lifetime_seconds: float = Field(24 * 3600.0, gt=0)
    # How long a viewer's blocks and mutes and their visibility of an author are reused. The `graph.*`
    # watch drops an entry as soon as a block, mute, follow or privacy change names its user; only a
    # missed message leaves it stale this long.
    privacy_cache_seconds: float = Field(10.0, ge=0)
    privacy_cache_items: int = Field(100_000, ge=1)
    # Stories whose author and expiry are remembered (both never change; a deleted story is refused
    # by the view's own statement whatever the cache says).
    story_cache_items: int = Field(100_000, ge=1)
    # The sweeper: a pass every interval deletes expired stories, at most batch x batches per pass.
    sweep_interval_seconds: float = Field(60.0, gt=0)
    sweep_batch_size: int = Field(500, ge=1, le=10_000)
    sweep_max_batches: int = Field(20, ge=1)
