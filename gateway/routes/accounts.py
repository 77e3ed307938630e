"""Accounts and sessions: register, log in, refresh tokens, look users up and search them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from gateway.auth import CallerId
from gateway.fields import PageSize, PageToken, Text
from gateway.render import to_json
from gateway.resources import Session, User, UserPage, error_responses
from gateway.upstream import Services
from glimpse.graph.v1 import graph_pb2
from mesh.identity import as_caller

router = APIRouter(tags=["accounts"])


class RegisterUserBody(BaseModel):
    username: Text = Field(description="3-30 characters of [a-z0-9._]; stored lower-case.", examples=["ada.l"])
    email: Text = Field(examples=["ada@example.com"])
    password: Text = Field(description="Checked for strength by the service.", examples=["correct horse battery"])
    display_name: Text = Field("", examples=["Ada Lovelace"])


class LoginBody(BaseModel):
    login: Text = Field(description="A username or an email address.", examples=["ada.l"])
    password: Text


class RefreshBody(BaseModel):
    refresh_token: Text


@router.post(
    "/v1/users",
    status_code=status.HTTP_201_CREATED,
    response_model=User,
    summary="Register an account",
    response_description="The new user.",
    responses=error_responses(400, 409, 413),
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
    responses=error_responses(400, 401),
)
async def create_session(body: LoginBody, services: Services) -> dict[str, Any]:
    """Checks a username (or email) and password. 401 for an unknown user or a wrong password."""
    request = graph_pb2.AuthenticateUserRequest(login=body.login, password=body.password)
    return to_json(await services.graph.AuthenticateUser(request, timeout=services.timeout))


@router.post(
    "/v1/sessions/refresh",
    response_model=Session,
    summary="Refresh the access token",
    response_description="A new access token and refresh token.",
    responses=error_responses(400, 401),
)
async def refresh_session(body: RefreshBody, services: Services) -> dict[str, Any]:
    """Exchanges a valid refresh token for a new token pair. 401 if it is invalid or expired."""
    request = graph_pb2.RefreshAccessTokenRequest(refresh_token=body.refresh_token)
    return to_json(await services.graph.RefreshAccessToken(request, timeout=services.timeout))


@router.get(
    "/v1/users/{username}",
    response_model=User,
    summary="Look a user up by username",
    response_description="The user.",
    responses=error_responses(404),
)
async def lookup_user(username: str, services: Services) -> dict[str, Any]:
    """The user with this username (case-insensitive); a numeric-looking name is still a name."""
    request = graph_pb2.LookupUserRequest(username=username)
    return to_json(await services.graph.LookupUser(request, timeout=services.timeout))


@router.get(
    "/v1/search/users",
    response_model=UserPage,
    summary="Search users by username prefix",
    response_description="Matching users, alphabetical.",
    responses=error_responses(400, 401),
)
async def search_users(
    caller: CallerId,
    services: Services,
    q: Annotated[str, Query(min_length=1, max_length=100, description="Username prefix.")],
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> dict[str, Any]:
    """Usernames starting with `q`, alphabetical, one page at a time. Signed-in users only."""
    request = graph_pb2.SearchUsersRequest(query=q, page_size=page_size, page_token=page_token)
    response = await services.graph.SearchUsers(request, timeout=services.timeout, metadata=as_caller(caller))
    return {"items": [to_json(user) for user in response.users], "next_page_token": response.next_page_token}
