"""GraphService gRPC servicer: converts between protobuf and the domain, nothing else."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc.accounts import AccountService, Session
from graph_svc.follows import FollowService
from graph_svc.repository import FollowRecord, UserRecord
from mesh.identity import caller_id
from mesh.names import parse_user_name


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
    )


def _session_message(session: Session) -> graph_pb2.AuthenticateUserResponse:
    return graph_pb2.AuthenticateUserResponse(
        access_token=session.access.token,
        access_token_expire_time=_timestamp(session.access.expires_at),
        refresh_token=session.refresh.token,
        refresh_token_expire_time=_timestamp(session.refresh.expires_at),
        user=user_message(session.user),
    )


def _follow_message(follow: FollowRecord) -> graph_pb2.Follow:
    return graph_pb2.Follow(user=user_message(follow.user), create_time=_timestamp(follow.created_at))


class GraphServicer(graph_pb2_grpc.GraphServiceServicer):
    def __init__(self, *, accounts: AccountService, follows: FollowService) -> None:
        self._accounts = accounts
        self._follows = follows

    async def RegisterUser(
        self, request: graph_pb2.RegisterUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.User:
        user = await self._accounts.register(request.username, request.email, request.password, request.display_name)
        return user_message(user)

    async def AuthenticateUser(
        self, request: graph_pb2.AuthenticateUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.AuthenticateUserResponse:
        return _session_message(await self._accounts.authenticate(request.login, request.password))

    async def RefreshAccessToken(
        self, request: graph_pb2.RefreshAccessTokenRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.AuthenticateUserResponse:
        return _session_message(await self._accounts.refresh(request.refresh_token))

    async def GetUser(self, request: graph_pb2.GetUserRequest, context: grpc.aio.ServicerContext) -> graph_pb2.User:
        return user_message(await self._accounts.get_user(request.user_id))

    async def BatchGetUsers(
        self, request: graph_pb2.BatchGetUsersRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.BatchGetUsersResponse:
        users = await self._accounts.batch_get_users(list(request.user_ids))
        return graph_pb2.BatchGetUsersResponse(users=[user_message(u) for u in users])

    async def LookupUser(
        self, request: graph_pb2.LookupUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.User:
        return user_message(await self._accounts.lookup_user(request.username))

    async def SearchUsers(
        self, request: graph_pb2.SearchUsersRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.SearchUsersResponse:
        page = await self._accounts.search_users(request.query, request.page_size, request.page_token)
        return graph_pb2.SearchUsersResponse(
            users=[user_message(u) for u in page.items], next_page_token=page.next_page_token
        )

    async def FollowUser(
        self, request: graph_pb2.FollowUserRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.FollowUserResponse:
        created, target = await self._follows.follow(caller_id(context), request.target_user_id)
        return graph_pb2.FollowUserResponse(created=created, target=user_message(target))

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
            user_id, followers=True, size=request.page_size, token=request.page_token
        )
        return graph_pb2.ListFollowersResponse(
            follows=[_follow_message(f) for f in page.items], next_page_token=page.next_page_token
        )

    async def ListFollowing(
        self, request: graph_pb2.ListFollowingRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListFollowingResponse:
        user_id = parse_user_name(request.parent)
        page = await self._follows.list_follows(
            user_id, followers=False, size=request.page_size, token=request.page_token
        )
        return graph_pb2.ListFollowingResponse(
            follows=[_follow_message(f) for f in page.items], next_page_token=page.next_page_token
        )

    async def StreamFollowerIds(
        self, request: graph_pb2.StreamFollowerIdsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[graph_pb2.StreamFollowerIdsResponse]:
        async for ids in self._follows.stream_follower_ids(request.user_id, request.batch_size):
            yield graph_pb2.StreamFollowerIdsResponse(follower_ids=ids)

    async def ListFolloweeIds(
        self, request: graph_pb2.ListFolloweeIdsRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListFolloweeIdsResponse:
        return graph_pb2.ListFolloweeIdsResponse(followee_ids=await self._follows.followee_ids(request.user_id))

    async def GetFollowerCount(
        self, request: graph_pb2.GetFollowerCountRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.GetFollowerCountResponse:
        return graph_pb2.GetFollowerCountResponse(follower_count=await self._follows.follower_count(request.user_id))

    async def ListCelebrityFollowees(
        self, request: graph_pb2.ListCelebrityFolloweesRequest, context: grpc.aio.ServicerContext
    ) -> graph_pb2.ListCelebrityFolloweesResponse:
        ids = await self._follows.celebrity_followees(request.user_id, request.threshold)
        return graph_pb2.ListCelebrityFolloweesResponse(user_ids=ids)
