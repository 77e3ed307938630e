"""The visibility client's cache never keeps an answer that may predate a block or mute: an answer
fetched while the viewer's entries were forgotten (a graph.* event arrived) is used once, not cached.

graph_svc is a scripted in-process server that holds each answer until the test lets it go, so the
forget lands exactly while the call is in flight (the race is milliseconds wide in real life)."""

from __future__ import annotations

import asyncio
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


@pytest.fixture
async def held() -> AsyncIterator[tuple[HeldGraph, Visibility]]:
    graph = HeldGraph()
    server = grpc.aio.server()
    graph_pb2_grpc.add_GraphServiceServicer_to_server(graph, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield graph, Visibility(graph_pb2_grpc.GraphServiceStub(channel), ttl_seconds=60, timeout=5)
    await server.stop(0)


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
