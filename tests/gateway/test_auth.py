"""Access tokens remembered after one check answer exactly as a fresh check would: expiry still applies
on every use, and only tokens that verified are remembered."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import jwt
import pytest

from gateway.auth import AccessTokens
from mesh.errors import Unauthenticated
from mesh.tokens import ACCESS, REFRESH, signer_from
from tests.gateway.test_app import settings

SETTINGS = settings()


def _token(user_id: int, *, lifetime: dt.timedelta = dt.timedelta(minutes=5), kind: str = ACCESS) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": str(user_id),
        "typ": kind,
        "iss": SETTINGS.jwt_issuer,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, SETTINGS.jwt_secret, algorithm="HS256")


def _reason(tokens: AccessTokens, token: str) -> str:
    with pytest.raises(Unauthenticated) as raised:
        tokens.caller(token)
    return raised.value.reason


def test_a_remembered_token_gives_its_user_each_time():
    tokens = AccessTokens(signer_from(SETTINGS))
    ada, bob = _token(11), _token(12)
    assert [tokens.caller(t) for t in (ada, bob, ada, bob, ada)] == [11, 12, 11, 12, 11]


def test_a_remembered_token_expires_when_its_claim_says():
    tokens = AccessTokens(signer_from(SETTINGS))
    token = _token(7, lifetime=dt.timedelta(seconds=1))
    assert tokens.caller(token) == 7
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    assert _reason(tokens, token) == "TOKEN_EXPIRED"
    assert _reason(tokens, token) == "TOKEN_EXPIRED"


def test_a_tampered_copy_of_a_remembered_token_is_refused():
    tokens = AccessTokens(signer_from(SETTINGS))
    token = _token(7)
    assert tokens.caller(token) == 7
    header, payload, signature = token.split(".")
    other_payload = _token(8).split(".")[1]
    assert _reason(tokens, f"{header}.{other_payload}.{signature}") == "TOKEN_INVALID"
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert _reason(tokens, f"{header}.{payload}.{flipped}") == "TOKEN_INVALID"
    assert tokens.caller(token) == 7


def test_refused_tokens_are_refused_every_time():
    tokens = AccessTokens(signer_from(SETTINGS))
    refresh = _token(7, kind=REFRESH)
    expired = _token(7, lifetime=dt.timedelta(seconds=-1))
    for _ in range(2):
        assert _reason(tokens, refresh) == "TOKEN_WRONG_KIND"
        assert _reason(tokens, expired) == "TOKEN_EXPIRED"
        assert _reason(tokens, "not.a.jwt") == "TOKEN_INVALID"


def test_past_its_capacity_every_token_still_gives_its_user():
    tokens = AccessTokens(signer_from(SETTINGS), capacity=2)
    issued = {user_id: _token(user_id) for user_id in range(1, 6)}
    for _ in range(3):
        for user_id, token in issued.items():
            assert tokens.caller(token) == user_id
