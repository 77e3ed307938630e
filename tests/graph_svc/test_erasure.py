"""Deleting an account, graph side: one transaction removes every graph row holding the user's id
(follows both ways with the other users' counts, requests, blocks, mutes, sessions, the user), keeps
the reports (without the reporter), holds the username for the grace period, and emits
graph.user_deleted; afterwards every RPC treats the id as unknown."""

from __future__ import annotations

import time

import grpc
from sqlalchemy import text

from glimpse.graph.v1 import graph_pb2
from mesh.events import USER_DELETED, USER_UNFOLLOWED
from tests.conftest import PASSWORD
from tests.graph_svc.conftest import privacy_update, refused, user_of
from tests.graph_svc.test_reports import report_of

# Reports about the user keep these (graph_svc.erasure: evidence); every other bigint column of every
# graph table must lose the id.
RETAINED = {("reports", "reported_user_id"), ("reports", "subject_id")}


async def _rows_holding(sql, user_id: int) -> dict[tuple[str, str], int]:
    """(table, column) -> how many rows of the graph schema hold `user_id` in that bigint column."""
    async with sql.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = 'graph' AND data_type = 'bigint' ORDER BY 1, 2"
                )
            )
        ).all()
        found = {}
        for table, column in columns:
            count = (
                await conn.execute(
                    text(f'SELECT count(*) FROM graph."{table}" WHERE "{column}" = :id'), {"id": user_id}
                )
            ).scalar_one()
            if count:
                found[(table, column)] = count
    assert ("users", "id") in {(t, c) for t, c in columns} and ("sessions", "user_id") in {(t, c) for t, c in columns}
    return found


async def _follow(graph, who, whom) -> None:
    await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=whom.id), metadata=who.metadata)


async def test_deleting_removes_every_graph_row_of_the_user_and_fixes_the_counts(
    graph, make_account, make_private_account, sql, outbox_events
):
    leaver = await make_account()
    followed, follower, mutual = await make_account(), await make_account(), await make_account()
    asker, blocker, blocked, muter, muted = [await make_account() for _ in range(5)]
    private = await make_private_account()
    await _follow(graph, leaver, followed)
    await _follow(graph, follower, leaver)
    await _follow(graph, leaver, mutual)
    await _follow(graph, mutual, leaver)
    await _follow(graph, leaver, private)  # a pending request from the leaver
    await graph.UpdateUser(privacy_update(True), metadata=leaver.metadata)
    await _follow(graph, asker, leaver)  # a pending request to the leaver
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=leaver.id), metadata=blocker.metadata)
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocked.id), metadata=leaver.metadata)
    await graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=leaver.id), metadata=muter.metadata)
    await graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=muted.id), metadata=leaver.metadata)
    made = await graph.CreateReport(report_of(777, followed.id), metadata=leaver.metadata)
    about = await graph.CreateReport(report_of(leaver.id, leaver.id), metadata=follower.metadata)
    login = await graph.AuthenticateUser(
        graph_pb2.AuthenticateUserRequest(login=leaver.user.username, password=PASSWORD)
    )
    before = {a.id: await user_of(graph, a) for a in (followed, follower, mutual)}
    assert len(await _rows_holding(sql, leaver.id)) >= 10

    deleted = await graph.DeleteUser(graph_pb2.DeleteUserRequest(password=PASSWORD), metadata=leaver.metadata)
    assert deleted.username_release_time.ToSeconds() > 0

    assert set(await _rows_holding(sql, leaver.id)) <= RETAINED
    after = {a.id: await user_of(graph, a) for a in (followed, follower, mutual)}
    assert after[followed.id].follower_count == before[followed.id].follower_count - 1
    assert after[follower.id].following_count == before[follower.id].following_count - 1
    assert after[mutual.id].follower_count == before[mutual.id].follower_count - 1
    assert after[mutual.id].following_count == before[mutual.id].following_count - 1
    # One event stands for the whole deletion; no graph.unfollowed per removed follow.
    assert len(await outbox_events(USER_DELETED, user_id=leaver.id)) == 1
    assert await outbox_events(USER_UNFOLLOWED, followee_id=leaver.id) == []
    # Reports stay: the one the leaver made without its reporter, the one about them whole.
    async with sql.connect() as conn:
        kept = dict(
            (
                await conn.execute(
                    text("SELECT id, reporter_id FROM graph.reports WHERE id IN (:a, :b)"),
                    {"a": made.id, "b": about.id},
                )
            ).all()
        )
    assert kept == {made.id: None, about.id: follower.id}

    # The id is unknown from now on: lookups, follows, its tokens.
    for call in (
        graph.GetUser(graph_pb2.GetUserRequest(user_id=leaver.id)),
        graph.LookupUser(graph_pb2.LookupUserRequest(username=leaver.user.username)),
        graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=leaver.id), metadata=follower.metadata),
    ):
        assert (await refused(call))[:2] == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    assert (
        await refused(
            graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=followed.id), metadata=leaver.metadata)
        )
    )[:2] == (grpc.StatusCode.UNAUTHENTICATED, "ACCOUNT_GONE")
    # Nothing written as the deleted caller brings a row with its id back (a request already past the
    # gateway, or a direct call).
    for call in (
        graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=followed.id), metadata=leaver.metadata),
        graph.CreateReport(report_of(778, followed.id), metadata=leaver.metadata),
        graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=followed.id), metadata=leaver.metadata),
    ):
        assert (await refused(call))[:2] == (grpc.StatusCode.UNAUTHENTICATED, "ACCOUNT_GONE")
    assert set(await _rows_holding(sql, leaver.id)) <= RETAINED
    refresh = graph_pb2.RefreshAccessTokenRequest(refresh_token=login.refresh_token)
    assert (await refused(graph.RefreshAccessToken(refresh)))[:2] == (grpc.StatusCode.UNAUTHENTICATED, "ACCOUNT_GONE")
    checked = await graph.CheckSessions(graph_pb2.CheckSessionsRequest(session_ids=[login.session_id]))
    assert list(checked.live_session_ids) == []
    again = graph.DeleteUser(graph_pb2.DeleteUserRequest(password=PASSWORD), metadata=leaver.metadata)
    assert (await refused(again))[:2] == (grpc.StatusCode.UNAUTHENTICATED, "ACCOUNT_GONE")


