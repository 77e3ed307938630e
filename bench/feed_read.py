"""Feed read: GetHomeFeed through real feed_svc processes, beside an empty call, the same RPC without
engagement, a celebrity-heavy reader, and the same RPC served from SQL instead of Redis inboxes.

    python -m bench feed_read

Runs graph_svc, post_svc, media_svc, engagement_svc and feed_svc as processes (bench.stack) on a fresh
database, with a Redis server of its own (so Redis's CPU is only the timelines'), and three more feed
processes on the same data: one with GLIMPSE_SERVE_ENGAGEMENT=false (posts without engagement: the
issue-11 baseline), the SQL-backed variant (`BENCH_FEED_VARIANT=sql python -m bench.feed_read`:
feed_svc's own host, hydration, visibility, engagement and encoding, with the page's post ids read by
the per-followee LATERAL query on the posts index instead of from Redis) and the remembered pages
(`BENCH_FEED_VARIANT=remembered`: each reader's page read once, then answered from memory by the same
host and servicer: what a page of this size costs the hop alone, beside the empty call's 2 bytes).
CELEBRITY_THRESHOLD 10000; hydration, celebrity and visibility caches kept for 15 minutes so they stay
warm for the whole run (every reader's first page is read once per feed process before measuring).
Engagement is read through the engagement cache (engagement_cache): the warm-up fills each page's
counts and each reader's window of their own likes and saves, so measured pages read it from Redis in
one round trip (no like or comment rows here, and nothing changes during the run, so nothing is
dropped). What a miss costs (a BatchGetEngagement call) is in `ranked_feed`'s "uncached" figure.
This measures the read path, so the data is bulk-loaded (bench.feed_data): posts and READY media rows
straight into their schemas, outboxes and inboxes written with the timelines package exactly as the
fan-out leaves them (inbox: the newest 800 posts of the reader and their non-celebrity followees).

Data, all in the one database, loaded before any measurement:
  reed   socfb-Reed98 (graph_svc.demo.load: 962 users, 37,624 follows), 1,040 posts per user (1M)
  mix    100 celebrities (follower_count set above the threshold; their follower rows beyond our
         readers are not materialised) and 1,000 normal authors, 50 posts each; 100 readers
         following 50 celebrities + 200 normal authors, 100 following 250 normal authors
  scale  1M users; followers by a power law: 2 authors with ~1M followers each, author r has
         4M/r^2 (the top 20 are above the threshold); 5,000 authors with 200 posts each (1M posts);
         1,000 readers who also follow 20..500 authors each, chosen with a bias to popular ones
Only the outboxes a read touches are written: the celebrities' (another author's outbox is read only
to rebuild an expired inbox, and these readers' inboxes are live).

Figures (targets printed beside them, never asserted; issue 12 target 1 and issue 11's ratio):
  3  GetHomeFeed (page 20, Reed98 readers) at max rate beside Health/Check on the same feed_svc,
     beside the feed process without engagement and beside the remembered pages, with the same
     client; then GetHomeFeed and
     Health/Check at half the feed's max rate, open loop; CPU per call of every process
  4  the mix reader beside the inbox-only reader: p50/p99 of one caller, and max rate
  5  GetHomeFeed beside its SQL-backed variant (same gRPC server and hydration) on Reed98 and the
     power-law graph, with each variant's CPU per page in its stateful tier (Redis, PostgreSQL);
     for reference, the hydrated page by SQL straight from the client (the naive join, and LATERAL)

The client: CLIENT_PROCESSES processes (spawned), each one asyncio loop with CONCURRENCY calls in
flight (one gRPC channel per process; one psycopg connection per in-flight query), all starting
together; closed loop (a call starts when one ends) or open loop (calls start on a fixed schedule
and latency counts from the scheduled start, so a late client does not hide queueing). CPU is read
from /proc over each measurement's middle (CPU_EDGE cut at both ends, where connections open and
close): every process of the stack, the client processes, the bench's Redis server and the
PostgreSQL backends connected to the bench's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import psycopg
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import feed_data
from bench.feed_data import Step, Verdict, print_verdicts
from bench.stack import LOGS, Stack, free_port, running_stack
from bench.stats import Sample, empty_call_floor, peak_rss_line, time_calls
from feed_svc.app import feed_host
from feed_svc.hydration import RenderedPage
from feed_svc.service import FeedService
from feed_svc.settings import FeedSettings
from glimpse.feed.v1 import feed_pb2, feed_pb2_grpc
from graph_svc import demo
from graph_svc.credentials import Passwords
from mesh.db import Database
from mesh.entrypoint import run_service
from mesh.identity import as_caller
from mesh.ids import IdGenerator
from mesh.server import ServiceHost

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "socfb-Reed98.edges"

CELEBRITY_THRESHOLD = 10_000
CACHE_SECONDS = "900"
PAGE = 20
FEED_MAX = 800
CLIENT_PROCESSES = 2
CONCURRENCY = 8
SECONDS = 4.0
# CPU is read from CPU_EDGE after a measurement starts to CPU_EDGE before it ends.
CPU_EDGE = 0.25
SEQUENTIAL_CALLS = 1500
PLAN_LINES = 12

TARGET_SHARE_OF_EMPTY = 0.6
TARGET_P99_OVER_EMPTY = 2.0
TARGET_ENGAGEMENT_COST = 1.3
TARGET_CELEBRITY_COST = 1.5
TARGET_OVER_SQL_FEED = 2.0
TARGET_OVER_SQL_JOIN = 10.0

# Data set sizes (see the module docstring).
REED_POSTS_PER_USER = 1040
MIX_CELEBRITIES, MIX_NORMALS, MIX_READERS, MIX_POSTS = 100, 1000, 100, 50
MIX_FOLLOWS = (50, 200)  # celebrities, normal authors followed by a celebrity-mix reader
INBOX_FOLLOWS = 250  # normal authors followed by an inbox-only reader
SCALE_USERS, SCALE_AUTHORS, SCALE_READERS, SCALE_POSTS = 1_000_000, 5_000, 1_000, 200
# Generated users get ids from 2**40: far below any minted id (that would be 2025-01-01 + 131 ms).
SCALE_BASE = 1 << 40
# Post numbers (the low bits of generated post ids) of each data set.
REED_SEQ, MIX_SEQ, SCALE_SEQ = 0, 1_100_000, 2_000_000

# The usual home-feed query: the newest 20 posts of the reader's followees (and the reader's own,
# which the feed also shows), then their authors and media, like the hydrated page.
FEED_SQL = """
SELECT p.id, p.caption, p.hashtags, p.created_at, u.id, u.username, u.display_name,
       m.id, m.status, m.width, m.height, m.blurhash, m.renditions
  FROM (SELECT p.id, p.author_id, p.caption, p.hashtags, p.media_ids, p.created_at
          FROM posts.posts p
          JOIN (SELECT f.followee_id FROM graph.follows f WHERE f.follower_id = %(reader)s
                UNION ALL SELECT %(reader)s) AS a(author_id) ON p.author_id = a.author_id
         WHERE p.state = 1
         ORDER BY p.created_at DESC, p.id DESC
         LIMIT 20) p
  JOIN graph.users u ON u.id = p.author_id
  LEFT JOIN media.media m ON m.id = ANY(p.media_ids)
 ORDER BY p.created_at DESC, p.id DESC
