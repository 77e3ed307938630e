"""Private accounts, follow requests, blocks, mutes and reports through the live gateway: every route's
JSON checked strictly against its resource, 400s naming the field, 401/403/404 in the error shape, and
a report's snapshot outliving the post it shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from gateway import resources
from gateway.app import create_app
from glimpse.engagement.v1 import engagement_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc.app import graph_host
from graph_svc.settings import GraphSettings
from tests.conftest import Account
from tests.gateway.test_app import assert_error, reasons, settings
from tests.gateway.test_engagement_http import checked, field_violations, post_by

UNKNOWN = "7240392310784001"
OPERATOR_TOKEN = "operator-token-for-the-gateway-tests-0123456789"


async def private(http: httpx.AsyncClient, account: Account) -> None:
    me = await checked(
        await http.patch("/v1/users/me", json={"is_private": True}, headers=account.headers), resources.User
    )
    assert me["is_private"] is True and me["id"] == str(account.id)


async def follow(http: httpx.AsyncClient, follower: Account, target: Account) -> dict[str, Any]:
    body = {"target_user_id": str(target.id)}
    return await checked(await http.post("/v1/follow", json=body, headers=follower.headers), resources.FollowResult)


async def requesters(http: httpx.AsyncClient, owner: Account) -> list[str]:
    page = await checked(await http.get("/v1/follow-requests", headers=owner.headers), resources.FollowRequestPage)
    return [item["user"]["id"] for item in page["items"]]


def test_every_privacy_route_is_covered_here():
    """A new route of the router fails this until this file tests it."""
    found = {
        (method, route.path)
        for route in iter_route_contexts(create_app(settings()).routes)
        if isinstance(route.original_route, APIRoute) and "privacy" in route.original_route.tags
        for method in route.methods or ()
    }
    # PATCH /v1/users/me (is_private) is the profile router's: tests/gateway/test_profile_http.py.
    assert found == {
        ("GET", "/v1/follow-requests"),
        ("POST", "/v1/follow-requests/{user_id}/approve"),
        ("DELETE", "/v1/follow-requests/{user_id}"),
        ("POST", "/v1/blocks"),
        ("DELETE", "/v1/blocks/{user_id}"),
        ("GET", "/v1/blocks"),
        ("POST", "/v1/mutes"),
        ("DELETE", "/v1/mutes/{user_id}"),
        ("GET", "/v1/mutes"),
        ("POST", "/v1/reports"),
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/v1/users/me"),
        ("GET", "/v1/follow-requests"),
        ("POST", f"/v1/follow-requests/{UNKNOWN}/approve"),
        ("DELETE", f"/v1/follow-requests/{UNKNOWN}"),
        ("POST", "/v1/blocks"),
        ("DELETE", f"/v1/blocks/{UNKNOWN}"),
        ("GET", "/v1/blocks"),
        ("POST", "/v1/mutes"),
        ("DELETE", f"/v1/mutes/{UNKNOWN}"),
        ("GET", "/v1/mutes"),
        ("POST", "/v1/reports"),
    ],
)
async def test_every_privacy_route_needs_a_token(http, method, path):
    body = {"target_user_id": UNKNOWN, "is_private": True, "user_id": UNKNOWN, "reason": "spam"}
    response = await http.request(method, path, json=body if method in ("POST", "PATCH") else None)
    assert reasons(assert_error(response, 401, "UNAUTHENTICATED")) == ["TOKEN_MISSING"]


async def test_a_private_account_approves_denies_and_requesters_withdraw(http, make_account):
    owner, fan, denied, withdrawn = [await make_account() for _ in range(4)]
    await private(http, owner)
    for asker in (fan, denied, withdrawn):
        asked = await follow(http, asker, owner)
        assert (asked["state"], asked["created"], asked["target"]["is_private"]) == ("requested", True, True)
    assert (await follow(http, fan, owner))["created"] is False
    assert sorted(await requesters(http, owner)) == sorted(str(a.id) for a in (fan, denied, withdrawn))

    approved = await checked(
        await http.post(f"/v1/follow-requests/{fan.id}/approve", headers=owner.headers), resources.ApproveResult
    )
    assert approved["approved"] is True and approved["follower"]["id"] == str(fan.id)
    again = await checked(
        await http.post(f"/v1/follow-requests/{fan.id}/approve", headers=owner.headers), resources.ApproveResult
    )
    assert again["approved"] is False
    assert (await follow(http, fan, owner))["state"] == "following"

    deny = await http.delete(f"/v1/follow-requests/{denied.id}", headers=owner.headers)
    assert (await checked(deny, resources.DenyResult)) == {"denied": True}
    deny = await http.delete(f"/v1/follow-requests/{denied.id}", headers=owner.headers)
    assert (await checked(deny, resources.DenyResult)) == {"denied": False}
    withdraw = await http.delete(f"/v1/follow/{owner.id}", headers=withdrawn.headers)
    assert (await checked(withdraw, resources.UnfollowResult)) == {"deleted": True}
    assert await requesters(http, owner) == []

    error = assert_error(
        await http.post(f"/v1/follow-requests/{denied.id}/approve", headers=owner.headers), 404, "NOT_FOUND"
    )
    assert reasons(error) == ["FOLLOW_REQUEST_NOT_FOUND"]
    assert "user_id" in field_violations(await http.post("/v1/follow-requests/abc/approve", headers=owner.headers))
    profile = await checked(await http.get(f"/v1/users/{owner.user.username}"), resources.User)
    assert (profile["is_private"], profile["follower_count"]) == (True, "1")


async def test_a_private_account_s_lists_are_403_to_others_and_going_public_approves_all(http, make_account):
    owner, fan, stranger, waiting = [await make_account() for _ in range(4)]
    await private(http, owner)
    await follow(http, fan, owner)
    await http.post(f"/v1/follow-requests/{fan.id}/approve", headers=owner.headers)
    await follow(http, waiting, owner)
    for path in (f"/v1/users/{owner.id}/followers", f"/v1/users/{owner.id}/following"):
        error = assert_error(await http.get(path, headers=stranger.headers), 403, "PERMISSION_DENIED")
        assert reasons(error) == ["ACCOUNT_PRIVATE"]
        assert str(fan.id) not in error["message"]  # the refusal leaks nobody
        await checked(await http.get(path, headers=fan.headers), resources.FollowPage)
    public = await checked(
        await http.patch("/v1/users/me", json={"is_private": False}, headers=owner.headers), resources.User
    )
    assert (public["is_private"], public["follower_count"]) == (False, "2")
    followers = await checked(
        await http.get(f"/v1/users/{owner.id}/followers", headers=stranger.headers), resources.FollowPage
    )
    assert sorted(item["user"]["id"] for item in followers["items"]) == sorted([str(fan.id), str(waiting.id)])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "is_private"),
        ({"is_private": None}, "is_private"),
        ({"is_private": "yes"}, "is_private"),
        ({"is_private": 1}, "is_private"),
        ({"is_private": True, "website": "javascript:alert(1)"}, "website"),
    ],
)
async def test_update_me_names_the_bad_field(http, make_account, body, field):
    account = await make_account()
    response = await http.patch("/v1/users/me", json=body, headers=account.headers)
    assert field in field_violations(response)
    assert (await http.get(f"/v1/users/{account.user.username}")).json()["is_private"] is False


async def test_blocks_hide_each_from_the_other_and_list_and_lift(http, make_account):
    blocker, blocked, other = await make_account(), await make_account(), await make_account()
    await follow(http, blocked, blocker)
    target = {"target_user_id": str(blocked.id)}
    made = await checked(await http.post("/v1/blocks", json=target, headers=blocker.headers), resources.BlockResult)
    assert made == {"created": True}
    again = await checked(await http.post("/v1/blocks", json=target, headers=blocker.headers), resources.BlockResult)
    assert again == {"created": False}
    for viewer, seen in ((blocker, blocked), (blocked, blocker)):
        error = assert_error(
            await http.get(f"/v1/users/{seen.user.username}", headers=viewer.headers), 404, "NOT_FOUND"
        )
        assert reasons(error) == ["USER_NOT_FOUND"]
        assert_error(await http.get(f"/v1/users/{seen.id}/followers", headers=viewer.headers), 404, "NOT_FOUND")
        assert_error(await follow_response(http, viewer, seen), 404, "NOT_FOUND")
    # Anyone else, signed in or not, still sees both.
    for user in (blocker, blocked):
        await checked(await http.get(f"/v1/users/{user.user.username}"), resources.User)
        await checked(await http.get(f"/v1/users/{user.user.username}", headers=other.headers), resources.User)
    assert (await http.get(f"/v1/users/{blocker.user.username}")).json()["follower_count"] == "0"
    # A bad token on the anonymous lookup is still a 401, not an anonymous read.
    bad = {"Authorization": "Bearer not.a.jwt"}
    assert_error(await http.get(f"/v1/users/{blocker.user.username}", headers=bad), 401, "UNAUTHENTICATED")

    page = await checked(await http.get("/v1/blocks", headers=blocker.headers), resources.BlockPage)
    assert [item["user"]["id"] for item in page["items"]] == [str(blocked.id)]
    assert (await checked(await http.get("/v1/blocks", headers=blocked.headers), resources.BlockPage))["items"] == []
    lifted = await checked(
        await http.delete(f"/v1/blocks/{blocked.id}", headers=blocker.headers), resources.UnblockResult
    )
    assert lifted == {"deleted": True}
    await checked(await http.get(f"/v1/users/{blocked.user.username}", headers=blocker.headers), resources.User)


async def follow_response(http: httpx.AsyncClient, follower: Account, target: Account) -> httpx.Response:
    return await http.post("/v1/follow", json={"target_user_id": str(target.id)}, headers=follower.headers)


@pytest.mark.parametrize("kind", ["blocks", "mutes"])
async def test_block_and_mute_refuse_oneself_unknown_users_and_bad_bodies(http, make_account, kind):
    account = await make_account()
    error = assert_error(
        await http.post(f"/v1/{kind}", json={"target_user_id": str(account.id)}, headers=account.headers),
        400,
        "INVALID_ARGUMENT",
    )
    assert reasons(error) == ["SELF_BLOCK" if kind == "blocks" else "SELF_MUTE"]
    for request in (
        http.post(f"/v1/{kind}", json={"target_user_id": UNKNOWN}, headers=account.headers),
        http.delete(f"/v1/{kind}/{UNKNOWN}", headers=account.headers),
    ):
        assert reasons(assert_error(await request, 404, "NOT_FOUND")) == ["USER_NOT_FOUND"]
    for body in ({}, {"target_user_id": "abc"}, {"target_user_id": 0}):
        assert "target_user_id" in field_violations(await http.post(f"/v1/{kind}", json=body, headers=account.headers))
    assert "page_token" in field_violations(await http.get(f"/v1/{kind}?page_token=zz", headers=account.headers))


async def test_mutes_change_nothing_the_muted_user_sees(http, make_account):
    muter, muted = await make_account(), await make_account()
    await follow(http, muted, muter)
    before = (await http.get(f"/v1/users/{muter.user.username}", headers=muted.headers)).json()
    target = {"target_user_id": str(muted.id)}
    made = await checked(await http.post("/v1/mutes", json=target, headers=muter.headers), resources.MuteResult)
    assert made == {"created": True}
    assert (await http.get(f"/v1/users/{muter.user.username}", headers=muted.headers)).json() == before
    page = await checked(await http.get("/v1/mutes", headers=muter.headers), resources.MutePage)
    assert [item["user"]["id"] for item in page["items"]] == [str(muted.id)]
    lifted = await checked(await http.delete(f"/v1/mutes/{muted.id}", headers=muter.headers), resources.UnmuteResult)
    assert lifted == {"deleted": True}
    assert (await checked(await http.get("/v1/mutes", headers=muter.headers), resources.MutePage))["items"] == []


@pytest.fixture(scope="module")
async def moderation(graph_settings: GraphSettings, bus: object) -> AsyncIterator[graph_pb2_grpc.ModerationServiceStub]:
    """What an operator reaches: a graph_svc on the suite's database, with an operator token."""
    async with graph_host(graph_settings.model_copy(update={"operator_token": OPERATOR_TOKEN})) as host:
        port = await host.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield graph_pb2_grpc.ModerationServiceStub(channel)
        await host.stop()


