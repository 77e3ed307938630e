"""Tag pages: ListTagPosts with 1M posts in the database, beside the same page computed by SQL.

    flock /tmp/glimpse-bench.lock make bench BENCH=tags

Runs graph_svc and post_svc as processes (bench.stack) on a fresh database. Data, bulk-loaded with
bench.feed_data as feed_read loads its power-law set: 5,000 authors (one in ten private) with 200
posts each over a year (1M posts, READY media rows included), then each post given 1 to 3 hashtags
drawn from 50,000 by a power law (the tag of rank r has probability ~ 1/r: the top tag is on ~6% of
posts, most tags on a handful), written as post_svc writes them: `posts.hashtags` and the caption,
the tag index (`posts.post_tags`) and exact counts (`posts.tags`). Ten readers follow nobody, so the
private authors' posts (10%) are hidden from them: post_svc asks graph_svc (CheckVisibility, cached
per reader) and reads further when a page comes up short.

Figures, one caller, one call at a time, loopback gRPC (targets printed beside them, never asserted):
  1  ListTagPosts page 20 of head tags (the 5 most used), middle tags (ranks 200-204) and tail tags
     (20 to 60 posts), and the 10th page of a head tag; Health/Check on the same channel
  2  the SQL floor from the same run: the same page by one statement from psycopg, the tag index alone
     and with the visibility rule joined (private authors, follows, blocks both ways); for reference,
     the page without the tag index (`tag = ANY(hashtags)` over posts newest first)
  3  GetTag, and SearchTags by 1-, 2- and 3-character prefixes
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable

import grpc
import psycopg

from bench import feed_data
from bench.feed_data import Step, Verdict, print_verdicts
from bench.stack import Stack, running_stack
from bench.stats import Sample, empty_call_floor, peak_rss_line, time_calls
from glimpse.post.v1 import post_pb2, post_pb2_grpc
from mesh.identity import as_caller

AUTHORS, POSTS_PER_AUTHOR, READERS = 5_000, 200, 10
TAGS = 50_000
PAGE = 20
CALLS = 2_000
SLOW_CALLS = 20  # the reference without the tag index reads up to every post
DEEP_PAGE = 10
# Generated ids start here: far below any minted id.
BASE_ID = 1 << 40
PLAN_LINES = 12

# The SQL page is read beside it for what the data costs; it has no gRPC hop, no protobuf and no
# visibility call to graph_svc, and an empty gRPC call alone costs more than it.
TARGET_P99 = 0.015  # seconds

# Each post's tags: 1 + id % 3 ranks, each exp(U * ln TAGS) (density ~ 1/r), named by letters of
# md5(rank) (6 to 10 of them, digits mapped to g-p), so that prefixes spread as words do.
TAG_SQL = f"""
UPDATE posts.posts p
   SET hashtags = t.tags, caption = 'Golden hour, photo ' || p.id || ' #' || array_to_string(t.tags, ' #')
  FROM (SELECT q.id,
               ARRAY(SELECT DISTINCT translate(substr(md5(r::text), 1, 6 + r % 5), '0123456789', 'ghijklmnop')
                       FROM (SELECT floor(exp(random() * ln({TAGS})))::int AS r
                               FROM generate_series(1, 1 + (q.id % 3)::int)) s) AS tags
          FROM posts.posts q) t
 WHERE p.id = t.id
"""
COLUMNS = "p.id, p.author_id, p.caption, p.hashtags, p.location_name, p.latitude, p.longitude, p.media_ids, p.state"
PAGE_SQL = f"""
SELECT {COLUMNS}
  FROM posts.post_tags t JOIN posts.posts p ON p.id = t.post_id
 WHERE t.tag = %(tag)s AND p.state = 1
 ORDER BY t.post_id DESC LIMIT {PAGE + 1}
"""
# The same page with the rule post_svc applies through graph_svc: the author is the reader, or is
# public or followed by the reader, and neither blocks the other.
VISIBLE_SQL = f"""
SELECT {COLUMNS}
  FROM posts.post_tags t
  JOIN posts.posts p ON p.id = t.post_id
  JOIN graph.users u ON u.id = p.author_id
 WHERE t.tag = %(tag)s AND p.state = 1
   AND (p.author_id = %(reader)s OR NOT u.is_private
        OR EXISTS (SELECT 1 FROM graph.follows f WHERE f.follower_id = %(reader)s AND f.followee_id = u.id))
   AND NOT EXISTS (SELECT 1 FROM graph.blocks b WHERE b.blocker_id = %(reader)s AND b.blocked_id = u.id)
   AND NOT EXISTS (SELECT 1 FROM graph.blocks b WHERE b.blocker_id = u.id AND b.blocked_id = %(reader)s)
 ORDER BY t.post_id DESC LIMIT {PAGE + 1}
"""
NO_INDEX_SQL = f"""
SELECT {COLUMNS} FROM posts.posts p
 WHERE %(tag)s = ANY(p.hashtags) AND p.state = 1
 ORDER BY p.id DESC LIMIT {PAGE + 1}
