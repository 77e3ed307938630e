"""Accounts and sessions: register, log in, refresh tokens, look users up and search them (ranked and typo
tolerant, graph_svc's SearchUsers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, status
from pydantic import BaseModel, Field
from pydantic.json_schema import JsonDict

from gateway import rate_limits
from gateway.auth import CallerId, OptionalCallerId
from gateway.errors import client_field_names
from gateway.fields import PageSize, PageToken, Text
from gateway.rate_limits import LOGIN_PER_NAME, RateLimiterDep, login_subject
from gateway.render import to_json
from gateway.resources import Session, User, UserPage, error_responses
from gateway.upstream import Services
from glimpse.graph.v1 import graph_pb2
from mesh.identity import as_caller

router = APIRouter(tags=["accounts"])


# The service's rules, documented here and checked there (its errors name the rule and the field).
_USERNAME: JsonDict = {"pattern": "^[A-Za-z0-9_][A-Za-z0-9._]{1,28}[A-Za-z0-9_]$", "minLength": 3, "maxLength": 30}


class RegisterUserBody(BaseModel):
    username: Text = Field(
        description="3-30 characters of [a-z0-9._], not starting or ending with '.', no '..'; stored lower-case.",
        examples=["ada.l"],
        json_schema_extra=_USERNAME,
    )
    email: Text = Field(examples=["ada@example.com"], json_schema_extra={"format": "email", "maxLength": 254})
    password: Text = Field(
        description="8-128 characters; common or username-like passwords are refused.",
        examples=["correct horse battery"],
        json_schema_extra={"minLength": 8, "maxLength": 128},
    )
    display_name: Text = Field("", examples=["Ada Lovelace"], json_schema_extra={"maxLength": 64})


class LoginBody(BaseModel):
    login: Text = Field(description="A username or an email address.", examples=["ada.l"])
    password: Text


class RefreshBody(BaseModel):
    refresh_token: Text


# graph_svc keeps 200 characters of it (graph_svc.sessions.DEVICE_LABEL_MAX); more is not sent.
DEVICE_LABEL_READ = 1000
UserAgent = Annotated[
    str,
    Header(
        alias="user-agent",
        include_in_schema=False,
    ),
]


@router.post(
    "/v1/users",
    status_code=status.HTTP_201_CREATED,
    response_model=User,
    summary="Register an account",
    response_description="The new user.",
    responses=error_responses(400, 409, 413, 429),
    dependencies=[rate_limits.registrations],
)
async def register_user(body: RegisterUserBody, services: Services) -> dict[str, Any]:
    """Creates an account. 409 if the username or email is taken; 400 for a malformed username or
    email, or a weak password."""
    request = graph_pb2.RegisterUserRequest(
        username=body.username, email=body.email, password=body.password, display_name=body.display_name
    )
    return to_json(await services.graph.RegisterUser(request, timeout=services.timeout))


@router.post(
    "/v1/sessions",
    response_model=Session,
    summary="Log in",
    response_description="An access token, a refresh token and the user.",
    responses=error_responses(400, 401, 413, 429),
    dependencies=[rate_limits.login_attempts],
)
async def create_session(
    body: LoginBody, services: Services, limiter: RateLimiterDep, user_agent: UserAgent = ""
) -> dict[str, Any]:
    """Checks a username (or email) and password and starts a session (listed by `GET /v1/sessions`
    under the `User-Agent`). 401 for an unknown user or a wrong password; 429 after too many attempts
    from one address or for one account."""
    await limiter.hit(LOGIN_PER_NAME, login_subject(body.login))
    request = graph_pb2.AuthenticateUserRequest(
        login=body.login, password=body.password, device_label=user_agent[:DEVICE_LABEL_READ]
    )
    return to_json(await services.graph.AuthenticateUser(request, timeout=services.timeout))


@router.post(
    "/v1/sessions/refresh",
    response_model=Session,
    summary="Refresh the access token",
    response_description="A new access token and refresh token.",
    responses=error_responses(400, 401, 413, 429),
    dependencies=[rate_limits.anonymous_reads],
)
async def refresh_session(body: RefreshBody, services: Services) -> dict[str, Any]:
    """Exchanges the refresh token for a new pair; the one sent is spent. 401 if it is invalid or
    expired, if its session has ended (SESSION_REVOKED), or if it was already exchanged
    (REFRESH_TOKEN_REUSED), which also ends its session: a copy of a token may have been stolen."""
    request = graph_pb2.RefreshAccessTokenRequest(refresh_token=body.refresh_token)
    return to_json(await services.graph.RefreshAccessToken(request, timeout=services.timeout))


@router.get(
    "/v1/users/{username}",
    response_model=User,
    summary="Look a user up by username",
    response_description="The user.",
    responses=error_responses(401, 404, 429),
    dependencies=[rate_limits.anonymous_reads],
)
async def lookup_user(username: str, caller: OptionalCallerId, services: Services) -> dict[str, Any]:
    """The user with this username (case-insensitive); a numeric-looking name is still a name. Anyone
    may call it; with a bearer token (401 if it is not valid), a user blocked either way with the
    caller is a 404, as if it did not exist."""
    request = graph_pb2.LookupUserRequest(username=username)
    metadata = as_caller(caller) if caller is not None else ()
    return to_json(await services.graph.LookupUser(request, timeout=services.timeout, metadata=metadata))


@router.get(
    "/v1/search/users",
    response_model=UserPage,
    summary="Search users, typo tolerant and ranked",
    response_description="Matching users, best match first.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads, Depends(client_field_names(query="q"))],
)
async def search_users(
    caller: CallerId,
    services: Services,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=100,
            description="A username ('@' optional), its start or a misspelling of it, or words of a display "
            "name: 1-64 characters once trimmed, any case.",
            examples=["reed0", "rede0", "ada lovelace"],
        ),
    ],
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> dict[str, Any]:
    """Ranked: the user called exactly `q` first, then usernames starting with `q`, then usernames one
    typo away, then two (edit distance: "reeed0" and "rede0" find reed0), then other similar usernames
    and display names; within each, the most similar first, then the most followed. Users blocked either
    way with the caller are left out. Signed-in users only. 400 for an empty or too long `q`, or a
    malformed `page_token`."""
    request = graph_pb2.SearchUsersRequest(query=q, page_size=page_size, page_token=page_token)
    response = await services.graph.SearchUsers(request, timeout=services.timeout, metadata=as_caller(caller))
    return {"items": [to_json(user) for user in response.users], "next_page_token": response.next_page_token}