"""
# The same page with a per-followee LIMIT (LATERAL): what a careful hand would write; a reference.
LATERAL_SQL = """
SELECT p.id, p.caption, p.hashtags, p.created_at, u.id, u.username, u.display_name,
       m.id, m.status, m.width, m.height, m.blurhash, m.renditions
  FROM (SELECT p.id, p.author_id, p.caption, p.hashtags, p.media_ids, p.created_at
          FROM (SELECT f.followee_id FROM graph.follows f WHERE f.follower_id = %(reader)s
                UNION ALL SELECT %(reader)s) AS a(author_id)
          CROSS JOIN LATERAL (SELECT * FROM posts.posts p
                               WHERE p.author_id = a.author_id AND p.state = 1
                               ORDER BY p.created_at DESC LIMIT 20) p
         ORDER BY p.created_at DESC, p.id DESC
         LIMIT 20) p
  JOIN graph.users u ON u.id = p.author_id
  LEFT JOIN media.media m ON m.id = ANY(p.media_ids)
 ORDER BY p.created_at DESC, p.id DESC
"""
EMPTY_SQL = "SELECT 1"
SQL_QUERIES = {"sql": FEED_SQL, "sql-lateral": LATERAL_SQL, "sql-empty": EMPTY_SQL}
# Parallel query only adds overhead when every core is already busy with concurrent queries: the
# baseline is given its best throughput setting.
SQL_OPTIONS = "-c max_parallel_workers_per_gather=0"

# The SQL-backed feed's page of post ids: the reader's followees (and the reader) each contribute
# their newest posts below the cursor from the services' own index posts_by_author (author_id,
# id DESC) WHERE state = ACTIVE, merged and cut to the page. The feed's own order is by id.
CANDIDATES_SQL = """
SELECT p.id
  FROM (SELECT f.followee_id FROM graph.follows f WHERE f.follower_id = %(reader)s
        UNION ALL SELECT %(reader)s::bigint) AS a(author_id)
  CROSS JOIN LATERAL (SELECT p.id FROM posts.posts p
                       WHERE p.author_id = a.author_id AND p.state = 1 AND p.id < %(before)s
                       ORDER BY p.id DESC LIMIT %(fetch)s) p
 ORDER BY p.id DESC
 LIMIT %(fetch)s
