"""An erasure cut by kill -9 is finished after the restart (issue 16: "a kill -9 of any worker
mid-deletion must not leave it half done forever"): post_svc's, and engagement_svc's (its likes
and their counts).

The real post_svc process erases a user with 3,000 posts (six batches of mesh.erasure.ERASURE_BATCH)
and is killed with SIGKILL once some batches committed and others did not. Started again, its
consumer gets the unacknowledged `graph.user_deleted` again (after the ack wait) and finishes: no
post, tag index row or tag count of the user is left, and each post got exactly one `posts.deleted`
(the batch cut short rolled back with its events; a relay killed between publishing and marking its
rows sent republishes them under the same message ids, which the stream drops).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text

from glimpse.events.v1 import events_pb2
from mesh.bus import Bus
from mesh.db import Database
from mesh.events import POST_DELETED
from mesh.migrate import drop_database, ensure_database, upgrade
from tests.conftest import NATS_URL, STREAM_REPLICAS, fresh_database_url

ROOT = Path(__file__).resolve().parents[2]
POSTS = 3000
USER_ID = 4_000_000_000_000_000_001
TAG = "killtag"


async def _remaining(db: Database) -> int:
    async with db.read_only() as session:
        found = await session.execute(text("SELECT count(*) FROM posts.posts WHERE author_id = :u"), {"u": USER_ID})
        return int(found.scalar_one())


async def _deleted_post_ids(bus: Bus) -> list[int]:
    """The post id of every `posts.deleted` stored in the POSTS stream, read with a throwaway consumer."""
    total = (await bus.js.stream_info(bus.stream(POST_DELETED.stream))).state.messages
    sub = await bus.js.pull_subscribe(
        bus.subject(POST_DELETED.subject),
        stream=bus.stream(POST_DELETED.stream),
        config=ConsumerConfig(
            name=f"count_{uuid.uuid4().hex[:6]}", ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL
        ),
    )
    found: list[int] = []
    while len(found) < total:
        for msg in await sub.fetch(1000, timeout=5):
            found.append(events_pb2.PostDeleted.FromString(msg.data).post_id)
    await sub.unsubscribe()
    return found


async def test_post_erasure_killed_mid_way_finishes_after_restart() -> None:
    url = fresh_database_url(f"erasekill_{uuid.uuid4().hex[:6]}")
    await asyncio.to_thread(ensure_database, url)
    await asyncio.to_thread(upgrade, url, "post_svc")
    bus = await Bus.connect(NATS_URL, f"e{uuid.uuid4().hex[:8]}", STREAM_REPLICAS)
    await bus.ensure_streams()
    db = Database(url, pool_size=2)
    env = {
        **os.environ,
        "GLIMPSE_DATABASE_URL": url,
        "GLIMPSE_NAMESPACE": bus.namespace,
        "GLIMPSE_LISTEN": "127.0.0.1:0",
        "GLIMPSE_LOG_LEVEL": "WARNING",
        # Never called by the erasure; nothing listens there.
        "GLIMPSE_MEDIA_ADDR": "127.0.0.1:9",
        "GLIMPSE_GRAPH_ADDR": "127.0.0.1:9",
    }
    post_ids = list(range(USER_ID, USER_ID + POSTS))
    try:
        async with db.unit_of_work() as session:
            await session.execute(
                text(
                    "INSERT INTO posts.posts (id, author_id, caption, hashtags, media_ids) "
                    f"SELECT id, :u, '#{TAG}', ARRAY['{TAG}'], ARRAY[id] FROM generate_series(:first, :last) AS id"
                ),
                {"u": USER_ID, "first": post_ids[0], "last": post_ids[-1]},
            )
            await session.execute(
                text(f"INSERT INTO posts.post_tags (tag, post_id) SELECT '{TAG}', id FROM posts.posts")
            )
            await session.execute(text(f"INSERT INTO posts.tags (name, post_count) VALUES ('{TAG}', {POSTS})"))
        process = subprocess.Popen([sys.executable, "-m", "post_svc"], cwd=ROOT, env=env)
        try:
            await bus.publish_event(events_pb2.UserDeleted(event_id=1, user_id=USER_ID))
            deadline = time.monotonic() + 60
            while (left := await _remaining(db)) == POSTS:
                assert process.poll() is None, "post_svc exited early"
                assert time.monotonic() < deadline, "the erasure never started"
                await asyncio.sleep(0.002)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        left = await _remaining(db)
        assert 0 < left < POSTS, f"the kill should land mid-erasure ({left} of {POSTS} posts left)"

        process = subprocess.Popen([sys.executable, "-m", "post_svc"], cwd=ROOT, env=env)
        try:
            deadline = time.monotonic() + 90
            while await _remaining(db) or len(await _deleted_post_ids(bus)) < POSTS:
                assert process.poll() is None, "post_svc exited early"
                assert time.monotonic() < deadline, f"not finished after the restart: {await _remaining(db)} left"
                await asyncio.sleep(0.2)
        finally:
            process.terminate()
            assert process.wait(timeout=20) == 0, "post_svc should stop cleanly on SIGTERM"
        async with db.read_only() as session:
            index = (await session.execute(text("SELECT count(*) FROM posts.post_tags"))).scalar_one()
            count = (await session.execute(text(f"SELECT post_count FROM posts.tags WHERE name = '{TAG}'"))).scalar()
        assert (index, count) == (0, 0)
        deleted = await _deleted_post_ids(bus)
        assert sorted(deleted) == post_ids, "exactly one posts.deleted per post"
    finally:
        await db.dispose()
        await bus.delete_streams()
        await bus.close()
        await asyncio.to_thread(drop_database, url)


LIKES = 5000


async def _likes_left(db: Database) -> int:
    async with db.read_only() as session:
        found = await session.execute(text("SELECT count(*) FROM engagement.likes WHERE user_id = :u"), {"u": USER_ID})
        return int(found.scalar_one())


async def test_engagement_erasure_killed_mid_way_finishes_with_exact_counts() -> None:
    """5,000 likes (ten batches), each the only like of its post: after the kill and the restart no
    like is left and every post's count (the sum over its shards) is exactly 0, never -1."""
    url = fresh_database_url(f"erasekill_{uuid.uuid4().hex[:6]}")
    await asyncio.to_thread(ensure_database, url)
    await asyncio.to_thread(upgrade, url, "engagement_svc")
    bus = await Bus.connect(NATS_URL, f"e{uuid.uuid4().hex[:8]}", STREAM_REPLICAS)
    await bus.ensure_streams()
    db = Database(url, pool_size=2)
    env = {
        **os.environ,
        "GLIMPSE_DATABASE_URL": url,
        "GLIMPSE_NAMESPACE": bus.namespace,
        "GLIMPSE_LISTEN": "127.0.0.1:0",
        "GLIMPSE_LOG_LEVEL": "WARNING",
        "GLIMPSE_ACK_WAIT_SECONDS": "2",
        "GLIMPSE_POST_ADDR": "127.0.0.1:9",
        "GLIMPSE_GRAPH_ADDR": "127.0.0.1:9",
    }
    try:
        async with db.unit_of_work() as session:
            await session.execute(
                text("INSERT INTO engagement.likes (post_id, user_id) SELECT p, :u FROM generate_series(1, :n) AS p"),
                {"u": USER_ID, "n": LIKES},
            )
            await session.execute(
                text(
                    "INSERT INTO engagement.post_counters (post_id, shard, likes, comments) "
                    "SELECT p, 0, 1, 0 FROM generate_series(1, :n) AS p"
                ),
                {"n": LIKES},
            )
        process = subprocess.Popen([sys.executable, "-m", "engagement_svc"], cwd=ROOT, env=env)
        try:
            await bus.publish_event(events_pb2.UserDeleted(event_id=1, user_id=USER_ID))
            deadline = time.monotonic() + 60
            while await _likes_left(db) == LIKES:
                assert process.poll() is None, "engagement_svc exited early"
                assert time.monotonic() < deadline, "the erasure never started"
                await asyncio.sleep(0.002)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        left = await _likes_left(db)
        assert 0 < left < LIKES, f"the kill should land mid-erasure ({left} of {LIKES} likes left)"

        process = subprocess.Popen([sys.executable, "-m", "engagement_svc"], cwd=ROOT, env=env)
        try:
            deadline = time.monotonic() + 90
            while await _likes_left(db):
                assert process.poll() is None, "engagement_svc exited early"
                assert time.monotonic() < deadline, f"not finished after the restart: {await _likes_left(db)} left"
                await asyncio.sleep(0.2)
        finally:
            process.terminate()
            assert process.wait(timeout=20) == 0, "engagement_svc should stop cleanly on SIGTERM"
        async with db.read_only() as session:
            counts = await session.execute(
                text("SELECT sum(likes) AS total, count(DISTINCT post_id) AS posts FROM engagement.post_counters")
            )
            row = counts.one()
            wrong = await session.execute(
                text(
                    "SELECT count(*) FROM (SELECT post_id FROM engagement.post_counters "
                    "GROUP BY post_id HAVING sum(likes) <> 0) AS off"
                )
            )
        assert (row.total, row.posts) == (0, LIKES)
        assert wrong.scalar_one() == 0, "every post's like count is exactly 0"
    finally:
        await db.dispose()
        await bus.delete_streams()
        await bus.close()
        await asyncio.to_thread(drop_database, url)
