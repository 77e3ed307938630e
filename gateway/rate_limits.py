"""Rate limits: how many requests of each kind a user, or a client address, may make in a window.

Each budget is a moving window ("10/minute": at most 10 in any 60 seconds) counted in Redis by the
`limits` library, so every gateway replica draws on the same count. A spent budget is a 429
RESOURCE_EXHAUSTED with reason RATE_LIMITED, a google.rpc.RetryInfo and a `Retry-After` header.

Routes declare their budget as a dependency (`dependencies=[rate_limits.follows]`); the login route
also counts attempts per login name, which only the handler knows (`RateLimiterDep.hit`).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import redis.exceptions
from fastapi import Depends, Request
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from gateway.auth import CallerId
from gateway.metrics import RATE_LIMIT_CHECKS
from gateway.settings import GatewaySettings, IpNetwork
from mesh.errors import ResourceExhausted, Unavailable

log = logging.getLogger("gateway.rate_limits")

# After Redis fails, it is left alone this long: a dead Redis must not add a timeout to every request.
_RECHECK_SECONDS = 2.0
# ... after a refused connection, or after this many checks in a row ran past their deadline.
_TIMEOUTS_TO_GIVE_UP = 2


@dataclass(frozen=True)
class Budget:
    name: str  # in Redis keys, metrics and the error's metadata
    setting: str  # the GatewaySettings field holding its rate
    what: str  # what is being counted, for the error message
    # When Redis cannot be asked. Reads fail open: Redis holds only rebuildable state, and a limiter
    # outage must not become an outage of the whole API. Writes fail closed (503, retryable): they are
    # what the budgets exist to stop (password guessing, sign-up and post spam, storage abuse).
    fail_open: bool


LOGIN_PER_IP = Budget("login_per_ip", "rate_limit_login_per_ip", "log-in attempts from this address", False)
LOGIN_PER_NAME = Budget("login_per_name", "rate_limit_login_per_name", "log-in attempts for this account", False)
REGISTRATIONS_PER_IP = Budget(
    "registrations_per_ip", "rate_limit_registrations_per_ip", "sign-ups from this address", False
)
UPLOADS_PER_USER = Budget("uploads_per_user", "rate_limit_uploads_per_user", "uploads", False)
POSTS_PER_USER = Budget("posts_per_user", "rate_limit_posts_per_user", "post changes", False)
# Named for follows, which it was made for; it also counts blocks, mutes, follow requests answered,
# profile edits and log-outs (the changes to a user's account and relationships).
FOLLOWS_PER_USER = Budget(
    "follows_per_user",
    "rate_limit_follows_per_user",
    "changes to follows, blocks, mutes, your profile or sessions",
    False,
)
ENGAGEMENT_PER_USER = Budget(
    "engagement_per_user", "rate_limit_engagement_per_user", "likes, comments and saves", False
)
READS_PER_USER = Budget("reads_per_user", "rate_limit_reads_per_user", "requests", True)
READS_PER_IP = Budget("reads_per_ip", "rate_limit_reads_per_ip", "requests from this address", True)

BUDGETS = (
    LOGIN_PER_IP,
    LOGIN_PER_NAME,
    REGISTRATIONS_PER_IP,
    UPLOADS_PER_USER,
    POSTS_PER_USER,
    FOLLOWS_PER_USER,
    ENGAGEMENT_PER_USER,
    READS_PER_USER,
    READS_PER_IP,
)


class RateLimited(ResourceExhausted):
    """429: the caller has spent `budget` for now and may retry after `retry_after` seconds."""

    def __init__(self, budget: Budget, *, retry_after: int) -> None:
        super().__init__(
            f"too many {budget.what}; try again in {retry_after} s",
            reason="RATE_LIMITED",
            metadata={"budget": budget.name},
        )
        self.retry_after = retry_after

    def to_status(self) -> status_pb2.Status:
        status = super().to_status()
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=self.retry_after)))
        status.details.append(retry)
        return status


class RateLimiter:
    """The budgets of one deployment, counted in its Redis under `<namespace>:rate:`."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.trusted_proxies = settings.trusted_proxies
        self._items: dict[Budget, RateLimitItem] = {}
        for budget in BUDGETS:
            rate = parse(getattr(settings, budget.setting))
            self._items[budget] = type(rate)(rate.amount, rate.multiples, namespace=budget.name)
        self._timeout = settings.rate_limit_timeout_seconds
        self._storage = _storage(settings)
        self._windows = MovingWindowRateLimiter(self._storage)
        self._down_until = 0.0
        # Checks in a row that ran out of time (see hit).
        self._timeouts = 0
        # Each budget's "allowed" count, looked up once: labels() per request showed in profiles.
        self._allowed = {budget: RATE_LIMIT_CHECKS.labels(budget.name, "allowed") for budget in BUDGETS}

    async def hit(self, budget: Budget, subject: str) -> None:
        """Counts one request by `subject` (a user id, an address) against `budget`.

        Raises RateLimited (429) when the budget is spent. When Redis cannot answer, lets the request
        through if the budget fails open, and raises Unavailable (503) if it fails closed.
        """
        item = self._items[budget]
        # The hash tag keeps every key of one subject in one Redis Cluster slot (like mesh Keys).
        key = f"{{{subject}}}"
        if time.monotonic() < self._down_until:
            self._storage_down(budget)
            return
        try:
            async with asyncio.timeout(self._timeout):
                allowed = await self._windows.hit(item, key)
                window = None if allowed else await self._windows.get_window_stats(item, key)
        except (StorageError, TimeoutError) as exc:
            # A refused connection means Redis is down; one slow answer on a busy host does not, and
            # leaving Redis alone after it would refuse every write for _RECHECK_SECONDS.
            slow = isinstance(exc, TimeoutError) or isinstance(exc.__cause__, redis.exceptions.TimeoutError)
            self._timeouts = self._timeouts + 1 if slow else _TIMEOUTS_TO_GIVE_UP
            log.warning(
                "rate limits unavailable; reads are let through, writes refused",
                extra={"budget": budget.name, "error": repr(exc.__cause__ or exc), "in_a_row": self._timeouts},
            )
            if self._timeouts >= _TIMEOUTS_TO_GIVE_UP:
                self._down_until = time.monotonic() + _RECHECK_SECONDS
            self._storage_down(budget)
            return
        self._timeouts = 0
        if window is None:
            self._allowed[budget].inc()
            return
        RATE_LIMIT_CHECKS.labels(budget.name, "limited").inc()
        raise RateLimited(budget, retry_after=max(1, math.ceil(window.reset_time - time.time())))

    def _storage_down(self, budget: Budget) -> None:
        if budget.fail_open:
            RATE_LIMIT_CHECKS.labels(budget.name, "failed_open").inc()
            return
        RATE_LIMIT_CHECKS.labels(budget.name, "failed_closed").inc()
        raise Unavailable("this action is briefly unavailable; try again shortly", reason="RATE_LIMITS_UNAVAILABLE")

    async def close(self) -> None:
        # limits has no close(); its bridge holds the redis-py client.
        client = getattr(self._storage.bridge, "storage", None)
        if client is not None:
            await client.aclose()


