"""Privacy and safety, all owned by graph_svc: a private account's incoming follow requests (making an
account private is PATCH /v1/users/me, gateway.routes.profile), blocks, mutes, and reports (whose
snapshot of the reported content the gateway fetches from the service that renders it: feed_svc for
a post, engagement_svc for a comment, graph_svc for a user)."""

from __future__ import annotations

from typing import Annotated, Any

import grpc
from fastapi import APIRouter, status
from google.protobuf.struct_pb2 import Struct
from pydantic import BaseModel, ConfigDict, Field

from gateway import rate_limits
from gateway.auth import CallerId
from gateway.fields import CommentId, PageSize, PageToken, PostId, Text, UserId
from gateway.render import feed_item_json, to_json, user_summary_json
from gateway.resources import (
    REPORT_REASON,
    REPORT_REASONS,
    REPORT_RESOLUTIONS,
    REPORT_STATES,
    REPORT_SUBJECT_TYPES,
    ApproveResult,
    BlockPage,
    BlockResult,
    DenyResult,
    FollowRequestPage,
    MutePage,
    MuteResult,
    Report,
    UnblockResult,
    UnmuteResult,
    error_responses,
)
from gateway.upstream import Services, Upstream
from glimpse.engagement.v1 import engagement_pb2
from glimpse.feed.v1 import feed_pb2
from glimpse.graph.v1 import graph_pb2
from mesh.errors import InvalidArgument, NotFound
from mesh.identity import as_caller

router = APIRouter(tags=["privacy"])

# graph_svc's limit, documented here and checked there.
DETAILS_MAX = 1000


class TargetBody(BaseModel):
    target_user_id: UserId


class ReportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    post_id: PostId | None = Field(None, description="Report a post (give exactly one of the three ids).")
    comment_id: CommentId | None = Field(None, description="Report a comment or reply.")
    user_id: UserId | None = Field(None, description="Report an account.")
    reason: Annotated[Text, *REPORT_REASON]
    details: Text = Field("", description="Anything that helps a moderator.", max_length=DETAILS_MAX)


def _page(items: list[dict[str, Any]], token: str) -> dict[str, Any]:
    return {"items": items, "next_page_token": token}


