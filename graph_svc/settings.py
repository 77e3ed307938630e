from __future__ import annotations

from pydantic import Field

from mesh.config import MeshSettings


class GraphSettings(MeshSettings):
    listen: str = "127.0.0.1:50051"
    metrics_port: int | None = None
    # Instagram's cap; it bounds the followee list that feed reads load in one message.
    max_following: int = Field(7500, ge=1)
    # argon2id cost; the defaults follow RFC 9106's second recommended option.
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(64 * 1024, ge=8 * 1024)
    argon2_parallelism: int = Field(4, ge=1)
