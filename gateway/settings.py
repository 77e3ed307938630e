"""Gateway settings: the shared `GLIMPSE_*` settings plus where to listen, how long to wait, and how
much each client may ask for (rate limits)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from limits import parse
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from mesh.config import MeshSettings

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class GatewaySettings(MeshSettings):
    http_host: str = Field(default="127.0.0.1", description="address the HTTP server binds")
    http_port: int = Field(default=8080, ge=0, le=65535, description="port the HTTP server binds (0: any free port)")
    # A deadline on every upstream call, so a stuck service turns into a 504 instead of a hung client.
    upstream_timeout_seconds: float = Field(
        default=5.0, gt=0, le=300, description="deadline of each upstream gRPC call"
    )
    # Short on purpose: a probe that waits longer than the orchestrator's probe timeout tells it nothing.
    readiness_timeout_seconds: float = Field(
        default=1.0, gt=0, le=30, description="deadline of each upstream health check made by /readyz"
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1, description="largest request body accepted (larger: 413)")

    # Rate limits, each "<count>/<period>" ("10/minute", "100 per hour"), kept in Redis (redis_url).
    rate_limit_login_per_ip: str = Field("20/minute", description="log-in attempts per client IP")
    rate_limit_login_per_name: str = Field("10/minute", description="log-in attempts per username or email")
    rate_limit_registrations_per_ip: str = Field("10/hour", description="accounts registered per client IP")
    rate_limit_uploads_per_user: str = Field("120/hour", description="upload grants per user")
    rate_limit_posts_per_user: str = Field("60/hour", description="posts created, edited or deleted per user")
    rate_limit_follows_per_user: str = Field(
        "200/hour",
        description="follows and unfollows, blocks, mutes, follow requests answered, profile edits and log-outs, "
        "together, per user",
    )
    rate_limit_engagement_per_user: str = Field(
        "600/hour", description="likes, comments and saves (and their undoing) per user"
    )
    rate_limit_reads_per_user: str = Field("600/minute", description="reads per signed-in user")
    rate_limit_reads_per_ip: str = Field("300/minute", description="anonymous requests per client IP")
    # Bounds what a slow Redis adds to every request; past it the check counts as failed (see
    # gateway.rate_limits). 1 s, not less: a loaded 2-core host stalls a healthy Redis call for 250 ms
    # now and then, which refused a write (a 503) in a test run.
    rate_limit_timeout_seconds: float = Field(1.0, gt=0, le=5, description="deadline of each rate-limit check")
    # Only these peers may tell us the client's address (X-Forwarded-For); anyone else could forge it
    # to dodge per-IP limits or to exhaust someone else's. Comma-separated addresses or networks.
    trusted_proxies: Annotated[tuple[IpNetwork, ...], NoDecode] = Field(
        (), description="proxies whose X-Forwarded-For is believed, e.g. 10.0.0.0/8,127.0.0.1"
    )

    @field_validator(
        "rate_limit_login_per_ip",
        "rate_limit_login_per_name",
        "rate_limit_registrations_per_ip",
        "rate_limit_uploads_per_user",
        "rate_limit_posts_per_user",
        "rate_limit_follows_per_user",
        "rate_limit_engagement_per_user",
        "rate_limit_reads_per_user",
        "rate_limit_reads_per_ip",
    )
    @classmethod
    def _a_rate(cls, value: str) -> str:
        parse(value)  # ValueError names the value it could not read
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip())
        return value
