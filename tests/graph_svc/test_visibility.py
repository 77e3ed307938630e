"""The one visibility rule and its bulk forms through a real GraphService stub: CheckVisibility's truth
table, a viewer's feed filters, the fan-out's audience (FilterAudience and StreamFollowerIds), and the
queries' plans (index reads only)."""

from __future__ import annotations

from typing import NamedTuple, cast

import grpc
import pytest

import visibility
from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2
from graph_svc import privacy_repository as privacy_repo
from graph_svc.visibility import MAX_AUDIENCE, MAX_AUTHORS
from mesh.db import Database, Result, Session, Statement
from tests.conftest import Account
from tests.graph_svc.conftest import privacy_update, refused

VISIBLE = graph_pb2.VISIBILITY_VISIBLE
PRIVATE = graph_pb2.VISIBILITY_NOT_FOLLOWER_OF_PRIVATE
BLOCKED = graph_pb2.VISIBILITY_BLOCKED
GONE = graph_pb2.VISIBILITY_AUTHOR_NOT_FOUND


async def check(graph, viewer_id: int, author_ids: list[int]) -> list[tuple[int, int]]:
    response = await graph.CheckVisibility(graph_pb2.CheckVisibilityRequest(viewer_id=viewer_id, author_ids=author_ids))
    return [(r.author_id, r.visibility) for r in response.results]


class TruthTable(NamedTuple):
    """A private and a public author; an approved follower of both, a stranger, a user who blocks both
    authors (`blocker`) and one both authors block (`blocked`)."""

    private: Account
    public: Account
    follower: Account
    stranger: Account
    blocker: Account
    blocked: Account


async def truth_table(graph, make_account, make_private_account) -> TruthTable:
    private, public = await make_private_account(), await make_account()
    follower, stranger, blocker, blocked = [await make_account() for _ in range(4)]
    for author in (private, public):
        await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=author.id), metadata=follower.metadata)
    await graph.ApproveFollowRequest(
        graph_pb2.ApproveFollowRequestRequest(requester_id=follower.id), metadata=private.metadata
    )
    for author in (private, public):
        await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=author.id), metadata=blocker.metadata)
        await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocked.id), metadata=author.metadata)
    return TruthTable(private, public, follower, stranger, blocker, blocked)


async def test_the_visibility_truth_table(graph, make_account, make_private_account):
    private, public, follower, stranger, blocker, blocked = await truth_table(graph, make_account, make_private_account)
    authors = [private.id, public.id]
    table = {
        "owner (private)": (private.id, [VISIBLE, VISIBLE]),
        "owner (public)": (public.id, [PRIVATE, VISIBLE]),
        "approved follower": (follower.id, [VISIBLE, VISIBLE]),
        "non-follower": (stranger.id, [PRIVATE, VISIBLE]),
        "anonymous": (0, [PRIVATE, VISIBLE]),
        "blocks the author": (blocker.id, [BLOCKED, BLOCKED]),
        "blocked by the author": (blocked.id, [BLOCKED, BLOCKED]),
    }
    for case, (viewer, expected) in table.items():
        assert await check(graph, viewer, authors) == list(zip(authors, expected, strict=True)), case
    # Request order, repeats kept; an unknown author is its own answer.
    assert await check(graph, stranger.id, [public.id, 987654321, public.id, private.id]) == [
        (public.id, VISIBLE),
        (987654321, GONE),
        (public.id, VISIBLE),
        (private.id, PRIVATE),
    ]
    assert await check(graph, stranger.id, []) == []


async def test_a_pending_request_is_not_a_follow(graph, make_account, make_private_account):
    private, asker = await make_private_account(), await make_account()
    await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=private.id), metadata=asker.metadata)
    assert await check(graph, asker.id, [private.id]) == [(private.id, PRIVATE)]
    await graph.UpdateUser(privacy_update(False), metadata=private.metadata)
    assert await check(graph, asker.id, [private.id]) == [(private.id, VISIBLE)]


