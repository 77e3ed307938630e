"""GraphService and ModerationService gRPC servicers: convert between protobuf and the domain, nothing
else (ModerationService also checks the operator credential its callers carry in metadata)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc.accounts import AccountService
from graph_svc.blocks import BlockService
from graph_svc.erasure import ErasureService
from graph_svc.follows import FollowService, FollowState
from graph_svc.moderation import OPERATOR_TOKEN_KEY, OperatorCredential
from graph_svc.mutes import MuteService
from graph_svc.password_change import PasswordChangeService
from graph_svc.privacy import PrivacyService, RelatedUser
from graph_svc.profile import ProfileService, ProfileValues
from graph_svc.report_repository import ReportRecord
from graph_svc.reports import ReportService
from graph_svc.repository import FollowRecord, UserRecord
from graph_svc.session_repository import SessionRecord
from graph_svc.sessions import Login, SessionService
from graph_svc.visibility import Visibility, VisibilityService
from mesh.identity import caller_id, optional_caller_id
from mesh.names import parse_user_name

_FOLLOW_STATES: Mapping[FollowState, graph_pb2.FollowState.ValueType] = {
    FollowState.FOLLOWING: graph_pb2.FOLLOW_STATE_FOLLOWING,
    FollowState.REQUESTED: graph_pb2.FOLLOW_STATE_REQUESTED,
}
_VISIBILITIES: Mapping[Visibility, graph_pb2.Visibility.ValueType] = {
    Visibility.VISIBLE: graph_pb2.VISIBILITY_VISIBLE,
    Visibility.NOT_FOLLOWER_OF_PRIVATE: graph_pb2.VISIBILITY_NOT_FOLLOWER_OF_PRIVATE,
    Visibility.BLOCKED: graph_pb2.VISIBILITY_BLOCKED,
    Visibility.AUTHOR_NOT_FOUND: graph_pb2.VISIBILITY_AUTHOR_NOT_FOUND,
}


def _timestamp(value: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def user_message(user: UserRecord) -> graph_pb2.User:
    return graph_pb2.User(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        bio=user.bio,
        follower_count=user.follower_count,
        following_count=user.following_count,
        create_time=_timestamp(user.created_at),
        is_private=user.is_private,
        website=user.website,
        avatar_url=user.avatar_url,
        avatar_large_url=user.avatar_large_url,
    )


def _word(enum: EnumDescriptor, number: int) -> str:
    """The stored word of a wire enum value (REPORT_REASON_SPAM -> "spam", graph_svc.models): "" for
    UNSPECIFIED, and the number itself for one this release does not know (the service refuses both,
    naming the field)."""
    if number == 0:
        return ""
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    return value.name.removeprefix(_enum_prefix(enum)).lower()


def _enum_prefix(enum: EnumDescriptor) -> str:
    """ "REPORT_REASON_" for ReportReason: AIP-126 prefixes every value with the enum's name."""
    return enum.values_by_number[0].name.removesuffix("UNSPECIFIED")


def report_message(report: ReportRecord) -> graph_pb2.Report:
    snapshot = Struct()
    snapshot.update(report.snapshot)
    message = graph_pb2.Report(
        id=report.id,
        reporter_id=report.reporter_id or 0,
        subject_type=graph_pb2.ReportSubjectType.Value(f"REPORT_SUBJECT_TYPE_{report.subject_type.upper()}"),
        subject_id=report.subject_id,
        reported_user_id=report.reported_user_id,
        reason=graph_pb2.ReportReason.Value(f"REPORT_REASON_{report.reason.upper()}"),
        details=report.details,
        snapshot=snapshot,
        state=graph_pb2.ReportState.Value(f"REPORT_STATE_{report.state.upper()}"),
        resolution=graph_pb2.ReportResolution.Value(
            f"REPORT_RESOLUTION_{(report.resolution or 'unspecified').upper()}"
        ),
        resolution_note=report.resolution_note,
        create_time=_timestamp(report.created_at),
    )
    if report.resolved_at is not None:
        message.resolve_time.CopyFrom(_timestamp(report.resolved_at))
    return message


def _login_message(login: Login) -> graph_pb2.AuthenticateUserResponse:
    return graph_pb2.AuthenticateUserResponse(
        access_token=login.access.token,
        access_token_expire_time=_timestamp(login.access.expires_at),
        refresh_token=login.refresh.token,
        refresh_token_expire_time=_timestamp(login.refresh.expires_at),
        user=user_message(login.user),
        session_id=login.session_id,
    )


