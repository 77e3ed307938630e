"""Notifications (issue 14): a like storm folded into one notification, the consumer's throughput
beside its floors, like-to-stream delivery latency, and idle streams per gateway process.

    flock /tmp/glimpse-bench.lock make bench BENCH=notifications

Runs graph_svc, post_svc, media_svc, feed_svc, engagement_svc, notification_svc and the gateway as
their own processes on a fresh database (bench.stack), rate limits raised out of the way (still
checked). Users and posts are bulk-loaded (bench.feed_data): an author with 601 READY photo posts
and 5,600 other users; bearer tokens are signed here with the stack's secret (the gateway only
verifies them).

  storm    5,000 distinct users like ONE post (LikePost over gRPC, 16 callers) while notification_svc
           is stopped; then it starts and its consumer works through the 5,000 events. The author's
           inbox must then hold exactly one notification for the post, with actor_count exactly 5,000
           (the benchmark stops with an error otherwise). Printed: the likes' rate, the consumer's
           throughput (events/s, from the actor rows' write times) beside two floors measured in the
           same run: an empty gRPC call to notification_svc (Health/Check) and the same 5,000 events
           pulled, decoded and acked by consumers whose handler does nothing (mesh.bus.run_consumer,
           configured as notification_svc's); and the rows written per like (PostgreSQL's tuple
           counters of the notifications schema, outbox included).
  latency  the author holds one SSE stream open (GET /v1/notifications/stream); 500 other users like
           500 of the author's posts through the gateway at 50 likes/s (one every 20 ms, whatever the
           answers take). Latency = the like's HTTP answer -> its `notification` event on the stream.
  idle     1,000, then 2,500, then 5,000 idle streams (each a different user, opened 50 at a time over
           raw sockets) on ONE gateway process: its resident memory (VmRSS) at each step and per
           stream, its CPU over 20 idle seconds (each stream pinged every 15 s), and one more like's
           delivery to the author's stream while all of them are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.create_post import Call, at_once, cpu_report, cpu_seconds
from bench.feed_data import connect, copy_users, insert_posts, sql_url
from bench.stack import Stack, running_stack
from bench.stats import Sample, peak_rss_line, time_calls
from glimpse.engagement.v1 import engagement_pb2, engagement_pb2_grpc
from glimpse.notification.v1 import notification_pb2, notification_pb2_grpc
from mesh.bus import Bus, ConsumerSpec, run_consumer
from mesh.config import MeshSettings
from mesh.events import POST_LIKED
from mesh.identity import as_caller
from mesh.tokens import ACCESS, signer_from
from notification_svc.settings import NotificationSettings

PROCESSES = ["graph_svc", "post_svc", "media_svc", "feed_svc", "engagement_svc", "notification_svc", "gateway"]
AUTHOR = 1
STORM_LIKERS = 5000
CALLERS = 16
LOOPS = NotificationSettings.model_fields["consumer_concurrency"].default
LATENCY_LIKES = 500
LIKES_PER_SECOND = 50
IDLE_STEPS = (1000, 2500, 5000)
OPEN_AT_ONCE = 50
IDLE_CPU_SECONDS = 20.0
FIRST_LIKER = 1000  # user ids FIRST_LIKER.. like; ids from IDLE_USER hold idle streams (no account needed)
IDLE_USER = 10_000_000
SPEED_LIMITS = {
    "rate_limit_reads_per_user": "1000000/minute",
    "rate_limit_reads_per_ip": "1000000/minute",
    "rate_limit_engagement_per_user": "1000000/hour",
    # Likes fail closed (503) when the budget check is slower than this; the machine is shared.
    "rate_limit_timeout_seconds": "2",
}


@dataclass(frozen=True)
class Storm:
    likes: Sample
    caught_up_seconds: float
    consumer_rate: float
    rows: dict[str, int]


def _load(stack: Stack) -> list[int]:
    """The author, the likers and the author's posts; the post ids, oldest first."""
    with connect(stack.database_url) as conn:
        copy_users(conn, [AUTHOR], "author")
        copy_users(conn, range(FIRST_LIKER, FIRST_LIKER + STORM_LIKERS + LATENCY_LIKES + 100), "fan")
        insert_posts(conn, [AUTHOR], 1 + LATENCY_LIKES + 100, first_seq=1, days=1)
        return [row[0] for row in conn.execute("SELECT id FROM posts.posts ORDER BY id")]


