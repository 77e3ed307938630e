"""Home-feed reads through the gateway beside the same reads straight against feed_svc (issue 5, issue 12
target 2).

    python -m bench gateway_feed

Runs every process (graph_svc, post_svc, media_svc and its worker, fanout_svc, engagement_svc, feed_svc,
gateway) on a fresh database (bench.stack); the gateway's rate limits are raised out of the way but still
checked. Data, made the way clients make it: 20 authors post 25 photos each (upload grant, form POST to
the store, CreatePost); 300 readers sign up and log in through the gateway and each follows 10 of the
authors (FollowUser); the fan-out and the renditions drain; each reader's feed is read once (inbox built,
hydration caches warm). Then the same readers, 32 at a time (closed loop: each caller sends its next
request when the last one is answered), read in turn:
  floor    grpc.health.v1.Health/Check on feed_svc          gRPC: 2 Python client processes x 16 callers
  floor    GET /healthz through the gateway                 HTTP/1.1: wrk, 2 threads x 16 keep-alive connections
  direct   GetHomeFeed(page_size=20), x-user-id metadata    gRPC, as the gateway itself calls it (Python clients)
  gateway  GET /v1/feed?page_size=20, the reader's token    HTTP/1.1: wrk, each request the next reader's token
HTTP load comes from wrk (C; Debian's package, installed here when missing), so the client's CPU is not
charged to the gateway: a Python HTTP client spent more CPU per read than the gateway itself. gRPC has no
such compiled client that can send each call as another reader, so the direct rounds' Python client
processes compete with the stack for the same 2 cores; their CPU per read is printed, and so is the
ratio of the stack's CPU per read (what the throughput ratio becomes where clients run elsewhere).
Direct and gateway alternate, two rounds each, so drift on the machine hits both alike. Also printed:
the CPU each process spent per read, the rate-limit checks the gateway made or skipped, and every
process's peak RSS. Target: gateway reads/s >= 70% of direct reads/s at the same concurrency.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.create_post import (
    CHEAP_PASSWORDS,
    PASSWORD,
    at_once,
    calls_of,
    cpu_report,
    cpu_seconds,
    create_requests,
    drain,
    upload_photos,
)
from bench.stack import Stack, running_stack
from bench.stats import Sample, peak_rss_line
from gateway.settings import GatewaySettings
from glimpse.feed.v1 import feed_pb2, feed_pb2_grpc
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.media.v1 import media_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from mesh.identity import as_caller

AUTHORS = 20
POSTS_EACH = 25
READERS = 300
FOLLOWS_EACH = 10
PAGE_SIZE = 20
CLIENT_PROCESSES = 2  # gRPC client processes; wrk threads
CALLERS_EACH = 16  # concurrent requests per client process; wrk connections per thread
SECONDS = 8.0  # per timed round
WARMUP_CALLS = 5  # per gRPC caller before each round: connections open, code paths warm
WRK_WARMUP_SECONDS = 1  # wrk's warm-up run before each timed HTTP round
TARGET_SHARE = 0.70  # gateway reads/s at least this share of direct reads/s (overhead <= 30%)
STACK = [
    "graph_svc",
    "media_svc",
    "post_svc",
    "media_svc.worker",
    "fanout_svc",
    "engagement_svc",
    "feed_svc",
    "gateway",
]
# High enough never to refuse a benchmark request; every request still pays for the check in Redis.
NO_LIMITS = {name: "1000000/minute" for name in GatewaySettings.model_fields if "_per_" in name}
# What serves a read (CPU per read is summed over these): on 2 cores the clients' CPU is taken from them.
SERVER_SIDE = {*STACK, "redis"}
# Modes in the order they run; direct and gateway twice, alternating.
ROUNDS = ["grpc_floor", "http_floor", "direct", "gateway", "direct", "gateway"]
HTTP_MODES = {"http_floor": "/healthz", "gateway": f"/v1/feed?page_size={PAGE_SIZE}"}
NAMES = {
    "grpc_floor": ("floor: gRPC Health/Check on feed_svc", "calls"),
    "direct": (f"direct: GetHomeFeed({PAGE_SIZE}) on feed_svc (gRPC)", "reads"),
    "http_floor": ("floor: GET /healthz through the gateway (wrk)", "calls"),
    "gateway": (f"gateway: GET /v1/feed?page_size={PAGE_SIZE} (wrk)", "reads"),
}
WRK_SCRIPT = Path(__file__).with_suffix(".lua")


@dataclass(frozen=True)
class Reader:
    id: int
    access_token: str


@dataclass(frozen=True)
class RoundResult:
    seconds: list[float]
    wall: float
    cpu: float  # CPU seconds the client used while timed
    error: str = ""  # why the client process gave up, if it did


async def register_via_gateway(http: httpx.AsyncClient, usernames: Sequence[str]) -> list[Reader]:
    """Registers each user (POST /v1/users) and logs in (POST /v1/sessions), 16 at a time, as apps do."""
    limit = asyncio.Semaphore(16)

    async def one(name: str) -> Reader:
        async with limit:
            body = {"username": name, "email": f"{name}@bench.dev", "password": PASSWORD}
            await _post(http, "/v1/users", body)
            data = (await _post(http, "/v1/sessions", {"login": name, "password": PASSWORD})).json()
            return Reader(int(data["user"]["id"]), data["access_token"])

    return list(await asyncio.gather(*(one(name) for name in usernames)))


async def _post(http: httpx.AsyncClient, path: str, body: dict[str, str]) -> httpx.Response:
    # Sign-up and log-in budgets fail closed (503) when their Redis check is slower than its deadline,
    # which a busy machine can cause; a client retries that.
    for attempt in range(5):
        response = await http.post(path, json=body)
        if response.status_code != 503:
            break
        await asyncio.sleep(0.2 * (attempt + 1))
    return response.raise_for_status()


async def _post_photos(stack: Stack, authors: list[Reader]) -> None:
    """Every author uploads POSTS_EACH photos and posts each (with an idempotency key), 20 at once."""
    async with (
        grpc.aio.insecure_channel(stack.addr["media_svc"]) as media_channel,
        grpc.aio.insecure_channel(stack.addr["post_svc"]) as post_channel,
        httpx.AsyncClient(timeout=30) as store,
    ):
        media = media_pb2_grpc.MediaServiceStub(media_channel)
        seeds = [range(n * POSTS_EACH, (n + 1) * POSTS_EACH) for n in range(len(authors))]
        media_ids = await asyncio.gather(
            *(upload_photos(media, store, a.id, s) for a, s in zip(authors, seeds, strict=True))
        )
        posts = post_pb2_grpc.PostServiceStub(post_channel)
        lanes = [
            calls_of(posts.CreatePost, create_requests(ids, 0), as_caller(a.id))
            for a, ids in zip(authors, media_ids, strict=True)
        ]
        await at_once("posts", lanes)


async def _follow(stack: Stack, readers: list[Reader], authors: list[Reader]) -> None:
    """Reader r follows FOLLOWS_EACH authors from r's position on, so feeds differ between readers."""
    async with grpc.aio.insecure_channel(stack.addr["graph_svc"]) as channel:
        graph = graph_pb2_grpc.GraphServiceStub(channel)
        limit = asyncio.Semaphore(16)

        async def follow(reader: Reader, author: Reader) -> None:
            async with limit:
                request = graph_pb2.FollowUserRequest(target_user_id=author.id)
                await graph.FollowUser(request, metadata=as_caller(reader.id))

        await asyncio.gather(
            *(
                follow(reader, authors[(r + k) % len(authors)])
                for r, reader in enumerate(readers)
                for k in range(FOLLOWS_EACH)
            )
        )


