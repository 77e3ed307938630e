"""Durable consumers: ack on success, retry with backoff, dead-letter after the last delivery."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from mesh.bus import Bus, ConsumerSpec, PoisonMessage, run_consumer
from tests.conftest import NATS_URL, STREAM_REPLICAS


async def _dead_letters(bus: Bus, durable: str, expect: int) -> list[tuple[bytes, str]]:
    sub = await bus.js.pull_subscribe(
        bus.subject(f"deadletter.{durable}"),
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

    async def handler(msg):
        attempts[msg.data] = attempts.get(msg.data, 0) + 1
        if msg.data == b"flaky" and attempts[msg.data] < 3:
            raise ConnectionError("redis blinked")
        if msg.data == b"broken":
            raise ValueError("always fails")
        if msg.data == b"poison":
            raise PoisonMessage("cannot decode")
        handled.append(msg.data)

    spec = ConsumerSpec("probe", "posts.created", handler, max_deliver=3, backoff=(0.05, 0.05))
    task = asyncio.create_task(run_consumer(bus, spec))
    try:
        for n, payload in enumerate([b"ok-1", b"flaky", b"broken", b"poison", b"ok-2"]):
            await bus.publish("posts.created", payload, msg_id=f"m{n}")
        for _ in range(200):
            if len(handled) == 3:
                break
            await asyncio.sleep(0.05)
        assert sorted(handled) == [b"flaky", b"ok-1", b"ok-2"]
        assert attempts[b"flaky"] == 3
        assert attempts[b"broken"] == 3  # max_deliver, then dead-lettered
        assert attempts[b"poison"] == 1  # poison goes straight to the dead-letter subject
        dead = await _dead_letters(bus, "probe", expect=2)
        assert sorted(d for d, _ in dead) == [b"broken", b"poison"]
        assert any("always fails" in error for _, error in dead)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.delete_streams()
        await bus.close()