def _tuples_written(stack: Stack) -> dict[str, int]:
    """Rows inserted + updated + deleted so far in each table of the notifications schema."""
    with psycopg.connect(sql_url(stack.database_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
            "WHERE schemaname = 'notifications'"
        ).fetchall()
    return {name: int(count) for name, count in rows}


async def _settled_tuples(stack: Stack) -> dict[str, int]:
    """The tuple counters once they stop moving: backends report them when idle, up to ~10 s late."""
    last, still_since = _tuples_written(stack), time.monotonic()
    while time.monotonic() - still_since < 12:
        await asyncio.sleep(1)
        now = _tuples_written(stack)
        if now != last:
            last, still_since = now, time.monotonic()
    return last


async def _inbox(stub: notification_pb2_grpc.NotificationServiceStub) -> list[notification_pb2.Notification]:
    response = await stub.ListNotifications(notification_pb2.ListNotificationsRequest(), metadata=as_caller(AUTHOR))
    return list(response.notifications)


async def _storm(stack: Stack, post_id: int) -> Storm:
    async with (
        grpc.aio.insecure_channel(stack.addr["engagement_svc"]) as engagement_channel,
        grpc.aio.insecure_channel(stack.addr["notification_svc"]) as notification_channel,
    ):
        engagement = engagement_pb2_grpc.EngagementServiceStub(engagement_channel)
        notifications = notification_pb2_grpc.NotificationServiceStub(notification_channel)
        # engagement_svc learns the post's author once, before the clock starts.
        await engagement.ListLikes(engagement_pb2.ListLikesRequest(parent=f"posts/{post_id}", page_size=1))
        before = await _settled_tuples(stack)
        # The likes are made while notification_svc is down, so that its consumer then works through
        # all 5,000 as fast as it can (its durable keeps its position): that rate is its throughput.
        stack.kill("notification_svc")
        users = range(FIRST_LIKER, FIRST_LIKER + STORM_LIKERS)
        lanes = [_likes(engagement, post_id, users[n::CALLERS]) for n in range(CALLERS)]
        likes = await at_once(f"LikePost of one post by {STORM_LIKERS:,} users, {CALLERS} callers", lanes, "likes")
        await _engagement_published(stack)
        await asyncio.to_thread(stack.start, "notification_svc")
        started = time.monotonic()
        deadline = started + 300
        while True:
            found = await _inbox(notifications)
            if found and found[0].actor_count >= STORM_LIKERS:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the storm's group did not reach {STORM_LIKERS} people within 300s: {found[:1]}")
            await asyncio.sleep(0.05)
        caught_up = time.monotonic() - started
        if len(found) != 1 or found[0].actor_count != STORM_LIKERS or found[0].post_id != post_id:
            raise RuntimeError(f"expected ONE notification of {STORM_LIKERS} people, got {found}")
        rate = _consumer_rate(stack, int(found[0].group_key))
        after = await _settled_tuples(stack)
    rows = {table: after.get(table, 0) - before.get(table, 0) for table in after}
    return Storm(likes, caught_up, rate, rows)


def _likes(
    engagement: engagement_pb2_grpc.EngagementServiceStub, post_id: int, users: Sequence[int]
) -> tuple[Call, int]:
    """A lane: each of `users` likes the post, one after another."""
    pending = iter(users)

    def call() -> Awaitable[object]:
        request = engagement_pb2.LikePostRequest(post_id=post_id)
        return engagement.LikePost(request, metadata=as_caller(next(pending)))

    return call, len(users)


async def _engagement_published(stack: Stack, within: float = 120.0) -> None:
    """Waits until engagement_svc's relay has published every event it wrote."""
    deadline = time.monotonic() + within
    async with await psycopg.AsyncConnection.connect(sql_url(stack.database_url), autocommit=True) as conn:
        while True:
            row = await (
                await conn.execute("SELECT count(*) FROM engagement.outbox WHERE published_at IS NULL")
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"engagement_svc's outbox did not drain within {within:.0f}s")
            await asyncio.sleep(0.1)


def _consumer_rate(stack: Stack, notification_id: int) -> float:
    """Actor rows written per second between the group's first and last (each in its own transaction)."""
    with psycopg.connect(sql_url(stack.database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), extract(epoch FROM max(created_at) - min(created_at)) "
            "FROM notifications.notification_actors WHERE notification_id = %s",
            (notification_id,),
        ).fetchone()
    count, span = (int(row[0]), float(row[1])) if row else (0, 0.0)
    return (count - 1) / span if span else 0.0


async def _noop_consumer_rate(stack: Stack) -> float:
    """engagement.liked events/s through mesh.bus.run_consumer with a handler that does nothing: the
    same 5,000 events the storm produced, read again by a durable of its own."""
    bus = await Bus.connect(stack.env.get("GLIMPSE_NATS_URL", MeshSettings().nats_url), stack.namespace)
    handled: list[float] = []
    done = asyncio.Event()

    async def nothing(_: object) -> None:
        handled.append(time.monotonic())
        if len(handled) >= STORM_LIKERS:
            done.set()

    # As notification_svc consumes: one message per fetch, NotificationSettings' pull loops at once.
    spec = ConsumerSpec("bench_noop_likes", [POST_LIKED], nothing, batch=1)
    loops = [asyncio.create_task(run_consumer(bus, spec)) for _ in range(LOOPS)]
    try:
        await asyncio.wait_for(done.wait(), 120)
    finally:
        for loop in loops:
            loop.cancel()
        for loop in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await bus.close()
    return (len(handled) - 1) / (handled[-1] - handled[0])


async def _empty_call(stack: Stack) -> Sample:
    async with grpc.aio.insecure_channel(stack.addr["notification_svc"]) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        for _ in range(200):
            await health.Check(request)
        return await time_calls(
            "floor: Health/Check on notification_svc, 1 caller", lambda: health.Check(request), 2000
        )


@dataclass
class SseReader:
    """Reads an open event stream, noting when each post's first `notification` event arrived."""

    arrivals: dict[str, float]
    ready: asyncio.Event
    arrived: asyncio.Event

    async def until(self, posts: Sequence[int], within: float) -> None:
        """Waits until every one of `posts` has had its event, or `within` seconds have passed."""
        deadline = time.monotonic() + within
        while any(str(p) not in self.arrivals for p in posts) and time.monotonic() < deadline:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())

    async def run(self, response: httpx.Response) -> None:
        data = event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data = line.partition(":")[2].strip()
            elif not line and data:
                if event == "ready":
                    self.ready.set()
                elif event == "notification":
                    post = json.loads(data)["notification"]["post"]
                    if post is not None:
                        # Wall-clock time, comparable with PostgreSQL's now() on this machine.
                        self.arrivals.setdefault(post["id"], time.time())
                        self.arrived.set()
                data = event = ""