def _storage(settings: GatewaySettings) -> RedisStorage:
    """The `limits` storage for `redis_url` (a cluster for "redis+cluster://"), with redis-py as mesh uses."""
    options: dict[str, float | str | bool] = {
        "socket_timeout": settings.rate_limit_timeout_seconds,
        "socket_connect_timeout": settings.rate_limit_timeout_seconds,
    }
    uri = "async+" + settings.redis_url
    prefix = f"{settings.namespace}:rate"
    kind = RedisClusterStorage if settings.redis_url.startswith("redis+cluster://") else RedisStorage
    return kind(uri, wrap_exceptions=True, implementation="redispy", key_prefix=prefix, **options)


def login_subject(login: str) -> str:
    """The per-login-name key: a digest, so emails are not stored in Redis and any input is one short key."""
    return hashlib.sha256(login.strip().lower().encode()).hexdigest()[:32]


def client_address(request: Request, trusted_proxies: Sequence[IpNetwork]) -> str:
    """The address per-IP budgets count against: the socket peer, or, when the peer is a trusted proxy,
    the nearest address in X-Forwarded-For that is not one. IPv6 counts per /64, the block one
    subscriber usually holds (rotating through it must not buy a fresh budget)."""
    hop = _ip(request.client.host if request.client else "")
    if hop is None:
        return "unknown"
    if _is_trusted(hop, trusted_proxies):
        forwarded = [part.strip() for value in request.headers.getlist("x-forwarded-for") for part in value.split(",")]
        # Each entry was appended by the hop to its right; only trusted hops are believed.
        for entry in reversed(forwarded):
            address = _ip(entry)
            if address is None:
                break  # unreadable: keep the last address a trusted proxy vouched for
            hop = address
            if not _is_trusted(address, trusted_proxies):
                break
    if isinstance(hop, ipaddress.IPv6Address):
        if hop.ipv4_mapped is not None:
            return str(hop.ipv4_mapped)
        return str(ipaddress.IPv6Network((hop, 64), strict=False))
    return str(hop)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[IpNetwork]) -> bool:
    return any(address in network for network in networks)


async def rate_limiter(request: Request) -> RateLimiter:
    """FastAPI dependency: the limiter opened by the app's lifespan (async so it runs inline, not on a
    worker thread)."""
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


RateLimiterDep = Annotated[RateLimiter, Depends(rate_limiter)]


class PerUser:
    """Dependency: counts the request against the signed-in caller's `budget` (401 comes first)."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    # The limiter straight from the app, not as a dependency of its own: every signed-in request comes
    # through here, and resolving a dependency is Python work FastAPI repeats on every request.
    async def __call__(self, caller: CallerId, request: Request) -> None:
        limiter: RateLimiter = request.app.state.rate_limiter
        await limiter.hit(self.budget, str(caller))


class PerClientAddress:
    """Dependency: counts the request against the client address's `budget`."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget

    async def __call__(self, request: Request, limiter: RateLimiterDep) -> None:
        await limiter.hit(self.budget, client_address(request, limiter.trusted_proxies))


# One per route group; routes list theirs in `dependencies=[...]` and document the 429.
login_attempts = Depends(PerClientAddress(LOGIN_PER_IP))
registrations = Depends(PerClientAddress(REGISTRATIONS_PER_IP))
anonymous_reads = Depends(PerClientAddress(READS_PER_IP))
user_reads = Depends(PerUser(READS_PER_USER))
uploads = Depends(PerUser(UPLOADS_PER_USER))
post_changes = Depends(PerUser(POSTS_PER_USER))
follow_changes = Depends(PerUser(FOLLOWS_PER_USER))
engagement_changes = Depends(PerUser(ENGAGEMENT_PER_USER))
