"""Fan-out with the privacy filter: FanoutHandlers.on_post_created beside the same handler before it.

    python -m bench fanout_privacy

Issue 13's target: the fan-out rate with the privacy filter on is >= 90% of the rate without it.

Runs graph_svc and post_svc as processes (bench.stack, CELEBRITY_THRESHOLD 10000) on a fresh
database. Bulk-loaded into the graph schema (counts set): an author with 10,000 followers and one with
the first 1,000 of them; 1% of each author's followers mute the author (they still follow, as a
mute leaves the follow), and each author blocks 50 other users and is blocked by 50 more (blocks
remove follows, so those are not followers: the filter still has to read them). Every follower has
a live, empty inbox and each author a live outbox, as active users have (bench.fanout's layout).

Methods, each writing one new post per run; they alternate post by post (a load that comes and goes
hits them alike), POSTS posts each after one warm-up post:
  floor      raw pipelined ZADD of the post into every follower's inbox, 1,000 per pipeline
  before     the handler (fanout_svc.consumers.FanoutHandlers, in this process) against graph_svc as
             it answered before the privacy filter: GetFollowerCount, then StreamFollowerIds without
             `audience_only` (every follower), which is what the fan-out asked before issue 13
             (`_GraphWithoutFilter` turns the handler's GetAudience into exactly those calls)
  filtered   the same handler as fanout_svc runs it: GetAudience (the count, and the audience when it
             fits in one batch), then StreamFollowerIds(audience_only=True) for a larger audience;
             graph_svc leaves out the muters and blocks (privacy_repository.excluded_from_audience)
The figure is followers handled per second (per post: its author's follower count over the time the
handler took), so the 1% left out by the filter is not counted as work saved. The 10k author is the
target's case (the handler streams); the 1k author's audience fits in one GetAudience answer and is
printed beside it. Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from bench import feed_data
from bench.feed_data import Step, Verdict, print_verdicts
from bench.stack import Stack, running_stack
from bench.stats import Sample, peak_rss_line
from fanout_svc.consumers import FanoutHandlers
from fanout_svc.settings import FanoutSettings
from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from mesh.ids import MAX_SHARD, IdGenerator
from timelines.outboxes import OutboxLoader
from timelines.store import Timelines, member, score

CELEBRITY_THRESHOLD = 10_000
BIG, SMALL = 10_000, 1_000
MUTING_SHARE = 0.01  # of each author's followers
BLOCKS_EACH_WAY = 50
BATCH = FanoutSettings().follower_batch  # followers per stream page and per Redis pipeline
POSTS = 30  # posts per method and author
TARGET_SHARE_OF_BEFORE = 0.9


@dataclass(frozen=True)
class Audience:
    """The authors, their followers (ascending) and how many of those mute each author."""

    big_author: int
    small_author: int
    followers: list[int]
    muting: dict[int, int]

    def followers_of(self, author: int) -> list[int]:
        return self.followers if author == self.big_author else self.followers[:SMALL]


class _GraphWithoutFilter:
    """graph_svc as the fan-out asked it before the privacy filter: GetAudience becomes GetFollowerCount
    (and, for an audience of at most `max_ids`, StreamFollowerIds of every follower in one page), and
    StreamFollowerIds never sets `audience_only`. Every other method is the real stub's."""

    def __init__(self, graph: graph_pb2_grpc.GraphServiceStub) -> None:
        self._graph = graph

    def __getattr__(self, name: str) -> Any:
        return getattr(self._graph, name)

    async def GetAudience(self, request: graph_pb2.GetAudienceRequest, **kwargs: Any) -> graph_pb2.GetAudienceResponse:
        count = await self._graph.GetFollowerCount(graph_pb2.GetFollowerCountRequest(user_id=request.user_id), **kwargs)
        answer = graph_pb2.GetAudienceResponse(follower_count=count.follower_count)
        if count.follower_count <= request.max_ids:
            stream = graph_pb2.StreamFollowerIdsRequest(user_id=request.user_id, batch_size=max(1, request.max_ids))
            async for page in self._graph.StreamFollowerIds(stream, **kwargs):
                answer.follower_ids.extend(page.follower_ids)
            answer.complete = True
        return answer

    def StreamFollowerIds(
        self, request: graph_pb2.StreamFollowerIdsRequest, **kwargs: Any
    ) -> AsyncIterator[graph_pb2.StreamFollowerIdsResponse]:
        unfiltered = graph_pb2.StreamFollowerIdsRequest(user_id=request.user_id, batch_size=request.batch_size)
        stream: AsyncIterator[graph_pb2.StreamFollowerIdsResponse] = self._graph.StreamFollowerIds(unfiltered, **kwargs)
        return stream


