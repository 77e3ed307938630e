from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from mesh.config import MeshSettings


class MediaSettings(MeshSettings):
    """Settings of media_svc's API and of its rendition worker (the same variables for both)."""

    listen: str = "127.0.0.1:50053"
    metrics_port: int | None = None
    worker_listen: str = "127.0.0.1:50056"
    worker_metrics_port: int | None = None

    # Any S3-compatible store: MinIO in production, moto's server in dev and tests.
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_access_key: str = "glimpse-dev"
    s3_secret_key: str = "glimpse-dev-secret"
    s3_region: str = "us-east-1"
    # Where clients POST uploads: the store as seen from outside (through the ingress). Default:
    # s3_endpoint, which is right when clients and services see the store at the same address.
    s3_public_endpoint: str | None = None
    # Default: "<namespace>-media", so a test run (its own namespace) gets its own bucket.
    media_bucket: str | None = None
    # Where clients fetch renditions, when not from the store's public endpoint: "<cdn>/<bucket>",
    # a CDN that forwards the path and query unchanged with the Host header of s3_public_endpoint
    # (the store checks the URL's signature against that host and path). Default: the public
    # endpoint itself ("<s3_public_endpoint or s3_endpoint>/<bucket>" for path-style stores).
    media_public_base_url: str | None = None
    # Rendition URLs are signed on a grid of slots of this length: every URL of a rendition signed
    # in one slot is the same (cacheable) and stops working at the end of the next slot. So a URL
    # lives between one and two slots when handed out, and twice this is the bound on how long
    # someone who lost the right to see a photo can still fetch it (media_svc.rendition_urls).
    rendition_url_slot_seconds: int = Field(1800, ge=60, le=3 * 24 * 3600)
    # Signed rendition URLs kept per API process (about 0.7 KB each), so a URL is signed once per
    # slot rather than on every read.
    rendition_url_cache_items: int = Field(50_000, ge=1)

    media_max_bytes: int = Field(20 * 1024 * 1024, ge=1)
    # Decoded pixels above this are refused before decoding (decompression bombs).
    media_max_pixels: int = Field(50_000_000, ge=1)
    upload_grant_ttl_seconds: int = Field(900, ge=30, le=7 * 24 * 3600)

    # The rendition consumer: deliveries before a post's media are marked FAILED, and the waits
    # between them (seconds, the last one repeating).
    rendition_max_deliveries: int = Field(5, ge=1)
    rendition_backoff_seconds: tuple[float, ...] = (0.5, 2.0, 10.0, 30.0)
    # A post whose worker died is rendered by another after at most this long (the bus extends the
    # deadline of a live worker's posts every third of it).
    rendition_ack_wait_seconds: float = Field(6.0, ge=1)
    # Media rendered at once per worker process: each holds a decoded image in memory.
    rendition_concurrency: int = Field(2, ge=1, le=64)
    # The worker's placeholder consumers (media_svc.placeholders) handle this many posts at once and
    # read and decode (reduced) at most this many uploads at once, each holding its bytes (on top of
    # the renders' memory); their decoded pixels come out of the renders' pixel budget.
    placeholder_concurrency: int = Field(4, ge=1, le=64)

    # The sweeper (a background task of the worker; see media_svc.sweeper): a pass every
    # `sweep_interval_seconds`, each of its three steps handling at most `sweep_batch_size` media
    # per batch and `sweep_max_batches` batches per pass.
    sweep_interval_seconds: float = Field(300.0, gt=0)
    sweep_batch_size: int = Field(100, ge=1, le=1000)
    sweep_max_batches: int = Field(10, ge=1, le=1000)
    # PENDING media (and their uploads) are deleted this long after their upload grant expired and
    # after they were last detached from a post.
    abandoned_upload_grace_seconds: float = Field(24 * 3600.0, ge=0)
    # Media attached this long whose post does not exist are detached. Must exceed the longest a
    # CreatePost can take between AttachMedia and committing the post.
    orphan_grace_seconds: float = Field(3600.0, ge=0)
    # Raw uploads of READY/FAILED media are deleted this long after the media settled. Unset (the
    # default): kept, as the only full-quality copy (see media_svc.sweeper for why).
    raw_original_retention_seconds: float | None = Field(None, ge=0)

    @property
    def bucket(self) -> str:
        return self.media_bucket or f"{self.namespace.replace('_', '-')}-media"

    @model_validator(mode="after")
    def _base_url_keeps_the_signed_path(self) -> MediaSettings:
        # The signature covers the path the store sees, "/<bucket>/<key>": a base URL with another
        # path would hand out URLs the store refuses.
        if self.media_public_base_url is not None:
            base = urlsplit(self.media_public_base_url)
            if base.scheme not in ("http", "https") or not base.netloc or base.path.rstrip("/") != f"/{self.bucket}":
                raise ValueError(
                    f"media_public_base_url must be an http(s) URL whose path is the bucket's, /{self.bucket} "
                    f"(renditions are signed for that path), got {self.media_public_base_url!r}"
                )
        return self

    @property
    def rendition_url_slot(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.rendition_url_slot_seconds)
