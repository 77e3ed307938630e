from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class ExportSettings(MeshSettings):
    listen: str = "127.0.0.1:50060"
    metrics_port: int | None = None
    # Deadline of each call to graph_svc, post_svc, media_svc and engagement_svc while building.
    upstream_timeout_seconds: float = Field(10.0, gt=0)

    # The store holding the zips: any S3-compatible one (MinIO in production, moto in dev and tests),
    # the same endpoint and credentials as media_svc's variables, its own bucket.
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_access_key: str = "glimpse-dev"
    s3_secret_key: str = "glimpse-dev-secret"
    s3_region: str = "us-east-1"
    # Where clients download from (download URLs are signed for this host). Default: s3_endpoint.
    s3_public_endpoint: str | None = None
    # Default: "<namespace>-exports", so a test run (its own namespace) gets its own bucket.
    export_bucket: str | None = None

    # An export (and its zip) lives this long after it was requested (7 days), then EXPIRED.
    export_lifetime_seconds: float = Field(7 * 24 * 3600.0, gt=0)
    # A download URL works this long after GetExport answered (never past the export's expiry).
    download_url_seconds: int = Field(15 * 60, ge=60, le=7 * 24 * 3600)
    # Exports a user may request in any 24 hours (a build reads all their data: it is not free).
    exports_per_day: int = Field(3, ge=1)

    # Attempts of a build before the export is FAILED, and the waits between them (the last repeats).
    build_max_attempts: int = Field(5, ge=1, le=20)
    build_backoff_seconds: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0)
    # A build whose process died is taken over by another after at most this long (the bus extends a
    # live builder's deadline every third of it).
    build_ack_wait_seconds: float = Field(30.0, ge=1)
    # Builds run at once per process: each holds at most one part in memory (plus one being sent).
    build_concurrency: int = Field(2, ge=1, le=16)
    # The zip is uploaded in parts of this size as it is written (S3's minimum part is 5 MiB; the
    # most parts is 10,000, so 8 MiB parts allow 78 GiB).
    part_size_bytes: int = Field(8 * 1024 * 1024, ge=5 * 1024 * 1024, le=512 * 1024 * 1024)

    # The sweeper: a pass every interval expires exports past their time and deletes their zips.
    sweep_interval_seconds: float = Field(300.0, gt=0)
    sweep_batch_size: int = Field(100, ge=1, le=1000)

    @property
    def bucket(self) -> str:
        return self.export_bucket or f"{self.namespace.replace('_', '-')}-exports"