def main() -> None:
    with running_stack(["graph_svc", "post_svc"], celebrity_threshold=str(CELEBRITY_THRESHOLD)) as stack:
        audience = _load_graph(stack)
        asyncio.run(_run(stack, audience))


def _load_graph(stack: Stack) -> Audience:
    """Two authors, their followers, the muters among them and the blocks, straight into the graph
    schema, counts set."""
    ids = IdGenerator(MAX_SHARD)
    big, small = ids.next_id(), ids.next_id()
    followers = [ids.next_id() for _ in range(BIG)]
    strangers = [ids.next_id() for _ in range(4 * BLOCKS_EACH_WAY)]
    # Muters spread over the id range (every 100th follower), so every streamed page filters some.
    step = round(1 / MUTING_SHARE)
    mutes = [(f, big) for f in followers[::step]] + [(f, small) for f in followers[:SMALL:step]]
    blocks = [(big, s) for s in strangers[:BLOCKS_EACH_WAY]]
    blocks += [(s, big) for s in strangers[BLOCKS_EACH_WAY : 2 * BLOCKS_EACH_WAY]]
    blocks += [(small, s) for s in strangers[2 * BLOCKS_EACH_WAY : 3 * BLOCKS_EACH_WAY]]
    blocks += [(s, small) for s in strangers[3 * BLOCKS_EACH_WAY :]]
    conn = feed_data.connect(stack.database_url)
    with conn, Step(f"{BIG:,} followers of one author, {SMALL:,} of another; 1% mute, 50 blocks each way"):
        feed_data.copy_users(conn, [big, small, *followers, *strangers], "fp")
        pairs = [(f, big) for f in followers] + [(f, small) for f in followers[:SMALL]]
        feed_data.copy_follows(conn, pairs)
        feed_data.set_follow_counts(conn, [big, small])
        with conn.cursor() as cur:
            with cur.copy("COPY graph.mutes (muter_id, muted_id) FROM STDIN") as copy:
                for pair in mutes:
                    copy.write_row(pair)
            with cur.copy("COPY graph.blocks (blocker_id, blocked_id) FROM STDIN") as copy:
                for pair in blocks:
                    copy.write_row(pair)
        conn.execute("ANALYZE graph.follows, graph.mutes, graph.blocks, graph.users")
    muting = {big: sum(1 for _, a in mutes if a == big), small: sum(1 for _, a in mutes if a == small)}
    return Audience(big, small, followers, muting)


async def _run(stack: Stack, audience: Audience) -> None:
    timelines = feed_data.make_timelines(stack.namespace)
    try:
        with Step(f"{BIG:,} live empty inboxes, live author outboxes"):
            await feed_data.build_inboxes(timelines, {f: [] for f in audience.followers})
            await feed_data.build_outboxes(timelines, {audience.big_author: [], audience.small_author: []})
        async with (
            grpc.aio.insecure_channel(stack.addr["graph_svc"]) as graph_channel,
            grpc.aio.insecure_channel(stack.addr["post_svc"]) as post_channel,
        ):
            graph = graph_pb2_grpc.GraphServiceStub(graph_channel)
            posts = post_pb2_grpc.PostServiceStub(post_channel)
            filtered = _handlers(stack, timelines, graph, posts)
            before = _handlers(stack, timelines, _GraphWithoutFilter(graph), posts)  # type: ignore[arg-type]
            await _check_audiences(timelines, filtered, before, audience)
            results = {
                author: await _rates(timelines, filtered, before, author, audience.followers_of(author))
                for author in (audience.big_author, audience.small_author)
            }
        _report(results, audience)
    finally:
        await timelines.redis.aclose()


def _handlers(
    stack: Stack, timelines: Timelines, graph: graph_pb2_grpc.GraphServiceStub, posts: post_pb2_grpc.PostServiceStub
) -> FanoutHandlers:
    """The consumer's handlers as fanout_svc assembles them (fanout_svc.app), in this process."""
    settings = FanoutSettings(namespace=stack.namespace)
    return FanoutHandlers(
        timelines,
        OutboxLoader(timelines, posts, timeout=settings.upstream_timeout_seconds),
        graph,
        celebrity_threshold=CELEBRITY_THRESHOLD,
        follower_batch=BATCH,
        timeout=settings.upstream_timeout_seconds,
    )


