"""Fan-out: how fast a post reaches its author's followers' inboxes.

    python -m bench fanout

Runs graph_svc, post_svc, media_svc and fanout_svc as processes (bench.stack, CELEBRITY_THRESHOLD
10000) on a fresh database. Two authors and 10,000 followers are bulk-loaded into the graph schema
(counts set); the 1k author's followers are the first 1,000 of the 10k author's. Every follower has
a live, empty inbox (Timelines.build_inbox(user, [])), as an active user does.

Figure 1, inbox writes per second for the 10k author, from this process against the real Redis:
  floor    raw pipelined ZADD of one post into the same 10,000 inbox keys, 1,000 per pipeline
  push     Timelines.push (the fan-out's write: EVALSHA of the capped add-if-live script), 1,000
           followers per call, as the fan-out pages them
  handler  FanoutHandlers.on_post_created, the consumer's own code: outbox, follower count and
           follower stream over gRPC from the graph_svc process, then the pushes
Methods alternate post by post, so a load that comes and goes hits them alike.

Figure 2, post-to-visible: a photo is uploaded as a client does (upload grant, form POST to the
object store), then CreatePost; the clock runs from CreatePost's acknowledgement until the post is
in the last follower's inbox (ZSCORE polled every millisecond; the fan-out streams followers in id
order, so the last one is written last). The floor is the raw pipelined ZADD of the same number of
inboxes from this process: what the fan-out's own Redis writes cost at the least. Posts go one at a
time, 3 warm-up posts per author first; with 30 posts, p99 is the slowest one.
Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
import httpx
from PIL import Image

from bench import feed_data
from bench.feed_data import Step, Verdict, print_verdicts
from bench.stack import Stack, running_stack
from bench.stats import Sample, empty_call_floor, peak_rss_line
from fanout_svc.consumers import FanoutHandlers
from fanout_svc.settings import FanoutSettings
from glimpse.events.v1 import events_pb2
from glimpse.graph.v1 import graph_pb2_grpc
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.identity import as_caller
from mesh.ids import MAX_SHARD, IdGenerator
from timelines.outboxes import OutboxLoader
from timelines.store import Timelines, member, score

CELEBRITY_THRESHOLD = 10_000
BIG, SMALL = 10_000, 1_000
BATCH = FanoutSettings().follower_batch  # followers per stream page and per Redis pipeline
RATE_POSTS = 15  # posts per method in figure 1
VISIBLE_POSTS = 30  # posts per author in figure 2
WARMUP_POSTS = 3
POLL_SECONDS = 0.001
TARGET_SHARE_OF_RAW = 0.35
TARGET_VISIBLE_P99 = 1.0


@dataclass(frozen=True)
class Audience:
    """The authors and their followers (ids in increasing order)."""

    big_author: int
    small_author: int
    followers: list[int]

    def followers_of(self, author: int) -> list[int]:
        return self.followers if author == self.big_author else self.followers[:SMALL]


def main() -> None:
    with running_stack(
        ["graph_svc", "post_svc", "media_svc", "fanout_svc"], celebrity_threshold=str(CELEBRITY_THRESHOLD)
    ) as stack:
        audience = _load_graph(stack)
        asyncio.run(_run(stack, audience))


def _load_graph(stack: Stack) -> Audience:
    """Two authors and their followers, straight into graph.users/graph.follows, counts set."""
    ids = IdGenerator(MAX_SHARD)
    big, small = ids.next_id(), ids.next_id()
    followers = [ids.next_id() for _ in range(BIG)]
    conn = feed_data.connect(stack.database_url)
    with conn, Step(f"{BIG:,} followers of one author, the first {SMALL:,} also of another"):
        feed_data.copy_users(conn, [big, small, *followers], "fan")
        pairs = [(f, big) for f in followers] + [(f, small) for f in followers[:SMALL]]
        feed_data.copy_follows(conn, pairs)
        feed_data.set_follow_counts(conn, [big, small])
    return Audience(big, small, followers)


async def _run(stack: Stack, audience: Audience) -> None:
    timelines = feed_data.make_timelines(stack.namespace)
    try:
        with Step(f"{BIG:,} live empty inboxes, live author outboxes"):
            await feed_data.build_inboxes(timelines, {f: [] for f in audience.followers})
            await feed_data.build_outboxes(timelines, {audience.big_author: [], audience.small_author: []})
        async with (
            grpc.aio.insecure_channel(stack.addr["graph_svc"]) as graph_channel,
            grpc.aio.insecure_channel(stack.addr["post_svc"]) as post_channel,
            grpc.aio.insecure_channel(stack.addr["media_svc"]) as media_channel,
        ):
            handlers = _handlers(stack, timelines, graph_channel, post_channel)
            rates = await _fanout_rate(timelines, handlers, audience)
            floor_call = await empty_call_floor(post_channel, 1000)
            poster = _Poster(
                timelines,
                post_pb2_grpc.PostServiceStub(post_channel),
                media_pb2_grpc.MediaServiceStub(media_channel),
            )
            visible = {
                author: await poster.post_to_visible(author, max(audience.followers_of(author)))
                for author in (audience.small_author, audience.big_author)
            }
            raw_small = await _raw_writes(timelines, audience.followers[:SMALL], RATE_POSTS)
        _report(rates, floor_call, visible, raw_small, audience)
    finally:
        await timelines.redis.aclose()


def _handlers(
    stack: Stack, timelines: Timelines, graph_channel: grpc.aio.Channel, post_channel: grpc.aio.Channel
) -> FanoutHandlers:
    """The consumer's handlers as fanout_svc assembles them (fanout_svc.app), in this process."""
    settings = FanoutSettings(namespace=stack.namespace)
    return FanoutHandlers(
        timelines,
        OutboxLoader(timelines, post_pb2_grpc.PostServiceStub(post_channel), timeout=settings.upstream_timeout_seconds),
        graph_pb2_grpc.GraphServiceStub(graph_channel),
        celebrity_threshold=CELEBRITY_THRESHOLD,
        follower_batch=BATCH,
        timeout=settings.upstream_timeout_seconds,
    )


