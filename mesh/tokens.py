"""Signed bearer tokens (JWT, HS256): short-lived access tokens and longer refresh tokens.

graph_svc issues them; the gateway verifies access tokens on every request. The algorithm is
pinned on verification, so a token with `alg: none` or another algorithm is refused.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import jwt

from mesh.config import MeshSettings
from mesh.errors import Unauthenticated

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: dt.datetime


class TokenSigner:
    def __init__(self, secret: str, issuer: str, *, access_ttl: dt.timedelta, refresh_ttl: dt.timedelta) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self._secret = secret
        self._issuer = issuer
        self._ttl = {ACCESS: access_ttl, REFRESH: refresh_ttl}

    def issue(self, user_id: int, kind: str) -> IssuedToken:
        now = dt.datetime.now(dt.UTC)
        expires = now + self._ttl[kind]
        claims = {
            "sub": str(user_id),
            "typ": kind,
            "iss": self._issuer,
            "iat": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires)

    def verify(self, token: str, kind: str = ACCESS) -> int:
        """The user id of a valid, unexpired token of `kind`; Unauthenticated otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={"require": ["sub", "exp", "iat", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired; log in again", reason="TOKEN_EXPIRED") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID") from exc
        if claims.get("typ") != kind:
            raise Unauthenticated(f"an {kind} token is required here", reason="TOKEN_WRONG_KIND")
        try:
            return int(claims["sub"])
        except (TypeError, ValueError) as exc:
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID") from exc


def signer_from(settings: MeshSettings) -> TokenSigner:
    return TokenSigner(
        settings.jwt_secret,
        settings.jwt_issuer,
        access_ttl=dt.timedelta(seconds=settings.access_token_ttl_seconds),
        refresh_ttl=dt.timedelta(seconds=settings.refresh_token_ttl_seconds),
    )