"""
_NO_CURSOR = 2**63 - 1
# Connections of the SQL-backed feed: PostgreSQL runs at most 2 queries at once on 2 cores, so a
# call rarely waits for one; more would only crowd the server's connection limit.
SQL_FEED_CONNECTIONS = 8


@dataclass(frozen=True)
class Readers:
    reed: list[int]
    celebrity_mix: list[int]
    inbox_only: list[int]
    scale: list[int]


# The SQL-backed feed and the remembered pages (each its own process: python -m bench.feed_read,
# with BENCH_FEED_VARIANT=sql or remembered) ---------------------------------------------------------

VARIANT_ENV = "BENCH_FEED_VARIANT"


class SqlPages:
    """The CANDIDATES_SQL page from a fixed set of psycopg connections (statements prepared at once)."""

    def __init__(self, connections: list[psycopg.AsyncConnection[Any]]) -> None:
        self._idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        for conn in connections:
            self._idle.put_nowait(conn)

    async def page(self, reader: int, before: int | None, fetch: int) -> list[int]:
        conn = await self._idle.get()
        try:
            params = {"reader": reader, "before": before or _NO_CURSOR, "fetch": fetch}
            cursor = await conn.execute(CANDIDATES_SQL, params, prepare=True)
            return [row[0] for row in await cursor.fetchall()]
        finally:
            self._idle.put_nowait(conn)


class SqlFeedService(FeedService):
    """FeedService with the page's post ids read from PostgreSQL (CANDIDATES_SQL, over every followee:
    celebrities need no separate merge) instead of inboxes and outboxes in Redis. Everything after
    the ids (hydration, visibility, engagement, cursor, encoding) is feed_svc's own code."""

    def __init__(self, *args: Any, sql: SqlPages, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sql = sql

    async def _candidates(
        self, user_id: int, celebrities: list[int], before: int | None, fetch: int, *, touch: bool = False
    ) -> tuple[list[int], bool]:
        ids = await self._sql.page(user_id, before, fetch)
        return ids, len(ids) < fetch


class RememberedFeedService(FeedService):
    """FeedService that reads each (reader, page size, token) page once and then answers it from
    memory: the same host, interceptors, servicer and encoding as feed_svc, with no Redis read, no
    hydration and no engagement read per call. Its rate is the floor of what a handler returning a
    page of this size can reach through one Python gRPC hop here (the empty call returns 2 bytes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: dict[tuple[int, int, str], RenderedPage] = {}

    async def home_feed(self, user_id: int, size: int, token: str) -> RenderedPage:
        key = (user_id, size, token)
        page = self._pages.get(key)
        if page is None:
            page = self._pages[key] = await super().home_feed(user_id, size, token)
        return page


@contextlib.asynccontextmanager
async def variant_feed_host(settings: FeedSettings) -> AsyncIterator[ServiceHost]:
    """The variant VARIANT_ENV names: "sql" (SqlFeedService) or "remembered" (RememberedFeedService)."""
    variant = os.environ.get(VARIANT_ENV, "sql")
    if variant == "remembered":
        async with feed_host(settings, make_service=RememberedFeedService) as host:
            yield host
    elif variant == "sql":
        async with sql_feed_host(settings) as host:
            yield host
    else:
        raise SystemExit(f"{VARIANT_ENV}={variant!r}: use sql or remembered")


@contextlib.asynccontextmanager
async def sql_feed_host(settings: FeedSettings) -> AsyncIterator[ServiceHost]:
    url = feed_data.sql_url(settings.database_url)
    connections = [
        await psycopg.AsyncConnection.connect(url, autocommit=True, options=SQL_OPTIONS)
        for _ in range(SQL_FEED_CONNECTIONS)
    ]
    try:
        async with feed_host(settings, make_service=partial(SqlFeedService, sql=SqlPages(connections))) as host:
            yield host
    finally:
        for conn in connections:
            await conn.close()


@contextlib.contextmanager
def feed_process(stack: Stack, label: str, module: str, env: Mapping[str, str]) -> Iterator[tuple[str, int]]:
    """Another feed process on the stack's data (`python -m <module>` with the stack's environment and
    `env`): its address and pid, until the block ends."""
    address = f"127.0.0.1:{free_port()}"
    with open(LOGS / f"{stack.namespace}-{label}.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env={**stack.env, **env, "GLIMPSE_LISTEN": address},
            stdout=log,
            stderr=log,
        )
        try:
            asyncio.run(_wait_serving(address, process, label))
            yield address, process.pid
        finally:
            process.terminate()
            process.wait(timeout=20)


async def _wait_serving(address: str, process: subprocess.Popen[bytes], label: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"the {label} feed process exited; see {LOGS}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the {label} feed process did not serve; see {LOGS}")


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[str, int]]:
    """A Redis server of this benchmark's own, without persistence: its URL and pid. Nothing else
    uses it, so its CPU is the timelines' (the Redis tier's cost per page)."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.05)
        client.close()
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


# CPU by process -----------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """CPU time of every live thread of `pid` (nanoseconds, from schedstat: /proc/<pid>/stat counts
    in 10 ms ticks, too coarse for a few hundred calls)."""
    total = 0
    with contextlib.suppress(OSError):  # exited
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


class CpuMeter:
    """CPU seconds (user + system) of named processes, plus "PostgreSQL": the backends connected to
    the bench's database (nothing else connects to it), looked up at every snapshot."""

    def __init__(self, processes: Mapping[str, Sequence[int]], database_url: str) -> None:
        self.processes = {name: list(pids) for name, pids in processes.items()}
        self._sql = feed_data.connect(database_url)

    def close(self) -> None:
        self._sql.close()

    def snapshot(self) -> dict[str, dict[int, float]]:
        backends = [
            row[0]
            for row in self._sql.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
        groups = {**self.processes, "PostgreSQL": backends}
        return {name: {pid: _cpu_seconds(pid) for pid in pids} for name, pids in groups.items()}

    @staticmethod
    def used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
        """CPU seconds per name between two snapshots (a backend that appeared in between counts whole)."""
        return {
            name: sum(seconds - before.get(name, {}).get(pid, 0.0) for pid, seconds in pids.items())
            for name, pids in after.items()
        }


@dataclass(frozen=True)
class Measured:
    """A load's latencies and rate, and the CPU each process used in the middle of its measurement
    (SECONDS - 2 * CPU_EDGE, when the rate was `sample.rate`)."""

    sample: Sample
    cpu: dict[str, float]

    def per_call_us(self, name: str) -> float:
        calls = self.sample.rate * (SECONDS - 2 * CPU_EDGE)
        return self.cpu.get(name, 0.0) / calls * 1e6 if calls else 0.0

    def cpu_line(self) -> str:
        parts = [f"{name} {self.per_call_us(name):,.0f}" for name, seconds in self.cpu.items() if seconds > 0.005]
        return f"    CPU per call (us): {', '.join(parts)}"


# The load client (runs in CLIENT_PROCESSES spawned processes) -----------------------------------


@dataclass(frozen=True)
class Load:
    """What one client process does: which call, against what, how hard, and from when."""

    kind: str  # "feed" | "health" | a key of SQL_QUERIES
    target: str  # gRPC address, or libpq URL
    readers: tuple[int, ...]
    offset: int  # where in `readers` this process starts
    seconds: float
    start_at: float  # time.time() at which every process starts measuring
    rate: float = 0.0  # open loop: calls per second from this process; 0: closed loop


@dataclass(frozen=True)
class Result:
    latencies: list[float]
    wall: float
    errors: int


Call = Callable[[int], Awaitable[object]]


def run_client(load: Load) -> Result:
    """Entry point of a client process."""
    return asyncio.run(_client(load))


async def _client(load: Load) -> Result:
    async with _callers(load) as calls:
        reader = load.offset
        while time.time() < load.start_at - 0.02:  # warm-up: connect, prepare statements
            await calls[0](load.readers[reader % len(load.readers)])
            reader += 1
        await asyncio.sleep(max(0.0, load.start_at - time.time()))
        if load.rate:
            return await _open_loop(calls[0], load)
        return await _closed_loop(calls, load)


@contextlib.asynccontextmanager
async def _callers(load: Load) -> AsyncIterator[list[Call]]:
    """One call per in-flight slot: gRPC slots share the process's channel, SQL slots own a connection."""
    if load.kind in ("feed", "health"):
        async with grpc.aio.insecure_channel(load.target) as channel:
            if load.kind == "feed":
                feed = feed_pb2_grpc.FeedServiceStub(channel)
                request = feed_pb2.GetHomeFeedRequest(page_size=PAGE)
                yield [lambda reader: feed.GetHomeFeed(request, metadata=as_caller(reader))] * CONCURRENCY
            else:
                health = health_pb2_grpc.HealthStub(channel)
                check = health_pb2.HealthCheckRequest()
                yield [lambda _reader: health.Check(check)] * CONCURRENCY
        return
    query = SQL_QUERIES[load.kind]
    connections = [await _sql_connect(load.target) for _ in range(CONCURRENCY)]
    try:
        yield [_sql_call(conn, query) for conn in connections]
    finally:
        for conn in connections:
            await conn.close()


async def _sql_connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, options=SQL_OPTIONS)