@router.get(
    "/v1/follow-requests",
    response_model=FollowRequestPage,
    summary="List requests to follow you",
    response_description="One page of pending requests, newest first.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_follow_requests(
    caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """Who asked to follow your private account. 400 for a malformed `page_token`."""
    request = graph_pb2.ListFollowRequestsRequest(page_size=page_size, page_token=page_token)
    response = await services.graph.ListFollowRequests(request, timeout=services.timeout, metadata=as_caller(caller))
    return _page([to_json(r) for r in response.requests], response.next_page_token)


@router.post(
    "/v1/follow-requests/{user_id}/approve",
    response_model=ApproveResult,
    summary="Approve a follow request",
    response_description="Whether a follow was made, and your new follower.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.follow_changes],
)
async def approve_follow_request(user_id: UserId, caller: CallerId, services: Services) -> dict[str, Any]:
    """`user_id` follows you from now on (their home feed gets your posts). Idempotent: `approved:
    false` if they already follow you. 404 (reason FOLLOW_REQUEST_NOT_FOUND) if they did not ask."""
    request = graph_pb2.ApproveFollowRequestRequest(requester_id=user_id)
    return to_json(
        await services.graph.ApproveFollowRequest(request, timeout=services.timeout, metadata=as_caller(caller))
    )


@router.delete(
    "/v1/follow-requests/{user_id}",
    response_model=DenyResult,
    summary="Deny a follow request",
    response_description="Whether a pending request was dropped.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.follow_changes],
)
async def deny_follow_request(user_id: UserId, caller: CallerId, services: Services) -> dict[str, Any]:
    """Drops `user_id`'s request; they are not told. Idempotent: `denied: false` if there was none."""
    request = graph_pb2.DenyFollowRequestRequest(requester_id=user_id)
    return to_json(
        await services.graph.DenyFollowRequest(request, timeout=services.timeout, metadata=as_caller(caller))
    )


@router.post(
    "/v1/blocks",
    response_model=BlockResult,
    summary="Block a user",
    response_description="Whether a block was made.",
    responses=error_responses(400, 401, 404, 413, 429),
    dependencies=[rate_limits.follow_changes],
)
async def block_user(body: TargetBody, caller: CallerId, services: Services) -> dict[str, Any]:
    """Removes the follows (and follow requests) between you and the user, both ways, and each one's
    posts from the other's home feed; within seconds, each one's likes, comments and saves on the
    other's posts go too (with the counts; unblocking brings nothing back). From then on neither of you
    exists for the other (404 for profiles, lists, posts and actions). Idempotent. 400 for yourself,
    404 for an unknown user."""
    request = graph_pb2.BlockUserRequest(target_user_id=body.target_user_id)
    return to_json(await services.graph.BlockUser(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.delete(
    "/v1/blocks/{user_id}",
    response_model=UnblockResult,
    summary="Unblock a user",
    response_description="Whether a block was lifted.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.follow_changes],
)
async def unblock_user(user_id: UserId, caller: CallerId, services: Services) -> dict[str, Any]:
    """Lifts your block (follows are not restored). Idempotent: `deleted: false` if there was none."""
    request = graph_pb2.UnblockUserRequest(target_user_id=user_id)
    return to_json(await services.graph.UnblockUser(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.get(
    "/v1/blocks",
    response_model=BlockPage,
    summary="List the users you block",
    response_description="One page of blocked users, newest block first.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_blocks(
    caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """400 for a malformed `page_token`."""
    request = graph_pb2.ListBlocksRequest(page_size=page_size, page_token=page_token)
    response = await services.graph.ListBlocks(request, timeout=services.timeout, metadata=as_caller(caller))
    return _page([to_json(b) for b in response.blocks], response.next_page_token)


@router.post(
    "/v1/mutes",
    response_model=MuteResult,
    summary="Mute a user",
    response_description="Whether a mute was made.",
    responses=error_responses(400, 401, 404, 413, 429),
    dependencies=[rate_limits.follow_changes],
)
async def mute_user(body: TargetBody, caller: CallerId, services: Services) -> dict[str, Any]:
    """The user's posts leave and stay out of your home feed; nothing else changes and they cannot
    tell. Idempotent. 400 for yourself, 404 for an unknown (or blocked) user."""
    request = graph_pb2.MuteUserRequest(target_user_id=body.target_user_id)
    return to_json(await services.graph.MuteUser(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.delete(
    "/v1/mutes/{user_id}",
    response_model=UnmuteResult,
    summary="Unmute a user",
    response_description="Whether a mute was lifted.",
    responses=error_responses(400, 401, 404, 429),
    dependencies=[rate_limits.follow_changes],
)
async def unmute_user(user_id: UserId, caller: CallerId, services: Services) -> dict[str, Any]:
    """Idempotent: `deleted: false` if there was none."""
    request = graph_pb2.UnmuteUserRequest(target_user_id=user_id)
    return to_json(await services.graph.UnmuteUser(request, timeout=services.timeout, metadata=as_caller(caller)))


@router.get(
    "/v1/mutes",
    response_model=MutePage,
    summary="List the users you mute",
    response_description="One page of muted users, newest mute first.",
    responses=error_responses(400, 401, 429),
    dependencies=[rate_limits.user_reads],
)
async def list_mutes(
    caller: CallerId, services: Services, page_size: PageSize = 0, page_token: PageToken = ""
) -> dict[str, Any]:
    """400 for a malformed `page_token`."""
    request = graph_pb2.ListMutesRequest(page_size=page_size, page_token=page_token)
    response = await services.graph.ListMutes(request, timeout=services.timeout, metadata=as_caller(caller))
    return _page([to_json(m) for m in response.mutes], response.next_page_token)


@router.post(
    "/v1/reports",
    status_code=status.HTTP_201_CREATED,
    response_model=Report,
    summary="Report a post, a comment or a user",
    response_description="The report, with the snapshot of what you reported.",
    responses=error_responses(400, 401, 404, 413, 429),
    dependencies=[rate_limits.engagement_changes],
)
async def create_report(body: ReportBody, caller: CallerId, services: Services) -> dict[str, Any]:
    """Give exactly one of `post_id`, `comment_id`, `user_id` (400 naming them otherwise). The report
    keeps a snapshot of the content as you see it now, so deleting it does not destroy the evidence
    (photos are kept as their URLs). Reporting the same thing again while your report of it is open
    answers that report. 404 for a post or comment you cannot see, or an unknown user. A user you
    block, or who blocks you, can be reported, but the answer's snapshot is empty: moderators get it,
    you do not (as everywhere else, neither of you exists for the other)."""
    named = {name: value for name in ("post_id", "comment_id", "user_id") if (value := getattr(body, name)) is not None}
    if len(named) != 1:
        problem = "give exactly one of post_id, comment_id and user_id"
        raise InvalidArgument(problem, fields={name: problem for name in ("post_id", "comment_id", "user_id")})
    ((kind, subject_id),) = named.items()
    snapshot, reported_user_id, shown = await _snapshot(services, caller, kind, subject_id)
    evidence = Struct()
    evidence.update(snapshot)
    request = graph_pb2.CreateReportRequest(
        subject_type=graph_pb2.ReportSubjectType.Value(f"REPORT_SUBJECT_TYPE_{kind.removesuffix('_id').upper()}"),
        subject_id=subject_id,
        reported_user_id=reported_user_id,
        reason=graph_pb2.ReportReason.Value(f"REPORT_REASON_{body.reason.upper()}"),
        details=body.details,
        snapshot=evidence,
    )
    report = await services.graph.CreateReport(request, timeout=services.timeout, metadata=as_caller(caller))
    rendered = report_json(report)
    if not shown:
        rendered["snapshot"] = {}
    return rendered


async def _snapshot(services: Upstream, caller: int, kind: str, subject_id: int) -> tuple[dict[str, Any], int, bool]:
    """(the content's JSON as the API renders it, its responsible account, whether the caller may be
    shown it: a post or comment they may not see is a 404 instead; a user hidden by a block is not)."""
    metadata = as_caller(caller)
    if kind == "post_id":
        # Fresh: the evidence is the post as it is now, not a cached copy from before an edit.
        request = feed_pb2.BatchGetFeedItemsRequest(post_ids=[subject_id], fresh=True)
        response = await services.feed.BatchGetFeedItems(request, timeout=services.timeout, metadata=metadata)
        if not response.items:
            raise NotFound(f"post {subject_id} does not exist", reason="POST_NOT_FOUND")
        item = response.items[0]
        return feed_item_json(item), item.author.id, True
    if kind == "comment_id":
        comment_request = engagement_pb2.GetCommentRequest(comment_id=subject_id)
        comment = await services.engagement.GetComment(comment_request, timeout=services.timeout, metadata=metadata)
        authors = await services.graph.BatchGetUsers(
            graph_pb2.BatchGetUsersRequest(user_ids=[comment.author_id]), timeout=services.timeout, metadata=metadata
        )
        rendered = to_json(comment)
        if authors.users:
            rendered["author"] = user_summary_json(authors.users[0])
        return rendered, comment.author_id, True
    user_request = graph_pb2.GetUserRequest(user_id=subject_id)
    try:
        user = await services.graph.GetUser(user_request, timeout=services.timeout, metadata=metadata)
        shown = True
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        # Hidden by a block either way, or unknown (asked again without the caller, it is a 404 then).
        # One may report an account one blocks or that blocks one; the evidence is the moderators'.
        user = await services.graph.GetUser(user_request, timeout=services.timeout)
        shown = False
    return to_json(user), user.id, shown


def report_json(report: graph_pb2.Report) -> dict[str, Any]:
    """A report as the API spells it: its enums as REPORT_* words, its snapshot as the object it holds."""
    rendered = to_json(report)
    rendered["subject_type"] = REPORT_SUBJECT_TYPES[report.subject_type]
    rendered["reason"] = REPORT_REASONS[report.reason]
    rendered["state"] = REPORT_STATES[report.state]
    rendered["resolution"] = REPORT_RESOLUTIONS[report.resolution]
    rendered.setdefault("snapshot", {})
    return rendered
