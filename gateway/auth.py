"""Bearer-token authentication: the `caller_id` dependency every signed-in route declares, and
`caller_session` for the routes that act on the caller's session (log out, password change).

An access token is refused once its session has ended (logged out, revoked, ended by a password
change or a refresh token's reuse, or its account deleted), not only when it expires: graph_svc
answers which sessions are live (CheckSessions) and SessionChecks remembers a live answer for
SESSION_RECHECK_SECONDS. So a revoked session's access token is refused within that many seconds of
the revocation on every gateway replica (it would otherwise last its whole remaining lifetime, up to
mesh.config's access_token_ttl_seconds, 15 minutes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from cachetools import LRUCache
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.errors import TOKEN_MISSING
from gateway.upstream import Upstream
from glimpse.graph.v1 import graph_pb2
from mesh.errors import Unauthenticated
from mesh.tokens import ACCESS, TokenSigner

# How long a "live" answer about a session is trusted: the most a revoked session's access token
# is still accepted. A call per active session per period, measured by bench/session_checks.py.
SESSION_RECHECK_SECONDS = 5.0
# How long the first session to ask about waits for others to share its CheckSessions call: added
# once per session per SESSION_RECHECK_SECONDS to one of its requests.
SESSION_BATCH_WINDOW_SECONDS = 0.002

# auto_error=False: FastAPI's own 401 has another body shape; a missing token is reported below.
bearer_scheme = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="An access token from `POST /v1/sessions` or `POST /v1/sessions/refresh`.",
    auto_error=False,
)


@dataclass(frozen=True)
class VerifiedToken:
    """What a verified access token says about its caller."""

    user_id: int
    # None for a token minted without a session (tests, tools): only its expiry limits it.
    session_id: int | None
    expires_at: int


class AccessTokens:
    """Verifies access tokens, and remembers the ones that passed until they expire: a client sends the
    same token with every request for its whole lifetime, and checking it again (PyJWT: base64, JSON,
    HMAC, claims) took about 6% of the gateway's CPU per feed read.

    Remembering changes no answer. The signature and claims of a token never change, so one that
    verified stays valid until `exp`, which is checked on every use exactly as PyJWT checks it (valid
    while now < exp); whether its session has ended is asked separately (SessionChecks). Only tokens that verified
    are kept, keyed by the whole token string, so a forged or tampered token is never a hit. At most
    `capacity` tokens (about 400 bytes each), least recently used dropped first.
    """

    def __init__(self, signer: TokenSigner, *, capacity: int = 10_000) -> None:
        self._signer = signer
        self._verified: LRUCache[str, VerifiedToken] = LRUCache(maxsize=capacity)

    def caller(self, token: str) -> int:
        """The user id of a valid, unexpired access token (the errors of `verified`)."""
        return self.verified(token).user_id

    def verified(self, token: str) -> VerifiedToken:
        """The claims of a valid, unexpired access token. Whether its session is still live is
        SessionChecks' question.

        Raises Unauthenticated (401) when the token is malformed, expired, signed with another key or
        algorithm, or a refresh token (reasons as TokenSigner.claims gives them).
        """
        known = self._verified.get(token)
        if known is not None and time.time() < known.expires_at:
            return known
        claims = self._signer.claims(token, ACCESS)  # raises for an expired one, and for any bad one
        verified = VerifiedToken(claims.user_id, claims.session_id, claims.expires_at)
        self._verified[token] = verified
        return verified


class SessionChecks:
    """Whether sessions are live, asked of graph_svc (`check`: CheckSessions) and remembered.

    A live answer is trusted for `recheck_seconds`; an ended session never comes back, so that answer
    is kept (at most `capacity` sessions, least recently used dropped first). Questions are batched:
    the sessions to ask about within `batch_window_seconds` of the first go in one call of at most
    MAX_BATCH ids, and concurrent requests of one session share one question (bench/session_checks.py
    measured one id per call at ~900 calls/s on graph_svc, far less than 2,000 sessions a second
    coming due for 10,000 in constant use). The question runs in a task of its own, so a client that
    goes away does not cancel it for the others. When graph_svc cannot answer, the requests waiting
    fail with its error (503 or 504) and nothing is remembered: a session is never taken as live
    without an answer younger than `recheck_seconds`.
    """

    MAX_BATCH = 100  # CheckSessions' limit (graph_svc.sessions.MAX_CHECK)

    def __init__(
        self,
        check: Callable[[list[int]], Awaitable[set[int]]],
        *,
        recheck_seconds: float = SESSION_RECHECK_SECONDS,
        batch_window_seconds: float = SESSION_BATCH_WINDOW_SECONDS,
        capacity: int = 100_000,
    ) -> None:
        self._check = check
        self._recheck = recheck_seconds
        self._window = batch_window_seconds
        self._known: LRUCache[int, tuple[bool, float]] = LRUCache(maxsize=capacity)  # sid -> (live, checked at)
        self._asking: dict[int, asyncio.Future[bool]] = {}
        self._pending: list[int] = []
        self._flush: asyncio.TimerHandle | None = None
        self._questions: set[asyncio.Task[None]] = set()

    async def require_live(self, session_id: int) -> None:
        """Returns if session `session_id` is live; Unauthenticated (SESSION_REVOKED) if it has ended."""
        if not await self.is_live(session_id):
            raise Unauthenticated(
                "this session has ended (logged out, revoked, or the account was deleted); log in again",
                reason="SESSION_REVOKED",
            )

    def ended(self, session_id: int) -> None:
        """Records that session `session_id` has ended (it was revoked through this gateway), so this
        replica refuses its access tokens at once rather than within SESSION_RECHECK_SECONDS."""
        self._known[session_id] = (False, time.monotonic())

    async def is_live(self, session_id: int) -> bool:
        """Whether session `session_id` is live: remembered, or asked of graph_svc (batched as the
        class says). graph_svc's failures propagate as its gRPC error."""
        known = self._known.get(session_id)
        if known is not None and (not known[0] or time.monotonic() - known[1] < self._recheck):
            return known[0]
        future = self._asking.get(session_id)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._asking[session_id] = loop.create_future()
            self._pending.append(session_id)
            if len(self._pending) >= self.MAX_BATCH or self._window <= 0:
                self._ask_now()
            elif self._flush is None:
                self._flush = loop.call_later(self._window, self._ask_now)
        return await asyncio.shield(future)

    def _ask_now(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._ask(batch))
            self._questions.add(task)
            task.add_done_callback(self._asked)

    def _asked(self, task: asyncio.Task[None]) -> None:
        self._questions.discard(task)
        if not task.cancelled():
            task.exception()  # the waiters got it; retrieved so asyncio does not log it as lost

    async def _ask(self, batch: list[int]) -> None:
        asked_at = time.monotonic()
        try:
            live = await self._check(batch)
        except BaseException as exc:
            for session_id in batch:
                future = self._asking.pop(session_id)
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # retrieved: a failure nobody awaits any more is not logged as lost
            raise
        for session_id in batch:
            self._known[session_id] = (session_id in live, asked_at)
            future = self._asking.pop(session_id)
            if not future.done():
                future.set_result(session_id in live)