def _sql_call(conn: psycopg.AsyncConnection, query: str) -> Call:
    async def call(reader: int) -> object:
        cursor = await conn.execute(query, {"reader": reader} if "%(reader)s" in query else None)
        return await cursor.fetchall()

    return call


async def _closed_loop(calls: list[Call], load: Load) -> Result:
    """Each slot calls again as soon as its call returns, until `seconds` have passed."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + load.seconds

    async def slot(n: int, call: Call) -> None:
        nonlocal errors
        reader = load.offset + n
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                await call(load.readers[reader % len(load.readers)])
            except (grpc.aio.AioRpcError, psycopg.Error):
                errors += 1
            latencies.append(time.perf_counter() - t)
            reader += len(calls)

    await asyncio.gather(*(slot(n, call) for n, call in enumerate(calls)))
    return Result(latencies, time.perf_counter() - started, errors)


async def _open_loop(call: Call, load: Load) -> Result:
    """Starts call n at start + n / rate whatever the answers; latency counts from that scheduled time."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    total = int(load.seconds * load.rate)

    async def one(n: int, scheduled: float) -> None:
        nonlocal errors
        try:
            await call(load.readers[(load.offset + n) % len(load.readers)])
        except grpc.aio.AioRpcError:
            errors += 1
        latencies.append(time.perf_counter() - scheduled)

    tasks = []
    for n in range(total):
        scheduled = started + n / load.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, scheduled)))
    await asyncio.gather(*tasks)
    return Result(latencies, time.perf_counter() - started, errors)


def _ready() -> int:
    time.sleep(0.5)
    return multiprocessing.current_process().pid or 0


