"""Mutes through a real GraphService stub: the muter's list and events change, and nothing the muted
user can see or do answers differently."""

from __future__ import annotations

import grpc

from glimpse.graph.v1 import graph_pb2
from mesh.events import USER_MUTED, USER_UNMUTED
from tests.graph_svc.conftest import refused, user_of


def mute(target_id: int) -> graph_pb2.MuteUserRequest:
    return graph_pb2.MuteUserRequest(target_user_id=target_id)


def unmute(target_id: int) -> graph_pb2.UnmuteUserRequest:
    return graph_pb2.UnmuteUserRequest(target_user_id=target_id)


async def what_the_muted_user_sees(graph, muted, muter) -> tuple[object, ...]:
    """Everything of the muter's the muted user can read or do, as a comparable value."""
    profile = await graph.GetUser(graph_pb2.GetUserRequest(user_id=muter.id), metadata=muted.metadata)
    looked_up = await graph.LookupUser(
        graph_pb2.LookupUserRequest(username=muter.user.username), metadata=muted.metadata
    )
    followers = await graph.ListFollowers(
        graph_pb2.ListFollowersRequest(parent=f"users/{muter.id}", page_size=100), metadata=muted.metadata
    )
    following = await graph.ListFollowing(
        graph_pb2.ListFollowingRequest(parent=f"users/{muter.id}", page_size=100), metadata=muted.metadata
    )
    search = await graph.SearchUsers(
        graph_pb2.SearchUsersRequest(query=muter.user.username, page_size=100), metadata=muted.metadata
    )
    return (
        profile.SerializeToString(),
        looked_up.SerializeToString(),
        [f.user.id for f in followers.follows],
        [f.user.id for f in following.follows],
        muter.id in [u.id for u in search.users],
    )


async def test_muting_changes_nothing_the_muted_user_can_tell(graph, make_account, outbox_events):
    muter, muted = await make_account(), await make_account()
    await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=muted.id), metadata=muter.metadata)
    await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=muter.id), metadata=muted.metadata)
    before = await what_the_muted_user_sees(graph, muted, muter)

    assert (await graph.MuteUser(mute(muted.id), metadata=muter.metadata)).created
    assert not (await graph.MuteUser(mute(muted.id), metadata=muter.metadata)).created
    assert [e.muted_id for e in await outbox_events(USER_MUTED, muter_id=muter.id)] == [muted.id]

    assert await what_the_muted_user_sees(graph, muted, muter) == before
    # The follows stay, both ways, and the muted user may still act on the muter.
    for user in (muter, muted):
        fresh = await user_of(graph, user)
        assert (fresh.follower_count, fresh.following_count) == (1, 1)
    unfollow = graph_pb2.UnfollowUserRequest(target_user_id=muter.id)
    assert (await graph.UnfollowUser(unfollow, metadata=muted.metadata)).deleted
    assert (
        await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=muter.id), metadata=muted.metadata)
    ).created

    page = await graph.ListMutes(graph_pb2.ListMutesRequest(), metadata=muter.metadata)
    assert [m.user.id for m in page.mutes] == [muted.id]
    assert not (await graph.ListMutes(graph_pb2.ListMutesRequest(), metadata=muted.metadata)).mutes

    assert (await graph.UnmuteUser(unmute(muted.id), metadata=muter.metadata)).deleted
    assert not (await graph.UnmuteUser(unmute(muted.id), metadata=muter.metadata)).deleted
    assert len(await outbox_events(USER_UNMUTED, muter_id=muter.id)) == 1
    assert not (await graph.ListMutes(graph_pb2.ListMutesRequest(), metadata=muter.metadata)).mutes


async def test_mute_refuses_oneself_unknown_and_blocked_users(graph, make_account):
    a, b = await make_account(), await make_account()
    for call, request in ((graph.MuteUser, mute), (graph.UnmuteUser, unmute)):
        code, reason, fields = await refused(call(request(a.id), metadata=a.metadata))
        assert (code, reason, list(fields)) == (grpc.StatusCode.INVALID_ARGUMENT, "SELF_MUTE", ["target_user_id"])
        code, _, fields = await refused(call(request(-4), metadata=a.metadata))
        assert (code, list(fields)) == (grpc.StatusCode.INVALID_ARGUMENT, ["target_user_id"])
        code, reason, _ = await refused(call(request(987654321), metadata=a.metadata))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
        code, reason, _ = await refused(call(request(b.id)))
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "NO_CALLER")
    await graph.MuteUser(mute(b.id), metadata=a.metadata)
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=a.id), metadata=b.metadata)
    code, reason, _ = await refused(graph.MuteUser(mute(b.id), metadata=a.metadata))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    # A mute made before the block can still be lifted.
    assert (await graph.UnmuteUser(unmute(b.id), metadata=a.metadata)).deleted