# Figure 1 ---------------------------------------------------------------------------------------


async def _fanout_rate(timelines: Timelines, handlers: FanoutHandlers, audience: Audience) -> list[Sample]:
    """Per post: the time to write it into all 10k inboxes by each method (the methods alternate)."""
    ids = IdGenerator(MAX_SHARD - 1)
    followers = audience.followers
    batches = [followers[i : i + BATCH] for i in range(0, len(followers), BATCH)]

    async def raw(post: int) -> None:
        await _zadd_batches(timelines, batches, post)

    async def push(post: int) -> None:
        for batch in batches:
            await timelines.push([post], batch)

    async def handler(post: int) -> None:
        event = events_pb2.PostCreated(post_id=post, author_id=audience.big_author)
        await handlers.on_post_created(event)

    methods: dict[str, Callable[[int], Awaitable[None]]] = {
        "floor: raw pipelined ZADD, 10k inboxes": raw,
        "Timelines.push, 10k live inboxes": push,
        "FanoutHandlers.on_post_created, 10k": handler,
    }
    for method in methods.values():  # warm-up: connections, script cache, graph_svc's pool
        await method(ids.next_id())
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(RATE_POSTS):
        for name, method in methods.items():
            post = ids.next_id()
            started = time.perf_counter()
            await method(post)
            seconds[name].append(time.perf_counter() - started)
    return [Sample(name, s, sum(s), len(s) * len(followers), "writes") for name, s in seconds.items()]


async def _zadd_batches(timelines: Timelines, batches: Sequence[Sequence[int]], post: int) -> None:
    """One post into each inbox with plain ZADD, one pipeline per batch (the same client path as
    Timelines.push: execute_command in a non-transactional pipeline)."""
    post_score, post_member = score(post), member(post)
    for batch in batches:
        async with timelines.redis.pipeline(transaction=False) as pipe:
            for user in batch:
                pipe.execute_command("ZADD", timelines.inbox_key(user), post_score, post_member)
            await pipe.execute()


async def _raw_writes(timelines: Timelines, followers: list[int], posts: int) -> Sample:
    ids = IdGenerator(MAX_SHARD - 2)
    batches = [followers[i : i + BATCH] for i in range(0, len(followers), BATCH)]
    seconds = []
    for _ in range(posts):
        started = time.perf_counter()
        await _zadd_batches(timelines, batches, ids.next_id())
        seconds.append(time.perf_counter() - started)
    return Sample(f"floor: raw pipelined ZADD, {len(followers):,} inboxes", seconds, sum(seconds), posts, "posts")


# Figure 2 ---------------------------------------------------------------------------------------