async def _warm_feeds(stack: Stack, readers: list[Reader]) -> None:
    """Reads each reader's first page once (building the inbox) and checks it is a full page."""
    async with grpc.aio.insecure_channel(stack.addr["feed_svc"]) as channel:
        feed = feed_pb2_grpc.FeedServiceStub(channel)
        for reader in readers:
            page = await feed.GetHomeFeed(
                feed_pb2.GetHomeFeedRequest(page_size=PAGE_SIZE), metadata=as_caller(reader.id)
            )
            if len(page.items) != PAGE_SIZE:
                raise RuntimeError(f"reader {reader.id} sees {len(page.items)} posts, expected {PAGE_SIZE}")


async def _prepare(stack: Stack) -> list[Reader]:
    """Makes the data (see the module docstring) and warms every reader's feed; the readers."""
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        authors = await register_via_gateway(http, [f"author{n}" for n in range(AUTHORS)])
        readers = await register_via_gateway(http, [f"reader{n}" for n in range(READERS)])
    await _follow(stack, readers, authors)
    await _post_photos(stack, authors)
    await drain(stack)
    await _warm_feeds(stack, readers)
    print(
        f"  set-up ({time.perf_counter() - started:.0f}s): {AUTHORS} authors x {POSTS_EACH} photo posts; "
        f"{READERS} readers (gateway sign-up + log-in), each following {FOLLOWS_EACH} authors; "
        "fan-out and renditions drained; every feed read once"
    )
    return readers