class Client:
    """CLIENT_PROCESSES spawned processes, started once and reused by every measurement."""

    def __init__(self, pool: ProcessPoolExecutor, meter: CpuMeter) -> None:
        self._pool = pool
        self._meter = meter
        futures = [pool.submit(_ready) for _ in range(CLIENT_PROCESSES)]
        pids = {f.result() for f in futures}
        if len(pids) != CLIENT_PROCESSES:
            raise RuntimeError(f"expected {CLIENT_PROCESSES} client processes, got {len(pids)}")
        meter.processes["client"] = sorted(pids)

    def run(self, name: str, kind: str, target: str, readers: Sequence[int], rate: float = 0.0) -> Measured:
        """Every process runs the same load at once (open loop: `rate` split between them); CPU is read
        inside the measured seconds (warm-up and the closing of connections left out)."""
        start_at = time.time() + 1.0
        step = max(1, len(readers) // CLIENT_PROCESSES)
        loads = [
            Load(kind, target, tuple(readers), n * step, SECONDS, start_at, rate / CLIENT_PROCESSES)
            for n in range(CLIENT_PROCESSES)
        ]
        futures = [self._pool.submit(run_client, load) for load in loads]
        time.sleep(max(0.0, start_at + CPU_EDGE - time.time()))
        before = self._meter.snapshot()
        time.sleep(max(0.0, start_at + SECONDS - CPU_EDGE - time.time()))
        after = self._meter.snapshot()
        results = [f.result() for f in futures]
        errors = sum(r.errors for r in results)
        if errors:
            print(f"  ! {name}: {errors} calls failed")
        latencies = [s for r in results for s in r.latencies]
        sample = Sample(name, latencies, max(r.wall for r in results), len(latencies))
        return Measured(sample, CpuMeter.used(before, after))


def describe_client() -> str:
    return (
        f"client: {CLIENT_PROCESSES} spawned processes x {CONCURRENCY} in-flight calls (asyncio; one gRPC "
        f"channel per process, one psycopg connection per in-flight query), {SECONDS:.0f}s per measurement"
    )


# Data -------------------------------------------------------------------------------------------


def load_data(stack: Stack, redis_url: str) -> Readers:
    """Loads the three data sets into the database, then every outbox and reader inbox into Redis."""
    conn = feed_data.connect(stack.database_url)
    with conn:
        reed = _load_reed_graph(stack.database_url, conn)
        with Step("drop the secondary indexes of follows, posts and media for the bulk load"):
            deferred = feed_data.drop_secondary_indexes(conn, ["graph.follows", "posts.posts", "media.media"])
        with Step(f"{len(reed) * REED_POSTS_PER_USER:,} posts and media of the Reed98 users"):
            feed_data.insert_posts(conn, reed, REED_POSTS_PER_USER, REED_SEQ, days=365)
        celebrity_mix, inbox_only, mix_authors = _load_mix(conn)
        scale = _load_scale(conn)
        with Step(f"build the {len(deferred)} indexes again; index posts(author_id, created_at DESC); VACUUM ANALYZE"):
            feed_data.create_indexes(conn, deferred)
            # The index the client-side SQL references need (the services' own is on (author_id, id DESC)).
            conn.execute("CREATE INDEX posts_author_created ON posts.posts (author_id, created_at DESC)")
            # VACUUM sets the visibility map, so the SQL variant's id-only reads are index-only scans.
            conn.execute("VACUUM ANALYZE")
        readers = Readers(reed, celebrity_mix, inbox_only, scale)
        with Step("newest posts of every author; inboxes merged from them"):
            authors = reed + mix_authors + [SCALE_BASE + g for g in range(SCALE_AUTHORS)]
            newest = feed_data.newest_posts(conn, authors, FEED_MAX)
            counts = feed_data.follower_counts(conn, authors)
            inboxes = _inboxes(conn, reed + celebrity_mix + inbox_only + scale, newest, counts)
    # Reads touch only inboxes and celebrities' outboxes (other outboxes only to rebuild an expired
    # inbox, which these readers never have), so only those are written.
    outboxes = {a: posts for a, posts in newest.items() if counts[a] > CELEBRITY_THRESHOLD}
    with Step(f"{len(outboxes):,} celebrity outboxes and {len(inboxes):,} inboxes into Redis"):
        asyncio.run(_write_timelines(stack.namespace, redis_url, outboxes, inboxes))
    return readers


def _load_reed_graph(database_url: str, conn: psycopg.Connection) -> list[int]:
    with Step("socfb-Reed98 graph (graph_svc.demo.load)"):
        asyncio.run(_demo_load(database_url))
    return [row[0] for row in conn.execute("SELECT id FROM graph.users WHERE username LIKE 'reed%' ORDER BY id")]


async def _demo_load(database_url: str) -> None:
    db = Database(database_url, pool_size=2)
    try:
        await demo.load(
            db, demo.read_edges(DATASET), Passwords(time_cost=1, memory_kib=8192, parallelism=1), IdGenerator(1)
        )
    finally:
        await db.dispose()


def _load_mix(conn: psycopg.Connection) -> tuple[list[int], list[int], list[int]]:
    """(celebrity-mix readers, inbox-only readers, authors) for figure 4."""
    ids = IdGenerator(2)
    rng = random.Random(4)
    celebrities = [ids.next_id() for _ in range(MIX_CELEBRITIES)]
    normals = [ids.next_id() for _ in range(MIX_NORMALS)]
    mix = [ids.next_id() for _ in range(MIX_READERS)]
    inbox = [ids.next_id() for _ in range(MIX_READERS)]
    with Step("figure 4 authors and readers"):
        feed_data.copy_users(conn, celebrities + normals + mix + inbox, "mix")
        famous, normal = MIX_FOLLOWS
        pairs = [(r, a) for r in mix for a in rng.sample(celebrities, famous) + rng.sample(normals, normal)]
        pairs += [(r, a) for r in inbox for a in rng.sample(normals, INBOX_FOLLOWS)]
        feed_data.copy_follows(conn, pairs)
        feed_data.set_follow_counts(conn, celebrities + normals + mix + inbox)
        # Celebrities by their count, which is what graph_svc and the fan-out read.
        conn.execute(
            "UPDATE graph.users SET follower_count = follower_count + %s WHERE id = ANY(%s)",
            (2 * CELEBRITY_THRESHOLD, celebrities),
        )
    with Step(f"{(MIX_CELEBRITIES + MIX_NORMALS) * MIX_POSTS:,} posts and media of figure 4's authors"):
        feed_data.insert_posts(conn, celebrities + normals, MIX_POSTS, MIX_SEQ, days=365)
    return mix, inbox, celebrities + normals


def _load_scale(conn: psycopg.Connection) -> list[int]:
    """The power-law graph, generated in SQL; returns its readers."""
    base, users, authors, readers = SCALE_BASE, SCALE_USERS, SCALE_AUTHORS, SCALE_READERS
    with Step(f"{users:,} users"):
        conn.execute(
            "INSERT INTO graph.users (id, username, email, password_hash) "
            "SELECT %s + g, 's' || g, 's' || g || '@bench.glimpse.dev', '-' FROM generate_series(0, %s - 1) g",
            (base, users),
        )
    with Step("power-law follows: author r has min(1M, 4M/r^2) followers, each a window of the users"):
        # Author r's followers are users (7919 r + k) mod N for k < its follower count: a window that
        # starts elsewhere for each author, so follower sets overlap as random ones would, in one
        # INSERT ... SELECT generate_series.
        conn.execute(
            """
            INSERT INTO graph.follows (follower_id, followee_id)
            SELECT %(base)s + (r * 7919 + k) %% %(n)s, %(base)s + r - 1
              FROM generate_series(1, %(authors)s) r,
                   LATERAL generate_series(0, LEAST(%(n)s - 1, 4000000 / (r * r)) - 1) k
             WHERE (r * 7919 + k) %% %(n)s <> r - 1
            """,
            {"base": base, "n": users, "authors": authors},
        )
    with Step(f"{readers:,} readers following 20..500 more authors each"):
        # Readers are users authors..authors+readers-1; rank = authors * random()^2 favours the popular.
        conn.execute(
            """
            INSERT INTO graph.follows (follower_id, followee_id)
            SELECT DISTINCT %(base)s + %(authors)s + i, %(base)s + floor(%(authors)s * random() ^ 2)::bigint
              FROM generate_series(0, %(readers)s - 1) i,
                   LATERAL generate_series(1, 20 + floor(480 * random() ^ 3)::int + i * 0) j
            ON CONFLICT DO NOTHING
            """,
            {"base": base, "authors": authors, "readers": readers},
        )
        reader_ids = [base + authors + i for i in range(readers)]
        feed_data.set_follow_counts(conn, [base + g for g in range(authors)] + reader_ids)
    with Step(f"{authors * SCALE_POSTS:,} posts and media of the generated authors"):
        feed_data.insert_posts(conn, [base + g for g in range(authors)], SCALE_POSTS, SCALE_SEQ, days=365)
    return reader_ids


def _inboxes(
    conn: psycopg.Connection, readers: list[int], newest: dict[int, list[int]], counts: dict[int, int]
) -> dict[int, list[int]]:
    """Each reader's inbox as the fan-out leaves it: own and non-celebrity followees' newest posts."""
    return {
        reader: feed_data.merged_inbox(
            [reader, *(a for a in followees if counts[a] <= CELEBRITY_THRESHOLD)], newest, FEED_MAX
        )
        for reader, followees in feed_data.followees(conn, readers).items()
    }


async def _write_timelines(
    namespace: str, redis_url: str, newest: dict[int, list[int]], inboxes: dict[int, list[int]]
) -> None:
    timelines = feed_data.make_timelines(namespace, redis_url)
    try:
        await feed_data.build_outboxes(timelines, newest)
        await feed_data.build_inboxes(timelines, inboxes)
    finally:
        await timelines.redis.aclose()


async def warm(addr: str, readers: Sequence[int], *, engagement: bool = True) -> float:
    """Reads every reader's first page once (fills the feed process's caches) and checks each is a
    full page (and says how many came without engagement, when `engagement` is expected); returns the
    pages' mean size in bytes."""
    short = without_engagement = size = 0
    async with grpc.aio.insecure_channel(addr) as channel:
        feed = feed_pb2_grpc.FeedServiceStub(channel)
        semaphore = asyncio.Semaphore(16)

        async def read(reader: int) -> None:
            nonlocal short, without_engagement, size
            async with semaphore:
                page = await feed.GetHomeFeed(feed_pb2.GetHomeFeedRequest(page_size=PAGE), metadata=as_caller(reader))
            short += len(page.items) < PAGE
            size += page.ByteSize()
            without_engagement += any(not item.HasField("engagement") for item in page.items)

        await asyncio.gather(*(read(r) for r in readers))
    if short:
        raise RuntimeError(f"{short} readers got fewer than {PAGE} items: the data did not load as intended")
    if engagement and without_engagement:
        print(f"  ! {without_engagement} pages came without engagement: engagement_svc did not answer in time")
    return size / len(readers)


def _followee_summary(conn: psycopg.Connection, readers: list[int]) -> str:
    counts = [len(f) for f in feed_data.followees(conn, readers).values()]
    return f"followees per reader: median {statistics.median(counts):.0f}, max {max(counts)}"


# Figures ----------------------------------------------------------------------------------------


async def one_caller(addr: str, groups: dict[str, list[int]]) -> list[Sample]:
    """Latency of one caller, one call at a time: Health/Check, then GetHomeFeed for each reader group."""
    async with grpc.aio.insecure_channel(addr) as channel:
        samples = [await empty_call_floor(channel, SEQUENTIAL_CALLS)]
        feed = feed_pb2_grpc.FeedServiceStub(channel)
        request = feed_pb2.GetHomeFeedRequest(page_size=PAGE)
        for name, readers in groups.items():
            samples.append(await time_calls(name, _cycling(feed, request, readers), SEQUENTIAL_CALLS))
        return samples


def _cycling(
    feed: feed_pb2_grpc.FeedServiceStub, request: feed_pb2.GetHomeFeedRequest, readers: list[int]
) -> Callable[[], Awaitable[object]]:
    """A GetHomeFeed call that reads as the next reader each time."""
    turn = itertools.cycle(readers)
    return lambda: feed.GetHomeFeed(request, metadata=as_caller(next(turn)))


def _print(measured: Sequence[Measured]) -> None:
    for m in measured:
        print(m.sample.line())
        print(m.cpu_line())


def figure_feed(client: Client, feeds: Feeds, readers: list[int], alone: list[Sample], page_bytes: float) -> Measured:
    """Figure 3; returns the feed's max-rate measurement (figure 5 reuses it for Reed98)."""
    addr = feeds.ours
    health = client.run("floor: Health/Check, max rate", "health", addr, readers)
    feed = client.run("GetHomeFeed, max rate", "feed", addr, readers)
    bare = client.run("GetHomeFeed without engagement, max rate", "feed", feeds.bare, readers)
    remembered = client.run("floor: the same pages from memory, max rate", "feed", feeds.remembered, readers)
    half = feed.sample.rate / 2
    health_half = client.run(f"floor: Health/Check, open loop {half:,.0f}/s", "health", addr, readers, half)
    feed_half = client.run(f"GetHomeFeed, open loop {half:,.0f}/s (half max)", "feed", addr, readers, half)
    print(
        "figure 3: GetHomeFeed, page 20, hydrated, with engagement (one BatchGetEngagement per page), warm "
        f"caches, Reed98 readers (a page is {page_bytes / 1024:.1f} KiB on the wire: signed photo URLs); "
        "feed_svc in its own process"
    )
    for sample in alone:
        print(sample.line())
    _print([health, feed, bare, remembered, health_half, feed_half])
    rate, floor, bare_rate = feed.sample.rate, health.sample.rate, bare.sample.rate
    remembered_rate = remembered.sample.rate
    p99, floor_p99 = feed_half.sample.percentile(99), health_half.sample.percentile(99)
    print_verdicts(
        "figure 3",
        [
            Verdict(
                "GetHomeFeed max rate",
                f"{rate:,.0f} calls/s",
                f"Health/Check {floor:,.0f} calls/s",
                f"{rate / floor:.0%} of empty",
                f">= {TARGET_SHARE_OF_EMPTY:.0%} of empty",
                rate >= TARGET_SHARE_OF_EMPTY * floor,
            ),
            Verdict(
                "the same pages from memory (no Redis, no hydration)",
                f"{remembered_rate:,.0f} calls/s",
                f"Health/Check {floor:,.0f} calls/s",
                f"{remembered_rate / floor:.0%} of empty; GetHomeFeed {rate / remembered_rate:.0%} of it",
                "-",
                None,
            ),
            Verdict(
                f"GetHomeFeed p99 at {half:,.0f}/s (half max)",
                f"p99 {p99 * 1000:.1f} ms",
                f"Health/Check p99 {floor_p99 * 1000:.1f} ms",
                f"{p99 / floor_p99:.1f}x empty",
                f"<= {TARGET_P99_OVER_EMPTY:.0f}x empty",
                p99 <= TARGET_P99_OVER_EMPTY * floor_p99,
            ),
            Verdict(
                "cost per page with engagement (1/rate)",
                f"{1e6 / rate:,.0f} us",
                f"without {1e6 / bare_rate:,.0f} us",
                f"{bare_rate / rate:.2f}x",
                f"<= {TARGET_ENGAGEMENT_COST}x",
                bare_rate <= TARGET_ENGAGEMENT_COST * rate,
            ),
        ],
    )
    return feed


def figure_celebrities(client: Client, addr: str, readers: Readers, alone: list[Sample]) -> None:
    """Figure 4: the celebrity-mix reader against the inbox-only reader (its floor)."""
    mix_alone, inbox_alone = alone
    inbox = client.run("floor: 250 normal followees, max rate", "feed", addr, readers.inbox_only).sample
    mix = client.run("50 celebrities + 200 normal, max rate", "feed", addr, readers.celebrity_mix).sample
    print("figure 4: GetHomeFeed of readers following 50 celebrities (pulled from outboxes) + 200 normal authors")
    for sample in (inbox_alone, mix_alone, inbox, mix):
        print(sample.line())
    rows = [
        (f"p{p} one caller", inbox_alone.percentile(p) * 1000, mix_alone.percentile(p) * 1000, "ms") for p in (50, 99)
    ]
    rows.append(("cost at max rate (1/rate)", 1e6 / inbox.rate, 1e6 / mix.rate, "us"))
    print_verdicts(
        "figure 4",
        [
            Verdict(
                f"celebrity mix, {what}",
                f"{value:,.1f} {unit}",
                f"all-inbox {floor:,.1f} {unit}",
                f"{value / floor:.2f}x",
                f"<= {TARGET_CELEBRITY_COST}x",
                value <= TARGET_CELEBRITY_COST * floor,
            )
            for what, floor, value, unit in rows
        ],
    )


@dataclass(frozen=True)
class Feeds:
    """The feed processes' addresses: feed_svc, without engagement, the SQL-backed variant and the
    remembered pages."""

    ours: str
    bare: str
    sql: str
    remembered: str


def figure_sql(client: Client, stack: Stack, feeds: Feeds, readers: Readers, reed_feed: Measured) -> None:
    """Figure 5: GetHomeFeed against its SQL-backed variant on the same readers and data, with the
    stateful tier's CPU per page; the client-side SQL pages for reference."""
    url = feed_data.sql_url(stack.database_url)
    measured = [client.run("reference: SELECT 1 from the client, max rate", "sql-empty", url, readers.reed)]
    rows = []
    for label, group in (("Reed98", readers.reed), ("power-law", readers.scale)):
        _explain(url, group, label)
        print(f"  same pages (post ids, in order): {asyncio.run(_same_pages(feeds, url, group))}")
        ours = reed_feed
        if group is not readers.reed:
            ours = client.run(f"GetHomeFeed, {label}, max rate", "feed", feeds.ours, group)
        sql_feed = client.run(f"GetHomeFeed from SQL (LATERAL), {label}, max rate", "feed", feeds.sql, group)
        join = client.run(f"reference: SQL join page from the client, {label}", "sql", url, group)
        lateral = client.run(f"reference: SQL LATERAL page from the client, {label}", "sql-lateral", url, group)
        measured += [ours, sql_feed, join, lateral]
        rate, sql_rate = ours.sample.rate, sql_feed.sample.rate
        redis_us, sql_pg_us = ours.per_call_us("Redis"), sql_feed.per_call_us("PostgreSQL")
        rows += [
            Verdict(
                f"GetHomeFeed vs its SQL-backed variant, {label}",
                f"{rate:,.0f} pages/s",
                f"{sql_rate:,.0f} pages/s",
                f"{rate / sql_rate:.1f}x",
                f">= {TARGET_OVER_SQL_FEED:.0f}x",
                rate >= TARGET_OVER_SQL_FEED * sql_rate,
            ),
            Verdict(
                f"stateful tier CPU per page, {label}",
                f"Redis {redis_us:,.0f} us (+ PostgreSQL {ours.per_call_us('PostgreSQL'):,.0f})",
                f"PostgreSQL {sql_pg_us:,.0f} us",
                f"{sql_pg_us / max(redis_us + ours.per_call_us('PostgreSQL'), 1):.1f}x less",
                "-",
                None,
            ),
            Verdict(
                f"GetHomeFeed vs the SQL join from the client, {label}",
                f"{rate:,.0f} pages/s",
                f"{join.sample.rate:,.0f} pages/s",
                f"{rate / join.sample.rate:.1f}x",
                f">= {TARGET_OVER_SQL_JOIN:.0f}x",
                rate >= TARGET_OVER_SQL_JOIN * join.sample.rate,
            ),
        ]
    print(
        "figure 5: GetHomeFeed (Redis inboxes) beside the same RPC with its page from SQL (LATERAL), both "
        "feed_svc's gRPC server, hydration and engagement; and, for reference, hydrated pages by SQL sent "
        "straight from the client (no gRPC hop, no Python server: not like for like)"
    )
    _print(measured)
    print_verdicts("figure 5", rows)


def _explain(url: str, group: list[int], label: str) -> None:
    """Prints the SQL-backed feed's plan (EXPLAIN ANALYZE, shortened) for the reader with the median
    followee count."""
    with psycopg.connect(url, autocommit=True, options=SQL_OPTIONS) as conn:
        print(f"  {label}: {_followee_summary(conn, group)}; posts in the database: {_count_posts(conn):,}")
        follows = feed_data.followees(conn, group)
        reader = sorted(group, key=lambda r: len(follows[r]))[len(group) // 2]
        params = {"reader": reader, "before": _NO_CURSOR, "fetch": PAGE + 4}
        plan = [row[0] for row in conn.execute("EXPLAIN (ANALYZE, COSTS OFF) " + CANDIDATES_SQL, params)]
    print(f"  EXPLAIN ANALYZE of the SQL-backed page, {label} reader with {len(follows[reader])} followees:")
    for line in [*plan[:PLAN_LINES], *plan[-2:]]:
        print(f"    {line}")


def _count_posts(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM posts.posts").fetchone()
    return int(row[0]) if row else 0


async def _same_pages(feeds: Feeds, url: str, group: list[int]) -> str:
    """Compares GetHomeFeed's page with the SQL-backed variant's and both client-side SQL pages, for 20
    readers spread over the group."""
    readers = group[:: max(1, len(group) // 20)]
    same = {"SQL-backed GetHomeFeed": 0, "SQL join": 0, "SQL LATERAL": 0}
    request = feed_pb2.GetHomeFeedRequest(page_size=PAGE)
    async with (
        grpc.aio.insecure_channel(feeds.ours) as ours_channel,
        grpc.aio.insecure_channel(feeds.sql) as sql_channel,
        await psycopg.AsyncConnection.connect(url, autocommit=True, options=SQL_OPTIONS) as conn,
    ):
        ours, from_sql = feed_pb2_grpc.FeedServiceStub(ours_channel), feed_pb2_grpc.FeedServiceStub(sql_channel)
        for reader in readers:
            page = [item.id for item in (await ours.GetHomeFeed(request, metadata=as_caller(reader))).items]
            other = [item.id for item in (await from_sql.GetHomeFeed(request, metadata=as_caller(reader))).items]
            same["SQL-backed GetHomeFeed"] += page == other
            for name, query in (("SQL join", FEED_SQL), ("SQL LATERAL", LATERAL_SQL)):
                rows = await (await conn.execute(query, {"reader": reader})).fetchall()
                same[name] += page == list(dict.fromkeys(row[0] for row in rows))
    return ", ".join(f"{name} {n}/{len(readers)} readers" for name, n in same.items())


def main() -> None:
    if not DATASET.is_file():
        sys.exit(f"bench feed_read: {DATASET} not found")
    with (
        private_redis() as (redis_url, redis_pid),
        running_stack(
            ["graph_svc", "post_svc", "media_svc", "engagement_svc", "feed_svc"],
            redis_url=redis_url,
            celebrity_threshold=str(CELEBRITY_THRESHOLD),
            hydration_cache_seconds=CACHE_SECONDS,
            celebrity_cache_seconds=CACHE_SECONDS,
            visibility_cache_seconds=CACHE_SECONDS,
        ) as stack,
        ProcessPoolExecutor(CLIENT_PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        readers = load_data(stack, redis_url)
        with (
            feed_process(stack, "feed_svc-bare", "feed_svc", {"GLIMPSE_SERVE_ENGAGEMENT": "false"}) as (bare, bare_pid),
            feed_process(stack, "feed_svc-sql", "bench.feed_read", {VARIANT_ENV: "sql"}) as (sql, sql_pid),
            feed_process(stack, "feed_svc-remembered", "bench.feed_read", {VARIANT_ENV: "remembered"}) as (
                remembered,
                remembered_pid,
            ),
        ):
            feeds = Feeds(stack.addr["feed_svc"], bare, sql, remembered)
            with Step("first page of every reader from each feed process (fills their caches; full pages?)"):
                page_bytes = asyncio.run(warm(feeds.ours, readers.reed))
                asyncio.run(warm(feeds.ours, readers.celebrity_mix + readers.inbox_only + readers.scale))
                asyncio.run(warm(feeds.bare, readers.reed, engagement=False))
                asyncio.run(warm(feeds.sql, readers.reed + readers.scale))
                asyncio.run(warm(feeds.remembered, readers.reed))
            processes = {name: [child.pid] for name, child in stack.running.items()}
            processes |= {"feed_svc without engagement": [bare_pid], "SQL-backed feed": [sql_pid]}
            processes |= {"remembered pages": [remembered_pid], "Redis": [redis_pid]}
            meter = CpuMeter(processes, stack.database_url)
            try:
                client = Client(pool, meter)
                print(describe_client())
                alone = asyncio.run(
                    one_caller(
                        feeds.ours,
                        {
                            "GetHomeFeed, one caller": readers.reed,
                            "50 celebrities + 200 normal, one caller": readers.celebrity_mix,
                            "floor: 250 normal followees, one caller": readers.inbox_only,
                        },
                    )
                )
                reed_feed = figure_feed(client, feeds, readers.reed, alone[:2], page_bytes)
                figure_celebrities(client, feeds.ours, readers, alone[2:])
                figure_sql(client, stack, feeds, readers, reed_feed)
            finally:
                meter.close()
            print(peak_rss_line({"GLIMPSE_SERVE_ENGAGEMENT=false": "without engagement"}))


if __name__ == "__main__":
    run_service(
        "bench.feed_read",
        f"feed_svc with its pages read from SQL ({VARIANT_ENV}=sql, the default) or answered from memory"
        f" after the first read ({VARIANT_ENV}=remembered): bench feed_read's variants",
        FeedSettings,
        variant_feed_host,
    )
