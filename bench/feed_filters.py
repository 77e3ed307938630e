"""Home feed for a reader who blocks 50 accounts and mutes 50, beside the same feed for a reader with none.

    python -m bench feed_filters

Issue 13's target: the cost per page (1 / max rate, and CPU per page) of GetHomeFeed for a reader
who blocks and mutes 50 accounts is <= 1.2x that of a reader with none.

Runs graph_svc, post_svc, media_svc, engagement_svc and feed_svc as processes (bench.stack) on a fresh
database; hydration and celebrity caches kept for 15 minutes as in bench.feed_read, the visibility
cache (each reader's blocks and mutes: visibility.Visibility.home_filters) at feed_svc's default
(FeedSettings.visibility_cache_seconds). A second feed process with that cache off
(GLIMPSE_VISIBILITY_CACHE_SECONDS=0: one GetViewerFilters call per page) shows the filter's whole
price. Bulk-loaded (bench.feed_data): AUTHORS authors with POSTS_PER_AUTHOR posts each, and
READERS readers in each of three groups; reader i of every group follows the same 250 authors:
  plain     no blocks, no mutes; inbox as the fan-out leaves it (the followees' newest posts)
  filtered  mutes 50 of those followees (a mute keeps the follow) and blocks 50 other authors; inbox
            as the fan-out leaves it: without the muted authors' posts (FilterAudience at push time,
            purge on mute)
  unpurged  the filtered reader's blocks and mutes, but an inbox still holding the muted authors'
            posts (a push that raced the mute, a purge not done yet): the read-time guard drops them,
            a fifth of the candidates
Every reader's first page is read once per feed process before measuring (caches warm, full pages,
and no post by a blocked or muted author in any page of the filtered and unpurged readers).

The client is bench.feed_read's: 2 spawned processes x 8 calls in flight (16 callers), closed loop,
4 s per measurement; groups alternate over ROUNDS rounds. CPU per page is summed over the stack's
processes and the PostgreSQL backends (not the shared Redis, nor the client): the cost the target is
read on, since the wall time per page at saturation (1 / max rate, printed beside it) moves with
whatever else runs on the machine. Each ratio is the median over rounds of the ratio to the plain
reader measured in the same round.
Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import grpc
import psycopg

from bench import feed_data
from bench.feed_data import Step, Verdict, print_verdicts
from bench.feed_read import PAGE, Client, CpuMeter, Measured, describe_client, feed_process
from bench.stack import Stack, running_stack
from bench.stats import peak_rss_line
from glimpse.feed.v1 import feed_pb2, feed_pb2_grpc
from mesh.identity import as_caller
from mesh.ids import IdGenerator

CELEBRITY_THRESHOLD = 10_000
CACHE_SECONDS = "900"
FEED_MAX = 800
AUTHORS, POSTS_PER_AUTHOR = 600, 40
READERS = 100  # per group
FOLLOWS, MUTES, BLOCKS = 250, 50, 50
ROUNDS = 5
POST_SEQ = 0
TARGET_COST_RATIO = 1.2
# The stack's processes whose CPU counts as the cost of a page (the client's does not).
SERVER_SIDE = ("graph_svc", "post_svc", "media_svc", "engagement_svc", "feed_svc", "PostgreSQL")


@dataclass(frozen=True)
class Groups:
    plain: list[int]
    filtered: list[int]
    unpurged: list[int]
    hidden: dict[int, set[int]]  # filtered or unpurged reader -> the authors they block or mute


def main() -> None:
    with (
        running_stack(
            ["graph_svc", "post_svc", "media_svc", "engagement_svc", "feed_svc"],
            celebrity_threshold=str(CELEBRITY_THRESHOLD),
            hydration_cache_seconds=CACHE_SECONDS,
            celebrity_cache_seconds=CACHE_SECONDS,
        ) as stack,
        ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        groups = load_data(stack)
        with feed_process(stack, "feed_svc-nocache", "feed_svc", {"GLIMPSE_VISIBILITY_CACHE_SECONDS": "0"}) as (
            uncached,
            uncached_pid,
        ):
            ours = stack.addr["feed_svc"]
            with Step("first page of every reader from both feed processes (caches warm; full pages; hidden?)"):
                for addr in (ours, uncached):
                    asyncio.run(_warm(addr, groups))
            processes = {name: [child.pid] for name, child in stack.running.items()}
            processes["feed_svc"].append(uncached_pid)  # only one of the two serves at a time
            meter = CpuMeter(processes, stack.database_url)
            try:
                client = Client(pool, meter)
                print(describe_client())
                cached = _rounds(client, ours, groups, "")
                bare = _rounds(client, uncached, groups, ", filters uncached")
            finally:
                meter.close()
            print(peak_rss_line({"GLIMPSE_VISIBILITY_CACHE_SECONDS=0": "visibility cache off"}))
        _report(cached, bare)


def load_data(stack: Stack) -> Groups:
    """Authors and their posts, the three reader groups with their follows, blocks and mutes (SQL),
    then the authors' outboxes and the readers' inboxes (Redis)."""
    ids = IdGenerator(3)
    rng = random.Random(13)
    authors = [ids.next_id() for _ in range(AUTHORS)]
    plain, filtered, unpurged = ([ids.next_id() for _ in range(READERS)] for _ in range(3))
    follows, mutes, blocks = [], [], []
    chosen: list[tuple[list[int], list[int], list[int]]] = []
    for n in range(READERS):
        picked = rng.sample(authors, FOLLOWS + BLOCKS)
        followed, muted, blocked = picked[:FOLLOWS], picked[:MUTES], picked[FOLLOWS:]
        chosen.append((followed, muted, blocked))
        for reader in (plain[n], filtered[n], unpurged[n]):
            follows += [(reader, a) for a in followed]
        for reader in (filtered[n], unpurged[n]):
            mutes += [(reader, a) for a in muted]
            blocks += [(reader, a) for a in blocked]
    conn = feed_data.connect(stack.database_url)
    with conn:
        with Step(f"{AUTHORS} authors, {3 * READERS} readers following {FOLLOWS} each; blocks and mutes"):
            feed_data.copy_users(conn, authors + plain + filtered + unpurged, "ff")
            feed_data.copy_follows(conn, follows)
            feed_data.set_follow_counts(conn, authors + plain + filtered + unpurged)
            _copy_pairs(conn, "graph.mutes (muter_id, muted_id)", mutes)
            _copy_pairs(conn, "graph.blocks (blocker_id, blocked_id)", blocks)
        with Step(f"{AUTHORS * POSTS_PER_AUTHOR:,} posts and media; VACUUM ANALYZE"):
            feed_data.insert_posts(conn, authors, POSTS_PER_AUTHOR, POST_SEQ, days=60)
            conn.execute("VACUUM ANALYZE")
        newest = feed_data.newest_posts(conn, authors, FEED_MAX)
    inboxes: dict[int, list[int]] = {}
    hidden: dict[int, set[int]] = {}
    for n, (followed, muted, blocked) in enumerate(chosen):
        everything = feed_data.merged_inbox(followed, newest, FEED_MAX)
        kept = set(followed) - set(muted)
        inboxes[plain[n]] = everything
        inboxes[filtered[n]] = feed_data.merged_inbox([a for a in followed if a in kept], newest, FEED_MAX)
        inboxes[unpurged[n]] = everything
        hidden[filtered[n]] = hidden[unpurged[n]] = set(muted) | set(blocked)
    with Step(f"{len(inboxes)} inboxes into Redis"):
        asyncio.run(_write_inboxes(stack.namespace, inboxes))
    return Groups(plain, filtered, unpurged, hidden)


def _copy_pairs(conn: psycopg.Connection, table: str, pairs: Sequence[tuple[int, int]]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
        for pair in pairs:
            copy.write_row(pair)


async def _write_inboxes(namespace: str, inboxes: dict[int, list[int]]) -> None:
    timelines = feed_data.make_timelines(namespace)
    try:
        await feed_data.build_inboxes(timelines, inboxes)
    finally:
        await timelines.redis.aclose()


async def _warm(addr: str, groups: Groups) -> None:
    """Reads every reader's first page once; RuntimeError for a short page or a hidden author's post."""
    async with grpc.aio.insecure_channel(addr) as channel:
        feed = feed_pb2_grpc.FeedServiceStub(channel)
        semaphore = asyncio.Semaphore(16)
        problems: list[str] = []

        async def read(reader: int) -> None:
            async with semaphore:
                page = await feed.GetHomeFeed(feed_pb2.GetHomeFeedRequest(page_size=PAGE), metadata=as_caller(reader))
            if len(page.items) < PAGE:
                problems.append(f"reader {reader}: {len(page.items)} items")
            leaked = {item.author.id for item in page.items} & groups.hidden.get(reader, set())
            if leaked:
                problems.append(f"reader {reader}: posts by hidden authors {sorted(leaked)}")

        await asyncio.gather(*(read(r) for r in groups.plain + groups.filtered + groups.unpurged))
    if problems:
        raise RuntimeError(f"{addr}: " + "; ".join(problems[:5]))


def _rounds(client: Client, addr: str, groups: Groups, note: str) -> dict[str, list[Measured]]:
    """Every group's measurement in each round (the groups alternate within a round)."""
    named = {
        f"plain reader{note}": groups.plain,
        f"50 blocks + 50 mutes{note}": groups.filtered,
        f"50 + 50, unpurged inbox{note}": groups.unpurged,
    }
    runs: dict[str, list[Measured]] = {name: [] for name in named}
    for _ in range(ROUNDS):
        for name, readers in named.items():
            runs[name].append(client.run(f"GetHomeFeed, {name}", "feed", addr, readers))
    for name, measured in runs.items():
        rates = ", ".join(f"{m.sample.rate:,.0f}" for m in measured)
        cpu = ", ".join(f"{_server_cpu_us(m):,.0f}" for m in measured)
        print(f"  rounds of {name}: {rates} pages/s; server CPU per page {cpu} us")
    return runs