class _Poster:
    """Posts a photo as a client does and times how long until a follower's inbox holds the post."""

    def __init__(
        self, timelines: Timelines, posts: post_pb2_grpc.PostServiceStub, media: media_pb2_grpc.MediaServiceStub
    ) -> None:
        self._timelines = timelines
        self._posts = posts
        self._media = media
        self._seed = 0

    async def post_to_visible(self, author: int, watched: int) -> tuple[Sample, Sample]:
        """(CreatePost latency, acknowledgement -> in `watched`'s inbox) over VISIBLE_POSTS posts."""
        async with httpx.AsyncClient(timeout=30) as store:
            photos = [await self._upload(store, author) for _ in range(WARMUP_POSTS + VISIBLE_POSTS)]
        create, visible = [], []
        for photo in photos:
            started = time.perf_counter()
            post = await self._posts.CreatePost(
                post_pb2.CreatePostRequest(caption="bench", media_ids=[photo], request_id=uuid.uuid4().hex),
                metadata=as_caller(author),
            )
            acked = time.perf_counter()
            await self._wait_until_in_inbox(watched, post.id)
            create.append(acked - started)
            visible.append(time.perf_counter() - acked)
        create, visible = create[WARMUP_POSTS:], visible[WARMUP_POSTS:]
        return (
            Sample("CreatePost (ack)", create, sum(create), len(create), "posts"),
            Sample("post-to-visible (ack to last inbox)", visible, sum(visible), len(visible), "posts"),
        )

    async def _upload(self, store: httpx.AsyncClient, author: int) -> int:
        """Upload grant, then the form POST straight to the object store; returns the media id."""
        self._seed += 1
        data = _tiny_png(self._seed)
        grant = await self._media.CreateUploadGrant(
            media_pb2.CreateUploadGrantRequest(content_type="image/png", size_bytes=len(data)),
            metadata=as_caller(author),
        )
        sent = await store.post(grant.url, data=dict(grant.form_fields), files={"file": ("p.png", data, "image/png")})
        sent.raise_for_status()
        return grant.media_id

    async def _wait_until_in_inbox(self, user: int, post: int, within: float = 30.0) -> None:
        key, wanted = self._timelines.inbox_key(user), member(post)
        deadline = time.perf_counter() + within
        while await self._timelines.redis.zscore(key, wanted) is None:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"post {post} did not reach {key} within {within}s; see bench/.logs")
            await asyncio.sleep(POLL_SECONDS)


def _tiny_png(seed: int) -> bytes:
    image = Image.new("RGB", (8, 6), ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# Report -----------------------------------------------------------------------------------------


def _report(
    rates: list[Sample],
    floor_call: Sample,
    visible: dict[int, tuple[Sample, Sample]],
    raw_small: Sample,
    audience: Audience,
) -> None:
    raw, push, handler = rates
    print("fan-out rate: one post into 10,000 live inboxes, from this process (Redis local; 2 cores)")
    for sample in rates:
        print(sample.line())
    print("post-to-visible: real post_svc + media_svc + graph_svc + fanout_svc processes, JetStream between")
    print(floor_call.line())
    print(raw_small.line())
    raw_big = Sample(f"floor: raw pipelined ZADD, {BIG:,} inboxes", raw.seconds, raw.wall, len(raw.seconds), "posts")
    print(raw_big.line())
    for author, count in ((audience.small_author, SMALL), (audience.big_author, BIG)):
        for sample in visible[author]:
            name = f"{sample.name}, {count // 1000}k followers"
            print(Sample(name, sample.seconds, sample.wall, sample.units, "posts").line())
    rows = [
        Verdict(
            f"fan-out rate, {sample.name.split(',')[0]}",
            f"{sample.rate:,.0f} writes/s",
            f"raw ZADD {raw.rate:,.0f} writes/s",
            f"{sample.rate / raw.rate:.0%} of raw",
            f">= {TARGET_SHARE_OF_RAW:.0%} of raw",
            sample.rate >= TARGET_SHARE_OF_RAW * raw.rate,
        )
        for sample in (push, handler)
    ]
    rows.append(_visible_row(visible[audience.small_author][1], raw_small, SMALL))
    rows.append(_visible_row(visible[audience.big_author][1], raw_big, BIG))
    print(peak_rss_line())
    print_verdicts("fan-out", rows)


def _visible_row(seen: Sample, floor: Sample, followers: int) -> Verdict:
    """Post-to-visible beside the raw writes to as many inboxes (p50 to p50, p99 to p99)."""
    p50, p99 = seen.percentile(50), seen.percentile(99)
    big = followers == BIG
    return Verdict(
        f"post-to-visible, {followers:,} followers",
        f"p50 {p50 * 1000:.0f} / p99 {p99 * 1000:.0f} ms",
        f"raw ZADD p50 {floor.percentile(50) * 1000:.0f} / p99 {floor.percentile(99) * 1000:.0f} ms",
        f"{p50 / floor.percentile(50):.1f}x / {p99 / floor.percentile(99):.1f}x",
        f"p99 < {TARGET_VISIBLE_P99 * 1000:.0f} ms" if big else "(the target is for 10k)",
        p99 < TARGET_VISIBLE_P99 if big else None,
    )
