"""The follow graph: follow and unfollow as the caller, and page through followers and following."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import PageSize, PageToken, UserId
from gateway.render import to_json
from gateway.resources import FOLLOW_STATES, FollowPage, FollowResult, UnfollowResult, error_responses
from gateway.upstream import Services
from glimpse.graph.v1 import graph_pb2
from mesh.identity import as_caller

router = APIRouter(tags=["graph"])


class FollowBody(BaseModel):
    target_user_id: UserId


@router.post(
    "/v1/follow",
    response_model=FollowResult,
    summary="Follow a user",
    response_description="Whether a follow (or a request) was made, the followed user, and the state.",
    responses=error_responses(400, 401, 404, 413, 429),
    dependencies=[rate_limits.follow_changes],
)
async def follow_user(body: FollowBody, caller: CallerId, services: Services) -> dict[str, Any]:
    """The caller follows the target (`state: following`), or, if the target is private, asks to
    (`state: requested`: the target approves or denies at /v1/follow-requests; withdraw with
    `DELETE /v1/follow/{user_id}`). Idempotent: following or asking again answers `created: false`.
    400 for following oneself or past the following limit (follows plus pending requests), 404 for an
    unknown target or one blocked either way."""
    request = graph_pb2.FollowUserRequest(target_user_id=body.target_user_id)
    response = await services.graph.FollowUser(request, timeout=services.timeout, metadata=as_caller(caller))
    return {**to_json(response), "state": FOLLOW_STATES[response.state]}


@router.delete(
    "/v1/follow/{user_id}",
    response_model=UnfollowResult,
    summary="Unfollow a user",
    response_description="Whether a follow or a pending request was removed.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.follow_changes],
)
async def unfollow_user(user_id: UserId, caller: CallerId, services: Services) -> dict[str, Any]:
    """The caller stops following `user_id`, or withdraws its pending request to. Idempotent:
    `deleted: false` if there was nothing to remove. 404 for an unknown user or one blocked either way."""
    request = graph_pb2.UnfollowUserRequest(target_user_id=user_id)
    return to_json(await services.graph.UnfollowUser(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.get(
    "/v1/users/{user_id}/followers",
    response_model=FollowPage,
    summary="List a user's followers",
    response_description="One page of followers, newest follow first.",
    responses=error_responses(400, 401, 403, 404, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_followers(
    user_id: UserId, caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """Users who follow `user_id`, without those blocked either way with the caller. 403 (reason
    ACCOUNT_PRIVATE) for a private account the caller does not follow; 404 for an unknown user or one
    blocked either way; 400 for a malformed `page_token`."""
    request = graph_pb2.ListFollowersRequest(parent=f"users/{user_id}", page_size=page_size, page_token=page_token)
    response = await services.graph.ListFollowers(request, timeout=services.timeout, metadata=as_caller(caller))
    return _follow_page(response)


@router.get(
    "/v1/users/{user_id}/following",
    response_model=FollowPage,
    summary="List the users a user follows",
    response_description="One page of followed users, newest follow first.",
    responses=error_responses(400, 401, 403, 404, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_following(
    user_id: UserId, caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """Users that `user_id` follows; the same rules as its followers."""
    request = graph_pb2.ListFollowingRequest(parent=f"users/{user_id}", page_size=page_size, page_token=page_token)
    response = await services.graph.ListFollowing(request, timeout=services.timeout, metadata=as_caller(caller))
    return _follow_page(response)


def _follow_page(response: graph_pb2.ListFollowersResponse | graph_pb2.ListFollowingResponse) -> dict[str, Any]:
    return {"items": [to_json(follow) for follow in response.follows], "next_page_token": response.next_page_token}
