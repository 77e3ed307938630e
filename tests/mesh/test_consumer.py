"""Durable consumers: ack on success, retry with backoff, dead-letter after the last delivery."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from glimpse.events.v1 import events_pb2
from mesh.bus import Bus, ConsumerSpec, PoisonMessage, run_consumer
from mesh.events import POST_CREATED, dead_letter_subject
from tests.conftest import NATS_URL, STREAM_REPLICAS


async def _dead_letters(bus: Bus, durable: str, expect: int) -> list[tuple[bytes, str]]:
    sub = await bus.js.pull_subscribe(
        bus.subject(dead_letter_subject(durable)),
        stream=bus.stream("DEADLETTER"),
        config=ConsumerConfig(
            name=f"dl_{uuid.uuid4().hex[:6]}", ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL
        ),
    )
    found: list[tuple[bytes, str]] = []
    for _ in range(50):
        with contextlib.suppress(TimeoutError):
            found += [(m.data, m.headers["Glimpse-Error"]) for m in await sub.fetch(10, timeout=0.2)]
        if len(found) >= expect:
            break
    await sub.unsubscribe()
    return found


async def test_retries_then_dead_letters_and_keeps_serving():
    bus = await Bus.connect(NATS_URL, f"c{uuid.uuid4().hex[:8]}", STREAM_REPLICAS)
    await bus.ensure_streams()
    attempts: dict[bytes, int] = {}
    handled: list[bytes] = []

    # The handler gets decoded events; each test case is a PostCreated whose post_id names it.
    names = {1: "ok-1", 2: "flaky", 3: "broken", 4: "poison", 5: "ok-2"}
    failed_with: dict[str, str] = {}

    async def handler(event: events_pb2.PostCreated) -> None:
        name = names[event.post_id]
        attempts[name] = attempts.get(name, 0) + 1
        if name == "flaky" and attempts[name] < 3:
            raise ConnectionError("redis blinked")
        if name == "broken":
            raise ValueError("always fails")
        if name == "poison":
            raise PoisonMessage("cannot be handled")
        handled.append(name)

    async def on_dead_letter(event: events_pb2.PostCreated | None, error: str) -> None:
        failed_with[names[event.post_id] if event else "undecodable"] = error

    spec = ConsumerSpec(
        "probe", [POST_CREATED], handler, max_deliver=3, backoff=(0.05, 0.05), on_dead_letter=on_dead_letter
    )
    task = asyncio.create_task(run_consumer(bus, spec))
    try:
        for post_id in names:
            await bus.publish_event(events_pb2.PostCreated(event_id=100 + post_id, post_id=post_id, author_id=1))
        # Bytes that are no PostCreated, and a registered event of the stream the spec does not list.
        await bus.publish(POST_CREATED.subject, b"\xff\xff not protobuf", msg_id="garbage")
        await bus.publish_event(events_pb2.PostDeleted(event_id=99, post_id=1, author_id=1))
        for _ in range(200):
            if len(handled) == 3 and len(failed_with) == 3:
                break
            await asyncio.sleep(0.05)
        assert sorted(handled) == ["flaky", "ok-1", "ok-2"]
        assert attempts["flaky"] == 3
        assert attempts["broken"] == 3  # max_deliver, then dead-lettered
        assert attempts["poison"] == 1  # poison goes straight to the dead-letter subject
        assert set(failed_with) == {"broken", "poison", "undecodable"}
        assert "always fails" in failed_with["broken"]
        dead = await _dead_letters(bus, "probe", expect=3)
        assert len(dead) == 3
        assert any(d == b"\xff\xff not protobuf" for d, _ in dead)
        assert any("always fails" in error for _, error in dead)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.delete_streams()
        await bus.close()


async def test_an_event_reaching_an_idle_consumer_is_handled_at_once():
    """A consumer with a large batch hands a lone event to its handler without waiting for the batch
    to fill (one lingering fetch of 64 held about a tenth of them until its 1 s expiry)."""
    bus = await Bus.connect(NATS_URL, f"c{uuid.uuid4().hex[:8]}", STREAM_REPLICAS)
    await bus.ensure_streams()
    handled: dict[int, float] = {}
    loop = asyncio.get_running_loop()

    async def handler(event: events_pb2.PostCreated) -> None:
        handled[event.post_id] = loop.time()

    task = asyncio.create_task(run_consumer(bus, ConsumerSpec("idle", [POST_CREATED], handler, batch=64)))
    try:
        await asyncio.sleep(1.3)  # past the first fetch's no-wait probe: the consumer is lingering
        delays = []
        for post_id in range(1, 11):
            sent = loop.time()
            await bus.publish_event(events_pb2.PostCreated(event_id=post_id, post_id=post_id, author_id=1))
            while post_id not in handled and loop.time() - sent < 3:
                await asyncio.sleep(0.005)
            delays.append(handled.get(post_id, float("inf")) - sent)
            await asyncio.sleep(0.05 + 0.11 * post_id)  # lands elsewhere in the next fetch's window
        # Each one is handled in milliseconds; 0.25 s leaves room for a busy machine.
        assert max(delays) < 0.25, [round(d, 3) for d in delays]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bus.close()
