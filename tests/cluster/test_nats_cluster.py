"""JetStream on a 3-node cluster: replicated streams, and the outbox relay losing a server mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from glimpse.events.v1 import events_pb2
from graph_svc import models
from mesh.bus import STREAMS, Bus, ConsumerSpec, run_consumer
from mesh.db import Database
from mesh.events import USER_FOLLOWED
from mesh.ids import IdGenerator
from mesh.migrate import drop_database, ensure_database, upgrade
from mesh.outbox import Outbox
from tests.cluster.nodes import (
    ROOT,
    delete_streams_when_answered,
    kill_nats_node,
    nats_jetstream_report,
    nats_node_number,
    start_nats_node,
)
from tests.conftest import ENV, fresh_database_url
from tests.mesh.test_outbox import _stored_event_ids

EVENTS = 6000
LOG = ROOT / ".run" / "cluster" / "graph_svc-relay.log"


@pytest.fixture
async def cluster_bus() -> AsyncIterator[Bus]:
    bus = await Bus.connect(ENV.nats_url, f"c{uuid.uuid4().hex[:8]}", ENV.stream_replicas)
    await bus.ensure_streams()
    yield bus
    await delete_streams_when_answered(bus)
    await bus.close()


async def test_streams_and_consumers_are_replicated_on_three_servers(cluster_bus: Bus):
    for name in STREAMS:
        info = await cluster_bus.js.stream_info(cluster_bus.stream(name))
        assert info.config.num_replicas == 3
        assert info.cluster is not None and info.cluster.leader
        peers = {info.cluster.leader, *(peer.name for peer in info.cluster.replicas or [])}
        assert peers == {"glimpse-nats-1", "glimpse-nats-2", "glimpse-nats-3"}

    handled = asyncio.Event()

    async def handler(event: events_pb2.UserFollowed) -> None:
        handled.set()

    spec = ConsumerSpec(durable="replicas_probe", events=[USER_FOLLOWED], handler=handler)
    consumer = asyncio.create_task(run_consumer(cluster_bus, spec))
    try:
        await cluster_bus.publish_event(events_pb2.UserFollowed(event_id=1, follower_id=1, followee_id=2))
        await asyncio.wait_for(handled.wait(), 10)
        info = await cluster_bus.js.consumer_info(
            cluster_bus.stream("GRAPH"), f"{cluster_bus.namespace}_{spec.durable}"
        )
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


async def test_outbox_relay_loses_the_stream_leader_and_still_publishes_each_event_once(
    cluster_bus: Bus, capsys: pytest.CaptureFixture[str]
):
    """kill -9 the NATS server leading the GRAPH stream while the real graph_svc relays a backlog,
    restart it, and find every event in the stream exactly once, on all three servers.

    graph_svc runs under a supervisor loop that restarts it when it exits, as a Deployment would.
    """
    url = fresh_database_url(f"natskill_{uuid.uuid4().hex[:6]}")
    await asyncio.to_thread(ensure_database, url)
    await asyncio.to_thread(upgrade, url, "graph_svc")
    db = Database(url, pool_size=2)
    env = {
        **os.environ,
        "GLIMPSE_DATABASE_URL": url,
        "GLIMPSE_NAMESPACE": cluster_bus.namespace,
        "GLIMPSE_LISTEN": "127.0.0.1:0",
        "GLIMPSE_LOG_LEVEL": "ERROR",
    }
    stream = cluster_bus.stream("GRAPH")
    leader = (await cluster_bus.js.stream_info(stream)).cluster.leader
    victim = nats_node_number(leader)
    process: subprocess.Popen[bytes] | None = None
    restarts = 0
    try:
        written = await _write_events(db, EVENTS)

        def relay() -> subprocess.Popen[bytes]:
            # Its log (why it stopped, if it did) is kept beside the clusters' logs.
            with LOG.open("ab") as log:
                return subprocess.Popen([sys.executable, "-m", "graph_svc"], cwd=ROOT, env=env, stderr=log)

        process = relay()
        while (await cluster_bus.js.stream_info(stream)).state.messages < EVENTS // 4:
            assert process.poll() is None, "graph_svc exited before the kill"
            await asyncio.sleep(0.005)
        killed_at = time.monotonic()
        kill_nats_node(victim)
        restarted_node = False
        deadline = time.monotonic() + 90
        while await _unpublished(db) > 0:
            assert time.monotonic() < deadline, "the backlog was not published within 90 s"
            if process.poll() is not None:
                restarts += 1
                process = relay()
            if not restarted_node and time.monotonic() - killed_at > 3:
                start_nats_node(victim)
                restarted_node = True
            await asyncio.sleep(0.1)
        drained_after = time.monotonic() - killed_at
        if not restarted_node:
            start_nats_node(victim)

        stored = await _stored_event_ids(cluster_bus)
        duplicates = len(stored) - len(set(stored))
        missing = len(written - set(stored))
        with capsys.disabled():
            print(
                f"\n[nats failover] killed the GRAPH stream leader ({leader}) after {EVENTS // 4}+ of {EVENTS} "
                f"events; graph_svc restarted {restarts}x; backlog drained {drained_after:.1f}s after the kill; "
                f"stored {len(stored)}, missing {missing}, duplicates {duplicates}"
            )
        assert missing == 0
        assert duplicates == 0
        assert len(stored) == EVENTS
        await _wait_all_servers_hold(stream, EVENTS)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
        await db.dispose()
        await asyncio.to_thread(drop_database, url)


async def _write_events(db: Database, count: int) -> set[int]:
    outbox, ids = Outbox(models.outbox, IdGenerator(12)), set()
    async with db.unit_of_work() as session:
        for n in range(count):
            event = events_pb2.UserFollowed(follower_id=n + 1, followee_id=1)
            ids.add(await outbox.add(session, event))
    return ids


async def _unpublished(db: Database) -> int:
    async with db.read_only() as session:
        query = select(func.count()).select_from(models.outbox).where(models.outbox.c.published_at.is_(None))
        return int((await session.execute(query)).scalar_one())


async def _wait_all_servers_hold(stream: str, messages: int, within_seconds: float = 30.0) -> None:
    """Until each of the three servers (the restarted one too) stores `messages` in `stream`."""
    deadline = time.monotonic() + within_seconds
    while True:
        counts = {n: await asyncio.to_thread(_stored_on, n, stream) for n in (1, 2, 3)}
        if all(count == messages for count in counts.values()):
            return
        assert time.monotonic() < deadline, f"replicas did not catch up: {counts}"
        await asyncio.sleep(0.2)


def _stored_on(n: int, stream: str) -> int | None:
    for account in nats_jetstream_report(n).get("account_details", []):
        for detail in account.get("stream_detail", []):
            if detail["name"] == stream:
                return int(detail["state"]["messages"])
    return None
