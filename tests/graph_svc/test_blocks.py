"""Blocks through a real GraphService stub: blocking removes follows and requests both ways in one
go (counts, events), and from then on neither user exists for the other, whichever blocked."""

from __future__ import annotations

import grpc

from glimpse.graph.v1 import graph_pb2
from mesh.events import USER_BLOCKED, USER_FOLLOWED, USER_UNBLOCKED, USER_UNFOLLOWED
from tests.graph_svc.conftest import privacy_update, refusal, refused, user_of


def follow(target_id: int) -> graph_pb2.FollowUserRequest:
    return graph_pb2.FollowUserRequest(target_user_id=target_id)


def block(target_id: int) -> graph_pb2.BlockUserRequest:
    return graph_pb2.BlockUserRequest(target_user_id=target_id)


def unblock(target_id: int) -> graph_pb2.UnblockUserRequest:
    return graph_pb2.UnblockUserRequest(target_user_id=target_id)


async def list_ids(call, request, viewer) -> list[int]:
    page = await call(request, metadata=viewer.metadata)
    return [f.user.id for f in page.follows]


async def test_blocking_removes_follows_and_requests_both_ways_in_one_go(graph, make_account, outbox_events):
    blocker, blocked = await make_account(), await make_account()
    await graph.FollowUser(follow(blocked.id), metadata=blocker.metadata)
    await graph.FollowUser(follow(blocker.id), metadata=blocked.metadata)
    assert (await user_of(graph, blocker)).follower_count == 1

    assert (await graph.BlockUser(block(blocked.id), metadata=blocker.metadata)).created
    for user in (blocker, blocked):
        fresh = await user_of(graph, user)
        assert (fresh.follower_count, fresh.following_count) == (0, 0)
    unfollowed = [e for user in (blocker, blocked) for e in await outbox_events(USER_UNFOLLOWED, follower_id=user.id)]
    assert {(e.follower_id, e.followee_id) for e in unfollowed} == {(blocker.id, blocked.id), (blocked.id, blocker.id)}
    (blocked_event,) = await outbox_events(USER_BLOCKED, blocker_id=blocker.id)
    assert blocked_event.blocked_id == blocked.id
    # The purges reach the fan-out before the block itself.
    assert max(e.event_id for e in unfollowed) < blocked_event.event_id

    # Blocking again changes nothing and emits nothing.
    assert not (await graph.BlockUser(block(blocked.id), metadata=blocker.metadata)).created
    assert len(await outbox_events(USER_BLOCKED, blocker_id=blocker.id)) == 1


async def test_blocking_drops_pending_requests_both_ways(graph, make_account):
    blocker, blocked = await make_account(), await make_account()
    for private, asker in ((blocker, blocked), (blocked, blocker)):
        await graph.UpdateUser(privacy_update(True), metadata=private.metadata)
        assert (await graph.FollowUser(follow(private.id), metadata=asker.metadata)).state == (
            graph_pb2.FOLLOW_STATE_REQUESTED
        )
    await graph.BlockUser(block(blocked.id), metadata=blocker.metadata)
    for user in (blocker, blocked):
        page = await graph.ListFollowRequests(graph_pb2.ListFollowRequestsRequest(), metadata=user.metadata)
        assert not page.requests
        await graph.UpdateUser(privacy_update(False), metadata=user.metadata)
    # Turning public approved nobody: the requests were gone.
    for user in (blocker, blocked):
        assert (await user_of(graph, user)).follower_count == 0


async def test_neither_exists_for_the_other_whoever_blocked(graph, make_account, new_username):
    blocker, blocked, friend = await make_account(), await make_account(), await make_account()
    # The friend follows both and both follow the friend: each list shows the other, until the block.
    for user in (blocker, blocked):
        await graph.FollowUser(follow(friend.id), metadata=user.metadata)
        await graph.FollowUser(follow(user.id), metadata=friend.metadata)
    await graph.BlockUser(block(blocked.id), metadata=blocker.metadata)

    for viewer, other in ((blocker, blocked), (blocked, blocker)):
        code, reason, message = await refusal(
            graph.GetUser(graph_pb2.GetUserRequest(user_id=other.id), metadata=viewer.metadata)
        )
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
        # The blocker is told why; the blocked user reads what an unknown id reads.
        unknown = await refusal(graph.GetUser(graph_pb2.GetUserRequest(user_id=987654321), metadata=viewer.metadata))
        if viewer is blocker:
            assert "you blocked" in message
        else:
            assert message == unknown[2].replace("987654321", str(other.id))
        code, reason, _ = await refusal(
            graph.LookupUser(graph_pb2.LookupUserRequest(username=other.user.username), metadata=viewer.metadata)
        )
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
        for call in (graph.FollowUser, graph.UnfollowUser, graph.MuteUser):
            request_type = {
                graph.FollowUser: graph_pb2.FollowUserRequest,
                graph.UnfollowUser: graph_pb2.UnfollowUserRequest,
                graph.MuteUser: graph_pb2.MuteUserRequest,
            }[call]
            code, reason, _ = await refusal(call(request_type(target_user_id=other.id), metadata=viewer.metadata))
            assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND"), call
        for call, request in (
            (graph.ListFollowers, graph_pb2.ListFollowersRequest(parent=f"users/{other.id}")),
            (graph.ListFollowing, graph_pb2.ListFollowingRequest(parent=f"users/{other.id}")),
        ):
            code, _, _ = await refusal(call(request, metadata=viewer.metadata))
            assert code == grpc.StatusCode.NOT_FOUND
        # The friend's lists leave the other out, for this viewer only.
        followers = graph_pb2.ListFollowersRequest(parent=f"users/{friend.id}", page_size=100)
        following = graph_pb2.ListFollowingRequest(parent=f"users/{friend.id}", page_size=100)
        assert await list_ids(graph.ListFollowers, followers, viewer) == [viewer.id]
        assert await list_ids(graph.ListFollowing, following, viewer) == [viewer.id]
        assert sorted(await list_ids(graph.ListFollowers, followers, friend)) == sorted([blocker.id, blocked.id])
        # Search leaves the other out too.
        search = graph_pb2.SearchUsersRequest(query=other.user.username, page_size=100)
        assert other.id not in [u.id for u in (await graph.SearchUsers(search, metadata=viewer.metadata)).users]
        assert other.id in [u.id for u in (await graph.SearchUsers(search, metadata=friend.metadata)).users]
    # Nothing changed for anyone else, anonymous callers included.
    assert (await graph.GetUser(graph_pb2.GetUserRequest(user_id=blocker.id))).id == blocker.id
    assert (await graph.GetUser(graph_pb2.GetUserRequest(user_id=blocked.id), metadata=friend.metadata)).id