# --- gRPC client processes --------------------------------------------------------------------------


def _client_process(
    feed_addr: str,
    readers: list[Reader],
    commands: Queue[str | None],
    results: Queue[RoundResult],
    start: Barrier,
) -> None:
    """A gRPC client process: runs each round it is sent (a mode name) until sent None."""
    try:
        asyncio.run(_client_rounds(feed_addr, readers, commands, results, start))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops the benchmark
        results.put(RoundResult([], 0.0, 0.0, f"{type(exc).__name__}: {exc}"))
        start.abort()  # the parent may be waiting for this process at the barrier


async def _client_rounds(
    feed_addr: str,
    readers: list[Reader],
    commands: Queue[str | None],
    results: Queue[RoundResult],
    start: Barrier,
) -> None:
    async with grpc.aio.insecure_channel(feed_addr) as channel:
        feed, health = feed_pb2_grpc.FeedServiceStub(channel), health_pb2_grpc.HealthStub(channel)
        while (mode := await asyncio.to_thread(commands.get)) is not None:
            calls = [_caller(mode, feed, health, readers[lane::CALLERS_EACH]) for lane in range(CALLERS_EACH)]
            await asyncio.gather(*(_repeat(call, WARMUP_CALLS) for call in calls))
            await asyncio.to_thread(start.wait)
            cpu, started = time.process_time(), time.perf_counter()
            deadline = started + SECONDS
            lanes = await asyncio.gather(*(_until(call, deadline) for call in calls))
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            results.put(RoundResult([s for lane in lanes for s in lane], wall, cpu))


def _caller(
    mode: str, feed: feed_pb2_grpc.FeedServiceStub, health: health_pb2_grpc.HealthStub, readers: list[Reader]
) -> Callable[[], Awaitable[None]]:
    """One caller of `mode`: each call reads as the next of `readers`, round robin."""
    if mode == "direct":
        request = feed_pb2.GetHomeFeedRequest(page_size=PAGE_SIZE)
        metadata = itertools.cycle([as_caller(r.id) for r in readers])

        async def direct() -> None:
            await feed.GetHomeFeed(request, metadata=next(metadata))

        return direct
    check = health_pb2.HealthCheckRequest()

    async def empty() -> None:
        await health.Check(check)

    return empty


async def _repeat(call: Callable[[], Awaitable[None]], n: int) -> None:
    for _ in range(n):
        await call()


