"""Post view: BatchGetFeedItems of one post (what `GET /v1/posts/{id}` asks) with the visibility check,
beside the same call without it, at 16 callers.

    python -m bench post_view

Issue 13: "Post view with the visibility check: p99 at 16 callers beside the same call before the
check." (It sets no ratio; the table prints the ratio and marks no target.)

Runs graph_svc, post_svc, media_svc, engagement_svc and feed_svc as processes (bench.stack) on a fresh
database, and a second feed process on the same data (`python -m bench.post_view`: feed_svc's own
host, hydration, engagement and encoding, with `Visibility.visible` answering "every author" without
asking graph_svc: the call as it was before issue 13). Both keep feed_svc's default caches; the
hydration cache is warm for every post before measuring (each post is read once per process).

Data (bulk-loaded, bench.feed_data): AUTHORS authors with one post each, half of them private;
VIEWERS viewers who follow every private author, so every view is allowed and both processes
answer the same item (checked before measuring), and the check reads a follow row for half the posts.
Viewer patterns of the checked process:
  cold   every call is a (viewer, author) pair never asked before in the run: the visibility cache
         (per viewer, visibility_cache_seconds) never has the answer; a private author's view is one
         CheckVisibility call to graph_svc, a public author's only until a second viewer asks (then
         the author's audience, read once, answers: the `visibility` package)
  warm   16 viewers x 20 posts, each asked once before every round: the answer is in the cache (as
         for a viewer scrolling and opening posts of the accounts they see)
Client: CLIENT_PROCESSES spawned processes x CONCURRENCY calls in flight = 16 callers, closed loop,
SECONDS per measurement; the methods alternate over ROUNDS rounds and the table takes each method's
median round by p99. Health/Check on the checked process at 16 callers is the empty call's floor.
Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import feed_data
from bench.feed_data import Step, Verdict, print_verdicts
from bench.feed_read import feed_process
from bench.stack import Stack, running_stack
from bench.stats import Sample, peak_rss_line
from feed_svc.app import feed_host
from feed_svc.service import FeedService
from feed_svc.settings import FeedSettings
from glimpse.feed.v1 import feed_pb2, feed_pb2_grpc
from mesh.entrypoint import run_service
from mesh.identity import as_caller
from mesh.ids import IdGenerator
from mesh.server import ServiceHost
from visibility import HomeFilters, Visibility

AUTHORS, VIEWERS = 200, 2000
WARM_VIEWERS, WARM_POSTS = 16, 20
CLIENT_PROCESSES, CONCURRENCY = 2, 8
SECONDS = 4.0
ROUNDS = 5
POST_SEQ = 0


# The unchecked feed process (python -m bench.post_view) ------------------------------------------


class UncheckedVisibility:
    """visibility.Visibility without the check: every author is visible to every viewer, and no call
    reaches graph_svc (the home feed's filters are still asked, as Visibility does)."""

    def __init__(self, checked: Visibility) -> None:
        self._checked = checked

    async def visible(self, viewer_id: int | None, author_ids: Sequence[int]) -> set[int]:
        return set(author_ids)

    async def home_filters(self, viewer_id: int) -> HomeFilters:
        return await self._checked.home_filters(viewer_id)


def _unchecked_service(*args: Any, visibility: Visibility, **kwargs: Any) -> FeedService:
    return FeedService(*args, visibility=UncheckedVisibility(visibility), **kwargs)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def unchecked_feed_host(settings: FeedSettings) -> AsyncIterator[ServiceHost]:
    async with feed_host(settings, make_service=_unchecked_service) as host:
        yield host


# Data -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Views:
    """The posts (one per author, in author order) and the viewers."""

    posts: list[int]
    viewers: list[int]


def load_data(stack: Stack) -> Views:
    ids = IdGenerator(4)
    authors = [ids.next_id() for _ in range(AUTHORS)]
    viewers = [ids.next_id() for _ in range(VIEWERS)]
    private = authors[::2]
    conn = feed_data.connect(stack.database_url)
    with conn:
        with Step(f"{AUTHORS} authors (half private), {VIEWERS:,} viewers following every private one"):
            feed_data.copy_users(conn, authors + viewers, "pv")
            conn.execute("UPDATE graph.users SET is_private = true WHERE id = ANY(%s)", (private,))
            feed_data.copy_follows(conn, ((v, a) for v in viewers for a in private))
            feed_data.set_follow_counts(conn, authors + viewers)
        with Step(f"{AUTHORS} posts and media; VACUUM ANALYZE"):
            feed_data.insert_posts(conn, authors, 1, POST_SEQ, days=30)
            conn.execute("VACUUM ANALYZE")
        newest = feed_data.newest_posts(conn, authors, 1)
    return Views([newest[a][0] for a in authors], viewers)


def cold_pairs(views: Views, first: int, count: int) -> list[tuple[int, int]]:
    """Views number first .. first+count-1 of a sequence in which no (viewer, post) pair repeats
    (while fewer than VIEWERS * AUTHORS views are asked) and a viewer's next view is of another post."""
    return [
        (views.viewers[k % VIEWERS], views.posts[(k // VIEWERS + k) % AUTHORS]) for k in range(first, first + count)
    ]


def warm_pairs(views: Views) -> list[tuple[int, int]]:
    return [(v, p) for v in views.viewers[:WARM_VIEWERS] for p in views.posts[:WARM_POSTS]]


# The load client (runs in CLIENT_PROCESSES spawned processes) -----------------------------------


@dataclass(frozen=True)
class Load:
    kind: str  # "view" | "health"
    target: str
    pairs: tuple[tuple[int, int], ...]  # (viewer, post), taken in turn by this process's callers
    seconds: float
    start_at: float  # time.time() at which every process starts measuring


def run_client(load: Load) -> tuple[list[float], int, int]:
    """Entry point of a client process: (latencies, errors, pairs used including warm-up)."""
    return asyncio.run(_client(load))


async def _client(load: Load) -> tuple[list[float], int, int]:
    async with grpc.aio.insecure_channel(load.target) as channel:
        feed = feed_pb2_grpc.FeedServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest()
        turn = 0
        latencies: list[float] = []
        errors = 0

        async def call() -> None:
            nonlocal turn
            if load.kind == "health":
                await health.Check(check)
                return
            viewer, post = load.pairs[turn % len(load.pairs)]
            turn += 1
            answer = await feed.BatchGetFeedItems(
                feed_pb2.BatchGetFeedItemsRequest(post_ids=[post]), metadata=as_caller(viewer)
            )
            if len(answer.items) != 1:
                raise RuntimeError(f"viewer {viewer} did not get post {post}")

        while time.time() < load.start_at - 0.02:  # warm-up: connect
            await call()
        await asyncio.sleep(max(0.0, load.start_at - time.time()))
        deadline = time.perf_counter() + load.seconds

        async def slot() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                try:
                    await call()
                except grpc.aio.AioRpcError:
                    errors += 1
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(slot() for _ in range(CONCURRENCY)))
        return latencies, errors, turn


def _ready() -> int:
    time.sleep(0.5)
    return multiprocessing.current_process().pid or 0


class Client:
    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self._pool = pool
        pids = {f.result() for f in [pool.submit(_ready) for _ in range(CLIENT_PROCESSES)]}
        if len(pids) != CLIENT_PROCESSES:
            raise RuntimeError(f"expected {CLIENT_PROCESSES} client processes, got {len(pids)}")

    def run(self, name: str, kind: str, target: str, pairs: Iterable[tuple[int, int]] = ()) -> tuple[Sample, int]:
        """Every process runs at once, each with its own share of `pairs`; (sample, pairs used)."""
        shared = list(pairs)
        share = max(1, len(shared) // CLIENT_PROCESSES)
        start_at = time.time() + 1.0
        loads = [
            Load(kind, target, tuple(shared[n * share : (n + 1) * share]) or ((0, 0),), SECONDS, start_at)
            for n in range(CLIENT_PROCESSES)
        ]
        results = [f.result() for f in [self._pool.submit(run_client, load) for load in loads]]
        errors = sum(r[1] for r in results)
        if errors:
            print(f"  ! {name}: {errors} calls failed")
        latencies = [s for r in results for s in r[0]]
        return Sample(name, latencies, SECONDS, len(latencies)), max(r[2] for r in results) * CLIENT_PROCESSES


# The benchmark ----------------------------------------------------------------------------------


async def _same_items(checked: str, unchecked: str, pairs: Sequence[tuple[int, int]]) -> None:
    """Both processes answer every pair with the same one item (and warm their caches doing it)."""
    async with grpc.aio.insecure_channel(checked) as one, grpc.aio.insecure_channel(unchecked) as other:
        stubs = [feed_pb2_grpc.FeedServiceStub(one), feed_pb2_grpc.FeedServiceStub(other)]
        semaphore = asyncio.Semaphore(16)

        async def view(viewer: int, post: int) -> None:
            async with semaphore:
                answers = [
                    await stub.BatchGetFeedItems(
                        feed_pb2.BatchGetFeedItemsRequest(post_ids=[post]), metadata=as_caller(viewer)
                    )
                    for stub in stubs
                ]
            if len(answers[0].items) != 1 or [a.items[0].id for a in answers] != [post, post]:
                raise RuntimeError(f"viewer {viewer}, post {post}: the two feed processes disagree")

        await asyncio.gather(*(view(v, p) for v, p in pairs))


def main() -> None:
    with (
        running_stack(["graph_svc", "post_svc", "media_svc", "engagement_svc", "feed_svc"]) as stack,
        ProcessPoolExecutor(CLIENT_PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        views = load_data(stack)
        with feed_process(stack, "feed_svc-unchecked", "bench.post_view", {}) as (unchecked, _pid):
            checked = stack.addr["feed_svc"]
            warm = warm_pairs(views)
            rng = random.Random(13)
            # Every post once through each process (hydration warm), then the warm pairs (cache filled);
            # the cold sequence starts past every pair asked here.
            with Step("every post and the warm pairs through both feed processes (same items?)"):
                asyncio.run(_same_items(checked, unchecked, rng.sample(cold_pairs(views, 0, AUTHORS), AUTHORS)))
                asyncio.run(_same_items(checked, unchecked, warm))
            client = Client(pool)
            samples: dict[str, list[Sample]] = {}
            cold_next = VIEWERS * WARM_POSTS  # past every pair asked while warming
            for _ in range(ROUNDS):
                runs = [
                    ("floor: Health/Check", "health", checked, warm),
                    ("without the check", "view", unchecked, warm),
                    ("with the check, warm cache", "view", checked, warm),
                    ("with the check, cold (every pair new)", "view", checked, None),
                ]
                # The warm pairs' answers are younger than visibility_cache_seconds when their round starts.
                asyncio.run(_same_items(checked, unchecked, warm))
                for name, kind, target, pairs in runs:
                    sample, used = client.run(name, kind, target, pairs or cold_pairs(views, cold_next, 40_000))
                    if pairs is None:
                        cold_next += used
                    samples.setdefault(name, []).append(sample)
            print(peak_rss_line())
        _report(samples)


def _median_by_p99(runs: list[Sample]) -> Sample:
    return sorted(runs, key=lambda s: s.percentile(99))[len(runs) // 2]


def _report(samples: dict[str, list[Sample]]) -> None:
    print(
        f"post view: BatchGetFeedItems of one post with the viewer's x-user-id, {CLIENT_PROCESSES * CONCURRENCY} "
        f"callers ({CLIENT_PROCESSES} processes x {CONCURRENCY}), closed loop, {SECONDS:.0f}s x {ROUNDS} rounds"
    )
    chosen = {name: _median_by_p99(runs) for name, runs in samples.items()}
    for name, runs in samples.items():
        print(f"  rounds of {name}: p99 " + ", ".join(f"{s.percentile(99) * 1000:.1f}" for s in runs) + " ms")
    for sample in chosen.values():
        print(sample.line())
    floor, before, warm, cold = chosen.values()
    rows = [
        Verdict(
            f"post view p99 (p50) at 16 callers, {name}",
            f"p99 {s.percentile(99) * 1000:.1f} ms (p50 {s.percentile(50) * 1000:.1f}; {s.rate:,.0f}/s)",
            f"without the check p99 {before.percentile(99) * 1000:.1f} ms "
            f"(p50 {before.percentile(50) * 1000:.1f}; {before.rate:,.0f}/s)",
            f"{s.percentile(99) / before.percentile(99):.2f}x ({s.percentile(50) / before.percentile(50):.2f}x)",
            "(issue 13 sets no ratio)",
            None,
        )
        for name, s in (("check, warm cache", warm), ("check, cold cache", cold))
    ]
    rows.append(
        Verdict(
            "post view without the check, p99",
            f"p99 {before.percentile(99) * 1000:.1f} ms",
            f"Health/Check p99 {floor.percentile(99) * 1000:.1f} ms ({floor.rate:,.0f}/s)",
            f"{before.percentile(99) / floor.percentile(99):.1f}x empty",
            "(reference)",
            None,
        )
    )
    print_verdicts("post view", rows)


if __name__ == "__main__":
    run_service(
        "bench.post_view",
        "feed_svc without the visibility check on BatchGetFeedItems (bench post_view)",
        FeedSettings,
        unchecked_feed_host,
    )
