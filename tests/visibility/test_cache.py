"""The visibility client's cache never keeps an answer that may predate a block or mute: an answer
fetched while the viewer's entries were forgotten (a graph.* event arrived) is used once, not cached.

graph_svc is a scripted in-process server that holds each answer until the test lets it go, so the
forget lands exactly while the call is in flight (the race is milliseconds wide in real life)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from visibility import Visibility


class HeldGraph(graph_pb2_grpc.GraphServiceServicer):
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def GetViewerFilters(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        await self.release.wait()
        return graph_pb2.ViewerFilters()

    async def CheckVisibility(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        await self.release.wait()
        return graph_pb2.CheckVisibilityResponse(
            results=[
                graph_pb2.AuthorVisibility(author_id=a, visibility=graph_pb2.VISIBILITY_VISIBLE)
                for a in request.author_ids
            ]
        )


@contextlib.asynccontextmanager
async def _client_of(graph: graph_pb2_grpc.GraphServiceServicer) -> AsyncIterator[Visibility]:
    """A Visibility client (60 s TTL) of `graph`, served in process on a free port."""
    server = grpc.aio.server()
    graph_pb2_grpc.add_GraphServiceServicer_to_server(graph, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Visibility(graph_pb2_grpc.GraphServiceStub(channel), ttl_seconds=60, timeout=5)
    finally:
        await server.stop(0)


@pytest.fixture
async def held() -> AsyncIterator[tuple[HeldGraph, Visibility]]:
    graph = HeldGraph()
    async with _client_of(graph) as visibility:
        yield graph, visibility


async def _race(graph: HeldGraph, call: asyncio.Task[object], forget: object) -> None:
    while graph.calls == 0:
        await asyncio.sleep(0.001)
    await forget  # type: ignore[misc]
    graph.release.set()
    await call


async def test_home_filters_fetched_across_a_block_are_not_cached(held: tuple[HeldGraph, Visibility]):
    graph, visibility = held
    call = asyncio.create_task(visibility.home_filters(7))
    blocked = events_pb2.UserBlocked(event_id=1, blocker_id=7, blocked_id=8)
    await _race(graph, call, visibility.on_graph_event(blocked))
    await visibility.home_filters(7)
    assert graph.calls == 2  # asked again: the first answer may predate the block
    await visibility.home_filters(7)
    assert graph.calls == 2  # the second answer, fetched after the block, is cached


async def test_visibility_fetched_across_a_privacy_change_is_not_cached(held: tuple[HeldGraph, Visibility]):
    graph, visibility = held
    call = asyncio.create_task(visibility.of(7, [9]))
    changed = events_pb2.UserPrivacyChanged(event_id=1, user_id=9, is_private=True)
    await _race(graph, call, visibility.on_graph_event(changed))
    await visibility.of(7, [9])
    assert graph.calls == 2
    await visibility.of(7, [9])
    assert graph.calls == 2


async def test_an_unrelated_forget_does_not_defeat_the_cache(held: tuple[HeldGraph, Visibility]):
    graph, visibility = held
    call = asyncio.create_task(visibility.home_filters(7))
    await _race(graph, call, visibility.on_graph_event(events_pb2.UserMuted(event_id=1, muter_id=3, muted_id=4)))
    await visibility.home_filters(7)
    assert graph.calls == 1


async def test_answers_fetched_concurrently_for_one_viewer_are_all_kept(held: tuple[HeldGraph, Visibility]):
    """A viewer opening several posts at once asks about several authors at once: every answer stays
    cached (none replaces another's), so the next view of any of them asks graph_svc nothing."""
    graph, visibility = held
    calls = [asyncio.create_task(visibility.of(7, [author])) for author in (1, 2, 3)]
    while graph.calls < 3:
        await asyncio.sleep(0.001)
    graph.release.set()
    assert [await call for call in calls] == [{a: graph_pb2.VISIBILITY_VISIBLE} for a in (1, 2, 3)]
    assert await visibility.of(7, iter([3, 1, 2])) == dict.fromkeys([3, 1, 2], graph_pb2.VISIBILITY_VISIBLE)
    assert graph.calls == 3


class AudienceGraph(graph_pb2_grpc.GraphServiceServicer):
    """Author 9 is public and blocked with user 5, author 8 private; counts each method's calls.
    While `hold` is set, GetViewerFilters waits for `release`."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"CheckVisibility": 0, "GetViewerFilters": 0}
        self.hold = False
        self.release = asyncio.Event()

    async def GetViewerFilters(self, request, context):  # type: ignore[no-untyped-def]
        self.calls["GetViewerFilters"] += 1
        if self.hold:
            await self.release.wait()
        return graph_pb2.ViewerFilters(blocked_user_ids=[5] if request.viewer_id == 9 else [])

    async def CheckVisibility(self, request, context):  # type: ignore[no-untyped-def]
        self.calls["CheckVisibility"] += 1

        def verdict(author: int) -> int:
            if author == request.viewer_id:
                return graph_pb2.VISIBILITY_VISIBLE
            if author == 8:
                return graph_pb2.VISIBILITY_NOT_FOLLOWER_OF_PRIVATE
            return graph_pb2.VISIBILITY_BLOCKED if request.viewer_id == 5 else graph_pb2.VISIBILITY_VISIBLE

        return graph_pb2.CheckVisibilityResponse(
            results=[graph_pb2.AuthorVisibility(author_id=a, visibility=verdict(a)) for a in request.author_ids]
        )


@pytest.fixture
async def audience() -> AsyncIterator[tuple[AudienceGraph, Visibility]]:
    graph = AudienceGraph()
    async with _client_of(graph) as visibility:
        yield graph, visibility


async def test_a_public_authors_many_viewers_cost_one_audience_read(audience: tuple[AudienceGraph, Visibility]):
    """A viral post: a thousand new viewers of one public author, a few at a time. The first viewer is
    asked about; the second reads the audience (concurrent viewers share that read); the rest ask
    nothing, and the blocked viewer and the owner get their own answers."""
    graph, visibility = audience
    visible, blocked = graph_pb2.VISIBILITY_VISIBLE, graph_pb2.VISIBILITY_BLOCKED
    assert await visibility.of(100, [9]) == {9: visible}
    answers = await asyncio.gather(*(visibility.of(viewer, [9]) for viewer in range(101, 1100)))
    assert answers == [{9: visible}] * 999
    assert await visibility.of(5, [9]) == {9: blocked}
    assert await visibility.of(9, [9]) == {9: visible}
    assert await visibility.of(0, [9]) == {9: visible}
    assert graph.calls == {"CheckVisibility": 2, "GetViewerFilters": 1}  # the first viewer, the audience


async def test_a_private_authors_viewers_are_each_asked(audience: tuple[AudienceGraph, Visibility]):
    graph, visibility = audience
    for viewer in range(100, 110):
        assert await visibility.of(viewer, [8]) == {8: graph_pb2.VISIBILITY_NOT_FOLLOWER_OF_PRIVATE}
    # Ten viewers, and one audience read (which found the author private) that is not repeated.
    assert graph.calls == {"CheckVisibility": 11, "GetViewerFilters": 1}


async def test_an_audience_read_across_a_block_is_used_once_not_cached(audience: tuple[AudienceGraph, Visibility]):
    graph, visibility = audience
    await visibility.of(100, [9])
    graph.hold = True
    call = asyncio.create_task(visibility.of(101, [9]))
    while graph.calls["GetViewerFilters"] == 0:
        await asyncio.sleep(0.001)
    await visibility.on_graph_event(events_pb2.UserBlocked(event_id=1, blocker_id=9, blocked_id=102))
    graph.release.set()
    assert await call == {9: graph_pb2.VISIBILITY_VISIBLE}
    # The audience may predate the block: not kept, so the next viewers read it again.
    await visibility.of(103, [9])
    await visibility.of(104, [9])
    assert graph.calls["GetViewerFilters"] == 2


async def test_a_viewer_asking_after_a_block_does_not_join_a_read_that_began_before_it(
    audience: tuple[AudienceGraph, Visibility],
):
    """An audience read in flight when a block arrives may predate the block: viewers already waiting
    on it get its answer (they asked before the block), but a viewer asking after the block starts a
    read of its own."""
    graph, visibility = audience
    await visibility.of(100, [9])
    graph.hold = True
    before = asyncio.create_task(visibility.of(101, [9]))
    while graph.calls["GetViewerFilters"] == 0:
        await asyncio.sleep(0.001)
    await visibility.on_graph_event(events_pb2.UserBlocked(event_id=1, blocker_id=9, blocked_id=5))
    after = asyncio.create_task(visibility.of(5, [9]))
    deadline = asyncio.get_running_loop().time() + 5
    while graph.calls["GetViewerFilters"] < 2:
        if asyncio.get_running_loop().time() > deadline:
            graph.release.set()
            raise AssertionError("the viewer asking after the block joined the read that began before it")
        await asyncio.sleep(0.001)
    graph.release.set()
    assert await before == {9: graph_pb2.VISIBILITY_VISIBLE}
    assert await after == {9: graph_pb2.VISIBILITY_BLOCKED}
    assert graph.calls["GetViewerFilters"] == 2