async def test_unblocking_restores_visibility_but_not_follows(graph, make_account, outbox_events):
    blocker, blocked = await make_account(), await make_account()
    await graph.FollowUser(follow(blocker.id), metadata=blocked.metadata)
    await graph.BlockUser(block(blocked.id), metadata=blocker.metadata)
    assert (await graph.UnblockUser(unblock(blocked.id), metadata=blocker.metadata)).deleted
    assert not (await graph.UnblockUser(unblock(blocked.id), metadata=blocker.metadata)).deleted
    assert len(await outbox_events(USER_UNBLOCKED, blocker_id=blocker.id)) == 1
    assert (await user_of(graph, blocker)).follower_count == 0
    seen = await graph.GetUser(graph_pb2.GetUserRequest(user_id=blocker.id), metadata=blocked.metadata)
    assert seen.id == blocker.id
    assert (await graph.FollowUser(follow(blocker.id), metadata=blocked.metadata)).created
    assert len(await outbox_events(USER_FOLLOWED, follower_id=blocked.id)) == 2


async def test_the_blocked_user_cannot_lift_the_block_and_mutual_blocks_last(graph, make_account):
    a, b = await make_account(), await make_account()
    await graph.BlockUser(block(b.id), metadata=a.metadata)
    # B's "unblock" of A finds no block of B's: A's block stays.
    assert not (await graph.UnblockUser(unblock(a.id), metadata=b.metadata)).deleted
    # B may block A back (B learns nothing by it), and each block lasts until its owner lifts it.
    assert (await graph.BlockUser(block(a.id), metadata=b.metadata)).created
    await graph.UnblockUser(unblock(b.id), metadata=a.metadata)
    code, _, _ = await refused(graph.GetUser(graph_pb2.GetUserRequest(user_id=b.id), metadata=a.metadata))
    assert code == grpc.StatusCode.NOT_FOUND
    await graph.UnblockUser(unblock(a.id), metadata=b.metadata)
    assert (await graph.GetUser(graph_pb2.GetUserRequest(user_id=b.id), metadata=a.metadata)).id == b.id


async def test_block_refuses_oneself_unknown_users_and_missing_callers(graph, make_account):
    a = await make_account()
    for call, request in ((graph.BlockUser, block), (graph.UnblockUser, unblock)):
        code, reason, fields = await refused(call(request(a.id), metadata=a.metadata))
        assert (code, reason, list(fields)) == (grpc.StatusCode.INVALID_ARGUMENT, "SELF_BLOCK", ["target_user_id"])
        code, _, fields = await refused(call(request(0), metadata=a.metadata))
        assert (code, list(fields)) == (grpc.StatusCode.INVALID_ARGUMENT, ["target_user_id"])
        code, reason, _ = await refused(call(request(987654321), metadata=a.metadata))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
        code, reason, _ = await refused(call(request(a.id)))
        assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "NO_CALLER")


async def test_blocks_page_newest_first(graph, make_account):
    owner = await make_account()
    others = [await make_account() for _ in range(3)]
    for other in others:
        await graph.BlockUser(block(other.id), metadata=owner.metadata)
    first = await graph.ListBlocks(graph_pb2.ListBlocksRequest(page_size=2), metadata=owner.metadata)
    assert [b.user.id for b in first.blocks] == [others[2].id, others[1].id] and first.next_page_token
    second = await graph.ListBlocks(
        graph_pb2.ListBlocksRequest(page_size=2, page_token=first.next_page_token), metadata=owner.metadata
    )
    assert [b.user.id for b in second.blocks] == [others[0].id] and not second.next_page_token
    # Another user's token is another list.
    code, _, fields = await refused(
        graph.ListBlocks(graph_pb2.ListBlocksRequest(page_token=first.next_page_token), metadata=others[0].metadata)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in fields
