from __future__ import annotations

from pydantic import Field, field_validator

from mesh.config import MeshSettings

OPERATOR_TOKEN_MIN = 32


class GraphSettings(MeshSettings):
    listen: str = "127.0.0.1:50051"
    metrics_port: int | None = None
    # Deadline for each call to media_svc (SetAvatar's AttachAvatar).
    upstream_timeout_seconds: float = Field(5.0, gt=0)
    # Instagram's cap; it bounds the followee list that feed reads load in one message.
    max_following: int = Field(7500, ge=1)
    # argon2id cost; the defaults follow RFC 9106's second recommended option.
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(64 * 1024, ge=8 * 1024)
    argon2_parallelism: int = Field(4, ge=1)
    # The credential ModerationService calls must carry (metadata `x-operator-token`). Empty, the
    # default, turns moderation off rather than opening it: no value is safe to ship.
    operator_token: str = Field("", repr=False)
    # How long a deleted account's username stays unavailable (graph_svc.erasure): Instagram's 30
    # days, so nobody can pose as the person who just left, and the name is not held forever.
    username_hold_seconds: int = Field(30 * 24 * 3600, ge=0)

    @field_validator("operator_token")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < OPERATOR_TOKEN_MIN:
            raise ValueError(f"must be empty (moderation off) or at least {OPERATOR_TOKEN_MIN} characters")
        return value
