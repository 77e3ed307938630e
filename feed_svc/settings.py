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
    # How long a reader's blocks and mutes, and what they may see, are reused (graph events drop them
    # at once: this bounds only a missed event).
    visibility_cache_seconds: float = Field(10.0, ge=0)
    # False: posts are served without engagement and engagement_svc is never asked (a deployment
    # without it; the feed benchmark's figure without engagement).
    serve_engagement: bool = True
    hydration_cache_items: int = Field(100_000, ge=0)
    upstream_timeout_seconds: float = Field(5.0, gt=0)
    # How long a post's like, comment and save counts are reused to rank home feeds (served counts come
    # from the engagement cache, exact): bounds how stale a ranked feed's engagement signal is.
    ranking_counts_cache_seconds: float = Field(10.0, ge=0)
    # The engagement cache (engagement_cache) in Redis. False: every page asks engagement_svc.
    engagement_cache: bool = True
    # How old a cached post's counts, and a reader's cached window of their own likes and saves, may
    # be when read: engagement_svc drops them on every change, and feed_svc's engagement consumer
    # drops them again from the events (likes, unlikes, comments), so these bound only what a failed
    # drop of a save (which has no event) can leave stale. A post's counts are asked for again at most
    # once per max age: 60 s cost a BatchGetEngagement on a quarter of the benchmark's pages.
    engagement_counts_max_age_seconds: float = Field(1800.0, ge=0)
    engagement_viewer_max_age_seconds: float = Field(600.0, ge=0)
    # How far back (by post age) a reader's window reaches; their state of older posts is asked for.
    engagement_viewer_window_days: float = Field(30.0, gt=0)
    # Likes and comments (by others than the author) a post needs before explore shows it: Mastodon's
    # trending statuses wait for a threshold of interactions too, so one like never makes a post trend.
    explore_min_interactions: int = Field(5, ge=1)
    # The engagement consumer (explore and affinity): an event of a process that died is delivered
    # again after at most this long (a live process extends the deadline, mesh.bus).
    ack_wait_seconds: float = Field(5.0, ge=1)
    # Deliveries before an engagement event is dead-lettered (it then never counts for ranking).
    max_deliveries: int = Field(20, ge=1)
