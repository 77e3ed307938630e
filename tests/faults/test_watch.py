"""Bus.watch across a NATS server restart: the watch resumes within about a second of the server's
return and misses no event published meanwhile (its caches' freshness after a restart rests on it)."""

from __future__ import annotations

import asyncio
import time

from glimpse.events.v1 import events_pb2
from mesh.bus import Bus
from mesh.events import POST_DELETED, POST_UPDATED
from tests.faults.nats_server import NatsServer

# From the publication of an event after the restart until the watch hears it (heartbeats 0.5 s).
RESUME_BOUND_SECONDS = 2.5


async def test_a_watch_hears_every_event_published_after_a_nats_restart_within_seconds(
    nats_server: NatsServer,
) -> None:
    watcher = await Bus.connect(nats_server.url, "watchprobe")
    publisher = await Bus.connect(nats_server.url, "watchprobe")
    heard: dict[int, float] = {}

    async def remember(event: events_pb2.PostDeleted | events_pb2.PostUpdated) -> None:
        heard[event.post_id] = time.monotonic()

    try:
        await watcher.ensure_streams()
        await watcher.watch([POST_DELETED, POST_UPDATED], remember)
        await publisher.publish_event(events_pb2.PostDeleted(event_id=1, post_id=1, author_id=9))
        await _until(lambda: 1 in heard, 5)

        await asyncio.to_thread(nats_server.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(nats_server.start)
        published: dict[int, float] = {}
        for post_id in range(2, 8):  # a deletion or an edit every 0.3 s from the restart on
            event = (
                events_pb2.PostDeleted(event_id=post_id, post_id=post_id, author_id=9)
                if post_id % 2
                else events_pb2.PostUpdated(event_id=post_id, post_id=post_id, author_id=9)
            )
            await publisher.publish_event(event)  # waits out the publisher's own reconnection
            published[post_id] = time.monotonic()
            await asyncio.sleep(0.3)
        await _until(lambda: set(published) <= set(heard), 10)
    finally:
        if not nats_server.running:
            await asyncio.to_thread(nats_server.start)
        await watcher.delete_streams()
        await watcher.close()
        await publisher.close()

    lags = {p: heard[p] - published[p] for p in published}
    print(
        f"\n[watch] heard after a NATS restart: {', '.join(f'{lag:.2f}' for lag in lags.values())} s after publishing"
    )
    assert max(lags.values()) <= RESUME_BOUND_SECONDS, lags


async def _until(condition: object, within: float) -> None:
    assert callable(condition)
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within:g}s"
        await asyncio.sleep(0.02)
