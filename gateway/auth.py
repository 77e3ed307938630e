"""Bearer-token authentication: the `caller_id` dependency every signed-in route declares."""

from __future__ import annotations

from typing import Annotated

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
    signer: TokenSigner = request.app.state.token_signer
    return signer.verify(credentials.credentials, ACCESS)


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
