"""User search: SearchUsers over 100k users with one-typo queries, beside an exact-match lookup.

    flock /tmp/glimpse-bench.lock make bench BENCH=search

Runs graph_svc as its own process (bench.stack) on a fresh database holding 100,000 users with
made-up names (syllables: "kalimo.renasu", "Kalimo Renasu" as display name, some with digits or
initials) and follower counts on a power law (rank r has 2M / r^1.1), COPYed straight into
graph.users; the trigram indexes are built once after the load, as the migration defines them.

Queries: for 2,000 users drawn at random, their username with one edit (a letter deleted, inserted or
replaced, at random), with two such edits, and as typed so far (the first 4 characters: a prefix
that many names share). Every call is one caller, one call at a time, over loopback gRPC.

Figures (targets printed beside them, never asserted):
  1  latency: Health/Check (the floor of any call), LookupUser by exact username (the username's
     btree: the exact-match floor), then SearchUsers page 20 for the exact username, one-typo,
     two-typo and 4-character prefix queries
  2  quality: of the typo queries, the share whose intended user comes first, and on the first page
  3  the plan of one one-typo query (EXPLAIN ANALYZE of the statement graph_svc runs)
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import psycopg

from bench import feed_data
from bench.feed_data import Step, Verdict, print_verdicts
from bench.stack import Stack, running_stack
from bench.stats import Sample, empty_call_floor, peak_rss_line, time_calls
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc import repository

USERS = 100_000
QUERIES = 2_000
CALLS = 2_000
PAGE = 20
PREFIX_LENGTH = 4
# Generated ids start here: far below any minted id.
BASE_ID = 1 << 40
PLAN_LINES = 16

TARGET_P99 = 0.020  # seconds: an interactive search box (keystroke to results) has ~100 ms in all
TARGET_FIRST = 0.90  # one-typo queries whose intended user comes first

_CONSONANTS = "bcdfghjklmnprstvz"
_VOWELS = "aeiou"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Person:
    id: int
    username: str
    display_name: str
    follower_count: int


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables))


def people(n: int, seed: int = 15) -> list[Person]:
    """`n` users with unique usernames in a few common shapes, and power-law follower counts."""
    rng = random.Random(seed)
    firsts = sorted({_word(rng, rng.choice((2, 3))) for _ in range(3000)})
    lasts = sorted({_word(rng, rng.choice((2, 3, 4))) for _ in range(8000)})
    ranks = list(range(1, n + 1))
    rng.shuffle(ranks)
    seen: set[str] = set()
    out: list[Person] = []
    while len(out) < n:
        first, last = rng.choice(firsts), rng.choice(lasts)
        shape = rng.random()
        if shape < 0.4:
            username = f"{first}.{last}"
        elif shape < 0.6:
            username = f"{first}{last}"
        elif shape < 0.8:
            username = f"{first}_{last[0]}{rng.randrange(100)}"
        else:
            username = f"{last}{rng.randrange(1000)}"
        if username in seen or len(username) > 30:
            continue
        seen.add(username)
        rank = ranks[len(out)]
        out.append(Person(BASE_ID + len(out), username, f"{first.title()} {last.title()}", int(2e6 / rank**1.1)))
    return out


def typo(rng: random.Random, name: str) -> str:
    """`name` with one letter deleted, inserted or replaced (one edit), never the same name."""
    while True:
        i = rng.randrange(len(name))
        kind = rng.choice(("delete", "insert", "replace"))
        if kind == "delete" and len(name) > 3:
            changed = name[:i] + name[i + 1 :]
        elif kind == "insert":
            changed = name[:i] + rng.choice(_LETTERS) + name[i:]
        else:
            changed = name[:i] + rng.choice(_LETTERS) + name[i + 1 :]
        if changed != name:
            return changed


def load(stack: Stack, users: list[Person]) -> None:
    copy_sql = "COPY graph.users (id, username, email, password_hash, display_name, follower_count) FROM STDIN"
    with (
        feed_data.connect(stack.database_url) as conn,
        Step(f"{len(users):,} users (COPY), their trigram indexes built after the load"),
    ):
        deferred = feed_data.drop_secondary_indexes(conn, ["graph.users"])
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for p in users:
                copy.write_row(
                    (p.id, p.username, f"{p.username}@bench.glimpse.dev", "-", p.display_name, p.follower_count)
                )
        feed_data.create_indexes(conn, deferred)
        conn.execute("ANALYZE graph.users")


def _cycling(call: Callable[[str], Awaitable[object]], queries: list[str]) -> Callable[[], Awaitable[object]]:
    turn = iter(queries * (CALLS // len(queries) + 1))
    return lambda: call(next(turn))


async def measure(addr: str, queries: dict[str, list[str]]) -> list[Sample]:
    async with grpc.aio.insecure_channel(addr) as channel:
        graph = graph_pb2_grpc.GraphServiceStub(channel)

        async def search(query: str) -> object:
            return await graph.SearchUsers(graph_pb2.SearchUsersRequest(query=query, page_size=PAGE))

        async def lookup(username: str) -> object:
            return await graph.LookupUser(graph_pb2.LookupUserRequest(username=username))

        for query in queries["exact"][:200] + queries["one typo"][:200]:  # warm-up: pools, prepared plans
            await search(query)
            await lookup(queries["exact"][0])
        samples = [await empty_call_floor(channel, CALLS)]
        samples.append(await time_calls("floor: LookupUser, exact username", _cycling(lookup, queries["exact"]), CALLS))
        for kind, group in queries.items():
            samples.append(await time_calls(f"SearchUsers page {PAGE}, {kind}", _cycling(search, group), CALLS))
        return samples


async def quality(addr: str, intended: list[str], queries: list[str]) -> tuple[float, float]:
    """(share of queries whose intended user is first, share where it is on the first page)."""
    first = on_page = 0
    async with grpc.aio.insecure_channel(addr) as channel:
        graph = graph_pb2_grpc.GraphServiceStub(channel)
        for name, query in zip(intended, queries, strict=True):
            page = await graph.SearchUsers(graph_pb2.SearchUsersRequest(query=query, page_size=PAGE))
            found = [user.username for user in page.users]
            first += bool(found) and found[0] == name
            on_page += name in found
    return first / len(queries), on_page / len(queries)


def explain(stack: Stack, query: str) -> None:
    """The plan of SearchUsers' statement (graph_svc.repository.SEARCH) for `query`."""
    params = repository.SEARCH.values(repository.search_params(query, None, PAGE + 1, None))
    with psycopg.connect(feed_data.sql_url(stack.database_url), autocommit=True) as conn:
        plan = [row[0] for row in conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {repository.SEARCH.sql}", params)]
    print(f"  EXPLAIN ANALYZE of SearchUsers for the one-typo query {query!r} (first {PLAN_LINES} lines):")
    for line in plan if len(plan) <= PLAN_LINES + 2 else [*plan[:PLAN_LINES], *plan[-2:]]:
        print(f"    {line}")


def main() -> None:
    users = people(USERS)
    rng = random.Random(16)
    chosen = rng.sample(users, QUERIES)
    intended = [p.username for p in chosen]
    one_typo = [typo(rng, name) for name in intended]
    two_typos = [typo(rng, typo(rng, name)) for name in intended]
    queries = {
        "exact": intended,
        "one typo": one_typo,
        "two typos": two_typos,
        f"{PREFIX_LENGTH}-character prefix": [name[:PREFIX_LENGTH] for name in intended],
    }
    with running_stack(["graph_svc"]) as stack:
        load(stack, users)
        addr = stack.addr["graph_svc"]
        samples = asyncio.run(measure(addr, queries))
        firsts = {kind: asyncio.run(quality(addr, intended, queries[kind])) for kind in ("one typo", "two typos")}
        explain(stack, one_typo[0])
        rss = peak_rss_line()
    lengths = [len(p.username) for p in users]
    print(
        f"SearchUsers over {USERS:,} users (usernames {min(lengths)}-{max(lengths)} characters, median "
        f"{statistics.median(lengths):.0f}); graph_svc in its own process, one caller, loopback gRPC"
    )
    for sample in samples:
        print(sample.line())
    for kind, (first, on_page) in firsts.items():
        print(
            f"  {kind}: intended user first in {first:.1%} of {QUERIES:,} queries, on the first page in {on_page:.1%}"
        )
    print(rss)
    health, lookup, _exact, typo_sample, two_sample, prefix_sample = samples
    rows = [
        Verdict(
            f"SearchUsers {sample.name.split(', ', 1)[1]}, p{p}",
            f"{sample.percentile(p) * 1000:.2f} ms",
            f"LookupUser p{p} {lookup.percentile(p) * 1000:.2f} ms",
            f"{sample.percentile(p) / lookup.percentile(p):.1f}x",
            f"p99 < {TARGET_P99 * 1000:.0f} ms" if p == 99 else "-",
            sample.percentile(p) < TARGET_P99 if p == 99 else None,
        )
        for sample in (typo_sample, two_sample, prefix_sample)
        for p in (50, 99)
    ]
    first, _ = firsts["one typo"]
    rows.append(
        Verdict(
            "one typo: intended user first",
            f"{first:.1%}",
            "-",
            "-",
            f">= {TARGET_FIRST:.0%}",
            first >= TARGET_FIRST,
        )
    )
    print(f"  floor of any call: Health/Check p50 {health.percentile(50) * 1000:.2f} ms")
    print_verdicts("search", rows)
