"""graph_svc's hot reads, in process: CPU per call of the service method each RPC runs, beside the same
SQL sent by psycopg alone (the floor: no pool, no unit of work, no Python around the rows).

    flock /tmp/glimpse-bench.lock make bench BENCH=graph_reads

The RPCs: CheckVisibility (every post view whose answer a caller has not cached), GetViewerFilters
(every home-feed page whose filters are not cached), FilterAudience (the fan-out's audience),
GetUser, BatchGetUsers, CheckSessions (the gateway's session check) and ListFolloweeIds. Each is the
graph_svc method its servicer calls (graph_svc.visibility, accounts, sessions, follows), without the
gRPC hop (bench.graph_stream and bench.session_checks measure it). On a fresh database with
USERS users (every other one private); the viewer follows 250 of them (125 private), blocks 50 and
mutes 50; the author of FilterAudience has 1,000 followers, 10 of whom mute it. The floor runs the
statement(s) of each method written by hand, on one autocommit connection (psycopg prepares them
after 5 runs, as it does for mesh.db's). Each figure is the best of three runs of N calls (CPU of
this process; PostgreSQL's own CPU is not counted). Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

import psycopg

from bench.stats import peak_rss_line
from graph_svc.accounts import AccountService
from graph_svc.follows import FollowService
from graph_svc.sessions import SessionService
from graph_svc.visibility import VisibilityService
from mesh.config import MeshSettings
from mesh.db import Database
from mesh.migrate import drop_database, ensure_database, upgrade

N = 1000
USERS = 2000
VIEWER, AUTHOR = 1, 2
PAGE = list(range(2, 22))
AUDIENCE = list(range(3, 1003))

_USER = (
    "SELECT id, username, email, password_hash, display_name, bio, follower_count, following_count, created_at, "
    "is_private, website, avatar_media_id, avatar_url, avatar_large_url, pending_avatar_media_id "
    "FROM graph.users WHERE id = %(id)s"
)
_USERS = _USER.replace("id = %(id)s", "id = ANY(%(ids)s::bigint[])")
_BLOCKS_BETWEEN = (
    "SELECT blocker_id FROM graph.blocks WHERE (blocker_id = %(a)s AND blocked_id = %(b)s) "
    "OR (blocker_id = %(b)s AND blocked_id = %(a)s)"
)
_AUTHOR_FACTS = (
    "SELECT u.id, u.is_private, "
    "EXISTS (SELECT 1 FROM graph.follows f WHERE f.follower_id = %(viewer)s AND f.followee_id = u.id), "
    "EXISTS (SELECT 1 FROM graph.blocks b WHERE b.blocker_id = %(viewer)s AND b.blocked_id = u.id) "
    "OR EXISTS (SELECT 1 FROM graph.blocks b WHERE b.blocker_id = u.id AND b.blocked_id = %(viewer)s) "
    "FROM graph.users u WHERE u.id = ANY(%(ids)s::bigint[])"
)
_VIEWER_RELATIONS = (
    "SELECT kind, user_id FROM ("
    "SELECT 'blocked' AS kind, blocked_id AS user_id FROM graph.blocks WHERE blocker_id = %(viewer)s "
    "UNION ALL SELECT 'blocked', blocker_id FROM graph.blocks WHERE blocked_id = %(viewer)s "
    "UNION ALL SELECT 'muted', muted_id FROM graph.mutes WHERE muter_id = %(viewer)s "
    "UNION ALL SELECT 'private', f.followee_id FROM graph.follows f JOIN graph.users u ON u.id = f.followee_id "
    "WHERE f.follower_id = %(viewer)s AND u.is_private) parts ORDER BY user_id"
)
_AUDIENCE_EXCLUSIONS = (
    "SELECT user_id FROM (SELECT muter_id AS user_id FROM graph.mutes WHERE muted_id = %(author)s "
    "UNION SELECT blocker_id FROM graph.blocks WHERE blocked_id = %(author)s "
    "UNION SELECT blocked_id FROM graph.blocks WHERE blocker_id = %(author)s) excluded "
    "WHERE user_id = ANY(%(ids)s::bigint[]) ORDER BY user_id"
)
_LIVE_AMONG = (
    "SELECT id FROM graph.sessions WHERE id = ANY(%(ids)s::bigint[]) AND revoked_at IS NULL AND expires_at > now()"
)
_FOLLOWEE_IDS = "SELECT followee_id FROM graph.follows WHERE follower_id = %(id)s"

_LOAD = [
    "INSERT INTO graph.users (id, username, email, password_hash, is_private) "
    f"SELECT i, 'u' || i, 'u' || i || '@example.com', 'x', i % 2 = 0 FROM generate_series(1, {USERS}) i",
    f"INSERT INTO graph.follows (follower_id, followee_id) SELECT {VIEWER}, i FROM generate_series(2, 251) i",
    f"INSERT INTO graph.follows (follower_id, followee_id) SELECT i, {AUTHOR} FROM generate_series(3, 1002) i",
    f"INSERT INTO graph.blocks (blocker_id, blocked_id) SELECT {VIEWER}, i FROM generate_series(300, 349) i",
    f"INSERT INTO graph.mutes (muter_id, muted_id) SELECT {VIEWER}, i FROM generate_series(200, 249) i",
    f"INSERT INTO graph.mutes (muter_id, muted_id) SELECT i, {AUTHOR} FROM generate_series(3, 12) i",
    "INSERT INTO graph.sessions (id, user_id, refresh_token_hash, expires_at) "
    "SELECT i, i, sha256(int8send(i)), now() + interval '1 day' FROM generate_series(1, 100) i",
    "ANALYZE",
]


async def best_of_three(call: Callable[[], Awaitable[object]]) -> float:
    """Microseconds of this process's CPU per call, the best of three runs of N (after 100 unmeasured)."""
    for _ in range(100):
        await call()
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(N):
            await call()
        best = min(best, (time.process_time() - start) / N * 1e6)
    return best


