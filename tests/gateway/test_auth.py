"""Access tokens remembered after one check answer exactly as a fresh check would: expiry still applies
on every use, and only tokens that verified are remembered. Session checks: a live answer is trusted
for its period, an ended session stays refused, and a failed question is never remembered."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import jwt
import pytest

from gateway.auth import AccessTokens, SessionChecks
from mesh.errors import Unauthenticated, Unavailable
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


# Session checks ---------------------------------------------------------------------------------


class _Graph:
    """CheckSessions as graph_svc answers it: the live ones of the ids asked, counting the calls."""

    def __init__(self, live: set[int]) -> None:
        self.live = live
        self.calls: list[list[int]] = []
        self.fail: Exception | None = None

    async def check(self, session_ids: list[int]) -> set[int]:
        self.calls.append(session_ids)
        await asyncio.sleep(0.01)
        if self.fail is not None:
            raise self.fail
        return self.live & set(session_ids)


async def test_a_live_session_is_asked_once_per_period_and_concurrent_requests_share_the_question():
    graph = _Graph({5})
    checks = SessionChecks(graph.check, recheck_seconds=0.2)
    await asyncio.gather(*(checks.require_live(5) for _ in range(20)))
    await checks.require_live(5)
    assert graph.calls == [[5]]
    await asyncio.sleep(0.25)
    await checks.require_live(5)
    assert graph.calls == [[5], [5]]


async def test_sessions_asked_about_together_share_one_call_of_at_most_a_hundred():
    graph = _Graph(set(range(0, 300, 2)))
    checks = SessionChecks(graph.check, recheck_seconds=60)
    outcomes = await asyncio.gather(*(checks.require_live(sid) for sid in range(250)), return_exceptions=True)
    assert [o is None for o in outcomes] == [sid % 2 == 0 for sid in range(250)]
    assert sorted(len(call) for call in graph.calls) == [50, 100, 100]
    assert sorted(sid for call in graph.calls for sid in call) == list(range(250))


async def test_a_caller_that_goes_away_does_not_cancel_the_question_for_the_others():
    graph = _Graph({5})
    checks = SessionChecks(graph.check, recheck_seconds=60)
    first = asyncio.create_task(checks.require_live(5))
    second = asyncio.create_task(checks.require_live(5))
    await asyncio.sleep(0.005)
    first.cancel()
    await second
    assert first.cancelled() and graph.calls == [[5]]


async def test_a_revoked_session_is_refused_at_the_next_check_and_stays_refused():
    graph = _Graph({5})
    checks = SessionChecks(graph.check, recheck_seconds=0.1)
    await checks.require_live(5)
    graph.live.clear()
    await checks.require_live(5)  # still within the period: the bound the docs state
    await asyncio.sleep(0.15)
    for _ in range(2):
        with pytest.raises(Unauthenticated) as refused:
            await checks.require_live(5)
        assert refused.value.reason == "SESSION_REVOKED"
    graph.live.add(5)  # an ended session never comes back: the answer is kept
    with pytest.raises(Unauthenticated):
        await checks.require_live(5)
    assert len(graph.calls) == 2


async def test_a_session_ended_through_this_gateway_is_refused_at_once():
    graph = _Graph({5})
    checks = SessionChecks(graph.check, recheck_seconds=60)
    await checks.require_live(5)
    checks.ended(5)
    with pytest.raises(Unauthenticated):
        await checks.require_live(5)


async def test_when_graph_cannot_answer_the_request_fails_and_nothing_is_remembered():
    graph = _Graph({5})
    graph.fail = Unavailable("graph_svc is down")
    checks = SessionChecks(graph.check, recheck_seconds=60)
    outcomes = await asyncio.gather(*(checks.require_live(5) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in outcomes) and len(graph.calls) == 1
    graph.fail = None
    await checks.require_live(5)
    assert len(graph.calls) == 2


def test_a_token_s_session_is_read_from_its_sid():
    signer = signer_from(SETTINGS)
    tokens = AccessTokens(signer)
    with_session = signer.issue(7, ACCESS, session_id=99).token
    assert tokens.verified(with_session).session_id == 99
    assert tokens.verified(signer.issue(7, ACCESS).token).session_id is None