async def _until(call: Callable[[], Awaitable[None]], deadline: float) -> list[float]:
    """Calls back to back until `deadline` (closed loop); each call's latency."""
    seconds = []
    while (t := time.perf_counter()) < deadline:
        await call()
        seconds.append(time.perf_counter() - t)
    return seconds


# --- wrk ------------------------------------------------------------------------------------------


def wrk_program() -> str:
    """The path of wrk, installed from Debian's packages (apt-get, as root) when missing.

    Raises RuntimeError naming the command to run when it cannot be installed here.
    """
    found = shutil.which("wrk")
    if found:
        return found
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(f"this benchmark drives HTTP load with wrk; install it first: sudo {' '.join(install)}")
    print("  installing wrk (Debian package) ...")
    if subprocess.run(install, capture_output=True, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=True)
        subprocess.run(install, capture_output=True, check=True)
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("apt-get installed wrk but it is not on PATH")
    return found


@dataclass(frozen=True)
class Wrk:
    """wrk against the gateway at `url`, with the readers' tokens in `tokens` (one per line)."""

    program: str
    url: str
    tokens: Path
    no_tokens: Path
    folder: Path

    def run(self, mode: str, seconds: float) -> tuple[RoundResult, int]:
        """One closed-loop run of `mode` for `seconds`: the latencies, wrk's CPU, and the number of
        requests answered with anything but 2xx or lost to a socket error (the caller fails on any)."""
        output = self.folder / f"{mode}.latencies"
        tokens = self.tokens if mode == "gateway" else self.no_tokens
        connections = CLIENT_PROCESSES * CALLERS_EACH
        command = [
            self.program,
            f"-t{CLIENT_PROCESSES}",
            f"-c{connections}",
            f"-d{seconds:.0f}s",
            "--timeout=10s",
            "-s",
            str(WRK_SCRIPT),
            self.url,
            "--",
            str(tokens),
            HTTP_MODES[mode],
        ]
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, capture_output=True, check=True, env={**os.environ, "WRK_OUTPUT": str(output)})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)
        counts: dict[str, int] = {}
        latencies: list[float] = []
        for line in output.read_text().splitlines():
            name, value = line.split()
            if name.isdigit():
                latencies += [int(name) / 1e6] * int(value)
            else:
                counts[name] = int(value)
        failed = counts["not_2xx"] + counts["socket_errors"]
        return RoundResult(latencies, counts["duration_us"] / 1e6, cpu), failed


# --- the measurement --------------------------------------------------------------------------------


@dataclass
class ModeTotals:
    """One mode's rounds added up: latencies, timed wall, client CPU, CPU by process (cpu_seconds) and
    the gateway's rate-limit checks by outcome."""

    seconds: list[float] = field(default_factory=list)
    wall: float = 0.0
    client_cpu: float = 0.0
    used: dict[str, float] = field(default_factory=dict)
    limiter: dict[str, float] = field(default_factory=dict)

    def sample(self, mode: str) -> Sample:
        name, unit = NAMES[mode]
        return Sample(name, self.seconds, self.wall, len(self.seconds), unit)

    def add(self, result: RoundResult, before: dict[str, float], after: dict[str, float]) -> None:
        self.seconds += result.seconds
        self.wall += result.wall
        self.client_cpu += result.cpu
        _add_difference(self.used, before, after)


@dataclass(frozen=True)
class Clients:
    """The gRPC client processes' side of the conversation: one command queue each, shared results,
    start line."""

    commands: list[Queue[str | None]]
    results: Queue[RoundResult]
    start: Barrier


