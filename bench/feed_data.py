"""Bulk data for the feed benchmarks (fanout, feed_read), and the verdict table both print.

Users, follows, posts and media are written straight into the services' schemas with SQL (COPY or
one INSERT ... SELECT generate_series), and timelines straight into Redis through the timelines package,
the same code the fan-out and the feed use. That loads millions of rows in seconds; the API would
take hours. Rows look like the services' own: time-ordered post ids whose timestamp is the post's
creation time, READY media with three renditions, follower counts set from the follows table.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass

import psycopg

from media_svc.models import MediaStatus
from media_svc.object_keys import raw_key_sql, rendition_key_sql
from mesh.config import MeshSettings
from mesh.ids import EPOCH_MS, SEQUENCE_BITS, SHARD_BITS
from mesh.redis_client import connect_redis
from timelines.settings import TimelineSettings
from timelines.store import Timelines

# Posts generated here put a running number where a real id has its shard and sequence bits, so
# ids stay unique (up to 2**23 posts per database) and keep their creation time.
POST_SEQ_LIMIT = 1 << (SHARD_BITS + SEQUENCE_BITS)
DAY_MS = 24 * 3600 * 1000
_BLURHASH = "LEHV6nWB2yk8pyo0adR*.7kCMdnj"
# Redis calls in flight while loading timelines.
_LOAD_CONCURRENCY = 32


def sql_url(database_url: str) -> str:
    """The libpq form of a SQLAlchemy URL ("postgresql+psycopg://..." -> "postgresql://...")."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def connect(database_url: str) -> psycopg.Connection:
    return psycopg.connect(sql_url(database_url), autocommit=True)


class Step:
    """Prints how long a loading step took: `with Step("posts"): ...`."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._started = 0.0

    def __enter__(self) -> Step:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        print(f"  load: {self._what} ({time.perf_counter() - self._started:.1f}s)", flush=True)


# PostgreSQL -------------------------------------------------------------------------------------


def drop_secondary_indexes(conn: psycopg.Connection, tables: Sequence[str]) -> list[str]:
    """Drops the tables' secondary indexes (not those behind primary keys or unique constraints) and
    returns their exact definitions for create_indexes: as pg_restore does, one sorted build after a
    bulk load is much faster than millions of random inserts into indexes larger than shared_buffers."""
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || c.relname, pg_get_indexdef(i.indexrelid)
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE i.indrelid = ANY(%s::regclass[])
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        """,
        (list(tables),),
    ).fetchall()
    for name, _definition in rows:
        conn.execute(f"DROP INDEX {name}")
    return [definition for _name, definition in rows]


def create_indexes(conn: psycopg.Connection, definitions: Sequence[str]) -> None:
    for definition in definitions:
        conn.execute(definition)


def copy_users(conn: psycopg.Connection, user_ids: Iterable[int], prefix: str) -> None:
    """Users named <prefix><n>, with a placeholder password hash (nobody logs in)."""
    with conn.cursor() as cur, cur.copy("COPY graph.users (id, username, email, password_hash) FROM STDIN") as copy:
        for n, user_id in enumerate(user_ids):
            copy.write_row((user_id, f"{prefix}{n}", f"{prefix}{n}@bench.glimpse.dev", "-"))


def copy_follows(conn: psycopg.Connection, pairs: Iterable[tuple[int, int]]) -> None:
    """(follower, followee) pairs; the caller makes them distinct and never self-follows."""
    with conn.cursor() as cur, cur.copy("COPY graph.follows (follower_id, followee_id) FROM STDIN") as copy:
        for pair in pairs:
            copy.write_row(pair)


def set_follow_counts(conn: psycopg.Connection, user_ids: Sequence[int]) -> None:
    """follower_count and following_count of these users, counted from graph.follows (one pass each,
    so it needs no index). Users that nobody follows (or who follow nobody) keep their 0."""
    for counted, other in (("follower_count", "followee_id"), ("following_count", "follower_id")):
        conn.execute(
            f"""
            UPDATE graph.users u SET {counted} = c.n
              FROM (SELECT {other} AS id, count(*) AS n FROM graph.follows
                     WHERE {other} = ANY(%(ids)s) GROUP BY 1) c
             WHERE u.id = c.id
            """,
            {"ids": list(user_ids)},
        )


