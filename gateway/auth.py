"""Bearer-token authentication: the `caller_id` dependency every signed-in route declares."""

from __future__ import annotations

import time
from typing import Annotated

import jwt
from cachetools import LRUCache
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.errors import TOKEN_MISSING
from mesh.errors import Unauthenticated
from mesh.tokens import ACCESS, TokenSigner

# auto_error=False: FastAPI's own 401 has another body shape; a missing token is reported below.
bearer_scheme = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="An access token from `POST /v1/sessions` or `POST /v1/sessions/refresh`.",
    auto_error=False,
)


class AccessTokens:
    """Verifies access tokens, and remembers the ones that passed until they expire: a client sends the
    same token with every request for its whole lifetime, and checking it again (PyJWT: base64, JSON,
    HMAC, claims) took about 6% of the gateway's CPU per feed read.

    Remembering changes no answer. An access token is a signed, stateless claim (nothing revokes one
    before its `exp`; graph_svc stores none), so one that verified stays valid until `exp`, which is
    checked on every use exactly as PyJWT checks it (valid while now < exp). Only tokens that verified
    are kept, keyed by the whole token string, so a forged or tampered token is never a hit. At most
    `capacity` tokens (about 400 bytes each), least recently used dropped first.
    """

    def __init__(self, signer: TokenSigner, *, capacity: int = 10_000) -> None:
        self._signer = signer
        self._verified: LRUCache[str, tuple[int, int]] = LRUCache(maxsize=capacity)  # token -> (user id, exp)

    def caller(self, token: str) -> int:
        """The user id of a valid, unexpired access token.

        Raises Unauthenticated (401) when the token is malformed, expired, signed with another key or
        algorithm, or a refresh token (reasons as TokenSigner.verify gives them).
        """
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        user_id = self._signer.verify(token, ACCESS)  # raises for an expired one, and for any bad one
        # Verified just above, so its claims can be read as they are; int() as PyJWT reads `exp`.
        expires = int(jwt.decode(token, options={"verify_signature": False})["exp"])
        self._verified[token] = (user_id, expires)
        return user_id


async def caller_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> int:
    """The signed-in user's id from `Authorization: Bearer <access token>`.

    Raises Unauthenticated (401) when the header is missing or not Bearer, or the token is malformed,
    expired, signed with another key or algorithm, or a refresh token.
    """
    if credentials is None:
        raise Unauthenticated("this request needs `Authorization: Bearer <access token>`", reason=TOKEN_MISSING)
    tokens: AccessTokens = request.app.state.access_tokens
    return tokens.caller(credentials.credentials)


CallerId = Annotated[int, Depends(caller_id)]


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
