"""Erasure (issue 16): deleting a user with 1,000 posts, 10,000 likes given and 5,000 followers,
until every service is done, beside the raw deletes of the same data.

    flock /tmp/glimpse-bench.lock make bench BENCH=erasure

Runs graph_svc and every service with an erasure consumer (post_svc, media_svc, engagement_svc,
notification_svc, story_svc, fanout_svc, feed_svc, export_svc; bench.stack) on a fresh database.
Two users get the same data, bulk-loaded (SQL, Redis and the bucket, not through the services;
bench.feed_data): 5,000 followers each (whose live inboxes hold the user's newest 50 posts), 1,000
posts each (tagged, one READY photo each: its upload and three
renditions stored in the bucket, an outbox of the newest 800), 10,000 likes each of the same 10,000
posts by 100 other authors (the like counts and each author's like notification grouping both
users), and a follow notification grouping their 5,000 followers.

  erasure  DeleteUser of the first one (graph_svc, with the password), then wall time until every
           durable consumer of the namespace has acknowledged everything and every outbox is
           published (graph.user_deleted, and the posts.deleted / comment and notification events
           the erasures emit, handled by their consumers): every service done. Then the remaining
           references to the user in every schema, Redis key and the bucket (bench.references),
           which must be 0.
  floor    the second user's rows deleted by plain statements (one per table, one transaction, no
           events, no batches, no locks beyond the statements'), their objects by DeleteObjects of
           the known keys, their timelines and their posts in the followers' inboxes by known key:
           the least work that removes the same data, in the same run.
Then every process's peak RSS.
"""

from __future__ import annotations

import asyncio
import io
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import psycopg
from minio.deleteobjects import DeleteObject

from bench.feed_data import (
    build_inboxes,
    connect,
    copy_follows,
    copy_users,
    insert_posts,
    make_timelines,
    set_follow_counts,
)
from bench.references import find_references
from bench.stack import Stack, running_stack
from bench.stats import peak_rss_line
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from media_svc.settings import MediaSettings
from media_svc.storage import admin_client
from mesh.bus import STREAMS, Bus
from mesh.identity import as_caller
from mesh.redis_client import connect_redis
from notification_svc.models import FOLLOW, LIKE
from timelines.store import member

POSTS, LIKES, FOLLOWERS = 1_000, 10_000, 5_000
AUTHORS = 100  # whose posts are liked, LIKES // AUTHORS posts each
INBOX_POSTS = 50  # of the user's newest posts, in each follower's live inbox
PASSWORD = "bench erasure passphrase"
# Bulk ids: followers of each user, then the liked authors (graph ids are any distinct bigints).
FOLLOWER_BASE = {0: 10_000_000, 1: 20_000_000}
AUTHOR_IDS = list(range(30_000_000, 30_000_000 + AUTHORS))
FLOOR_USER = 40_000_001
FOLLOW_GROUP_BASE = 1 << 61


