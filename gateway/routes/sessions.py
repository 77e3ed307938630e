"""Sessions and the account's own credentials: list and end sessions (log out), change the password,
delete the account (graph_svc's ListSessions, RevokeSession, ChangePassword, DeleteUser)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from gateway import rate_limits
from gateway.auth import CallerSession, SessionChecks
from gateway.fields import PageSize, PageToken, SessionId, Text
from gateway.rate_limits import LOGIN_PER_NAME, RateLimiterDep
from gateway.render import to_json
from gateway.resources import (
    DeletionAccepted,
    PasswordChanged,
    SessionPage,
    SessionRevoked,
    error_responses,
)
from gateway.upstream import Services, Upstream
from glimpse.graph.v1 import graph_pb2
from mesh.errors import invalid_field
from mesh.identity import as_caller

router = APIRouter(tags=["sessions"])


class ChangePasswordBody(BaseModel):
    current_password: Text = Field(description="Your password now.")
    new_password: Text = Field(
        description="8-128 characters; common or username-like passwords are refused.",
        json_schema_extra={"minLength": 8, "maxLength": 128},
    )


class DeleteAccountBody(BaseModel):
    password: Text = Field(description="Your password, to confirm.")


@router.get(
    "/v1/sessions",
    response_model=SessionPage,
    summary="List your sessions",
    response_description="Your live sessions (logins not ended), newest first.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_sessions(
    caller: CallerSession, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """Each login on each device that has not been logged out, revoked or expired; `current` marks
    the one of this request's token. 400 for a malformed `page_token`."""
    request = graph_pb2.ListSessionsRequest(
        page_size=page_size, page_token=page_token, current_session_id=caller.session_id or 0
    )
    response = await services.graph.ListSessions(request, timeout=services.timeout, metadata=as_caller(caller.user_id))
    return {"items": [to_json(s) for s in response.sessions], "next_page_token": response.next_page_token}


@router.delete(
    "/v1/sessions/current",
    response_model=SessionRevoked,
    summary="Log out",
    response_description="Whether the session was ended.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.follow_changes],
)
async def log_out(caller: CallerSession, services: Services, request: Request) -> dict[str, Any]:
    """Ends the session of this request's token: its refresh token stops working at once, its access
    tokens within 5 seconds. 400 for a token that belongs to no session (minted by a tool)."""
    if caller.session_id is None:
        raise invalid_field("authorization", "this access token belongs to no session: there is nothing to log out")
    return await _revoke(request, services, caller.user_id, caller.session_id)


@router.delete(
    "/v1/sessions/{session_id}",
    response_model=SessionRevoked,
    summary="End one of your sessions",
    response_description="Whether the session was ended (false: it had already ended).",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.follow_changes],
)
async def revoke_session(
    session_id: SessionId, caller: CallerSession, services: Services, request: Request
) -> dict[str, Any]:
    """Ends one of your sessions (e.g. a lost phone's), as logging out there would. Idempotent. 404 for
    a session that is not yours."""
    return await _revoke(request, services, caller.user_id, session_id)


@router.post(
    "/v1/users/me/password",
    response_model=PasswordChanged,
    summary="Change your password",
    response_description="How many other sessions were ended.",
    responses=error_responses(400, 401, 413, 429),
)
async def change_password(
    body: ChangePasswordBody, caller: CallerSession, services: Services, limiter: RateLimiterDep
) -> dict[str, Any]:
    """Replaces your password and ends every other session of yours (this one stays). 400 naming
    `current_password` (WRONG_PASSWORD) if it is not your password, or `new_password` (WEAK_PASSWORD)
    for a weak one; 429 after too many attempts for your account (as for logging in)."""
    # Logging in's per-account limit, counted once the token is verified: a signed-in caller can only
    # guess their own password, and a bad token is a 401, not an attempt (nor a per-address 429).
    await limiter.hit(LOGIN_PER_NAME, f"id:{caller.user_id}")
    request = graph_pb2.ChangePasswordRequest(
        current_password=body.current_password,
        new_password=body.new_password,
        current_session_id=caller.session_id or 0,
    )
    return to_json(
        await services.graph.ChangePassword(request, timeout=services.timeout, metadata=as_caller(caller.user_id))
    )


@router.delete(
    "/v1/users/me",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeletionAccepted,
    summary="Delete your account",
    response_description="Accepted: the account is gone now, and everything it holds is being erased.",
    responses=error_responses(400, 401, 413, 429),
)
async def delete_me(
    body: DeleteAccountBody, caller: CallerSession, services: Services, limiter: RateLimiterDep, request: Request
) -> dict[str, Any]:
    """Deletes your account (right to erasure). At once: your follows both ways (the counts of the
    people concerned change), follow requests, blocks, mutes and every session end, and nobody can find
    the account; your tokens are refused within 5 seconds. Then, in the background, every service
    erases what you posted, liked, commented, saved or caused. Your username stays reserved for 30
    days. Reports others made about your content keep their snapshot. 400 naming `password`
    (WRONG_PASSWORD) if it is not your password; 429 after too many attempts."""
    await limiter.hit(LOGIN_PER_NAME, f"id:{caller.user_id}")
    delete = graph_pb2.DeleteUserRequest(password=body.password)
    answer = await services.graph.DeleteUser(delete, timeout=services.timeout, metadata=as_caller(caller.user_id))
    if caller.session_id is not None:
        _session_checks(request).ended(caller.session_id)
    return to_json(answer)


async def _revoke(request: Request, services: Upstream, user_id: int, session_id: int) -> dict[str, Any]:
    revoke = graph_pb2.RevokeSessionRequest(session_id=session_id)
    answer = await services.graph.RevokeSession(revoke, timeout=services.timeout, metadata=as_caller(user_id))
    _session_checks(request).ended(session_id)
    return to_json(answer)


def _session_checks(request: Request) -> SessionChecks:
    checks: SessionChecks = request.app.state.session_checks
    return checks
