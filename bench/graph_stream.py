"""Follower-stream throughput of graph_svc (what the fan-out reads for every post).

    python -m bench graph_stream

Starts graph_svc as its own process on a fresh database loaded with socfb-Reed98 (plus one synthetic
user with 100k followers), then from this process measures, over real gRPC on loopback:
  floor    the empty call: grpc.health.v1.Health/Check
  stream   StreamFollowerIds of the most-followed Reed98 user (313 followers), whole stream per call
  stream   StreamFollowerIds of a 100k-follower user (batches of 1000)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
from sqlalchemy import func, select, text

from bench.stats import Sample, empty_call_floor, peak_rss_line
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc import demo
from graph_svc.credentials import Passwords
from graph_svc.models import follows, users
from mesh.db import Database
from mesh.ids import IdGenerator
from mesh.migrate import drop_database, ensure_database, upgrade

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "socfb-Reed98.edges"
BIG_FOLLOWERS = 100_000


async def _load(url: str) -> tuple[int, int]:
    """Loads the dataset and a 100k-follower user; returns (top Reed98 user id, big user id)."""
    db = Database(url, pool_size=2)
    ids = IdGenerator(1)
    try:
        await demo.load(db, demo.read_edges(DATASET), Passwords(time_cost=1, memory_kib=8192, parallelism=1), ids)
        now = dt.datetime.now(dt.UTC)
        async with db.unit_of_work() as session:
            big = ids.next_id()
            fans = [ids.next_id() for _ in range(BIG_FOLLOWERS)]
            rows = [{"id": big, "username": "bench_star", "email": "star@bench.dev", "password_hash": "-"}]
            rows += [
                {"id": f, "username": f"bench_fan{n}", "email": f"fan{n}@bench.dev", "password_hash": "-"}
                for n, f in enumerate(fans)
            ]
            for start in range(0, len(rows), 10_000):
                await session.execute(users.insert(), rows[start : start + 10_000])
            edges = [{"follower_id": f, "followee_id": big, "created_at": now} for f in fans]
            for start in range(0, len(edges), 10_000):
                await session.execute(follows.insert(), edges[start : start + 10_000])
            await session.execute(
                text("UPDATE graph.users SET follower_count = :n WHERE id = :id"), {"n": BIG_FOLLOWERS, "id": big}
            )
        async with db.read_only() as session:
            top = (
                await session.execute(
                    select(users.c.id)
                    .where(users.c.username.like("reed%"))
                    .order_by(users.c.follower_count.desc())
                    .limit(1)
                )
            ).scalar_one()
            count = (
                await session.execute(select(func.count()).select_from(follows).where(follows.c.followee_id == top))
            ).scalar_one()
        print(f"  data: Reed98 loaded (top user has {count} followers), plus a user with {BIG_FOLLOWERS:,} followers")
        return top, big
    finally:
        await db.dispose()


async def _time_stream(
    name: str, stub: graph_pb2_grpc.GraphServiceStub, user_id: int, n: int, batch: int
) -> tuple[Sample, Sample]:
    seconds, total_ids = [], 0
    started = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        async for page in stub.StreamFollowerIds(graph_pb2.StreamFollowerIdsRequest(user_id=user_id, batch_size=batch)):
            total_ids += len(page.follower_ids)
        seconds.append(time.perf_counter() - t)
    wall = time.perf_counter() - started
    return Sample(name, seconds, wall, n, "streams"), Sample(
        name.replace("streams", "ids"), seconds, wall, total_ids, "ids"
    )


async def _measure(addr: str, top: int, big: int) -> list[Sample]:
    async with grpc.aio.insecure_channel(addr) as channel:
        graph = graph_pb2_grpc.GraphServiceStub(channel)
        for _ in range(200):  # warm-up: connections, caches, pools
            async for _page in graph.StreamFollowerIds(graph_pb2.StreamFollowerIdsRequest(user_id=top)):
                pass
        floor = await empty_call_floor(channel)
        small = await _time_stream("StreamFollowerIds, 313 followers (streams)", graph, top, 2000, 1000)
        large = await _time_stream(
            f"StreamFollowerIds, {BIG_FOLLOWERS // 1000}k followers (streams)", graph, big, 20, 1000
        )
        return [floor, *small, *large]


def main() -> None:
    if not DATASET.is_file():
        sys.exit(f"bench graph_stream: {DATASET} not found")
    tag = uuid.uuid4().hex[:8]
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/glimpse_bench_{tag}"
    ensure_database(url)
    upgrade(url, "graph_svc")
    env = {
        **os.environ,
        "GLIMPSE_DATABASE_URL": url,
        "GLIMPSE_NAMESPACE": f"bench{tag}",
        "GLIMPSE_LISTEN": "127.0.0.1:50151",
        "GLIMPSE_LOG_LEVEL": "WARNING",
    }
    server = None
    try:
        top, big = asyncio.run(_load(url))
        server = subprocess.Popen([sys.executable, "-m", "graph_svc"], cwd=ROOT, env=env)
        time.sleep(2.0)
        samples = asyncio.run(_measure("127.0.0.1:50151", top, big))
        print("graph_svc follower stream (server in its own process; loopback gRPC; 2 cores)")
        for sample in samples:
            print(sample.line())
        floor, small, big_ids = samples[0], samples[1], samples[4]
        ratio = small.percentile(50) / floor.percentile(50)
        print(f"  => 313-follower stream: {ratio:.1f}x an empty call at p50; 100k stream: {big_ids.rate:,.0f} ids/s")
        print(peak_rss_line())
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        drop_database(url)
