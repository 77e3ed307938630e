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
  lag      after the pipeline drained, each caller posts LAG_EACH more photos, polling BatchGetMedia
           (every 5 ms) after each CreatePost answered until the photo's placeholder is stored: how
           long a client can see a photo without one (media_svc.placeholders)
Before each timed phase the pipeline is drained, so a phase pays only for the work it causes. It also
prints the CPU each process spent during `create`, which shows where a post's time goes, the sum that
issue 12 (target 3) bounds, and what a placeholder costs to make (now the worker's, not AttachMedia's)
for this benchmark's photo and for a 12-megapixel phone photo.
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
LAG_EACH = 5
FLOOR_EACH = 300
# Issue 12, target 3: CPU per acknowledged post summed over these processes at most half of the
# issue's 24 ms, and p99 at 16 callers at most 20x the empty call's at the same concurrency.
TARGET_CPU_PROCESSES = ("post_svc", "media_svc", "graph_svc", "fanout_svc")
TARGET_CPU_MS = 12.0
TARGET_P99_RATIO = 20.0
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
WHOLE_MACHINE = "whole machine"


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far, by process name: this process, its children (the
    stack's services by module, client processes) and the shared engines (PostgreSQL counts every
    database, so other work on the machine shows up there); and WHOLE_MACHINE, every process's."""
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
    # Every process of the machine (other work included), to tell a busy machine from a slow stack.
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    totals[WHOLE_MACHINE] = (user + nice + system + irq + softirq + steal) / _TICKS
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


def cpu_ms_per_unit(before: dict[str, float], after: dict[str, float], units: int) -> dict[str, float]:
    """Milliseconds of CPU per unit of work, by process name, between two cpu_seconds() snapshots."""
    return {name: (after[name] - before.get(name, 0.0)) / units * 1000 for name in after}


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
    per_author = WARMUP_EACH + POSTS_EACH + LAG_EACH
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


async def _measure(
    stack: Stack, authors: list[int], media_ids: list[list[int]]
) -> tuple[list[Sample], str, dict[str, float], Sample]:
    """The floors, then the timed creates, then their retries, then the placeholder lag; the CPU
    report of the creates and their CPU per post by process."""
    async with (
        grpc.aio.insecure_channel(stack.addr["post_svc"]) as channel,
        grpc.aio.insecure_channel(stack.addr["media_svc"]) as media_channel,
    ):
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
        timed = WARMUP_EACH + POSTS_EACH
        requests = [create_requests(ids[WARMUP_EACH:timed], WARMUP_EACH) for ids in media_ids]
        before = cpu_seconds()
        create = await at_once(f"CreatePost, {AUTHORS} callers", _create_lanes(posts, authors, requests), "posts")
        after = cpu_seconds()
        cpu = cpu_report(before, after, create.wall, create.units, "post")
        await drain(stack)
        retry = await at_once(
            f"CreatePost retry (same request_id), {AUTHORS} callers", _create_lanes(posts, authors, requests)
        )
        await _check_one_post_per_request(posts, authors)
        lag = await _placeholder_lag(
            posts, media_pb2_grpc.MediaServiceStub(media_channel), authors, [ids[timed:] for ids in media_ids]
        )
        return [sequential, floor, create, retry], cpu, cpu_ms_per_unit(before, after, create.units), lag