@contextlib.asynccontextmanager
async def _author_stream(http: httpx.AsyncClient, token: str) -> AsyncIterator[SseReader]:
    reader = SseReader({}, asyncio.Event(), asyncio.Event())
    headers = {"Authorization": f"Bearer {token}"}
    async with http.stream("GET", "/v1/notifications/stream", headers=headers, timeout=None) as response:
        response.raise_for_status()
        task = asyncio.create_task(reader.run(response))
        await asyncio.wait_for(reader.ready.wait(), 10)
        try:
            yield reader
        finally:
            task.cancel()


async def _like(http: httpx.AsyncClient, token: str, post_id: int) -> None:
    """Likes through the gateway; a 503 (a budget check slower than its deadline) is retried, as apps do."""
    for attempt in range(5):
        response = await http.post(f"/v1/posts/{post_id}/like", headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 503:
            break
        await asyncio.sleep(0.1 * (attempt + 1))
    response.raise_for_status()


async def _like_at(http: httpx.AsyncClient, token: str, post_id: int, at: float, acks: dict[str, float]) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    await _like(http, token, post_id)
    acks[str(post_id)] = time.time()


@dataclass(frozen=True)
class Delivery:
    sample: Sample
    # Like answered -> its notification's transaction began; that -> the event on the stream.
    to_written: Sample
    to_stream: Sample
    cpu: str


async def _delivery(stack: Stack, posts: Sequence[int], tokens: dict[int, str], first_fan: int) -> Delivery:
    """Likes at LIKES_PER_SECOND through the gateway; answer -> event on the author's stream."""
    acks: dict[str, float] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, timeout=30, limits=limits) as http,
        _author_stream(http, tokens[AUTHOR]) as stream,
    ):
        before = cpu_seconds()
        start = time.monotonic() + 0.5
        await asyncio.gather(
            *(
                _like_at(http, tokens[first_fan + n], post_id, start + n / LIKES_PER_SECOND, acks)
                for n, post_id in enumerate(posts)
            )
        )
        await stream.until(posts, 10)
        wall = time.monotonic() - start
        cpu = cpu_report(before, cpu_seconds(), wall, len(posts), "like")
        arrivals = dict(stream.arrivals)
    missing = [p for p in acks if p not in arrivals]
    if missing:
        raise RuntimeError(f"{len(missing)} likes never reached the author's stream (e.g. post {missing[0]})")
    written = _written_at(stack, posts)
    name = f"like answered -> SSE event, {LIKES_PER_SECOND} likes/s"
    return Delivery(
        Sample(name, [max(0.0, arrivals[p] - acks[p]) for p in acks], wall, len(acks), "likes"),
        Sample(
            "  of which: answer -> notification written",
            [max(0.0, written[p] - acks[p]) for p in acks],
            wall,
            len(acks),
            "likes",
        ),
        Sample(
            "  and: written -> event on the stream",
            [max(0.0, arrivals[p] - written[p]) for p in acks],
            wall,
            len(acks),
            "likes",
        ),
        cpu,
    )