def _load(stack: Stack, users: list[int]) -> dict[int, list[str]]:
    """Everything above for each of `users`; each user's object keys."""
    keys: dict[int, list[str]] = {}
    with connect(stack.database_url) as conn:
        copy_users(conn, [FLOOR_USER], "floor")
        copy_users(conn, AUTHOR_IDS, "author")
        for n, user in enumerate(users):
            followers = list(range(FOLLOWER_BASE[n], FOLLOWER_BASE[n] + FOLLOWERS))
            copy_users(conn, followers, f"follower{n}_")
            copy_follows(conn, ((f, user) for f in followers))
            insert_posts(conn, [user], POSTS, first_seq=1 + n * POSTS, days=30)
            conn.execute(
                "INSERT INTO posts.post_tags (tag, post_id) "
                "SELECT t, id FROM posts.posts, unnest(hashtags) AS t WHERE author_id = %s",
                (user,),
            )
            keys[user] = [
                key
                for (key,) in conn.execute(
                    "SELECT object_key FROM media.media WHERE owner_id = %(u)s UNION ALL "
                    "SELECT r->>'key' FROM media.media, jsonb_array_elements(renditions) r WHERE owner_id = %(u)s",
                    {"u": user},
                )
            ]
        insert_posts(conn, AUTHOR_IDS, LIKES // AUTHORS, first_seq=1 + len(users) * POSTS, days=2)
        conn.execute("INSERT INTO posts.tags (name, post_count) SELECT tag, count(*) FROM posts.post_tags GROUP BY tag")
        everyone = [f for n in range(len(users)) for f in range(FOLLOWER_BASE[n], FOLLOWER_BASE[n] + FOLLOWERS)]
        set_follow_counts(conn, [*users, *AUTHOR_IDS, *everyone])
        _load_engagement(conn, users)
    return keys


def _load_engagement(conn: psycopg.Connection, users: list[int]) -> None:
    """Both users like every post of the authors (counts 2), and each author's like notification of a
    post groups both; each user's follow notification groups their followers."""
    liked = "SELECT id, author_id FROM posts.posts WHERE author_id = ANY(%(authors)s)"
    params = {"authors": AUTHOR_IDS, "users": users, "like": LIKE, "follow": FOLLOW}
    conn.execute(
        f"INSERT INTO engagement.likes (post_id, user_id) SELECT p.id, u FROM ({liked}) p, unnest(%(users)s) u",
        params,
    )
    conn.execute(
        f"INSERT INTO engagement.post_counters (post_id, shard, likes, comments) "
        f"SELECT id, 0, cardinality(%(users)s::bigint[]), 0 FROM ({liked}) p",
        params,
    )
    conn.execute(
        f"""
        INSERT INTO notifications.notifications (id, recipient_id, kind, natural_key, post_id, actor_count,
                    recent_actor_ids, latest_id, sequence, window_start, created_at, updated_at)
        SELECT p.id, p.author_id, %(like)s, 'like:' || p.id || ':0', p.id, cardinality(%(users)s::bigint[]),
               %(users)s, p.id, row_number() OVER (PARTITION BY p.author_id ORDER BY p.id), now(), now(), now()
          FROM ({liked}) p
        """,
        params,
    )
    conn.execute(
        f"INSERT INTO notifications.notification_actors (notification_id, actor_id, activity_id, event_id) "
        f"SELECT p.id, u, p.id, 1 FROM ({liked}) p, unnest(%(users)s) u",
        params,
    )
    for n, user in enumerate(users):
        group = FOLLOW_GROUP_BASE + n
        conn.execute(
            "INSERT INTO notifications.notifications (id, recipient_id, kind, natural_key, actor_count, "
            "recent_actor_ids, latest_id, sequence, window_start, created_at, updated_at) "
            "VALUES (%s, %s, %s, 'follow:0', %s, ARRAY[%s, %s, %s]::bigint[], %s, 1, now(), now(), now())",
            (group, user, FOLLOW, FOLLOWERS, *range(FOLLOWER_BASE[n], FOLLOWER_BASE[n] + 3), group),
        )
        conn.execute(
            "INSERT INTO notifications.notification_actors (notification_id, actor_id, activity_id, event_id) "
            "SELECT %s, f, %s, 1 FROM generate_series(%s, %s) f",
            (group, group, FOLLOWER_BASE[n], FOLLOWER_BASE[n] + FOLLOWERS - 1),
        )
    conn.execute(
        "INSERT INTO notifications.inboxes (recipient_id, last_sequence) "
        "SELECT recipient_id, max(sequence) FROM notifications.notifications GROUP BY 1"
    )


def _store_objects(media: MediaSettings, keys: list[str]) -> None:
    client = admin_client(media)

    def put(key: str) -> None:
        client.put_object(media.bucket, key, io.BytesIO(b"x"), 1, content_type="image/webp")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, keys))


