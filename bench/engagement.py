"""LikePost throughput (issue 11), beside an empty gRPC call, spread over many posts and on one hot
post, with the sharded counter and with a single counter row.

    python -m bench engagement

Runs graph_svc, post_svc and two engagement_svc processes (bench.stack) on a fresh database: the
usual one (16 counter shards) and one with GLIMPSE_COUNTER_SHARDS=1, the design the shards replace
(every like of a post updates the same row). 2,100 posts are bulk-loaded into the posts schema
(bench.feed_data.insert_posts), their 21 authors and every liker into graph's users (public
accounts): a like asks graph_svc whether the liker may see the author's posts (cached per pair), so
each first like of a liker pays that question.
Every post's likers are read once before timing, so engagement_svc's post cache is warm and the
timed likes pay for the like itself: row, counter, outbox event and the count in the answer.
From this process, over one loopback gRPC channel per engagement process, 16 callers at once:
  floor    grpc.health.v1.Health/Check
  spread   LikePost by 16 users, each liking 250 distinct posts of 2,000 (4,000 new likes)
  hot      LikePost by 2,000 distinct users of ONE post (2,000 new likes), sharded counter
  hot, 1   the same on another post, through the engagement process with one counter row
After each hot phase the post's count must be exactly 2,000 (BatchGetEngagement and a recount of
the rows); the benchmark stops with an error otherwise. Then the CPU each process used during the
floor, the spread and the hot (16 shards) phases (per call and per like: what stays put when other
work shares the machine, unlike the rates) and the peak RSS of every process.

Floors (same run): spread >= 40% of the floor's rate; hot >= 50% of spread's rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator, Sequence

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.create_post import Call, at_once, cpu_report, cpu_seconds
from bench.feed_data import connect, copy_users, insert_posts
from bench.stack import LOGS, ROOT, Stack, free_port, running_stack
from bench.stats import Sample, peak_rss_line
from glimpse.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from mesh.identity import as_caller

CALLERS = 16
SPREAD_POSTS = 2000
LIKES_PER_CALLER = 250
HOT_LIKERS = 2000
FLOOR_EACH = 400
AUTHORS, POSTS_EACH = 21, 100  # 2,100 posts: 2,000 to spread over, then the hot ones
SPREAD_FLOOR, HOT_FLOOR = 0.40, 0.50
SPREAD_USERS = 1000  # user ids 1000..1015 like the spread posts
HOT_USERS = 100_000  # user ids 100000.. like a hot post
Stub = engagement_pb2_grpc.EngagementServiceStub


def _load_posts(stack: Stack) -> list[int]:
    """Bulk-loads the posts, their authors and every liker; the posts' ids, oldest first."""
    with connect(stack.database_url) as conn:
        copy_users(conn, range(1, AUTHORS + 1), "author")
        copy_users(conn, range(SPREAD_USERS, SPREAD_USERS + CALLERS), "fan")
        copy_users(conn, range(HOT_USERS, HOT_USERS + HOT_LIKERS), "crowd")
        insert_posts(conn, list(range(1, AUTHORS + 1)), POSTS_EACH, first_seq=1, days=7)
        return [row[0] for row in conn.execute("SELECT id FROM posts.posts ORDER BY id")]


