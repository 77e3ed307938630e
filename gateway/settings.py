"""Gateway settings: the shared `GLIMPSE_*` settings plus where to listen and how long to wait."""

from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class GatewaySettings(MeshSettings):
    http_host: str = Field(default="127.0.0.1", description="address the HTTP server binds")
    http_port: int = Field(default=8080, ge=0, le=65535, description="port the HTTP server binds (0: any free port)")
    # A deadline on every upstream call, so a stuck service turns into a 504 instead of a hung client.
    upstream_timeout_seconds: float = Field(
        default=5.0, gt=0, le=300, description="deadline of each upstream gRPC call"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="largest request body accepted (larger: 413)")