async def stored_report(moderation: graph_pb2_grpc.ModerationServiceStub, report_id: str) -> graph_pb2.Report:
    request = graph_pb2.GetReportRequest(report_id=int(report_id))
    return await moderation.GetReport(request, metadata=(("x-operator-token", OPERATOR_TOKEN),))


@pytest.mark.usefixtures("fanout")
async def test_a_post_report_keeps_its_snapshot_after_the_post_is_deleted(http, make_account, upload_photo, moderation):
    author, reporter = await make_account(), await make_account()
    post_id = await post_by(http, author, upload_photo, caption="evidence #kept")
    body = {"post_id": post_id, "reason": "harassment", "details": "see the caption"}
    report = await checked(await http.post("/v1/reports", json=body, headers=reporter.headers), resources.Report, 201)
    assert (report["subject_type"], report["subject_id"], report["reported_user_id"]) == (
        "post",
        post_id,
        str(author.id),
    )
    assert (report["reason"], report["state"], report["resolution"]) == ("harassment", "open", "unspecified")
    assert report["snapshot"]["caption"] == "evidence #kept" and report["snapshot"]["author"]["id"] == str(author.id)
    assert report["resolve_time"] is None
    # A second tap answers the same report.
    again = await checked(await http.post("/v1/reports", json=body, headers=reporter.headers), resources.Report, 201)
    assert again["id"] == report["id"]

    assert (await http.delete(f"/v1/posts/{post_id}", headers=author.headers)).status_code == 204
    kept = await stored_report(moderation, report["id"])
    assert kept.snapshot["caption"] == "evidence #kept"
    assert kept.snapshot["media"][0]["id"] == report["snapshot"]["media"][0]["id"]