async def run(url: str) -> None:
    libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
    raw = await psycopg.AsyncConnection.connect(libpq, autocommit=True)
    for statement in _LOAD:
        await raw.execute(statement.encode())
    db = Database(url, pool_size=2)
    # These reads use nothing but the database: the signer, id generator, passwords and outbox are not
    # touched by the methods measured.
    unused = cast(Any, None)
    visibility = VisibilityService(db=db)
    accounts = AccountService(db=db, ids=unused, signer=unused, passwords=unused)
    sessions = SessionService(db=db, ids=unused, signer=unused)
    follows = FollowService(db=db, outbox=unused, max_following=7500)
    cursor = raw.cursor()

    def floor(*statements: tuple[str, dict[str, object]]) -> Callable[[], Awaitable[object]]:
        queries = [(sql.encode(), params) for sql, params in statements]

        async def call() -> None:
            for query, params in queries:
                await cursor.execute(query, params)
                await cursor.fetchall()

        return call

    cases: list[tuple[str, Callable[[], Awaitable[object]], Callable[[], Awaitable[object]]]] = [
        (
            "CheckVisibility, 1 author",
            lambda: visibility.check(VIEWER, [3]),
            floor((_AUTHOR_FACTS, {"viewer": VIEWER, "ids": [3]})),
        ),
        (
            "CheckVisibility, 20 authors",
            lambda: visibility.check(VIEWER, PAGE),
            floor((_AUTHOR_FACTS, {"viewer": VIEWER, "ids": PAGE})),
        ),
        (
            "GetViewerFilters (50 blocks, 50 mutes, 125 private)",
            lambda: visibility.viewer_filters(VIEWER),
            floor((_VIEWER_RELATIONS, {"viewer": VIEWER})),
        ),
        (
            "FilterAudience, 1,000 ids",
            lambda: visibility.audience_exclusions(AUTHOR, AUDIENCE),
            floor((_AUDIENCE_EXCLUSIONS, {"author": AUTHOR, "ids": AUDIENCE})),
        ),
        (
            "GetUser, with a viewer",
            lambda: accounts.get_user(3, VIEWER),
            floor((_USER, {"id": 3}), (_BLOCKS_BETWEEN, {"a": VIEWER, "b": 3})),
        ),
        ("BatchGetUsers, 20 ids", lambda: accounts.batch_get_users(PAGE), floor((_USERS, {"ids": PAGE}))),
        ("CheckSessions, 1 id", lambda: sessions.live_among([5]), floor((_LIVE_AMONG, {"ids": [5]}))),
        (
            "ListFolloweeIds (250)",
            lambda: follows.followee_ids(VIEWER),
            floor((_USER, {"id": VIEWER}), (_FOLLOWEE_IDS, {"id": VIEWER})),
        ),
    ]
    print(f"graph_svc service methods in process, CPU of this process per call, best of 3 x {N} calls")
    print(f"  {'method':<52} | {'graph_svc':>10} | {'psycopg alone (floor)':>22} | ratio")
    try:
        for name, method, floor_call in cases:
            measured = await best_of_three(method)
            floor_us = await best_of_three(floor_call)
            print(f"  {name:<52} | {measured:7,.0f} us | {floor_us:19,.0f} us | {measured / floor_us:.2f}x")
        print(peak_rss_line())
    finally:
        await cursor.close()
        await raw.close()
        await db.dispose()


def main() -> None:
    url = MeshSettings().database_url.rsplit("/", 1)[0] + f"/glimpse_bench_graph_reads_{uuid.uuid4().hex[:8]}"
    ensure_database(url)
    try:
        upgrade(url, "graph_svc")
        asyncio.run(run(url))
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