@pytest.mark.parametrize(
    ("viewer_id", "author_ids", "field"),
    [
        (-1, [1], "viewer_id"),
        (1, [0], "author_ids"),
        (1, [-5], "author_ids"),
        (1, [1] * (MAX_AUTHORS + 1), "author_ids"),
    ],
)
async def test_check_visibility_refuses_bad_ids(graph, viewer_id, author_ids, field):
    code, _, fields = await refused(
        graph.CheckVisibility(graph_pb2.CheckVisibilityRequest(viewer_id=viewer_id, author_ids=author_ids))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and field in fields


async def test_viewer_filters_list_blocks_both_ways_mutes_and_private_followees(
    graph, make_account, make_private_account
):
    viewer = await make_account()
    blocks, blocked_by, muted = await make_account(), await make_account(), await make_account()
    mutual, private, public = await make_account(), await make_private_account(), await make_account()
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocks.id), metadata=viewer.metadata)
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=viewer.id), metadata=blocked_by.metadata)
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=mutual.id), metadata=viewer.metadata)
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=viewer.id), metadata=mutual.metadata)
    await graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=muted.id), metadata=viewer.metadata)
    for author in (private, public, muted):
        await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=author.id), metadata=viewer.metadata)
    await graph.ApproveFollowRequest(
        graph_pb2.ApproveFollowRequestRequest(requester_id=viewer.id), metadata=private.metadata
    )
    filters = await graph.GetViewerFilters(graph_pb2.GetViewerFiltersRequest(viewer_id=viewer.id))
    assert list(filters.blocked_user_ids) == sorted([blocks.id, blocked_by.id, mutual.id])
    assert list(filters.muted_user_ids) == [muted.id]
    assert list(filters.private_followee_ids) == [private.id]
    # Someone else's filters are theirs.
    others = await graph.GetViewerFilters(graph_pb2.GetViewerFiltersRequest(viewer_id=blocked_by.id))
    assert list(others.blocked_user_ids) == [viewer.id] and not others.muted_user_ids
    code, _, fields = await refused(graph.GetViewerFilters(graph_pb2.GetViewerFiltersRequest(viewer_id=0)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "viewer_id" in fields


async def test_the_audience_leaves_out_muters_and_blocks_either_way(graph, make_account):
    author = await make_account()
    fans = [await make_account() for _ in range(6)]
    for fan in fans:
        await graph.FollowUser(graph_pb2.FollowUserRequest(target_user_id=author.id), metadata=fan.metadata)
    muter, other_muter, stranger_muter = fans[0], fans[1], await make_account()
    for user in (muter, other_muter, stranger_muter):
        await graph.MuteUser(graph_pb2.MuteUserRequest(target_user_id=author.id), metadata=user.metadata)
    blocker, blocked = await make_account(), await make_account()
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=author.id), metadata=blocker.metadata)
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=blocked.id), metadata=author.metadata)

    candidates = [f.id for f in fans] + [blocker.id, blocked.id, 987654321]
    response = await graph.FilterAudience(graph_pb2.FilterAudienceRequest(author_id=author.id, user_ids=candidates))
    assert list(response.excluded_user_ids) == sorted([muter.id, other_muter.id, blocker.id, blocked.id])
    # Muting someone else excludes nobody from this author's audience.
    unrelated = await make_account()
    response = await graph.FilterAudience(graph_pb2.FilterAudienceRequest(author_id=unrelated.id, user_ids=candidates))
    assert not response.excluded_user_ids

    async def streamed(audience_only: bool) -> list[list[int]]:
        request = graph_pb2.StreamFollowerIdsRequest(user_id=author.id, batch_size=2, audience_only=audience_only)
        return [list(batch.follower_ids) async for batch in graph.StreamFollowerIds(request)]

    everyone = sorted(f.id for f in fans)
    audience = [i for i in everyone if i not in (muter.id, other_muter.id)]
    assert await streamed(False) == [everyone[0:2], everyone[2:4], everyone[4:6]]
    assert await streamed(True) == [audience[0:2], audience[2:4]]

    # GetAudience: the count, and the same audience in the answer when the followers fit.
    async def answered(max_ids: int) -> tuple[int, bool, list[int]]:
        reply = await graph.GetAudience(graph_pb2.GetAudienceRequest(user_id=author.id, max_ids=max_ids))
        return reply.follower_count, reply.complete, list(reply.follower_ids)

    assert await answered(len(everyone)) == (len(everyone), True, audience)
    assert await answered(len(everyone) - 1) == (len(everyone), False, [])  # more followers: stream them
    lonely = await make_account()
    reply = await graph.GetAudience(graph_pb2.GetAudienceRequest(user_id=lonely.id, max_ids=0))
    assert (reply.follower_count, reply.complete, list(reply.follower_ids)) == (0, True, [])