def _written_at(stack: Stack, posts: Sequence[int]) -> dict[str, float]:
    """When each post's like notification was written (its transaction's start), as a Unix time."""
    with psycopg.connect(sql_url(stack.database_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT n.post_id, extract(epoch FROM min(a.created_at)) FROM notifications.notifications n "
            "JOIN notifications.notification_actors a ON a.notification_id = n.id "
            "WHERE n.recipient_id = %s AND n.post_id = ANY(%s) GROUP BY n.post_id",
            (AUTHOR, list(posts)),
        ).fetchall()
    return {str(post_id): float(at) for post_id, at in rows}


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"process {pid} has no VmRSS")


async def _open_idle(host: str, port: int, token: str) -> asyncio.StreamWriter:
    """An SSE stream opened over a raw socket, read up to its `ready` event, then left idle."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /v1/notifications/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"an idle stream was refused: {status!r} {await reader.read(500)!r}")
    while b"event: ready" not in await reader.readline():
        pass
    return writer


async def _open_streams_metric(http: httpx.AsyncClient) -> int:
    text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("glimpse_notification_streams_open "):
            return int(float(line.split()[1]))
    return 0


async def _idle(stack: Stack, posts: Sequence[int], tokens: dict[int, str], fan: int) -> list[str]:
    """Idle streams in steps; memory per stream; idle CPU; one like's delivery with all of them open."""
    gateway_pid = stack.running["gateway"].pid
    host, port = stack.gateway_url.removeprefix("http://").split(":")
    signer = signer_from(MeshSettings())
    lines = []
    writers: list[asyncio.StreamWriter] = []
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        await asyncio.sleep(1)
        baseline = _rss(gateway_pid)
        lines.append(
            f"  gateway before: {baseline / 2**20:.0f} MiB resident, {await _open_streams_metric(http)} streams"
        )
        gate = asyncio.Semaphore(OPEN_AT_ONCE)

        async def one(n: int) -> asyncio.StreamWriter:
            async with gate:
                return await _open_idle(host, int(port), signer.issue(IDLE_USER + n, ACCESS).token)

        try:
            for target in IDLE_STEPS:
                started, opened = time.monotonic(), len(writers)
                writers += await asyncio.gather(*(one(n) for n in range(opened, target)))
                opened_in = time.monotonic() - started
                await asyncio.sleep(2)
                rss, counted = _rss(gateway_pid), await _open_streams_metric(http)
                lines.append(
                    f"  {target:>5,} idle streams (gauge {counted:,}): gateway {rss / 2**20:.0f} MiB resident, "
                    f"{(rss - baseline) / target / 1024:.1f} KiB per stream; {target - opened:,} opened in "
                    f"{opened_in:.1f}s ({OPEN_AT_ONCE} at a time)"
                )
            before = cpu_seconds()
            await asyncio.sleep(IDLE_CPU_SECONDS)
            lines.append(cpu_report(before, cpu_seconds(), IDLE_CPU_SECONDS).replace("CPU over", "CPU, all idle, over"))
            async with _author_stream(http, tokens[AUTHOR]) as stream:
                await _like(http, tokens[fan], posts[0])
                acknowledged = time.time()
                await stream.until(posts[:1], 10)
                took = stream.arrivals.get(str(posts[0]), float("nan")) - acknowledged
            lines.append(
                f"  with {len(writers):,} idle streams open, one more like reached its stream in {took * 1000:.1f} ms"
            )
        finally:
            for writer in writers:
                writer.close()
    return lines


