"""Ranked home feed and explore (issue 15): the ranked page beside the chronological page for the same
readers in the same run, and explore pages beside an empty gRPC call.

    flock /tmp/glimpse-bench.lock make bench BENCH=ranked_feed

Runs graph_svc, post_svc, media_svc, engagement_svc and feed_svc as processes (bench.stack) on a fresh
database. Bulk-loaded (SQL and Redis, not through the services): 16 readers who each follow the same
500 accounts with 2 posts each over the last 2 days (their outboxes and the readers' live inboxes of
800 built as the fan-out would); each reader has affinity with 50 of them (feed_svc.signals, as its
consumer writes it from likes). 500 more authors, followed by nobody, have 4 posts each over the last
day, every one trending with 5 to 60 interactions (written with SignalStore.interact, one call per
post). Engagement counts come from engagement_svc's counter rows, none loaded: its reads are the same
index lookups with or without rows. feed_svc keeps hydration, visibility and celebrity caches for 15
minutes, so every figure reads warm caches (each reader's pages are read once before measuring).

Figures, from this process over one loopback channel, one caller at a time (p50/p99) and 16 callers
at once (rate), targets printed beside them, never asserted:
  floor      grpc.health.v1.Health/Check on feed_svc's channel
  chrono     GetHomeFeed, 20 items, newest first
  ranked 1   GetHomeFeed order=RANKED, a first page: ranks the newest 200 candidates (hydration of
             200, their like, comment and save counts, affinity from Redis, score, diversify, freeze;
             the page's own engagement): counts for ranking reused for 10 s in process (the default),
             which readers of the same authors share (here every reader has the same candidates); the
             rest from the engagement cache (engagement_cache) in Redis
  ranked 1, counts from the engagement cache   the same against a feed_svc process on the same data
             with GLIMPSE_RANKING_COUNTS_CACHE_SECONDS=0: every first page reads 200 posts' counts from the
             engagement cache in Redis (what a process sees when its in-process counts have expired)
  ranked 1 uncached   the same against another feed_svc process on the same data with
             GLIMPSE_RANKING_COUNTS_CACHE_SECONDS=0 and GLIMPSE_ENGAGEMENT_CACHE=false: every first page
             asks engagement_svc for 200 posts' engagement (2 BatchGetEngagement calls)
  ranked n   a later page of a ranked sequence (a slice of the frozen ranking, 20 items)
  explore 1  GetExploreFeed, a first page: the 500 heaviest trending posts, filtered, frozen
  explore n  a later explore page
Ratios: ranked first page / chrono (cached and uncached counts), and a 3-page ranked sequence per
page / chrono (target <= 2x), at one caller (p50) and at 16 callers (rate). Then every process's
peak RSS.

Measured (2 shared cores, other work on the machine; 2026-11-30 16:15 UTC, 665b55a: uvloop, counts
for ranking in an ExpiringMap, rank_posts): one caller p50 chrono 2.73 ms, ranked first page 4.60 ms
(1.68x; counts from the engagement cache 2.15x; uncached 4.60x), a 3-page ranked sequence 1.09x per
page; at 16 callers 1/rate 1.85x (from the engagement cache 2.65x, uncached 4.20x), the sequence
1.27x. Before e46f39d (14:20 UTC, a faster machine): 1.72x and 2.37x. Explore: a first page 144/s at
16 callers (8% of the empty call's rate), a later page 717/s. feed_svc peak RSS 99 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.create_post import at_once
from bench.feed_data import (
    build_inboxes,
    build_outboxes,
    connect,
    copy_follows,
    copy_users,
    insert_posts,
    make_timelines,
    merged_inbox,
    newest_posts,
    set_follow_counts,
)
from bench.feed_read import feed_process
from bench.stack import Stack, running_stack
from bench.stats import Sample, empty_call_floor, peak_rss_line, time_calls
from feed_svc.signals import SignalStore
from glimpse.feed.v1 import feed_pb2, feed_pb2_grpc
from mesh.config import MeshSettings
from mesh.identity import as_caller
from mesh.ids import timestamp_ms
from mesh.redis_client import connect_redis

CALLERS = 16
READERS = list(range(1, CALLERS + 1))
FOLLOWEES = list(range(1001, 1501))
TRENDING_AUTHORS = list(range(2001, 2501))
PAGE = 20
ONE_CALLER_CALLS, LANE_CALLS = 400, 60
TARGET_RATIO = 2.0
MIN_INTERACTIONS = 5
CACHE_SECONDS = "900"


def _load(stack: Stack) -> None:
    with connect(stack.database_url) as conn:
        copy_users(conn, READERS, "reader")
        copy_users(conn, FOLLOWEES, "followee")
        copy_users(conn, TRENDING_AUTHORS, "trending")
        copy_follows(conn, ((r, f) for r in READERS for f in FOLLOWEES))
        set_follow_counts(conn, READERS + FOLLOWEES)
        insert_posts(conn, FOLLOWEES, 2, first_seq=1, days=2)
        insert_posts(conn, TRENDING_AUTHORS, 4, first_seq=10_001, days=1)
        newest = newest_posts(conn, FOLLOWEES, 200)
        trending = newest_posts(conn, TRENDING_AUTHORS, 4)
    asyncio.run(_redis(stack, newest, trending))


async def _redis(stack: Stack, newest: dict[int, list[int]], trending: dict[int, list[int]]) -> None:
    """Outboxes, live inboxes, affinity and the trending state, as fanout_svc and feed_svc's consumer
    would have written them (one event loop: the Redis client belongs to the loop it was made in)."""
    url = stack.env.get("GLIMPSE_REDIS_URL") or MeshSettings().redis_url
    timelines = make_timelines(stack.namespace, url)
    await build_outboxes(timelines, newest)
    await build_inboxes(timelines, {r: merged_inbox(FOLLOWEES, newest, 800) for r in READERS})
    redis = connect_redis(url)
    signals = SignalStore(redis, stack.namespace, min_interactions=MIN_INTERACTIONS)
    rng = random.Random(15)
    event_id = 1
    for reader in READERS:
        for author in rng.sample(FOLLOWEES, 50):
            await signals.add_affinity(event_id, _now_ms(), reader, author, rng.uniform(1, 20))
            event_id += 1
    for author, posts in trending.items():
        for post in posts:
            n = rng.randint(MIN_INTERACTIONS, 60)
            at = timestamp_ms(post) + rng.randint(0, 3_600_000)
            await signals.interact(event_id, min(at, _now_ms()), post, author, timestamp_ms(post), n, float(n))
            event_id += 1
    top = await signals.trending(10)
    if len(top) < 10:
        raise RuntimeError(f"the trending state holds {len(top)} posts after the load")
    await redis.aclose()


def _now_ms() -> int:
    return int(time.time() * 1000)


Call = Callable[[], Awaitable[object]]


async def _measure(stack: Stack, shared_addr: str, uncached_addr: str) -> None:
    async with (
        grpc.aio.insecure_channel(stack.addr["feed_svc"]) as channel,
        grpc.aio.insecure_channel(shared_addr) as shared_channel,
        grpc.aio.insecure_channel(uncached_addr) as uncached_channel,
    ):
        feed = feed_pb2_grpc.FeedServiceStub(channel)
        shared = feed_pb2_grpc.FeedServiceStub(shared_channel)
        uncached = feed_pb2_grpc.FeedServiceStub(uncached_channel)
        chrono = feed_pb2.GetHomeFeedRequest(page_size=PAGE)
        ranked = feed_pb2.GetHomeFeedRequest(page_size=PAGE, order=feed_pb2.FEED_ORDER_RANKED)
        explore = feed_pb2.GetExploreFeedRequest(page_size=PAGE)
        ranked_tokens: dict[int, str] = {}
        explore_tokens: dict[int, str] = {}
        for reader in READERS:  # warm every cache, and keep a later-page token per reader
            metadata = as_caller(reader)
            for _ in range(2):
                await feed.GetHomeFeed(chrono, metadata=metadata)
                first = await feed.GetHomeFeed(ranked, metadata=metadata)
                found = await feed.GetExploreFeed(explore, metadata=metadata)
                await shared.GetHomeFeed(ranked, metadata=metadata)
                await uncached.GetHomeFeed(ranked, metadata=metadata)
            if len(first.items) != PAGE or not first.next_page_token:
                raise RuntimeError(f"reader {reader}'s ranked page has {len(first.items)} items and no next page")
            if len(found.items) != PAGE or not found.next_page_token:
                raise RuntimeError(f"reader {reader}'s explore page has {len(found.items)} items and no next page")
            ranked_tokens[reader] = first.next_page_token
            explore_tokens[reader] = found.next_page_token

        def home(request: feed_pb2.GetHomeFeedRequest, reader: int, token: str = "") -> Call:
            if token:
                request = feed_pb2.GetHomeFeedRequest(
                    page_size=PAGE, page_token=token, order=feed_pb2.FEED_ORDER_RANKED
                )
            metadata = as_caller(reader)
            return lambda: feed.GetHomeFeed(request, metadata=metadata)

        def discover(reader: int, token: str = "") -> Call:
            request = feed_pb2.GetExploreFeedRequest(page_size=PAGE, page_token=token)
            metadata = as_caller(reader)
            return lambda: feed.GetExploreFeed(request, metadata=metadata)

        def rotating(make: Callable[[int], Call]) -> Call:
            calls = [make(r) for r in READERS]
            index = iter(range(10**9))
            return lambda: calls[next(index) % len(calls)]()

        kinds: dict[str, Callable[[int], Call]] = {
            "chrono: GetHomeFeed, 20 items": lambda r: home(chrono, r),
            "ranked 1: first page (ranks 200)": lambda r: home(ranked, r),
            "ranked 1 uncached: counts read every time": lambda r: (
                lambda: uncached.GetHomeFeed(ranked, metadata=as_caller(r))
            ),
            "ranked 1, counts from the engagement cache": lambda r: (
                lambda: shared.GetHomeFeed(ranked, metadata=as_caller(r))
            ),
            "ranked n: a later page": lambda r: home(ranked, r, ranked_tokens[r]),
            "explore 1: first page": lambda r: discover(r),
            "explore n: a later page": lambda r: discover(r, explore_tokens[r]),
        }
        one: dict[str, Sample] = {"floor": await empty_call_floor(channel, ONE_CALLER_CALLS)}
        for name, make in kinds.items():
            one[name] = await time_calls(name, rotating(make), ONE_CALLER_CALLS)
        health = health_pb2_grpc.HealthStub(channel)
        check = health_pb2.HealthCheckRequest()
        many: dict[str, Sample] = {
            "floor": await at_once(
                "floor: empty call (Health/Check)", [(lambda: health.Check(check), LANE_CALLS * 4) for _ in READERS]
            )
        }
        for name, make in kinds.items():
            many[name] = await at_once(name, [(make(r), LANE_CALLS) for r in READERS])
    print("  one caller, one call at a time (rotating over the 16 readers):")
    for sample in one.values():
        print(sample.line())
    print(f"  {CALLERS} callers at once, one reader each:")
    for sample in many.values():
        print(sample.line())
    _verdict(one, many)
    print(
        peak_rss_line(
            {"GLIMPSE_ENGAGEMENT_CACHE=false": "uncached", "GLIMPSE_ENGAGEMENT_CACHE=true": "counts from the cache"}
        )
    )


def _verdict(one: dict[str, Sample], many: dict[str, Sample]) -> None:
    names = list(one)
    chrono, first, first_uncached, first_shared, later, explore_first = names[1:7]

    def per_page_sequence(samples: dict[str, Sample], cost: Callable[[Sample], float]) -> float:
        return (cost(samples[first]) + 2 * cost(samples[later])) / 3

    def p50(sample: Sample) -> float:
        return sample.percentile(50)

    def per_call(sample: Sample) -> float:
        return 1 / sample.rate

    for label, samples, cost in (("one caller, p50", one, p50), (f"{CALLERS} callers, 1/rate", many, per_call)):
        base = cost(samples[chrono])
        first_ratio = cost(samples[first]) / base
        uncached_ratio = cost(samples[first_uncached]) / base
        shared_ratio = cost(samples[first_shared]) / base
        sequence_ratio = per_page_sequence(samples, cost) / base
        print(
            f"  {label}: ranked first page {first_ratio:.2f}x the chronological page "
            f"({'OK' if first_ratio <= TARGET_RATIO else 'ABOVE TARGET'}; counts from the engagement cache "
            f"{shared_ratio:.2f}x: {'OK' if shared_ratio <= TARGET_RATIO else 'ABOVE TARGET'}; counts uncached "
            f"{uncached_ratio:.2f}x), a 3-page ranked sequence {sequence_ratio:.2f}x per page "
            f"(target <= {TARGET_RATIO:g}x): {'OK' if sequence_ratio <= TARGET_RATIO else 'ABOVE TARGET'}"
        )
    print(
        f"  explore first page {many[explore_first].rate:,.0f}/s at {CALLERS} callers = "
        f"{100 * many[explore_first].rate / many['floor'].rate:.0f}% of the empty call's rate; p50 "
        f"{one[explore_first].percentile(50) * 1000:.2f} ms vs floor {one['floor'].percentile(50) * 1000:.3f} ms"
    )


def _without_process_counts(
    stack: Stack, name: str, *, engagement_cache: bool
) -> contextlib.AbstractContextManager[tuple[str, int]]:
    """Another feed_svc on the same data that keeps no ranking counts in process, reading them
    through the engagement cache or (engagement_cache False) from engagement_svc every time."""
    env = {"GLIMPSE_RANKING_COUNTS_CACHE_SECONDS": "0", "GLIMPSE_ENGAGEMENT_CACHE": str(engagement_cache).lower()}
    return feed_process(stack, name, "feed_svc", env)


def main() -> None:
    processes = ["graph_svc", "post_svc", "media_svc", "engagement_svc", "feed_svc"]
    settings = {
        "hydration_cache_seconds": CACHE_SECONDS,
        "celebrity_cache_seconds": CACHE_SECONDS,
        "visibility_cache_seconds": CACHE_SECONDS,
        "explore_min_interactions": str(MIN_INTERACTIONS),
    }
    with running_stack(processes, **settings) as stack:
        _load(stack)
        with (
            _without_process_counts(stack, "feed_svc-cache", engagement_cache=True) as (shared_addr, _),
            _without_process_counts(stack, "feed_svc-uncached", engagement_cache=False) as (uncached_addr, _),
        ):
            asyncio.run(_measure(stack, shared_addr, uncached_addr))


if __name__ == "__main__":
    main()