async def _check_audiences(
    timelines: Timelines, filtered: FanoutHandlers, before: FanoutHandlers, audience: Audience
) -> None:
    """Before measuring: one post by each author through each handler reaches exactly the followers it
    should (all of them before the filter; all but the muters with it), so both do the work measured."""
    ids = IdGenerator(MAX_SHARD - 3)
    for author in (audience.big_author, audience.small_author):
        followers = audience.followers_of(author)
        for handlers, expected in ((before, len(followers)), (filtered, len(followers) - audience.muting[author])):
            post = ids.next_id()
            await handlers.on_post_created(events_pb2.PostCreated(post_id=post, author_id=author))
            async with timelines.redis.pipeline(transaction=False) as pipe:
                for user in followers:
                    pipe.zscore(timelines.inbox_key(user), member(post))
                reached = sum(1 for found in await pipe.execute() if found is not None)
            if reached != expected:
                raise RuntimeError(f"a post by {author} reached {reached} inboxes, expected {expected}")


async def _rates(
    timelines: Timelines, filtered: FanoutHandlers, before: FanoutHandlers, author: int, followers: list[int]
) -> list[Sample]:
    """Per post, the seconds each method took to write it (the methods alternate post by post)."""
    ids = IdGenerator(MAX_SHARD - 1)
    batches = [followers[i : i + BATCH] for i in range(0, len(followers), BATCH)]

    def handler(handlers: FanoutHandlers) -> Callable[[int], Awaitable[None]]:
        async def write(post: int) -> None:
            await handlers.on_post_created(events_pb2.PostCreated(post_id=post, author_id=author))

        return write

    async def raw(post: int) -> None:
        await _zadd_batches(timelines, batches, post)

    count = f"{len(followers) // 1000}k"
    methods: dict[str, Callable[[int], Awaitable[None]]] = {
        f"floor: raw pipelined ZADD, {count} inboxes": raw,
        f"before the filter (all followers), {count}": handler(before),
        f"with the privacy filter, {count}": handler(filtered),
    }
    for method in methods.values():  # warm-up: connections, script cache, graph_svc's pool and plans
        await method(ids.next_id())
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(POSTS):
        for name, method in methods.items():
            post = ids.next_id()
            started = time.perf_counter()
            await method(post)
            seconds[name].append(time.perf_counter() - started)
    return [Sample(name, s, sum(s), len(s) * len(followers), "followers") for name, s in seconds.items()]


async def _zadd_batches(timelines: Timelines, batches: Sequence[Sequence[int]], post: int) -> None:
    """One post into each inbox with plain ZADD, one pipeline per batch (bench.fanout's floor)."""
    post_score, post_member = score(post), member(post)
    for batch in batches:
        async with timelines.redis.pipeline(transaction=False) as pipe:
            for user in batch:
                pipe.execute_command("ZADD", timelines.inbox_key(user), post_score, post_member)
            await pipe.execute()


def _report(results: dict[int, list[Sample]], audience: Audience) -> None:
    print(
        f"fan-out of one post, handler in this process, graph_svc a process; {POSTS} posts per method, "
        "alternating; per post: the author's followers / seconds"
    )
    rows = []
    for author, (raw, before, filtered) in results.items():
        for sample in (raw, before, filtered):
            print(sample.line())
        followers = len(audience.followers_of(author))
        # The median post's time: one slow post (a checkpoint, another helper's burst) moves a mean.
        before_rate, filtered_rate = followers / before.percentile(50), followers / filtered.percentile(50)
        big = author == audience.big_author
        rows.append(
            Verdict(
                f"fan-out with privacy filter, {followers:,} followers ({audience.muting[author]} mute)",
                f"{filtered_rate:,.0f} followers/s",
                f"before the filter {before_rate:,.0f}/s (raw ZADD {followers / raw.percentile(50):,.0f}/s)",
                f"{filtered_rate / before_rate:.0%} of before",
                f">= {TARGET_SHARE_OF_BEFORE:.0%} of before" if big else "(the target is for 10k)",
                filtered_rate >= TARGET_SHARE_OF_BEFORE * before_rate if big else None,
            )
        )
    print("  rates in the table: each method's median post (the lines above: total followers / total seconds)")
    print(peak_rss_line())
    print_verdicts("fan-out privacy filter", rows)