@contextlib.contextmanager
def unsharded_engagement(stack: Stack) -> Iterator[str]:
    """A second engagement_svc process on the same database with one counter row per post."""
    address = f"127.0.0.1:{free_port()}"
    env = {**stack.env, "GLIMPSE_LISTEN": address, "GLIMPSE_COUNTER_SHARDS": "1"}
    with open(LOGS / f"{stack.namespace}-engagement_svc-1shard.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "engagement_svc"], cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            asyncio.run(_wait_serving(address, process))
            yield address
        finally:
            process.terminate()
            process.wait(timeout=20)


async def _wait_serving(address: str, process: subprocess.Popen[bytes]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"the one-shard engagement_svc exited; see {LOGS}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the one-shard engagement_svc did not serve; see {LOGS}")


def _likes(stub: Stub, pairs: Sequence[tuple[int, int]]) -> tuple[Call, int]:
    """A lane that likes, one after another, each (user, post) of `pairs`."""
    pending = iter(pairs)

    def call() -> Awaitable[object]:
        user, post = next(pending)
        return stub.LikePost(engagement_pb2.LikePostRequest(post_id=post), metadata=as_caller(user))

    return call, len(pairs)


async def _warm_up(stub: Stub, post_ids: Sequence[int]) -> None:
    """Each post's likers read once (nothing written): engagement_svc caches every post's author."""
    pending = iter(post_ids)

    def call() -> Awaitable[object]:
        return stub.ListLikes(engagement_pb2.ListLikesRequest(parent=f"posts/{next(pending)}", page_size=1))

    lanes = [(call, len(post_ids[n::CALLERS])) for n in range(CALLERS)]
    await at_once("warm-up", lanes)


async def _count(stub: Stub, post_id: int) -> int:
    found = await stub.BatchGetEngagement(engagement_pb2.BatchGetEngagementRequest(post_ids=[post_id]))
    return int(found.engagement[0].like_count)


async def _hot(name: str, stub: Stub, post_id: int) -> Sample:
    """HOT_LIKERS distinct users like `post_id`, CALLERS at a time; stops unless the count is exact."""
    users = range(HOT_USERS, HOT_USERS + HOT_LIKERS)
    lanes = [_likes(stub, [(u, post_id) for u in users[n::CALLERS]]) for n in range(CALLERS)]
    sample = await at_once(name, lanes, "likes")
    count = await _count(stub, post_id)
    if count != HOT_LIKERS:
        raise RuntimeError(f"{name}: post {post_id} counts {count} likes, expected exactly {HOT_LIKERS}")
    return sample


def _recount(stack: Stack, post_id: int) -> int:
    with psycopg.connect(stack.database_url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        row = conn.execute("SELECT count(*) FROM engagement.likes WHERE post_id = %s", (post_id,)).fetchone()
    return int(row[0]) if row else 0


async def _drain(stack: Stack, within: float = 120.0) -> None:
    """Waits until engagement_svc's relay has published every event written so far."""
    deadline = time.monotonic() + within
    url = stack.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            pending = await conn.execute("SELECT count(*) FROM engagement.outbox WHERE published_at IS NULL")
            row = await pending.fetchone()
            if row is not None and row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"engagement_svc's outbox did not drain within {within:.0f}s")
            await asyncio.sleep(0.2)


async def _measure(stack: Stack, post_ids: list[int], one_shard: str) -> tuple[list[Sample], str, list[str]]:
    spread_posts, hot_sharded, hot_single = post_ids[:SPREAD_POSTS], post_ids[-2], post_ids[-1]
    async with (
        grpc.aio.insecure_channel(stack.addr["engagement_svc"]) as channel,
        grpc.aio.insecure_channel(one_shard) as single_channel,
    ):
        stub = engagement_pb2_grpc.EngagementServiceStub(channel)
        single = engagement_pb2_grpc.EngagementServiceStub(single_channel)
        await _warm_up(stub, post_ids[:-1])
        await _warm_up(single, [hot_single])
        await _drain(stack)
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest()
        floor_before = cpu_seconds()
        floor = await at_once(
            f"floor: Health/Check, {CALLERS} callers", [(lambda: health.Check(check), FLOOR_EACH)] * CALLERS
        )
        floor_cpu = cpu_report(floor_before, cpu_seconds(), floor.wall, floor.units, "call")
        lanes = []
        for n in range(CALLERS):
            user = SPREAD_USERS + n
            posts = [spread_posts[(n * LIKES_PER_CALLER + k) % SPREAD_POSTS] for k in range(LIKES_PER_CALLER)]
            lanes.append(_likes(stub, [(user, p) for p in posts]))
        before = cpu_seconds()
        spread = await at_once(f"LikePost over {SPREAD_POSTS:,} posts, {CALLERS} callers", lanes, "likes")
        cpu = cpu_report(before, cpu_seconds(), spread.wall, spread.units, "like")
        cpu = floor_cpu.replace("CPU over", "CPU during the floor's calls, over") + "\n" + cpu
        await _drain(stack)
        before = cpu_seconds()
        hot = await _hot(f"LikePost, one post, {HOT_LIKERS:,} users, {CALLERS} callers", stub, hot_sharded)
        hot_cpu = cpu_report(before, cpu_seconds(), hot.wall, hot.units, "like")
        cpu += "\n" + hot_cpu.replace("CPU over", "CPU during the hot post's likes (16 shards), over")
        await _drain(stack)
        hot_one_row = await _hot("  the same with one counter row (1 shard)", single, hot_single)
        await _drain(stack)
        counts = []
        for name, post_id in (("16 shards", hot_sharded), ("1 shard", hot_single)):
            rows, count = _recount(stack, post_id), await _count(stub, post_id)
            if rows != count:
                raise RuntimeError(f"post {post_id}: {rows} like rows but a count of {count}")
            counts.append(f"hot post ({name}): like_count {count:,} = {rows:,} like rows")
        return [floor, spread, hot, hot_one_row], cpu, counts


def _verdict(floor: Sample, spread: Sample, hot: Sample, hot_one_row: Sample) -> None:
    rows = [
        ("spread LikePost / empty call", spread.rate / floor.rate, SPREAD_FLOOR),
        ("hot post (16 shards) / spread", hot.rate / spread.rate, HOT_FLOOR),
        ("hot post (1 counter row) / spread", hot_one_row.rate / spread.rate, HOT_FLOOR),
    ]
    for name, ratio, floor_ratio in rows:
        verdict = "met" if ratio >= floor_ratio else "NOT met"
        print(f"  => {name}: {ratio:.0%} (floor {floor_ratio:.0%}): {verdict}")
    print(f"  => sharding's effect on the hot post: {hot.rate / hot_one_row.rate:.2f}x the one-row rate")


def main() -> None:
    with running_stack(["graph_svc", "post_svc", "engagement_svc"]) as stack:
        post_ids = _load_posts(stack)
        with unsharded_engagement(stack) as one_shard:
            samples, cpu, counts = asyncio.run(_measure(stack, post_ids, one_shard))
            rss = peak_rss_line({"GLIMPSE_COUNTER_SHARDS=1": "1 shard"})
    print(
        f"LikePost (engagement_svc -> PostgreSQL: like row, counter shard, outbox event, count); {CALLERS} callers "
        "from one client process; graph_svc (visibility), post_svc and the outbox relay running; each service its "
        "own process; loopback"
    )
    for sample in samples:
        print(sample.line())
    print(cpu.replace("CPU over", "CPU during the spread likes, over"))
    for line in counts:
        print(f"  exact: {line}")
    print(rss)
    _verdict(*samples)