def _session_message(record: SessionRecord, current_session_id: int) -> graph_pb2.Session:
    return graph_pb2.Session(
        id=record.id,
        device_label=record.device_label,
        create_time=_timestamp(record.created_at),
        last_use_time=_timestamp(record.last_used_at),
        expire_time=_timestamp(record.expires_at),
        current=record.id == current_session_id,
    )


def _follow_message(follow: FollowRecord) -> graph_pb2.Follow:
    return graph_pb2.Follow(user=user_message(follow.user), create_time=_timestamp(follow.created_at))


def _related(related: RelatedUser) -> tuple[graph_pb2.User, Timestamp]:
    return user_message(related.user), _timestamp(related.since)


class GraphServicer(graph_pb2_grpc.GraphServiceServicer):
    def __init__(
        self,
        *,
        accounts: AccountService,
        follows: FollowService,
        privacy: PrivacyService,
        blocks: BlockService,
        mutes: MuteService,
        visibility: VisibilityService,
        reports: ReportService,
        sessions: SessionService,
        password_changes: PasswordChangeService,
        erasure: ErasureService,
        profile: ProfileService,
    ) -> None:
        self._profile = profile
        self._sessions = sessions
        self._password_changes = password_changes
        self._erasure = erasure
        self._accounts = accounts
        self._follows = follows
        self._privacy = privacy
        self._blocks = blocks
        self._mutes = mutes
        self._visibility = visibility
        self._reports = reports

    async def RegisterUser(
        self, request: graph_pb2.RegisterUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.User:
        user = await self._accounts.register(request.username, request.email, request.password, request.display_name)
        return user_message(user)

    async def AuthenticateUser(
        self, request: graph_pb2.AuthenticateUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.AuthenticateUserResponse:
        return _login_message(await self._accounts.authenticate(request.login, request.password, request.device_label))

    async def RefreshAccessToken(
        self, request: graph_pb2.RefreshAccessTokenRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.AuthenticateUserResponse:
        return _login_message(await self._sessions.refresh(request.refresh_token))

    async def ListSessions(
        self, request: graph_pb2.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListSessionsResponse:
        page = await self._sessions.list_sessions(
            caller_id(context),
            size=request.page_size,
            token=request.page_token,
            current_session_id=request.current_session_id or None,
        )
        return graph_pb2.ListSessionsResponse(
            sessions=[_session_message(r, request.current_session_id) for r in page.items],
            next_page_token=page.next_page_token,
        )

    async def RevokeSession(
        self, request: graph_pb2.RevokeSessionRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.RevokeSessionResponse:
        revoked = await self._sessions.revoke(caller_id(context), request.session_id)
        return graph_pb2.RevokeSessionResponse(revoked=revoked)

    async def CheckSessions(
        self, request: graph_pb2.CheckSessionsRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.CheckSessionsResponse:
        live = await self._sessions.live_among(list(request.session_ids))
        return graph_pb2.CheckSessionsResponse(live_session_ids=live)

    async def ChangePassword(
        self, request: graph_pb2.ChangePasswordRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ChangePasswordResponse:
        revoked = await self._password_changes.change_password(
            caller_id(context), request.current_password, request.new_password, request.current_session_id or None
        )
        return graph_pb2.ChangePasswordResponse(revoked_session_count=revoked)

    async def DeleteUser(
        self, request: graph_pb2.DeleteUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.DeleteUserResponse:
        released_at = await self._erasure.delete_user(caller_id(context), request.password)
        return graph_pb2.DeleteUserResponse(username_release_time=_timestamp(released_at))

    async def GetUser(self, request: graph_pb2.GetUserRequest, context: grpc.aio.ServicerContext) -> graph_pb2.User:
        return user_message(await self._accounts.get_user(request.user_id, optional_caller_id(context)))

    async def BatchGetUsers(
        self, request: graph_pb2.BatchGetUsersRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.BatchGetUsersResponse:
        users = await self._accounts.batch_get_users(list(request.user_ids))
        return graph_pb2.BatchGetUsersResponse(users=[user_message(u) for u in users])

    async def LookupUser(
        self, request: graph_pb2.LookupUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.User:
        return user_message(await self._accounts.lookup_user(request.username, optional_caller_id(context)))

    async def SearchUsers(
        self, request: graph_pb2.SearchUsersRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.SearchUsersResponse:
        page = await self._accounts.search_users(
            request.query, request.page_size, request.page_token, optional_caller_id(context)
        )
        return graph_pb2.SearchUsersResponse(
            users=[user_message(u) for u in page.items], next_page_token=page.next_page_token
        )

    async def FollowUser(
        self, request: graph_pb2.FollowUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.FollowUserResponse:
        outcome = await self._follows.follow(caller_id(context), request.target_user_id)
        return graph_pb2.FollowUserResponse(
            created=outcome.created, target=user_message(outcome.followee), state=_FOLLOW_STATES[outcome.state]
        )

    async def UnfollowUser(
        self, request: graph_pb2.UnfollowUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.UnfollowUserResponse:
        deleted = await self._follows.unfollow(caller_id(context), request.target_user_id)
        return graph_pb2.UnfollowUserResponse(deleted=deleted)

    async def ListFollowers(
        self, request: graph_pb2.ListFollowersRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListFollowersResponse:
        user_id = parse_user_name(request.parent)
        page = await self._follows.list_follows(
            user_id,
            followers=True,
            size=request.page_size,
            token=request.page_token,
            viewer_id=optional_caller_id(context),
        )
        return graph_pb2.ListFollowersResponse(
            follows=[_follow_message(f) for f in page.items], next_page_token=page.next_page_token
        )

    async def ListFollowing(
        self, request: graph_pb2.ListFollowingRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListFollowingResponse:
        user_id = parse_user_name(request.parent)
        page = await self._follows.list_follows(
            user_id,
            followers=False,
            size=request.page_size,
            token=request.page_token,
            viewer_id=optional_caller_id(context),
        )
        return graph_pb2.ListFollowingResponse(
            follows=[_follow_message(f) for f in page.items], next_page_token=page.next_page_token
        )

    async def StreamFollowerIds(
        self, request: graph_pb2.StreamFollowerIdsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[graph_pb2.StreamFollowerIdsResponse]:
        batches = self._follows.stream_follower_ids(
            request.user_id, request.batch_size, audience_only=request.audience_only
        )
        async for ids in batches:
            yield graph_pb2.StreamFollowerIdsResponse(follower_ids=ids)

    async def ListFolloweeIds(
        self, request: graph_pb2.ListFolloweeIdsRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListFolloweeIdsResponse:
        return graph_pb2.ListFolloweeIdsResponse(followee_ids=await self._follows.followee_ids(request.user_id))

    async def GetFollowerCount(
        self, request: graph_pb2.GetFollowerCountRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.GetFollowerCountResponse:
        return graph_pb2.GetFollowerCountResponse(follower_count=await self._follows.follower_count(request.user_id))

    async def GetAudience(
        self, request: graph_pb2.GetAudienceRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.GetAudienceResponse:
        count, ids = await self._follows.audience(request.user_id, request.max_ids)
        return graph_pb2.GetAudienceResponse(follower_count=count, complete=ids is not None, follower_ids=ids or [])

    async def ListCelebrityFollowees(
        self, request: graph_pb2.ListCelebrityFolloweesRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListCelebrityFolloweesResponse:
        ids = await self._follows.celebrity_followees(request.user_id, request.threshold)
        return graph_pb2.ListCelebrityFolloweesResponse(user_ids=ids)

    async def UpdateUser(
        self, request: graph_pb2.UpdateUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.User:
        values = ProfileValues(
            display_name=request.user.display_name,
            bio=request.user.bio,
            website=request.user.website,
            is_private=request.user.is_private,
        )
        user = await self._profile.update_user(
            caller_id(context), request.user.id, list(request.update_mask.paths), values
        )
        return user_message(user)

    async def SetAvatar(
        self, request: graph_pb2.SetAvatarRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.SetAvatarResponse:
        user, applied = await self._profile.set_avatar(caller_id(context), request.media_id)
        return graph_pb2.SetAvatarResponse(user=user_message(user), applied=applied)

    async def DeleteAvatar(
        self, request: graph_pb2.DeleteAvatarRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.DeleteAvatarResponse:
        deleted, user = await self._profile.delete_avatar(caller_id(context))
        return graph_pb2.DeleteAvatarResponse(deleted=deleted, user=user_message(user))

    async def ListFollowRequests(
        self, request: graph_pb2.ListFollowRequestsRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListFollowRequestsResponse:
        page = await self._privacy.list_requests(caller_id(context), request.page_size, request.page_token)
        return graph_pb2.ListFollowRequestsResponse(
            requests=[graph_pb2.FollowRequest(user=u, create_time=t) for u, t in map(_related, page.items)],
            next_page_token=page.next_page_token,
        )

    async def ApproveFollowRequest(
        self, request: graph_pb2.ApproveFollowRequestRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ApproveFollowRequestResponse:
        approved, follower = await self._privacy.approve(caller_id(context), request.requester_id)
        return graph_pb2.ApproveFollowRequestResponse(approved=approved, follower=user_message(follower))

    async def DenyFollowRequest(
        self, request: graph_pb2.DenyFollowRequestRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.DenyFollowRequestResponse:
        denied = await self._privacy.deny(caller_id(context), request.requester_id)
        return graph_pb2.DenyFollowRequestResponse(denied=denied)

    async def BlockUser(
        self, request: graph_pb2.BlockUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.BlockUserResponse:
        created = await self._blocks.block(caller_id(context), request.target_user_id)
        return graph_pb2.BlockUserResponse(created=created)

    async def UnblockUser(
        self, request: graph_pb2.UnblockUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.UnblockUserResponse:
        deleted = await self._blocks.unblock(caller_id(context), request.target_user_id)
        return graph_pb2.UnblockUserResponse(deleted=deleted)

    async def ListBlocks(
        self, request: graph_pb2.ListBlocksRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListBlocksResponse:
        page = await self._blocks.list_blocks(caller_id(context), request.page_size, request.page_token)
        return graph_pb2.ListBlocksResponse(
            blocks=[graph_pb2.Block(user=u, create_time=t) for u, t in map(_related, page.items)],
            next_page_token=page.next_page_token,
        )

    async def MuteUser(
        self, request: graph_pb2.MuteUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.MuteUserResponse:
        created = await self._mutes.mute(caller_id(context), request.target_user_id)
        return graph_pb2.MuteUserResponse(created=created)

    async def UnmuteUser(
        self, request: graph_pb2.UnmuteUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.UnmuteUserResponse:
        deleted = await self._mutes.unmute(caller_id(context), request.target_user_id)
        return graph_pb2.UnmuteUserResponse(deleted=deleted)

    async def ListMutes(
        self, request: graph_pb2.ListMutesRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListMutesResponse:
        page = await self._mutes.list_mutes(caller_id(context), request.page_size, request.page_token)
        return graph_pb2.ListMutesResponse(
            mutes=[graph_pb2.Mute(user=u, create_time=t) for u, t in map(_related, page.items)],
            next_page_token=page.next_page_token,
        )

    async def CheckVisibility(
        self, request: graph_pb2.CheckVisibilityRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.CheckVisibilityResponse:
        found = await self._visibility.check(request.viewer_id, list(request.author_ids))
        return graph_pb2.CheckVisibilityResponse(
            results=[graph_pb2.AuthorVisibility(author_id=a, visibility=_VISIBILITIES[v]) for a, v in found]
        )

    async def GetViewerFilters(
        self, request: graph_pb2.GetViewerFiltersRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ViewerFilters:
        found = await self._visibility.viewer_filters(request.viewer_id)
        return graph_pb2.ViewerFilters(
            blocked_user_ids=found.blocked, muted_user_ids=found.muted, private_followee_ids=found.private_followees
        )

    async def FilterAudience(
        self, request: graph_pb2.FilterAudienceRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.FilterAudienceResponse:
        excluded = await self._visibility.audience_exclusions(request.author_id, list(request.user_ids))
        return graph_pb2.FilterAudienceResponse(excluded_user_ids=excluded)

    async def CreateReport(
        self, request: graph_pb2.CreateReportRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.Report:
        report = await self._reports.create(
            caller_id(context),
            subject_type=_word(graph_pb2.ReportSubjectType.DESCRIPTOR, request.subject_type),
            subject_id=request.subject_id,
            reported_user_id=request.reported_user_id,
            reason=_word(graph_pb2.ReportReason.DESCRIPTOR, request.reason),
            details=request.details,
            snapshot=json_format.MessageToDict(request.snapshot),
        )
        return report_message(report)


class ModerationServicer(graph_pb2_grpc.ModerationServiceServicer):
    def __init__(self, *, reports: ReportService, credential: OperatorCredential) -> None:
        self._reports = reports
        self._credential = credential

    def _check_operator(self, context: grpc.aio.ServicerContext) -> None:
        presented = dict(context.invocation_metadata() or ()).get(OPERATOR_TOKEN_KEY)
        self._credential.check(presented if isinstance(presented, str) else None)

    async def ListReports(
        self, request: graph_pb2.ListReportsRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListReportsResponse:
        self._check_operator(context)
        state = _word(graph_pb2.ReportState.DESCRIPTOR, request.state) or None
        page = await self._reports.list_reports(state, request.page_size, request.page_token)
        return graph_pb2.ListReportsResponse(
            reports=[report_message(r) for r in page.items], next_page_token=page.next_page_token
        )

    async def GetReport(
        self, request: graph_pb2.GetReportRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.Report:
        self._check_operator(context)
        return report_message(await self._reports.get(request.report_id))

    async def ResolveReport(
        self, request: graph_pb2.ResolveReportRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.Report:
        self._check_operator(context)
        resolution = _word(graph_pb2.ReportResolution.DESCRIPTOR, request.resolution)
        return report_message(await self._reports.resolve(request.report_id, resolution, request.note))