def insert_posts(conn: psycopg.Connection, authors: Sequence[int], per_author: int, first_seq: int, days: int) -> int:
    """`per_author` posts for each author, at random times over the last `days` days, each with one
    READY photo (media row with 1080/640/150 renditions), in one statement; returns the post count.

    Post numbers first_seq .. first_seq + len(authors) * per_author - 1 must be unused."""
    if first_seq + len(authors) * per_author > POST_SEQ_LIMIT:
        raise ValueError("post numbers exhausted: give each data set its own range below 2**23")
    now_ms = int(time.time() * 1000) - 60_000  # a minute back: nothing generated here is "newer than now"
    # The key layout is media_svc's (media_svc.object_keys), written here as SQL expressions.
    renditions = ", ".join(
        f"jsonb_build_object('size', {size}, 'width', {width}, 'height', {height}, "
        f"'key', {rendition_key_sql('author_id', 'id', size)})"
        for size, width, height in ((1080, 1080, 1440), (640, 640, 853), (150, 150, 200))
    )
    cursor = conn.execute(
        f"""
        WITH generated AS (
            -- random() stays in this subquery (it is not flattened), so each post gets one time.
            SELECT a.author_id, %(first)s + (a.n - 1) * %(per)s + k AS seq,
                   %(now)s - floor(random() * %(span)s)::bigint AS ms
              FROM unnest(%(authors)s::bigint[]) WITH ORDINALITY AS a(author_id, n),
                   generate_series(0, %(per)s - 1) AS k
        ), new_posts AS (
            INSERT INTO posts.posts (id, author_id, caption, hashtags, media_ids, created_at, updated_at)
            SELECT ((ms - %(epoch)s) << %(shift)s) | seq, author_id,
                   'Golden hour on the ridge, photo ' || seq || ' #glimpse #bench', ARRAY['glimpse', 'bench'],
                   ARRAY[((ms - %(epoch)s) << %(shift)s) | seq], to_timestamp(ms / 1000.0), to_timestamp(ms / 1000.0)
              FROM generated
             ORDER BY ms, seq  -- in id order: appends to the id indexes instead of random inserts
            RETURNING id, author_id, created_at
        )
        INSERT INTO media.media (id, owner_id, object_key, content_type, size_bytes, real_format, width, height,
                                 checksum, blurhash, renditions, status, post_id, created_at, updated_at,
                                 upload_expires_at)
        SELECT id, author_id, {raw_key_sql("author_id", "id")}, 'image/jpeg', 2400000, 'JPEG', 3024, 4032,
               md5(id::text), %(blurhash)s, jsonb_build_array({renditions}),
               %(ready)s, id, created_at, created_at, created_at
          FROM new_posts
        """,
        {
            "first": first_seq,
            "per": per_author,
            "now": now_ms,
            "span": days * DAY_MS,
            "authors": list(authors),
            "epoch": EPOCH_MS,
            "shift": SHARD_BITS + SEQUENCE_BITS,
            "blurhash": _BLURHASH,
            "ready": MediaStatus.READY.value,
        },
    )
    return cursor.rowcount


def newest_posts(conn: psycopg.Connection, authors: Sequence[int], limit: int) -> dict[int, list[int]]:
    """Each author's newest `limit` live post ids, newest first (what their outbox holds)."""
    rows = conn.execute(
        """
        SELECT a.id, ARRAY(SELECT p.id FROM posts.posts p WHERE p.author_id = a.id AND p.state = 1
                           ORDER BY p.id DESC LIMIT %s)
          FROM unnest(%s::bigint[]) AS a(id)
        """,
        (limit, list(authors)),
    ).fetchall()
    return {author: list(ids) for author, ids in rows}


def follower_counts(conn: psycopg.Connection, users: Sequence[int]) -> dict[int, int]:
    rows = conn.execute("SELECT id, follower_count FROM graph.users WHERE id = ANY(%s)", (list(users),)).fetchall()
    return {user: count for user, count in rows}


def followees(conn: psycopg.Connection, readers: Sequence[int]) -> dict[int, list[int]]:
    rows = conn.execute(
        "SELECT follower_id, array_agg(followee_id) FROM graph.follows WHERE follower_id = ANY(%s) GROUP BY 1",
        (list(readers),),
    ).fetchall()
    found = {reader: list(ids) for reader, ids in rows}
    return {reader: found.get(reader, []) for reader in readers}


# Redis ------------------------------------------------------------------------------------------


def make_timelines(namespace: str, redis_url: str | None = None) -> Timelines:
    """Timelines of a stack's namespace (on the stack's Redis: `redis_url`, else the configured one),
    with the caps and TTL the services use by default."""
    url = redis_url or MeshSettings().redis_url
    return Timelines.from_settings(connect_redis(url), TimelineSettings(namespace=namespace, redis_url=url))


def merged_inbox(authors: Iterable[int], newest: dict[int, list[int]], cap: int) -> list[int]:
    """The newest `cap` post ids over these authors' outboxes: the inbox the fan-out would have built."""
    streams = [newest.get(author, []) for author in authors]
    return list(itertools.islice(heapq.merge(*streams, reverse=True), cap))


async def build_outboxes(timelines: Timelines, newest: dict[int, list[int]]) -> None:
    await _bounded(timelines.build_outbox(author, ids) for author, ids in newest.items())


async def build_inboxes(timelines: Timelines, inboxes: dict[int, list[int]]) -> None:
    """Live inboxes holding these posts (an empty list makes an empty live inbox)."""
    await _bounded(timelines.build_inbox(user, ids) for user, ids in inboxes.items())


async def _bounded(calls: Iterable[Awaitable[None]]) -> None:
    """Runs the calls with at most _LOAD_CONCURRENCY in flight (as many Redis connections)."""
    semaphore = asyncio.Semaphore(_LOAD_CONCURRENCY)

    async def one(call: Awaitable[None]) -> None:
        async with semaphore:
            await call

    await asyncio.gather(*(one(call) for call in calls))


# Report -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One row of a figure's table: the figure, the floor it is read against, and its target."""

    figure: str
    value: str
    floor: str
    ratio: str
    target: str
    met: bool | None  # None: no target for this row

    @property
    def status(self) -> str:
        return "-" if self.met is None else ("met" if self.met else "NOT met")


def print_verdicts(title: str, rows: Sequence[Verdict]) -> None:
    header = Verdict("figure", "value", "floor (same run)", "ratio", "target", None)
    table = [header, *rows]
    widths = [max(len(getattr(row, f)) for row in table) for f in ("figure", "value", "floor", "ratio", "target")]
    print(f"{title}: figures beside their floors (other loads on the machine may have been running)")
    for n, row in enumerate(table):
        cells = [row.figure, row.value, row.floor, row.ratio, row.target]
        status = "met?" if n == 0 else row.status
        print("  " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + f" | {status}")