async def _placeholder_lag(
    posts: post_pb2_grpc.PostServiceStub,
    media: media_pb2_grpc.MediaServiceStub,
    authors: list[int],
    media_ids: list[list[int]],
) -> Sample:
    """From each CreatePost's answer until its photo's placeholder can be read (polled every 5 ms):
    the window in which a client sees the photo without one. One caller per author, as in `create`."""

    async def lane(author: int, ids: list[int]) -> list[float]:
        lags = []
        for request in create_requests(ids, WARMUP_EACH + POSTS_EACH):
            await posts.CreatePost(request, metadata=as_caller(author))
            answered = time.perf_counter()
            check = media_pb2.BatchGetMediaRequest(media_ids=request.media_ids)
            while not (await media.BatchGetMedia(check)).media[0].blurhash:
                if time.perf_counter() - answered > 30:
                    raise RuntimeError(f"media {request.media_ids[0]}: no placeholder 30 s after its post")
                await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - answered)
        return lags

    started = time.perf_counter()
    lanes = await asyncio.gather(*(lane(a, ids) for a, ids in zip(authors, media_ids, strict=True)))
    seconds = [lag for lags in lanes for lag in lags]
    return Sample("placeholder lag after CreatePost answered", seconds, time.perf_counter() - started, len(seconds))


def _placeholder_cost() -> str:
    """CPU to make one placeholder (media_svc.images.placeholder, one thread) from this benchmark's
    photo and from a 12-megapixel phone JPEG: what AttachMedia paid per photo when it made them."""
    from media_svc import images  # only here: the rest of the benchmark never decodes

    big = Image.radial_gradient("L").resize((4000, 3000)).convert("RGB")
    big.paste(Image.effect_noise((2000, 1500), 48).convert("RGB"), (1000, 750))
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    costs = []
    for name, raw, runs in (("this benchmark's 160x120 JPEG", photo(1), 200), ("a 12-MP JPEG", out.getvalue(), 10)):
        images.placeholder(raw, max_pixels=50_000_000)
        started = time.process_time()
        for _ in range(runs):
            images.placeholder(raw, max_pixels=50_000_000)
        costs.append(f"{name} {(time.process_time() - started) / runs * 1000:.1f} ms")
    return "  CPU per placeholder (draft decode + blurhash): " + ", ".join(costs)


async def _check_one_post_per_request(posts: post_pb2_grpc.PostServiceStub, authors: list[int]) -> None:
    """Each author has exactly one post per request sent: the retries created nothing. A retry that had
    created a second post would also have been timed as a create, not as a replay."""
    for author in authors:
        page = await posts.ListPosts(post_pb2.ListPostsRequest(parent=f"users/{author}", page_size=100))
        if len(page.posts) != WARMUP_EACH + POSTS_EACH or page.next_page_token:
            raise RuntimeError(f"author {author} has {len(page.posts)} posts, expected {WARMUP_EACH + POSTS_EACH}")


def _target(floor: Sample, create: Sample, per_post: dict[str, float]) -> None:
    """Issue 12, target 3, judged on this run's figures."""
    parts = {name: per_post.get(name, 0.0) for name in TARGET_CPU_PROCESSES}
    total = sum(parts.values())
    ratio = create.percentile(99) / floor.percentile(99)
    split = " + ".join(f"{name} {ms:.2f}" for name, ms in parts.items())
    print(
        f"  => CPU per post over {', '.join(TARGET_CPU_PROCESSES)}: {split} = {total:.2f} ms "
        f"(target <= {TARGET_CPU_MS:.0f} ms: {'met' if total <= TARGET_CPU_MS else 'NOT met'}); "
        f"p99 {ratio:.1f}x the empty call at {AUTHORS} callers "
        f"(target <= {TARGET_P99_RATIO:.0f}x: {'met' if ratio <= TARGET_P99_RATIO else 'NOT met'})"
    )


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
        samples, cpu, per_post, lag = asyncio.run(_measure(stack, authors, media_ids))
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
    _target(samples[1], samples[2], per_post)
    print(
        f"  placeholder lag ({AUTHORS} callers x {LAG_EACH} posts, from CreatePost's answer until the photo's "
        f"blurhash is readable): p50 {lag.percentile(50) * 1000:.0f} ms, p99 {lag.percentile(99) * 1000:.0f} ms, "
        f"max {max(lag.seconds) * 1000:.0f} ms"
    )
    print(_placeholder_cost())