def _measure(stack: Stack, readers: list[Reader], wrk: Wrk) -> dict[str, ModeTotals]:
    """Runs ROUNDS (gRPC ones on CLIENT_PROCESSES processes started once, HTTP ones with wrk); totals
    per mode (walls add up over rounds)."""
    context = multiprocessing.get_context("spawn")
    clients = Clients(
        [context.Queue() for _ in range(CLIENT_PROCESSES)], context.Queue(), context.Barrier(CLIENT_PROCESSES + 1)
    )
    processes = [
        context.Process(
            target=_client_process,
            args=(
                stack.addr["feed_svc"],
                readers[n::CLIENT_PROCESSES],
                clients.commands[n],
                clients.results,
                clients.start,
            ),
        )
        for n in range(CLIENT_PROCESSES)
    ]
    for process in processes:
        process.start()
    totals = {mode: ModeTotals() for mode in NAMES}
    try:
        for mode in ROUNDS:
            checks = _limiter_checks(stack.gateway_url)
            if mode in HTTP_MODES:
                _wrk_round(mode, wrk, readers[0], stack.gateway_url, totals[mode])
            else:
                _grpc_round(mode, clients, totals[mode])
            _add_difference(totals[mode].limiter, checks, _limiter_checks(stack.gateway_url))
    finally:
        for queue in clients.commands:
            queue.put(None)
        for process in processes:
            process.join(timeout=30)
    return totals


def _grpc_round(mode: str, clients: Clients, totals: ModeTotals) -> None:
    """One timed round of `mode` on every gRPC client process at once, added to `totals`."""
    for queue in clients.commands:
        queue.put(mode)
    try:
        clients.start.wait(timeout=120)  # every client warmed up and connected
    except threading.BrokenBarrierError:
        raise RuntimeError(f"a client process failed: {clients.results.get(timeout=10).error}") from None
    before = cpu_seconds()
    rounds = [clients.results.get(timeout=SECONDS + 120) for _ in clients.commands]
    after = cpu_seconds()
    if failed := [r.error for r in rounds if r.error]:
        raise RuntimeError(f"a client process failed: {failed[0]}")
    merged = RoundResult(
        [s for r in rounds for s in r.seconds], max(r.wall for r in rounds), sum(r.cpu for r in rounds)
    )
    totals.add(merged, before, after)


def _wrk_round(mode: str, wrk: Wrk, reader: Reader, gateway_url: str, totals: ModeTotals) -> None:
    """A warm-up run, then one timed wrk run of `mode`, added to `totals`. RuntimeError, with what the
    gateway answered one reader, if any request failed."""
    wrk.run(mode, WRK_WARMUP_SECONDS)
    before = cpu_seconds()
    result, failed = wrk.run(mode, SECONDS)
    after = cpu_seconds()
    if failed:
        headers = {"Authorization": f"Bearer {reader.access_token}"}
        answer = httpx.get(gateway_url + HTTP_MODES[mode], headers=headers, timeout=30)
        raise RuntimeError(
            f"{failed} of wrk's {mode} requests failed; one now: {answer.status_code} {answer.text[:300]}"
        )
    totals.add(result, before, after)


def _add_difference(into: dict[str, float], before: dict[str, float], after: dict[str, float]) -> None:
    for name, value in after.items():
        into[name] = into.get(name, 0.0) + value - before.get(name, 0.0)