async def test_get_audience_refuses_bad_requests(graph):
    code, _, fields = await refused(graph.GetAudience(graph_pb2.GetAudienceRequest(user_id=1, max_ids=5001)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "max_ids" in fields
    code, _, _ = await refused(graph.GetAudience(graph_pb2.GetAudienceRequest(user_id=987654321, max_ids=10)))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_filter_audience_refuses_bad_requests(graph):
    for request, field in (
        (graph_pb2.FilterAudienceRequest(author_id=0, user_ids=[1]), "author_id"),
        (graph_pb2.FilterAudienceRequest(author_id=1, user_ids=list(range(1, MAX_AUDIENCE + 2))), "user_ids"),
    ):
        code, _, fields = await refused(graph.FilterAudience(request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in fields


class _Recording:
    """A mesh.db.Session that keeps every statement it runs, with its parameters."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.sent: list[tuple[Statement, dict[str, object]]] = []

    async def execute(self, statement: Statement, params: dict[str, object]) -> Result:
        self.sent.append((statement, params))
        return await self._session.execute(statement, params)


async def test_the_visibility_queries_read_indexes_only(database_url, make_account):
    """The plans of the three bulk questions, as sent to PostgreSQL (compiled once, mesh.db.Statement):
    no sequential scan of a relation table (the planner is told to avoid scans, so one left means no
    index can answer)."""
    viewer = await make_account()
    db = Database(database_url, pool_size=1)
    try:
        async with db.read_only() as session:
            recording = _Recording(session)
            facts = await privacy_repo.author_facts(cast(Session, recording), viewer.id, [viewer.id, 2, 3])
            await privacy_repo.viewer_relations(cast(Session, recording), viewer.id)
            await privacy_repo.audience_exclusions(cast(Session, recording), viewer.id, [2, 3])
            assert viewer.id in facts
            assert len(recording.sent) == 3, "each question is one statement"
            assert all(isinstance(statement, Statement) for statement, _ in recording.sent)
            await session.execute("SET LOCAL enable_seqscan = off")
            for statement, params in recording.sent:
                rows = await session.execute(Statement("EXPLAIN " + statement.sql), statement.values(params))
                plan = "\n".join(row[0] for row in rows)
                for table in ("blocks", "mutes", "follows", "follow_requests"):
                    assert f"Seq Scan on {table} " not in plan, plan
    finally:
        await db.dispose()


async def test_the_client_answers_a_public_authors_viewers_from_their_audience_as_graph_svc_does(
    graph, make_account, make_private_account
):
    """The visibility client (the `visibility` package) decides a public author's later viewers from
    the author's audience; every answer equals CheckVisibility's, for the same truth table, and a block
    made afterwards is seen once its event arrives."""
    world = await truth_table(graph, make_account, make_private_account)
    private, public, late = world.private, world.public, await make_account()
    client = visibility.Visibility(graph, ttl_seconds=60, timeout=5)
    viewers = [
        world.stranger.id,
        private.id,
        public.id,
        world.follower.id,
        0,
        world.blocker.id,
        world.blocked.id,
        late.id,
    ]
    for author in (public.id, private.id, 987654321):
        for viewer in viewers:
            expected = dict(await check(graph, viewer, [author]))
            assert await client.of(viewer, [author]) == expected, (author, viewer)
    # From the second viewer on, the public author's answers came from the audience.
    assert client._audiences[public.id].public
    assert not client._audiences[private.id].public
    await graph.BlockUser(graph_pb2.BlockUserRequest(target_user_id=late.id), metadata=public.metadata)
    await client.on_graph_event(events_pb2.UserBlocked(event_id=1, blocker_id=public.id, blocked_id=late.id))
    assert await client.of(late.id, [public.id]) == {public.id: BLOCKED}
    assert await client.of(world.stranger.id, [public.id]) == {public.id: VISIBLE}
