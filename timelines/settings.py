"""Settings of the timeline layout, shared by its writer and its reader."""

from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class TimelineSettings(MeshSettings):
    """fanout_svc (which writes) and feed_svc (which reads) must agree on these, so both inherit this
    one definition (and read the same GLIMPSE_* variables)."""

    # Authors with more followers than this are not pushed: followers pull their outbox at read time.
    celebrity_threshold: int = Field(10_000, ge=0)
    feed_max_items: int = Field(800, ge=1)
    outbox_max_items: int = Field(800, ge=1)
    # An inbox unread for this long expires; the fan-out skips it and the next read rebuilds it.
    feed_inbox_ttl_seconds: int = Field(30 * 24 * 3600, ge=60)
