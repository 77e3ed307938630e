"""Signed bearer tokens (JWT, HS256): short-lived access tokens and longer refresh tokens.

graph_svc issues them; the gateway verifies access tokens on every request. The algorithm is
pinned on verification, so a token with `alg: none` or another algorithm is refused.

Tokens issued for a session (graph_svc.sessions) carry its id in `sid`, and a refresh token also
the session's generation in `gen`: graph_svc stores only the hash of the current refresh token, and
the gateway asks graph_svc whether an access token's session is still live (gateway.auth).
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


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says."""

    user_id: int
    # The session it belongs to; None for a token minted without one (tests, tools).
    session_id: int | None
    # A refresh token's rotation counter within its session (graph_svc.sessions); None otherwise.
    generation: int | None
    # `exp` in whole seconds since the epoch, as PyJWT reads it.
    expires_at: int


class TokenSigner:
    def __init__(self, secret: str, issuer: str, *, access_ttl: dt.timedelta, refresh_ttl: dt.timedelta) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self._secret = secret
        self._issuer = issuer
        self._ttl = {ACCESS: access_ttl, REFRESH: refresh_ttl}

    def lifetime(self, kind: str) -> dt.timedelta:
        """How long a token of `kind` lasts from its issue (mesh.config's *_token_ttl_seconds)."""
        return self._ttl[kind]

    def issue(
        self, user_id: int, kind: str, *, session_id: int | None = None, generation: int | None = None
    ) -> IssuedToken:
        """A token of `kind` for `user_id`, with `sid` = `session_id` and `gen` = `generation` when given."""
        now = dt.datetime.now(dt.UTC)
        expires = now + self._ttl[kind]
        claims: dict[str, object] = {
            "sub": str(user_id),
            "typ": kind,
            "iss": self._issuer,
            "iat": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        if generation is not None:
            claims["gen"] = generation
        return IssuedToken(jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires)

    def verify(self, token: str, kind: str = ACCESS) -> int:
        """The user id of a valid, unexpired token of `kind`; Unauthenticated otherwise."""
        return self.claims(token, kind).user_id

    def claims(self, token: str, kind: str = ACCESS) -> TokenClaims:
        """The claims of a valid, unexpired token of `kind`.

        Raises Unauthenticated: TOKEN_EXPIRED, TOKEN_INVALID (bad signature, algorithm, issuer or
        claims), TOKEN_WRONG_KIND (a refresh token where an access token is needed, or the reverse).
        """
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
            raise Unauthenticated(
                f"{'an' if kind == ACCESS else 'a'} {kind} token is required here", reason="TOKEN_WRONG_KIND"
            )
        try:
            session = claims.get("sid")
            generation = claims.get("gen")
            if generation is not None and not isinstance(generation, int):
                raise TypeError("gen must be an integer")
            return TokenClaims(
                user_id=int(claims["sub"]),
                session_id=int(session) if session is not None else None,
                generation=generation,
                expires_at=int(claims["exp"]),
            )
        except (TypeError, ValueError) as exc:
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID") from exc


def signer_from(settings: MeshSettings) -> TokenSigner:
    return TokenSigner(
        settings.jwt_secret,
        settings.jwt_issuer,
        access_ttl=dt.timedelta(seconds=settings.access_token_ttl_seconds),
        refresh_ttl=dt.timedelta(seconds=settings.refresh_token_ttl_seconds),
    )