"""


def load(stack: Stack) -> tuple[list[int], dict[str, list[str]]]:
    """Loads the data (see the module docstring); returns the readers and the tags of each kind."""
    authors = [BASE_ID + n for n in range(AUTHORS)]
    readers = [BASE_ID + AUTHORS + n for n in range(READERS)]
    with feed_data.connect(stack.database_url) as conn:
        with Step(f"{AUTHORS:,} authors (one in ten private) and {READERS} readers"):
            feed_data.copy_users(conn, authors + readers, "tagger")
            conn.execute("UPDATE graph.users SET is_private = true WHERE id = ANY(%s)", (authors[::10],))
        with Step("drop the secondary indexes of posts and media for the bulk load"):
            deferred = feed_data.drop_secondary_indexes(conn, ["posts.posts", "media.media"])
        with Step(f"{AUTHORS * POSTS_PER_AUTHOR:,} posts and media"):
            feed_data.insert_posts(conn, authors, POSTS_PER_AUTHOR, 0, days=365)
        with Step(f"1-3 hashtags per post out of {TAGS:,} by a power law (hashtags and caption)"):
            conn.execute(TAG_SQL)
        with Step("the tag index and the tags' counts, from the posts' hashtags"):
            conn.execute(
                "INSERT INTO posts.post_tags (tag, post_id) "
                "SELECT t, p.id FROM posts.posts p, unnest(p.hashtags) t WHERE p.state = 1 ORDER BY 1, 2"
            )
            conn.execute(
                "INSERT INTO posts.tags (name, post_count) "
                "SELECT tag, count(*) FROM posts.post_tags GROUP BY tag ORDER BY min(post_id)"
            )
        with Step(f"build the {len(deferred)} indexes again; VACUUM ANALYZE"):
            feed_data.create_indexes(conn, deferred)
            conn.execute("VACUUM ANALYZE posts.posts, posts.post_tags, posts.tags, graph.users")
        by_count = [row[0] for row in conn.execute("SELECT name FROM posts.tags ORDER BY post_count DESC, id")]
        tail = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM posts.tags WHERE post_count BETWEEN 20 AND 60 ORDER BY id LIMIT 5"
            )
        ]
        summary = conn.execute(
            "SELECT count(*), max(post_count), percentile_cont(0.5) WITHIN GROUP (ORDER BY post_count) FROM posts.tags"
        ).fetchone()
        rows = conn.execute("SELECT count(*) FROM posts.post_tags").fetchone()
    assert summary is not None and rows is not None
    print(
        f"  data: {summary[0]:,} tags in use on {rows[0]:,} (tag, post) rows; the top tag has {summary[1]:,} posts, "
        f"the median tag {summary[2]:.0f}"
    )
    return readers, {"head": by_count[:5], "middle": by_count[200:205], "tail": tail}


Call = Callable[[], Awaitable[object]]


def _cycling(make: Callable[[int, str], Awaitable[object]], readers: list[int], tags: list[str]) -> Call:
    """A call that takes the next (reader, tag) pair each time."""
    pairs = itertools.cycle([(r, t) for t in tags for r in readers])
    return lambda: make(*next(pairs))


async def measure_service(addr: str, readers: list[int], tags: dict[str, list[str]]) -> list[Sample]:
    async with grpc.aio.insecure_channel(addr) as channel:
        post = post_pb2_grpc.PostServiceStub(channel)

        def page(token: dict[str, str] | None = None) -> Callable[[int, str], Awaitable[object]]:
            def call(reader: int, tag: str) -> Awaitable[object]:
                request = post_pb2.ListTagPostsRequest(tag=tag, page_size=PAGE, page_token=(token or {}).get(tag, ""))
                return post.ListTagPosts(request, metadata=as_caller(reader))

            return call

        everything = [t for group in tags.values() for t in group]
        for reader in readers:  # warm-up: connections, prepared statements, each reader's visibility cache
            for tag in everything:
                await page()(reader, tag)
        deep: dict[str, str] = {}
        for tag in tags["head"]:
            token = ""
            for _ in range(DEEP_PAGE - 1):
                request = post_pb2.ListTagPostsRequest(tag=tag, page_size=PAGE, page_token=token)
                token = (await post.ListTagPosts(request, metadata=as_caller(readers[0]))).next_page_token
            deep[tag] = token
        samples = [await empty_call_floor(channel, CALLS)]
        for kind, group in tags.items():
            samples.append(
                await time_calls(f"ListTagPosts page {PAGE}, {kind} tags", _cycling(page(), readers, group), CALLS)
            )
        samples.append(
            await time_calls(
                f"ListTagPosts page {PAGE}, head tags, page {DEEP_PAGE}",
                _cycling(page(deep), readers, tags["head"]),
                CALLS,
            )
        )
        samples.append(
            await time_calls(
                "GetTag", _cycling(lambda _r, t: post.GetTag(post_pb2.GetTagRequest(tag=t)), readers, everything), CALLS
            )
        )
        for length in (1, 2, 3):
            prefixes = sorted({t[:length] for t in everything})

            def search(_reader: int, prefix: str) -> Awaitable[object]:
                return post.SearchTags(post_pb2.SearchTagsRequest(query=prefix, page_size=PAGE))

            samples.append(
                await time_calls(
                    f"SearchTags page {PAGE}, {length}-character prefix", _cycling(search, readers, prefixes), CALLS
                )
            )
        return samples


async def measure_sql(url: str, readers: list[int], tags: dict[str, list[str]]) -> list[Sample]:
    samples = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:

        def query(sql: str) -> Callable[[int, str], Awaitable[object]]:
            async def call(reader: int, tag: str) -> object:
                cursor = await conn.execute(sql, {"tag": tag, "reader": reader})
                return await cursor.fetchall()

            return call

        for sql in (PAGE_SQL, VISIBLE_SQL):
            for reader in readers:
                for tag in tags["head"] + tags["tail"]:
                    await query(sql)(reader, tag)
        for kind, group in tags.items():
            samples.append(
                await time_calls(
                    f"SQL page {PAGE + 1}, tag index, {kind}", _cycling(query(PAGE_SQL), readers, group), CALLS
                )
            )
            samples.append(
                await time_calls(
                    f"SQL page {PAGE + 1}, visibility joined, {kind}",
                    _cycling(query(VISIBLE_SQL), readers, group),
                    CALLS,
                )
            )
        for kind in ("head", "tail"):
            samples.append(
                await time_calls(
                    f"SQL page {PAGE + 1}, no tag index (reference), {kind}",
                    _cycling(query(NO_INDEX_SQL), readers, tags[kind]),
                    SLOW_CALLS,
                )
            )
    return samples


def explain(url: str, reader: int, tag: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        plan = [
            row[0]
            for row in conn.execute("EXPLAIN (ANALYZE, COSTS OFF) " + VISIBLE_SQL, {"tag": tag, "reader": reader})
        ]
    print(f"  EXPLAIN ANALYZE, SQL page with the visibility rule, head tag {tag!r} (first {PLAN_LINES} lines):")
    for line in plan if len(plan) <= PLAN_LINES + 2 else [*plan[:PLAN_LINES], *plan[-2:]]:
        print(f"    {line}")


def main() -> None:
    random.seed(17)
    with running_stack(["graph_svc", "post_svc"]) as stack:
        started = time.perf_counter()
        readers, tags = load(stack)
        print(f"  load: {time.perf_counter() - started:.0f}s in all")
        url = feed_data.sql_url(stack.database_url)
        service = asyncio.run(measure_service(stack.addr["post_svc"], readers, tags))
        sql = asyncio.run(measure_sql(url, readers, tags))
        explain(url, readers[0], tags["head"][0])
        rss = peak_rss_line()
    print(f"tag pages with {AUTHORS * POSTS_PER_AUTHOR:,} posts: post_svc and graph_svc in own processes, one caller")
    for sample in service + sql:
        print(sample.line())
    print(rss)
    by_name = {sample.name: sample for sample in service + sql}
    rows = []
    for kind in ("head", "middle", "tail"):
        ours = by_name[f"ListTagPosts page {PAGE}, {kind} tags"]
        floor = by_name[f"SQL page {PAGE + 1}, visibility joined, {kind}"]
        p99, floor_p99 = ours.percentile(99), floor.percentile(99)
        rows.append(
            Verdict(
                f"ListTagPosts p99, {kind} tags",
                f"{p99 * 1000:.2f} ms",
                f"SQL with visibility p99 {floor_p99 * 1000:.2f} ms",
                f"{p99 / floor_p99:.1f}x",
                f"< {TARGET_P99 * 1000:.0f} ms",
                p99 < TARGET_P99,
            )
        )
    get_tag = by_name["GetTag"]
    for kind in ("head", "tail"):
        ours = by_name[f"ListTagPosts page {PAGE}, {kind} tags"]
        rows.append(
            Verdict(
                f"ListTagPosts p50, {kind} tags",
                f"{ours.percentile(50) * 1000:.2f} ms",
                f"GetTag p50 {get_tag.percentile(50) * 1000:.2f} ms (one row through post_svc)",
                f"{ours.percentile(50) / get_tag.percentile(50):.1f}x",
                "-",
                None,
            )
        )
    deep = by_name[f"ListTagPosts page {PAGE}, head tags, page {DEEP_PAGE}"]
    first = by_name[f"ListTagPosts page {PAGE}, head tags"]
    rows.append(
        Verdict(
            f"page {DEEP_PAGE} of a head tag, p99",
            f"{deep.percentile(99) * 1000:.2f} ms",
            f"page 1 p99 {first.percentile(99) * 1000:.2f} ms",
            f"{deep.percentile(99) / first.percentile(99):.1f}x",
            "<= 1.5x (keyset: no offset)",
            deep.percentile(99) <= 1.5 * first.percentile(99),
        )
    )
    print_verdicts("tags", rows)
