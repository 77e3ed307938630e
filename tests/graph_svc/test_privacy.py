"""Private accounts through a real GraphService stub: following asks first, the owner approves or
denies, the requester withdraws, turning public approves everyone waiting; counts, events and the
private account's lists."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from glimpse.graph.v1 import graph_pb2
from graph_svc import models
from graph_svc.follows import FollowService
from mesh.db import Database
from mesh.errors import FailedPrecondition
from mesh.events import FOLLOW_REQUESTED, USER_FOLLOWED, USER_PRIVACY_CHANGED
from mesh.ids import IdGenerator
from mesh.outbox import Outbox
from tests.graph_svc.conftest import privacy_update, refused, user_of

REQUESTED, FOLLOWING = graph_pb2.FOLLOW_STATE_REQUESTED, graph_pb2.FOLLOW_STATE_FOLLOWING


def follow(target_id: int) -> graph_pb2.FollowUserRequest:
    return graph_pb2.FollowUserRequest(target_user_id=target_id)


async def requests_of(graph, owner, size: int = 100, token: str = "") -> graph_pb2.ListFollowRequestsResponse:
    request = graph_pb2.ListFollowRequestsRequest(page_size=size, page_token=token)
    return await graph.ListFollowRequests(request, metadata=owner.metadata)


async def follower_ids(graph, owner) -> list[int]:
    page = await graph.ListFollowers(
        graph_pb2.ListFollowersRequest(parent=f"users/{owner.id}", page_size=100), metadata=owner.metadata
    )
    return [f.user.id for f in page.follows]


async def test_following_a_private_account_asks_and_approving_follows(
    graph, make_account, make_private_account, outbox_events
):
    owner, fan = await make_private_account(), await make_account()
    asked = await graph.FollowUser(follow(owner.id), metadata=fan.metadata)
    again = await graph.FollowUser(follow(owner.id), metadata=fan.metadata)
    assert (asked.created, asked.state, again.created, again.state) == (True, REQUESTED, False, REQUESTED)
    assert asked.target.is_private and asked.target.follower_count == 0
    assert (await user_of(graph, fan)).following_count == 0
    assert [(e.requester_id, e.target_id) for e in await outbox_events(FOLLOW_REQUESTED, requester_id=fan.id)] == [
        (fan.id, owner.id)
    ]
    assert [r.user.id for r in (await requests_of(graph, owner)).requests] == [fan.id]
    assert await follower_ids(graph, owner) == []

    approval = graph_pb2.ApproveFollowRequestRequest(requester_id=fan.id)
    approved = await graph.ApproveFollowRequest(approval, metadata=owner.metadata)
    assert approved.approved and approved.follower.id == fan.id and approved.follower.following_count == 1
    assert (await user_of(graph, owner)).follower_count == 1
    assert await follower_ids(graph, owner) == [fan.id]
    assert not (await requests_of(graph, owner)).requests
    (followed,) = await outbox_events(USER_FOLLOWED, follower_id=fan.id)
    assert (followed.followee_id, followed.approved_request) == (owner.id, True)

    # Approving twice changes nothing; following again answers FOLLOWING.
    assert not (await graph.ApproveFollowRequest(approval, metadata=owner.metadata)).approved
    assert len(await outbox_events(USER_FOLLOWED, follower_id=fan.id)) == 1
    now = await graph.FollowUser(follow(owner.id), metadata=fan.metadata)
    assert (now.created, now.state) == (False, FOLLOWING)


async def test_denying_drops_the_request_and_the_requester_may_ask_again(graph, make_account, make_private_account):
    owner, fan = await make_private_account(), await make_account()
    await graph.FollowUser(follow(owner.id), metadata=fan.metadata)
    deny = graph_pb2.DenyFollowRequestRequest(requester_id=fan.id)
    assert (await graph.DenyFollowRequest(deny, metadata=owner.metadata)).denied
    assert not (await graph.DenyFollowRequest(deny, metadata=owner.metadata)).denied
    assert not (await requests_of(graph, owner)).requests
    assert await follower_ids(graph, owner) == []
    approval = graph_pb2.ApproveFollowRequestRequest(requester_id=fan.id)
    code, reason, _ = await refused(graph.ApproveFollowRequest(approval, metadata=owner.metadata))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "FOLLOW_REQUEST_NOT_FOUND")
    assert (await graph.FollowUser(follow(owner.id), metadata=fan.metadata)).created


async def test_the_requester_withdraws_with_unfollow(graph, make_account, make_private_account):
    owner, fan = await make_private_account(), await make_account()
    await graph.FollowUser(follow(owner.id), metadata=fan.metadata)
    unfollow = graph_pb2.UnfollowUserRequest(target_user_id=owner.id)
    assert (await graph.UnfollowUser(unfollow, metadata=fan.metadata)).deleted
    assert not (await graph.UnfollowUser(unfollow, metadata=fan.metadata)).deleted
    assert not (await requests_of(graph, owner)).requests
    assert (await user_of(graph, owner)).follower_count == 0


async def test_turning_public_approves_every_pending_request_in_one_go(
    graph, make_account, make_private_account, outbox_events
):
    owner = await make_private_account()
    fans = [await make_account() for _ in range(3)]
    for fan in fans:
        await graph.FollowUser(follow(owner.id), metadata=fan.metadata)
    public = await graph.UpdateUser(privacy_update(False), metadata=owner.metadata)
    assert not public.is_private and public.follower_count == 3
    assert sorted(await follower_ids(graph, owner)) == sorted(f.id for f in fans)
    assert not (await requests_of(graph, owner)).requests
    follow_event_ids = []
    for fan in fans:
        assert (await user_of(graph, fan)).following_count == 1
        (event,) = await outbox_events(USER_FOLLOWED, follower_id=fan.id)
        assert (event.followee_id, event.approved_request) == (owner.id, True)
        follow_event_ids.append(event.event_id)
    changes = await outbox_events(USER_PRIVACY_CHANGED, user_id=owner.id)
    assert [e.is_private for e in changes] == [True, False]
    # The follows' events come before the change that caused them (the relay publishes in id order).
    assert max(follow_event_ids) < changes[-1].event_id
    # A public account is followed at once.
    late = await make_account()
    assert (await graph.FollowUser(follow(owner.id), metadata=late.metadata)).state == FOLLOWING


async def test_setting_the_same_privacy_again_changes_nothing(graph, make_account, outbox_events):
    owner = await make_account()
    assert not (await graph.UpdateUser(privacy_update(False), metadata=owner.metadata)).is_private
    await graph.UpdateUser(privacy_update(True), metadata=owner.metadata)
    await graph.UpdateUser(privacy_update(True), metadata=owner.metadata)
    assert [e.is_private for e in await outbox_events(USER_PRIVACY_CHANGED, user_id=owner.id)] == [True]


async def test_update_user_refuses_what_it_cannot_change(graph, make_account):
    owner, other = await make_account(), await make_account()
    cases = [
        (graph_pb2.UpdateUserRequest(user=graph_pb2.User(is_private=True)), owner.metadata, "update_mask"),
        (
            graph_pb2.UpdateUserRequest(
                user=graph_pb2.User(avatar_url="https://example.com/a.webp"),
                update_mask=FieldMask(paths=["avatar_url"]),
            ),
            owner.metadata,
            "update_mask",
        ),
        (
            graph_pb2.UpdateUserRequest(
                user=graph_pb2.User(is_private=True), update_mask=FieldMask(paths=["is_private", "username"])
            ),
            owner.metadata,
            "update_mask",
        ),
    ]
    for request, metadata, field in cases:
        code, _, fields = await refused(graph.UpdateUser(request, metadata=metadata))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in fields, request
    someone_else = graph_pb2.UpdateUserRequest(
        user=graph_pb2.User(id=other.id, is_private=True), update_mask=FieldMask(paths=["is_private"])
    )
    code, _, _ = await refused(graph.UpdateUser(someone_else, metadata=owner.metadata))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, reason, _ = await refused(graph.UpdateUser(privacy_update(True)))
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "NO_CALLER")
    for account in (owner, other):
        assert not (await user_of(graph, account)).is_private
    # Naming oneself is fine.
    mine = graph_pb2.UpdateUserRequest(
        user=graph_pb2.User(id=owner.id, is_private=True), update_mask=FieldMask(paths=["is_private"])
    )
    assert (await graph.UpdateUser(mine, metadata=owner.metadata)).is_private


async def test_a_private_account_s_lists_are_for_its_followers(graph, make_account, make_private_account):
    owner, fan, stranger = await make_private_account(), await make_account(), await make_account()
    await graph.FollowUser(follow(owner.id), metadata=fan.metadata)
    await graph.ApproveFollowRequest(
        graph_pb2.ApproveFollowRequestRequest(requester_id=fan.id), metadata=owner.metadata
    )
    for call, request in (
        (graph.ListFollowers, graph_pb2.ListFollowersRequest(parent=f"users/{owner.id}")),
        (graph.ListFollowing, graph_pb2.ListFollowingRequest(parent=f"users/{owner.id}")),
    ):
        for allowed in (owner, fan):
            await call(request, metadata=allowed.metadata)
        for metadata in (stranger.metadata, ()):
            code, reason, _ = await refused(call(request, metadata=metadata))
            assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "ACCOUNT_PRIVATE")
    # The profile itself stays visible, with its counts.
    seen = await graph.GetUser(graph_pb2.GetUserRequest(user_id=owner.id), metadata=stranger.metadata)
    assert seen.is_private and seen.follower_count == 1


async def test_following_an_account_that_turned_private_stays_a_follow(graph, make_account):
    owner, fan = await make_account(), await make_account()
    await graph.FollowUser(follow(owner.id), metadata=fan.metadata)
    await graph.UpdateUser(privacy_update(True), metadata=owner.metadata)
    again = await graph.FollowUser(follow(owner.id), metadata=fan.metadata)
    assert (again.created, again.state) == (False, FOLLOWING)
    assert not (await requests_of(graph, owner)).requests


async def test_requests_page_newest_first(graph, make_account, make_private_account):
    owner = await make_private_account()
    fans = [await make_account() for _ in range(5)]
    for fan in fans:
        await graph.FollowUser(follow(owner.id), metadata=fan.metadata)
    pages, token = [], ""
    while True:
        page = await requests_of(graph, owner, size=2, token=token)
        pages.append([r.user.id for r in page.requests])
        token = page.next_page_token
        if not token:
            break
    assert pages == [[fans[4].id, fans[3].id], [fans[2].id, fans[1].id], [fans[0].id]]
    code, _, fields = await refused(requests_of(graph, owner, token="garbage"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in fields


async def test_approve_and_deny_refuse_bad_requesters(graph, make_account):
    owner = await make_account()
    for call, request in (
        (graph.ApproveFollowRequest, graph_pb2.ApproveFollowRequestRequest),
        (graph.DenyFollowRequest, graph_pb2.DenyFollowRequestRequest),
    ):
        code, _, fields = await refused(call(request(requester_id=0), metadata=owner.metadata))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "requester_id" in fields
        code, _, _ = await refused(call(request(requester_id=owner.id)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    code, reason, _ = await refused(
        graph.ApproveFollowRequest(
            graph_pb2.ApproveFollowRequestRequest(requester_id=987654321), metadata=owner.metadata
        )
    )
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")


async def test_pending_requests_count_against_the_following_limit(graph, graph_settings, make_account):
    """Approving a request never takes the requester over the limit: requests count when made."""
    fan, private, public = await make_account(), await make_account(), await make_account()
    await graph.UpdateUser(privacy_update(True), metadata=private.metadata)
    db = Database(graph_settings.database_url, pool_size=1)
    service = FollowService(db=db, outbox=Outbox(models.outbox, IdGenerator(9)), max_following=1)
    try:
        assert (await service.follow(fan.id, private.id)).created
        with pytest.raises(FailedPrecondition) as refusal:
            await service.follow(fan.id, public.id)
        assert refusal.value.reason == "FOLLOWING_LIMIT"
        assert not (await service.follow(fan.id, private.id)).created  # asking again is still fine
        await service.unfollow(fan.id, private.id)  # withdrawing frees the place
        assert (await service.follow(fan.id, public.id)).created
    finally:
        await db.dispose()