def live_sessions(upstream: Upstream) -> Callable[[list[int]], Awaitable[set[int]]]:
    """SessionChecks' question, asked of graph_svc's CheckSessions."""

    async def check(session_ids: list[int]) -> set[int]:
        request = graph_pb2.CheckSessionsRequest(session_ids=session_ids)
        response = await upstream.graph.CheckSessions(request, timeout=upstream.timeout)
        return set(response.live_session_ids)

    return check


async def caller_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> int:
    """The signed-in user's id from `Authorization: Bearer <access token>`.

    Raises Unauthenticated (401) when the header is missing or not Bearer, or the token is malformed,
    expired, signed with another key or algorithm, or a refresh token, or its session has ended
    (SESSION_REVOKED).
    """
    return (await caller_session(request, credentials)).user_id


CallerId = Annotated[int, Depends(caller_id)]


async def caller_session(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> VerifiedToken:
    """The signed-in user and session of `Authorization: Bearer <access token>`; the errors of
    `caller_id`, which it checks for every signed-in route, and 401 SESSION_REVOKED once the token's
    session has ended."""
    if credentials is None:
        raise Unauthenticated("this request needs `Authorization: Bearer <access token>`", reason=TOKEN_MISSING)
    tokens: AccessTokens = request.app.state.access_tokens
    verified = tokens.verified(credentials.credentials)
    if verified.session_id is not None:
        checks: SessionChecks = request.app.state.session_checks
        await checks.require_live(verified.session_id)
    return verified


CallerSession = Annotated[VerifiedToken, Depends(caller_session)]


async def optional_caller_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> int | None:
    """For routes anyone may call: the signed-in user's id when a bearer token came (checked as by
    `caller_id`: a bad one is a 401, not silently anonymous), None when none did."""
    if credentials is None:
        return None
    return await caller_id(request, credentials)


OptionalCallerId = Annotated[int | None, Depends(optional_caller_id)]
