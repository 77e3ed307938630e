from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class PostSettings(MeshSettings):
    listen: str = "127.0.0.1:50052"
    metrics_port: int | None = None
    # Deadline for each call to media_svc.
    upstream_timeout_seconds: float = Field(5.0, gt=0)