async def _timelines(stack: Stack, users: list[int]) -> None:
    timelines = make_timelines(stack.namespace)
    with connect(stack.database_url) as conn:
        for n, user in enumerate(users):
            newest = [
                post_id
                for (post_id,) in conn.execute(
                    "SELECT id FROM posts.posts WHERE author_id = %s ORDER BY id DESC LIMIT %s",
                    (user, timelines.outbox_max),
                )
            ]
            await timelines.build_outbox(user, newest)
            await timelines.build_inbox(user, [])
            followers = range(FOLLOWER_BASE[n], FOLLOWER_BASE[n] + FOLLOWERS)
            await build_inboxes(timelines, {f: newest[:INBOX_POSTS] for f in followers})
    await timelines.redis.aclose()


async def _busy(bus: Bus, stack: Stack) -> set[str]:
    """The durable consumers of the namespace that have not acknowledged everything, and "outbox" if
    some outbox row is not published yet: empty once every service is done."""
    busy = set()
    for stream in STREAMS:
        for info in await bus.js.consumers_info(bus.stream(stream)):
            if info.config.durable_name and (info.num_pending or info.num_ack_pending):
                busy.add(info.config.durable_name.removeprefix(f"{stack.namespace}_"))
    with connect(stack.database_url) as conn:
        outboxes = conn.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'")
        for (schema,) in outboxes.fetchall():
            row = conn.execute(f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL').fetchone()
            if row and row[0]:
                busy.add("outbox")
    return busy


async def _erase(stack: Stack, user: int, media: MediaSettings) -> tuple[float, int, dict[str, float]]:
    """Wall time until every service is done, the references left, and when each consumer was last busy."""
    bus = await Bus.connect(media.nats_url, stack.namespace)
    redis = connect_redis(media.redis_url)
    last_busy: dict[str, float] = {}
    try:
        async with grpc.aio.insecure_channel(stack.addr["graph_svc"]) as channel:
            graph = graph_pb2_grpc.GraphServiceStub(channel)
            started = time.perf_counter()
            await graph.DeleteUser(graph_pb2.DeleteUserRequest(password=PASSWORD), metadata=as_caller(user))
            last_busy["graph_svc DeleteUser"] = time.perf_counter() - started
            while True:
                # Polled: "done" is a state of the stream consumers and outboxes, announced by nobody.
                await asyncio.sleep(0.025)
                busy = await _busy(bus, stack)
                now = time.perf_counter() - started
                last_busy.update(dict.fromkeys(busy, now))
                if not busy:
                    break
            wall = time.perf_counter() - started
        left = await find_references(stack.database_url, redis, stack.namespace, media, user)
        for ref in left:
            print(f"    still held: {ref}")
        return wall, len(left), last_busy
    finally:
        await redis.aclose()
        await bus.close()


async def _floor(stack: Stack, user: int, keys: list[str], media: MediaSettings) -> float:
    followers = list(range(FOLLOWER_BASE[1], FOLLOWER_BASE[1] + FOLLOWERS))
    timelines = make_timelines(stack.namespace)
    client = admin_client(media)
    started = time.perf_counter()
    with connect(stack.database_url) as conn, conn.transaction():
        params = {"u": user}
        conn.execute(
            "UPDATE graph.users SET following_count = following_count - 1 "
            "WHERE id IN (SELECT follower_id FROM graph.follows WHERE followee_id = %(u)s)",
            params,
        )
        conn.execute("DELETE FROM graph.follows WHERE followee_id = %(u)s OR follower_id = %(u)s", params)
        conn.execute("DELETE FROM graph.users WHERE id = %(u)s", params)
        conn.execute(
            "UPDATE posts.tags t SET post_count = t.post_count - c.n FROM (SELECT tag, count(*) AS n "
            "FROM posts.post_tags pt JOIN posts.posts p ON p.id = pt.post_id WHERE p.author_id = %(u)s "
            "GROUP BY tag) c WHERE t.name = c.tag",
            params,
        )
        conn.execute(
            "DELETE FROM posts.post_tags WHERE post_id IN (SELECT id FROM posts.posts WHERE author_id = %(u)s)",
            params,
        )
        posts = [pid for (pid,) in conn.execute("DELETE FROM posts.posts WHERE author_id = %(u)s RETURNING id", params)]
        conn.execute("DELETE FROM media.media WHERE owner_id = %(u)s", params)
        conn.execute(
            "UPDATE engagement.post_counters c SET likes = c.likes - 1 FROM engagement.likes l "
            "WHERE l.user_id = %(u)s AND c.post_id = l.post_id AND c.shard = 0",
            params,
        )
        conn.execute("DELETE FROM engagement.likes WHERE user_id = %(u)s", params)
        conn.execute(
            "UPDATE notifications.notifications n SET actor_count = n.actor_count - 1, "
            "recent_actor_ids = array_remove(n.recent_actor_ids, %(u)s) FROM notifications.notification_actors a "
            "WHERE a.actor_id = %(u)s AND a.notification_id = n.id",
            params,
        )
        conn.execute("DELETE FROM notifications.notification_actors WHERE actor_id = %(u)s", params)
        conn.execute(
            "DELETE FROM notifications.notification_actors WHERE notification_id IN "
            "(SELECT id FROM notifications.notifications WHERE recipient_id = %(u)s)",
            params,
        )
        conn.execute("DELETE FROM notifications.notifications WHERE recipient_id = %(u)s", params)
        conn.execute("DELETE FROM notifications.inboxes WHERE recipient_id = %(u)s", params)

    def delete_objects() -> None:
        for start in range(0, len(keys), 1000):
            errors = list(client.remove_objects(media.bucket, [DeleteObject(k) for k in keys[start : start + 1000]]))
            assert not errors, errors[:1]

    await asyncio.to_thread(delete_objects)
    redis = timelines.redis
    await redis.delete(timelines.inbox_key(user))
    await redis.delete(timelines.outbox_key(user))
    members = [member(p) for p in posts]
    for start in range(0, FOLLOWERS, 500):
        async with redis.pipeline(transaction=False) as pipe:
            for f in followers[start : start + 500]:
                pipe.zrem(timelines.inbox_key(f), *members)
            await pipe.execute()
    wall = time.perf_counter() - started
    await redis.aclose()
    return wall


def main() -> None:
    processes = [
        "graph_svc",
        "post_svc",
        "media_svc",
        "engagement_svc",
        "notification_svc",
        "story_svc",
        "fanout_svc",
        "feed_svc",
        "export_svc",
    ]
    with running_stack(processes) as stack:
        media = MediaSettings(namespace=stack.namespace, database_url=stack.database_url)

        async def register() -> int:
            async with grpc.aio.insecure_channel(stack.addr["graph_svc"]) as channel:
                graph = graph_pb2_grpc.GraphServiceStub(channel)
                user = await graph.RegisterUser(
                    graph_pb2.RegisterUserRequest(
                        username="erased", email="erased@bench.glimpse.dev", password=PASSWORD
                    )
                )
                return user.id

        user = asyncio.run(register())
        loading = time.perf_counter()
        keys = _load(stack, [user, FLOOR_USER])
        _store_objects(media, keys[user] + keys[FLOOR_USER])
        asyncio.run(_timelines(stack, [user, FLOOR_USER]))
        print(
            f"  loaded in {time.perf_counter() - loading:.1f} s: 2 users x ({POSTS:,} posts with "
            f"{len(keys[user]):,} objects, {LIKES:,} likes given, {FOLLOWERS:,} followers with live inboxes)"
        )
        wall, left, last_busy = asyncio.run(_erase(stack, user, media))
        floor = asyncio.run(_floor(stack, FLOOR_USER, keys[FLOOR_USER], media))
        print(f"  erasure through the services, until every consumer and outbox is done   {wall:8.2f} s")
        print(f"  floor: the same data's raw DELETEs, DeleteObjects and Redis removals     {floor:8.2f} s")
        print(f"  erasure / floor {wall / floor:.1f}x; references to the erased user left: {left} (must be 0)")
        done = ", ".join(f"{name} {at:.1f} s" for name, at in sorted(last_busy.items(), key=lambda item: item[1]))
        print(f"  each one done by (polled every 25 ms): {done}")
        print(peak_rss_line())
        if left:
            raise SystemExit("the erasure left references to the user")
