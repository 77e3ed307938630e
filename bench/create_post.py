"""CreatePost latency and throughput at 16 concurrent callers (issue 3), beside an empty gRPC call.

    python -m bench create_post

Runs graph_svc, media_svc, post_svc, the media worker and the fan-out as their own processes on a fresh
database (bench.stack), so each post is rendered and fanned out while the clock runs, as in production
(here on the same 2 cores as everything else). Registers 16 authors and, before any timing, uploads one
photo per post the way a client does (upload grant, then a form POST to the store). Then, from this
process over one loopback gRPC channel (the gateway also holds one per service), 16 callers at once:
  floor    grpc.health.v1.Health/Check on post_svc
  create   CreatePost, 50 per author, each with its own photo and a fresh request_id (idempotency key)
  retry    each of those calls again with the same request_id: the replay a client makes after a timeout
Before each timed phase the pipeline is drained, so a phase pays only for the work it causes. It also
prints the CPU each process spent during `create`, which shows where a post's time goes.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.stack import Stack, running_stack
from bench.stats import Sample, empty_call_floor, peak_rss_line, time_calls
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.bus import STREAMS, Bus
from mesh.config import MeshSettings
from mesh.identity import as_caller

AUTHORS = 16
POSTS_EACH = 50
WARMUP_EACH = 2
FLOOR_EACH = 300
# Issue 3 asks for the figure beside the floor and names no number; set one (ms) to have it judged.
TARGET_P99_MS: float | None = None
PASSWORD = "bench passphrase, long enough"
# Argon2 at its cheapest: registering users is set-up here, not what is measured.
CHEAP_PASSWORDS = {"argon2_time_cost": "1", "argon2_memory_kib": "8192", "argon2_parallelism": "1"}
STACK = ["graph_svc", "media_svc", "post_svc", "media_svc.worker", "fanout_svc"]
Call = Callable[[], Awaitable[object]]


def photo(seed: int) -> bytes:
    """A 160x120 JPEG whose colour depends on `seed`: small, so the worker's renditions stay cheap."""
    image = Image.new("RGB", (160, 120), ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    image.paste((255 - seed % 256, 200, 40), (40, 30, 120, 90))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


async def register(graph: graph_pb2_grpc.GraphServiceStub, usernames: Sequence[str]) -> list[int]:
    """Registers the users through graph_svc, 16 at a time; their ids in order."""
    limit = asyncio.Semaphore(16)

    async def one(name: str) -> int:
        async with limit:
            request = graph_pb2.RegisterUserRequest(username=name, email=f"{name}@bench.dev", password=PASSWORD)
            return int((await graph.RegisterUser(request)).id)

    return list(await asyncio.gather(*(one(name) for name in usernames)))


async def upload_photos(
    media: media_pb2_grpc.MediaServiceStub, store: httpx.AsyncClient, owner_id: int, seeds: Sequence[int]
) -> list[int]:
    """Uploads one photo per seed as `owner_id` does from a phone: grant, then the form POST to the store."""
    media_ids = []
    for seed in seeds:
        data = photo(seed)
        grant = await media.CreateUploadGrant(
            media_pb2.CreateUploadGrantRequest(content_type="image/jpeg", size_bytes=len(data)),
            metadata=as_caller(owner_id),
        )
        sent = await store.post(grant.url, data=dict(grant.form_fields), files={"file": ("p.jpg", data, "image/jpeg")})
        if sent.status_code not in (200, 201, 204):
            raise RuntimeError(f"upload refused by the store: {sent.status_code} {sent.text[:200]}")
        media_ids.append(grant.media_id)
    return media_ids


async def at_once(name: str, lanes: Sequence[tuple[Call, int]], unit: str = "calls") -> Sample:
    """Runs every lane (`call` `n` times in sequence) at the same time: len(lanes) concurrent callers.

    One Sample: every call's latency; the rate is all calls over the wall time of the slowest lane.
    """
    started = time.perf_counter()
    samples = await asyncio.gather(*(time_calls(name, call, n) for call, n in lanes))
    wall = time.perf_counter() - started
    seconds = [s for sample in samples for s in sample.seconds]
    return Sample(name, seconds, wall, sum(sample.units for sample in samples), unit)


def calls_of(
    method: Callable[..., Awaitable[object]], requests: Sequence[object], metadata: tuple[tuple[str, str], ...]
) -> tuple[Call, int]:
    """A lane that sends `requests` one after another through `method` (a stub's bound RPC)."""
    pending = iter(requests)
    return (lambda: method(next(pending), metadata=metadata)), len(requests)


async def drain(stack: Stack, within: float = 180.0) -> None:
    """Waits until every outbox row is published and every JetStream consumer of the stack has acked
    all it was handed, twice in a row (a handler may be between two messages)."""
    engine = create_async_engine(stack.database_url)
    bus = await Bus.connect(MeshSettings().nats_url, stack.namespace)
    deadline = time.monotonic() + within
    quiet = 0
    try:
        while quiet < 2:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the pipeline did not drain within {within:.0f}s")
            busy = 0
            async with engine.connect() as conn:
                for schema in ("graph", "posts", "media"):
                    unpublished = text(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")
                    busy += (await conn.execute(unpublished)).scalar_one()
            for stream in STREAMS:
                for info in await bus.js.consumers_info(bus.stream(stream)):
                    busy += (info.num_pending or 0) + (info.num_ack_pending or 0)
            quiet = quiet + 1 if busy == 0 else 0
            await asyncio.sleep(0.2)
    finally:
        await bus.close()
        await engine.dispose()


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far, by process name: this process, its children (the
    stack's services by module, client processes) and the shared engines (PostgreSQL counts every
    database, so other work on the machine shows up there)."""
    me = os.getpid()
    totals: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # exited while we looked
        name = _process_name(int(proc.name) == me, int(fields[1]) == me, argv)
        if name:
            totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
    return totals


def _process_name(is_me: bool, is_child: bool, argv: list[str]) -> str | None:
    if is_me:
        return "bench (this process)"
    if is_child:
        return argv[argv.index("-m") + 1] if "-m" in argv else "bench client processes"
    program = argv[0]
    if program.startswith("postgres"):
        return "postgres (all databases)"
    if "redis-server" in program:
        return "redis"
    if "nats-server" in program:
        return "nats"
    if any("moto_server" in part for part in argv):
        return "moto (S3)"
    return None


def cpu_report(before: dict[str, float], after: dict[str, float], wall: float, units: int = 0, unit: str = "") -> str:
    """CPU used between two cpu_seconds() snapshots, busiest first: as a share of one core over `wall`,
    and per unit of work if `units` is given (CPU per item is what stays put when the machine is busy)."""
    used = sorted(((name, after[name] - before.get(name, 0.0)) for name in after), key=lambda kv: -kv[1])
    parts = []
    for name, seconds in used:
        if seconds > 0.01:
            per_unit = f" {seconds / units * 1000:.2f} ms" if units else ""
            parts.append(f"{name} {100 * seconds / wall:.0f}%{per_unit}")
    scale = f"100% = one core of 2; then CPU per {unit}" if units else "100% = one core of 2"
    return f"  CPU over {wall:.1f}s ({scale}): " + ", ".join(parts)


def create_requests(media_ids: Sequence[int], first: int) -> list[post_pb2.CreatePostRequest]:
    """One single-photo post per media id, each with its own idempotency key, as a client sends them."""
    return [
        post_pb2.CreatePostRequest(
            caption=f"bench post {first + n} #glimpse #bench", media_ids=[media_id], request_id=uuid.uuid4().hex
        )
        for n, media_id in enumerate(media_ids)
    ]


async def _prepare(stack: Stack) -> tuple[list[int], list[list[int]]]:
    """Registers the authors and uploads every photo; (author ids, each author's media ids)."""
    per_author = WARMUP_EACH + POSTS_EACH
    async with (
        grpc.aio.insecure_channel(stack.addr["graph_svc"]) as graph_channel,
        grpc.aio.insecure_channel(stack.addr["media_svc"]) as media_channel,
        httpx.AsyncClient(timeout=30) as store,
    ):
        authors = await register(graph_pb2_grpc.GraphServiceStub(graph_channel), [f"author{n}" for n in range(AUTHORS)])
        media = media_pb2_grpc.MediaServiceStub(media_channel)
        started = time.perf_counter()
        media_ids = await asyncio.gather(
            *(
                upload_photos(media, store, author, range(n * per_author, (n + 1) * per_author))
                for n, author in enumerate(authors)
            )
        )
        took = time.perf_counter() - started
    print(f"  set-up: {AUTHORS} authors; {AUTHORS * per_author} photos uploaded (grant + form POST) in {took:.1f}s")
    return authors, list(media_ids)


def _create_lanes(
    posts: post_pb2_grpc.PostServiceStub, authors: list[int], requests: list[list[post_pb2.CreatePostRequest]]
) -> list[tuple[Call, int]]:
    """One caller per author, sending that author's requests in order."""
    return [calls_of(posts.CreatePost, r, as_caller(a)) for a, r in zip(authors, requests, strict=True)]


async def _measure(stack: Stack, authors: list[int], media_ids: list[list[int]]) -> tuple[list[Sample], str]:
    """The floors, then the timed creates, then their retries; and the CPU report of the creates."""
    async with grpc.aio.insecure_channel(stack.addr["post_svc"]) as channel:
        posts = post_pb2_grpc.PostServiceStub(channel)
        # Warm-up: connections, pools and caches in post_svc and media_svc, with posts that are not timed.
        warmup = [create_requests(ids[:WARMUP_EACH], 0) for ids in media_ids]
        await at_once("warm-up", _create_lanes(posts, authors, warmup))
        await drain(stack)
        sequential = await empty_call_floor(channel, 2000)
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest()
        floor = await at_once(
            f"floor: Health/Check, {AUTHORS} callers", [(lambda: health.Check(check), FLOOR_EACH)] * AUTHORS
        )
        requests = [create_requests(ids[WARMUP_EACH:], WARMUP_EACH) for ids in media_ids]
        before = cpu_seconds()
        create = await at_once(f"CreatePost, {AUTHORS} callers", _create_lanes(posts, authors, requests), "posts")
        cpu = cpu_report(before, cpu_seconds(), create.wall, create.units, "post")
        await drain(stack)
        retry = await at_once(
            f"CreatePost retry (same request_id), {AUTHORS} callers", _create_lanes(posts, authors, requests)
        )
        await _check_one_post_per_request(posts, authors)
        return [sequential, floor, create, retry], cpu


async def _check_one_post_per_request(posts: post_pb2_grpc.PostServiceStub, authors: list[int]) -> None:
    """Each author has exactly one post per request sent: the retries created nothing. A retry that had
    created a second post would also have been timed as a create, not as a replay."""
    for author in authors:
        page = await posts.ListPosts(post_pb2.ListPostsRequest(parent=f"users/{author}", page_size=100))
        if len(page.posts) != WARMUP_EACH + POSTS_EACH or page.next_page_token:
            raise RuntimeError(f"author {author} has {len(page.posts)} posts, expected {WARMUP_EACH + POSTS_EACH}")


def _verdict(floor: Sample, create: Sample, retry: Sample) -> None:
    p50, p99 = create.percentile(50) * 1000, create.percentile(99) * 1000
    print(
        f"  => CreatePost at {AUTHORS} callers: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {create.rate:,.0f} posts/s; "
        f"{p50 / (floor.percentile(50) * 1000):.0f}x / {p99 / (floor.percentile(99) * 1000):.0f}x "
        f"the empty call at the same concurrency (p50 / p99)"
    )
    print(
        f"  => a retry with the same request_id: p50 {retry.percentile(50) * 1000:.1f} ms, "
        f"{create.percentile(50) / retry.percentile(50):.1f}x cheaper than creating at p50"
    )
    if TARGET_P99_MS is None:
        print("  target: none set (issue 3 names no number; TARGET_P99_MS in bench/create_post.py)")
    else:
        met = "met" if p99 <= TARGET_P99_MS else "NOT met"
        print(f"  target: p99 <= {TARGET_P99_MS:.0f} ms at {AUTHORS} callers: {met}")


def main() -> None:
    with running_stack(STACK, **CHEAP_PASSWORDS) as stack:
        authors, media_ids = asyncio.run(_prepare(stack))
        samples, cpu = asyncio.run(_measure(stack, authors, media_ids))
        rss = peak_rss_line()
    print(
        f"CreatePost (post_svc -> media_svc AttachMedia -> PostgreSQL + outbox); {AUTHORS} authors x {POSTS_EACH} "
        "posts, 1 photo each; media worker and fan-out running; each service its own process; loopback; 2 cores"
    )
    for sample in samples:
        print(sample.line())
    print(cpu.replace("CPU over", "CPU during the creates, over"))
    print(rss)
    _verdict(samples[1], samples[2], samples[3])
