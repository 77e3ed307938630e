"""The outbox publishes every event exactly once, even when the relay dies mid-batch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import func, select

from glimpse.events.v1 import events_pb2
from graph_svc import models
from mesh.bus import Bus
from mesh.db import Database
from mesh.events import DEAD_LETTER_STREAM, USER_FOLLOWED, dead_letter_subject
from mesh.ids import IdGenerator
from mesh.migrate import drop_database, ensure_database, upgrade
from mesh.outbox import Outbox, OutboxRelay
from tests.conftest import NATS_URL, STREAM_REPLICAS, fresh_database_url

ROOT = Path(__file__).resolve().parents[2]


async def _write_events(db: Database, count: int) -> set[int]:
    outbox, ids = Outbox(models.outbox, IdGenerator(11)), set()
    async with db.unit_of_work() as session:
        for n in range(count):
            ids.add(await outbox.add(session, events_pb2.UserFollowed(follower_id=n + 1, followee_id=1)))
    return ids


async def _stored_event_ids(bus: Bus) -> list[int]:
    """Every event id stored in the GRAPH stream, read with a throwaway consumer."""
    info = await bus.js.stream_info(bus.stream("GRAPH"))
    total = info.state.messages
    sub = await bus.js.pull_subscribe(
        bus.subject(USER_FOLLOWED.subject),
        stream=bus.stream("GRAPH"),
        config=ConsumerConfig(
            name=f"count_{uuid.uuid4().hex[:6]}", ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL
        ),
    )
    found: list[int] = []
    while len(found) < total:
        for msg in await sub.fetch(1000, timeout=5):
            found.append(events_pb2.UserFollowed.FromString(msg.data).event_id)
    await sub.unsubscribe()
    return found


async def _unpublished(db: Database) -> int:
    async with db.read_only() as session:
        query = select(func.count()).select_from(models.outbox).where(models.outbox.c.published_at.is_(None))
        return int((await session.execute(query)).scalar_one())


async def _fresh(tag: str) -> tuple[str, Database, Bus]:
    url = fresh_database_url(f"{tag}_{uuid.uuid4().hex[:6]}")
    await asyncio.to_thread(ensure_database, url)
    await asyncio.to_thread(upgrade, url, "graph_svc")
    bus = await Bus.connect(NATS_URL, f"o{uuid.uuid4().hex[:8]}", STREAM_REPLICAS)
    await bus.ensure_streams()
    return url, Database(url, pool_size=2), bus


async def _cleanup(url: str, db: Database, bus: Bus) -> None:
    await db.dispose()
    await bus.delete_streams()
    await bus.close()
    await asyncio.to_thread(drop_database, url)


async def test_relay_cancelled_after_publishing_republishes_without_duplicates():
    url, db, bus = await _fresh("cancel")
    try:
        written = await _write_events(db, 3000)
        relay = OutboxRelay(db, models.outbox, bus, batch_size=3000)
        task = asyncio.create_task(relay.publish_pending())
        # Cancel once part of the batch is in the stream: those rows stay unmarked (rolled back).
        while (await bus.js.stream_info(bus.stream("GRAPH"))).state.messages < 50:
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # The batch is marked all or nothing (a cancel landing in COMMIT may still commit it).
        left = await _unpublished(db)
        assert left in (0, 3000)
        assert await relay.publish_pending() == left
        assert await _unpublished(db) == 0
        stored = await _stored_event_ids(bus)
        assert sorted(stored) == sorted(written)
    finally:
        await _cleanup(url, db, bus)


async def test_relay_killed_and_restarted_publishes_each_event_exactly_once():
    """kill -9 the real graph_svc process while its relay works through a backlog, then restart it."""
    url, db, bus = await _fresh("kill")
    env = {
        **os.environ,
        "GLIMPSE_DATABASE_URL": url,
        "GLIMPSE_NAMESPACE": bus.namespace,
        "GLIMPSE_LISTEN": "127.0.0.1:0",
        "GLIMPSE_LOG_LEVEL": "WARNING",
    }
    try:
        written = await _write_events(db, 6000)
        process = subprocess.Popen([sys.executable, "-m", "graph_svc"], cwd=ROOT, env=env)
        try:
            while (await bus.js.stream_info(bus.stream("GRAPH"))).state.messages < 1500:
                assert process.poll() is None, "graph_svc exited early"
                await asyncio.sleep(0.005)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        left = await _unpublished(db)
        assert 0 < left < 6000, "the kill should land mid-backlog"
        process = subprocess.Popen([sys.executable, "-m", "graph_svc"], cwd=ROOT, env=env)
        try:
            for _ in range(600):
                if await _unpublished(db) == 0:
                    break
                await asyncio.sleep(0.05)
        finally:
            process.terminate()
            assert process.wait(timeout=20) == 0, "graph_svc should stop cleanly on SIGTERM"
        assert await _unpublished(db) == 0
        stored = await _stored_event_ids(bus)
        assert len(stored) == 6000
        assert set(stored) == written
    finally:
        await _cleanup(url, db, bus)


async def test_a_row_no_stream_stores_is_parked_and_the_rows_behind_it_flow_on():
    """A row whose subject no registered event uses (an older or newer release wrote it) sits at
    the head of the outbox: it is dead-lettered with its reason, and every later event is published."""
    url, db, bus = await _fresh("park")
    try:
        async with db.unit_of_work() as session:
            await session.execute(models.outbox.insert().values(id=1, subject="graph.renamed", payload=b"\x08\x01"))
        written = await _write_events(db, 5)
        relay = OutboxRelay(db, models.outbox, bus)
        task = asyncio.create_task(relay.run())
        try:
            for _ in range(200):
                if await _unpublished(db) == 0:
                    break
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert await _unpublished(db) == 0
        assert set(await _stored_event_ids(bus)) == written
        sub = await bus.js.pull_subscribe(
            bus.subject(dead_letter_subject("outbox", "graph")),
            stream=bus.stream(DEAD_LETTER_STREAM),
            config=ConsumerConfig(name="parked", ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
        )
        [parked] = await sub.fetch(10, timeout=5)
        assert parked.data == b"\x08\x01"
        assert parked.headers["Glimpse-Original-Subject"] == "graph.renamed"
        assert "no registered event" in parked.headers["Glimpse-Error"]
        await sub.unsubscribe()
    finally:
        await _cleanup(url, db, bus)