def _server_cpu_us(measured: Measured) -> float:
    return sum(measured.per_call_us(name) for name in SERVER_SIDE)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _report(cached: dict[str, list[Measured]], bare: dict[str, list[Measured]]) -> None:
    print(
        "GetHomeFeed, page 20, hydrated, with engagement; 16 callers, closed loop; "
        "feed_svc with its visibility cache at the default, then with it off; each group's median round:"
    )
    for runs in [*cached.values(), *bare.values()]:
        middle = sorted(runs, key=lambda m: m.sample.rate)[len(runs) // 2]
        print(middle.sample.line())
        print(middle.cpu_line())
    rows = []
    for table, cache in ((cached, "cached filters"), (bare, "filters asked per page")):
        plain, filtered, unpurged = table.values()
        for name, runs in (("50 blocks + 50 mutes", filtered), ("50 + 50, unpurged inbox", unpurged)):
            # Each round's ratio to the plain reader measured next to it, then the median: a load
            # that comes and goes between rounds moves both sides of a ratio alike.
            wall = _median([p.sample.rate / m.sample.rate for m, p in zip(runs, plain, strict=True)])
            cpu = _median([_server_cpu_us(m) / _server_cpu_us(p) for m, p in zip(runs, plain, strict=True)])
            target = table is cached and runs is filtered
            rows.append(
                Verdict(
                    f"cost per page, {name} ({cache})",
                    f"CPU {_median([_server_cpu_us(m) for m in runs]):,.0f} us, "
                    f"wall {_median([1e6 / m.sample.rate for m in runs]):,.0f} us",
                    f"plain reader CPU {_median([_server_cpu_us(p) for p in plain]):,.0f} us, "
                    f"wall {_median([1e6 / p.sample.rate for p in plain]):,.0f} us",
                    f"CPU {cpu:.2f}x, wall {wall:.2f}x",
                    f"CPU <= {TARGET_COST_RATIO}x" if target else "(informative)",
                    cpu <= TARGET_COST_RATIO if target else None,
                )
            )
    print(
        "  cost per page: CPU = server side (stack + PostgreSQL) per page; wall = 1 / max rate at 16 callers, "
        "which on a shared machine moves with the neighbours' load; ratios: median over rounds of each "
        "round's ratio. The target is read on CPU."
    )
    print_verdicts("home feed with blocks and mutes", rows)