async def test_comment_and_user_reports_snapshot_what_the_reporter_saw(
    http, stubs, make_account, upload_photo, moderation
):
    author, commenter, reporter = await make_account(), await make_account(), await make_account()
    post_id = await post_by(http, author, upload_photo)
    comment = await stubs.engagement.CreateComment(
        engagement_pb2.CreateCommentRequest(post_id=int(post_id), text="a nasty remark"), metadata=commenter.metadata
    )
    body = {"comment_id": str(comment.id), "reason": "harassment"}
    report = await checked(await http.post("/v1/reports", json=body, headers=reporter.headers), resources.Report, 201)
    assert report["subject_type"] == "comment" and report["reported_user_id"] == str(commenter.id)
    assert report["snapshot"]["text"] == "a nasty remark"
    assert report["snapshot"]["author"]["username"] == commenter.user.username
    await stubs.engagement.DeleteComment(
        engagement_pb2.DeleteCommentRequest(comment_id=comment.id), metadata=commenter.metadata
    )
    assert (await stored_report(moderation, report["id"])).snapshot["text"] == "a nasty remark"

    # One may report an account one has blocked; the snapshot is the moderators', not shown to the
    # reporter (for whom the account does not exist any more; test_authorization_roles.py).
    await http.post("/v1/blocks", json={"target_user_id": str(commenter.id)}, headers=reporter.headers)
    body = {"user_id": str(commenter.id), "reason": "spam", "details": "bot"}
    report = await checked(await http.post("/v1/reports", json=body, headers=reporter.headers), resources.Report, 201)
    assert (report["subject_type"], report["snapshot"]) == ("user", {})
    assert (await stored_report(moderation, report["id"])).snapshot["username"] == commenter.user.username


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"reason": "spam"}, {"post_id", "comment_id", "user_id"}),
        ({"post_id": UNKNOWN, "user_id": UNKNOWN, "reason": "spam"}, {"post_id", "comment_id", "user_id"}),
        ({"post_id": UNKNOWN, "reason": "boring"}, {"reason"}),
        ({"post_id": UNKNOWN}, {"reason"}),
        ({"post_id": UNKNOWN, "reason": "spam", "details": "x" * 1001}, {"details"}),
        ({"post_id": "abc", "reason": "spam"}, {"post_id"}),
        ({"post_id": UNKNOWN, "reason": "spam", "snapshot": {}}, {"snapshot"}),
    ],
)
async def test_bad_reports_are_400_naming_the_fields(http, make_account, body, fields):
    account = await make_account()
    assert fields <= set(field_violations(await http.post("/v1/reports", json=body, headers=account.headers)))


async def test_reports_of_missing_content_are_404(http, make_account):
    account = await make_account()
    for field, reason in (
        ("post_id", "POST_NOT_FOUND"),
        ("comment_id", "COMMENT_NOT_FOUND"),
        ("user_id", "USER_NOT_FOUND"),
    ):
        response = await http.post("/v1/reports", json={field: UNKNOWN, "reason": "spam"}, headers=account.headers)
        assert reasons(assert_error(response, 404, "NOT_FOUND")) == [reason], field