async def test_a_wrong_password_deletes_nothing(graph, make_account, sql):
    leaver, friend = await make_account(), await make_account()
    await _follow(graph, friend, leaver)
    before = await _rows_holding(sql, leaver.id)
    for password, reason in (("not the password", "WRONG_PASSWORD"), ("", "INVALID_ARGUMENT")):
        code, got, fields = await refused(
            graph.DeleteUser(graph_pb2.DeleteUserRequest(password=password), metadata=leaver.metadata)
        )
        assert (code, got) == (grpc.StatusCode.INVALID_ARGUMENT, reason) and "password" in fields
    assert await _rows_holding(sql, leaver.id) == before
    assert (await user_of(graph, friend)).following_count == 1


async def test_the_username_is_held_for_the_grace_period_then_free(graph, make_account, sql):
    leaver = await make_account()
    name = leaver.user.username
    deleted = await graph.DeleteUser(graph_pb2.DeleteUserRequest(password=PASSWORD), metadata=leaver.metadata)
    async with sql.connect() as conn:
        hold = (await conn.execute(text("SELECT * FROM graph.username_holds WHERE username = :u"), {"u": name})).one()
    assert abs(hold.released_at.timestamp() - deleted.username_release_time.ToMicroseconds() / 1e6) < 1e-3
    # 30 days, GraphSettings.username_hold_seconds' default.
    assert 29.9 * 86400 < hold.released_at.timestamp() - time.time() <= 30 * 86400
    register = graph_pb2.RegisterUserRequest(username=name.upper(), email=f"new-{name}@example.com", password=PASSWORD)
    code, reason, fields = await refused(graph.RegisterUser(register))
    assert (code, reason) == (grpc.StatusCode.ALREADY_EXISTS, "USERNAME_HELD") and "username" in fields
    # The email is free at once (it is not held), so only the name stops the registration above.
    async with sql.begin() as conn:
        await conn.execute(
            text("UPDATE graph.username_holds SET released_at = now() - interval '1 second' WHERE username = :u"),
            {"u": name},
        )
    reborn = await graph.RegisterUser(register)
    assert reborn.username == name and reborn.id != leaver.id