def _limiter_checks(gateway_url: str) -> dict[str, float]:
    """The gateway's rate-limit checks so far by outcome (allowed, failed_open...), from its /metrics."""
    counts: dict[str, float] = {}
    for line in httpx.get(f"{gateway_url}/metrics", timeout=30).text.splitlines():
        if line.startswith("glimpse_http_rate_limit_checks_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            counts[outcome] = counts.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def _report(totals: dict[str, ModeTotals], rss: str) -> None:
    samples = {mode: totals[mode].sample(mode) for mode in NAMES}
    print(
        f"Home feed, page of {PAGE_SIZE} (READY photos, 3 renditions each, engagement), {READERS} readers; "
        f"{CLIENT_PROCESSES * CALLERS_EACH} concurrent callers, closed loop, {SECONDS:.0f}s rounds; every "
        "service its own process; loopback; 2 cores"
    )
    for mode in NAMES:
        print(samples[mode].line())
    per_read = {mode: _cpu_per_read(mode, totals[mode]) for mode in ("direct", "gateway")}
    checks = totals["gateway"].limiter
    print(
        f"    rate-limit checks in the gateway rounds: {checks.get('allowed', 0):,.0f} made, "
        f"{checks.get('failed_open', 0):,.0f} skipped (Redis answer later than the limiter's deadline: fail open)"
    )
    direct, gateway = samples["direct"], samples["gateway"]
    share = gateway.rate / direct.rate if direct.rate else 0.0
    print(
        f"  => gateway {gateway.rate:,.0f} reads/s = {share:.0%} of direct {direct.rate:,.0f} reads/s "
        f"(overhead {1 - share:.0%} of throughput); p50 {gateway.percentile(50) * 1000:.1f} ms vs "
        f"{direct.percentile(50) * 1000:.1f} ms, p99 {gateway.percentile(99) * 1000:.1f} ms vs "
        f"{direct.percentile(99) * 1000:.1f} ms direct"
    )
    stack_cpu = {mode: sum(s for name, s in per_read[mode].items() if name in SERVER_SIDE) for mode in per_read}
    print(
        f"  => the stack's CPU per read: direct {stack_cpu['direct'] * 1000:.2f} ms, gateway "
        f"{stack_cpu['gateway'] * 1000:.2f} ms: where clients run elsewhere and the stack is CPU-bound, "
        f"gateway reads/s = {stack_cpu['direct'] / max(stack_cpu['gateway'], 1e-9):.0%} of direct"
    )
    # Deployed, each process has its own core(s). Its busiest process then bounds each path: feed_svc
    # (or engagement_svc) for direct reads, and the gateway too for gateway reads.
    direct_cap = 1 / max(max(per_read["direct"].get(name, 0.0) for name in STACK), 1e-9)
    gateway_cap = 1 / max(max(per_read["gateway"].get(name, 0.0) for name in STACK), 1e-9)
    print(
        f"  => derived, not measured: with a core per process (1 / CPU per read of the busiest one) direct "
        f"{direct_cap:,.0f} reads/s, gateway {gateway_cap:,.0f} reads/s = {gateway_cap / max(direct_cap, 1e-9):.0%}"
    )
    print(rss)
    met = "met" if share >= TARGET_SHARE else "NOT met"
    print(f"  target: gateway reads/s >= {TARGET_SHARE:.0%} of direct (overhead <= {1 - TARGET_SHARE:.0%}): {met}")


def _cpu_per_read(mode: str, totals: ModeTotals) -> dict[str, float]:
    """Prints where the CPU went in a mode's rounds; returns CPU seconds per read by process."""
    reads = max(1, len(totals.seconds))
    per_read = {name: seconds / reads for name, seconds in totals.used.items()}
    server = sum(seconds for name, seconds in per_read.items() if name in SERVER_SIDE)
    client = "wrk" if mode in HTTP_MODES else "the Python gRPC clients"
    print(cpu_report({}, totals.used, totals.wall, reads, "read").replace("CPU over", f"CPU, {mode} rounds, over"))
    print(
        f"    CPU per {mode} read: the stack's {server * 1000:.2f} ms (services + Redis), "
        f"{client}: {totals.client_cpu / reads * 1000:.2f} ms"
    )
    return per_read


def main() -> None:
    program = wrk_program()
    with (
        running_stack(STACK, **CHEAP_PASSWORDS, **NO_LIMITS) as stack,
        tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder,
    ):
        readers = asyncio.run(_prepare(stack))
        tokens, no_tokens = Path(folder, "tokens"), Path(folder, "no-tokens")
        tokens.write_text("".join(f"{r.access_token}\n" for r in readers))
        no_tokens.write_text("")
        totals = _measure(stack, readers, Wrk(program, stack.gateway_url, tokens, no_tokens, Path(folder)))
        rss = peak_rss_line()  # while the stack still runs (wrk has exited: a few MiB)
    _report(totals, rss)