def _tokens(users: Sequence[int]) -> dict[int, str]:
    signer = signer_from(MeshSettings())
    return {user: signer.issue(user, ACCESS).token for user in users}


def main() -> None:
    print(
        "Notifications: every service its own process on loopback, one gateway process; "
        "PostgreSQL, NATS and Redis shared with the machine",
        flush=True,
    )
    with running_stack(PROCESSES, **SPEED_LIMITS) as stack:
        posts = _load(stack)
        storm_post, latency_posts, idle_posts = posts[0], posts[1 : 1 + LATENCY_LIKES], posts[1 + LATENCY_LIKES :]
        first_fan = FIRST_LIKER + STORM_LIKERS
        tokens = _tokens([AUTHOR, *range(first_fan, first_fan + LATENCY_LIKES + 1)])
        floor = asyncio.run(_empty_call(stack))
        storm = asyncio.run(_storm(stack, storm_post))
        noop_rate = asyncio.run(_noop_consumer_rate(stack))
        _print_storm(floor, storm, noop_rate)
        delivery = asyncio.run(_delivery(stack, latency_posts, tokens, first_fan))
        for sample in (delivery.sample, delivery.to_written, delivery.to_stream):
            print(sample.line())
        total = delivery.sample
        print(
            f"  => p50 {total.percentile(50) * 1000:.1f} ms, p99 {total.percentile(99) * 1000:.1f} ms, "
            f"max {max(total.seconds) * 1000:.1f} ms (target: within 1 s)"
        )
        print(delivery.cpu.replace("CPU over", "CPU during the likes, over"), flush=True)
        for line in asyncio.run(_idle(stack, idle_posts, tokens, first_fan + LATENCY_LIKES)):
            print(line)
        print(peak_rss_line())


def _print_storm(floor: Sample, storm: Storm, noop_rate: float) -> None:
    print(floor.line())
    print(storm.likes.line())
    print(
        f"  => ONE notification for the post, actor_count exactly {STORM_LIKERS:,}, "
        f"{storm.caught_up_seconds:.1f}s after notification_svc started"
    )
    print(
        f"  consumer throughput (notification_svc, {LOOPS} pull loops): {storm.consumer_rate:,.0f} events/s; "
        f"floors: a no-op consumer of the same events {noop_rate:,.0f} events/s, "
        f"an empty gRPC call {floor.rate:,.0f} calls/s"
    )
    total = sum(storm.rows.values())
    detail = ", ".join(f"{table} {count / STORM_LIKERS:.2f}" for table, count in sorted(storm.rows.items()) if count)
    print(f"  rows written per like: {total / STORM_LIKERS:.2f} ({detail})", flush=True)
