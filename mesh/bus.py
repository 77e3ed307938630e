"""NATS JetStream: stream provisioning, publishing with de-duplication ids, durable pull consumers
of typed events, and live watches for cache eviction.

Subjects and stream names live under the deployment's namespace ("glimpse.posts.created" in stream
"GLIMPSE_POSTS"), so a test run on the same server never sees another environment's events. Which
subject and stream an event uses is declared once, in `mesh.events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import nats
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from prometheus_client import Counter

from mesh.events import EventType, PoisonMessage, by_subject, dead_letter_subject, event_type, stream_table

log = logging.getLogger("mesh.bus")

# Stream -> the subjects (below the namespace) it stores, built from the event registry.
STREAMS: dict[str, tuple[str, ...]] = stream_table()
# Republishing the same event id within this window is dropped by the server; the outbox relay
# relies on it to make "published, then crashed before marking sent" harmless.
DUPLICATE_WINDOW_SECONDS = 600.0
STREAM_MAX_AGE_SECONDS = 7 * 24 * 3600.0

CONSUMED = Counter("glimpse_events_consumed_total", "Events handled, by consumer and outcome.", ["consumer", "outcome"])

# Seconds between the server's idle heartbeats to a watch (see Bus.watch for why this is short).
WATCH_HEARTBEAT_SECONDS = 0.5
WATCH_ERRORS = Counter("glimpse_event_watch_errors_total", "Watch callbacks that raised or got poison.", ["event"])

__all__ = ["STREAMS", "Bus", "ConsumerSpec", "PoisonMessage", "run_consumer"]


class Bus:
    def __init__(self, nc: NatsClient, namespace: str, replicas: int = 1) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=10)
        self.namespace = namespace
        self.replicas = replicas

    @classmethod
    async def connect(cls, url: str, namespace: str, replicas: int = 1, *, give_up_after: float = 10.0) -> Bus:
        """Connects, or raises ConnectionError after `give_up_after` seconds; once connected, reconnects forever."""
        try:
            nc = await asyncio.wait_for(
                nats.connect(
                    servers=url.split(","),
                    name=f"glimpse-{namespace}",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    drain_timeout=5,
                    error_cb=_log_connection_error,
                ),
                give_up_after,
            )
        except (TimeoutError, OSError, nats.errors.NoServersError) as exc:
            raise ConnectionError(f"cannot reach NATS at {url} within {give_up_after:g}s") from exc
        return cls(nc, namespace, replicas)

    def subject(self, name: str) -> str:
        """The full subject of `name` ("posts.created") in this namespace."""
        return f"{self.namespace}.{name}"

    def stream(self, name: str) -> str:
        return f"{self.namespace.upper()}_{name}"

    async def ensure_streams(self, *, give_up_after: float = 60.0) -> None:
        """Creates or updates every stream; safe to call from every process at start-up.

        A cluster electing leaders (a rolling restart, a lost node) answers late or not at all for
        a few seconds: that is waited out, up to `give_up_after` seconds, instead of crashing.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up_after
        for name, subjects in STREAMS.items():
            config = StreamConfig(
                name=self.stream(name),
                subjects=[self.subject(s) for s in subjects],
                storage=StorageType.FILE,
                num_replicas=self.replicas,
                max_age=STREAM_MAX_AGE_SECONDS,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
            while True:
                try:
                    await self._create_or_update(config)
                    break
                except (nats.errors.TimeoutError, nats.errors.NoRespondersError, js_errors.ServiceUnavailableError):
                    if loop.time() > deadline:
                        raise
                    log.warning("JetStream not answering yet; retrying", extra={"stream": config.name})
                    await asyncio.sleep(1.0)

    async def _create_or_update(self, config: StreamConfig) -> None:
        try:
            await self.js.add_stream(config)
        except js_errors.BadRequestError:
            # Exists with another config (e.g. older limits): bring it to ours.
            await self.js.update_stream(config)

    async def publish(self, name: str, payload: bytes, *, msg_id: str, headers: dict[str, str] | None = None) -> None:
        """Publishes and waits until the stream has stored it; a repeated `msg_id` is dropped."""
        await self.js.publish(self.subject(name), payload, headers={"Nats-Msg-Id": msg_id, **(headers or {})})

    async def publish_event(self, event: Message) -> None:
        """Publishes a registered event on its subject, de-duplicated by its `event_id` (which must be
        set). Services publish through their outbox; this is for tools and tests."""
        event_id = getattr(event, "event_id", 0)
        if not event_id:
            raise ValueError("publish_event needs an event with event_id set")
        await self.publish(event_type(event).subject, event.SerializeToString(), msg_id=str(event_id))

    async def watch(self, events: Sequence[EventType[Any]], callback: Callable[[Any], Awaitable[None]]) -> None:
        """Calls `callback(event)` for each of `events` published from now on, in this process only.

        For in-memory caches (drop a deleted post). An ordered consumer of the events' stream
        (ValueError if they span streams), not a plain NATS subscription: after a reconnect or a
        server restart it resumes from the last sequence it saw, so a message published meanwhile is
        delivered late, never lost (a plain subscription loses it). How late is set by the idle
        heartbeat: a restarted server has forgotten the ordered consumer (an in-memory ephemeral),
        and the client notices only after two missed heartbeats, then recreates it. With a 2 s
        heartbeat a deletion published just after a 1 s restart was heard 5-6.5 s later
        (tests/faults/test_watch.py); with WATCH_HEARTBEAT_SECONDS (0.5 s) it is 1-2 s, for one
        heartbeat message every 0.5 s per idle watch. Delivery is at-most-once across a restart of
        this process, which starts with empty caches anyway. A failing callback is logged and
        counted (glimpse_event_watch_errors_total), never retried.
        """
        filter_subject = self.subject(_filter_of(events))
        wanted = {e.subject: e for e in events}

        async def deliver(msg: Msg) -> None:
            entry = wanted.get(msg.subject.removeprefix(self.namespace + "."))
            if entry is None:
                return
            try:
                await callback(entry.decode(msg.data))
            except Exception as exc:  # noqa: BLE001 - a watcher must not stop on one bad message
                WATCH_ERRORS.labels(entry.subject).inc()
                log.warning("watch callback failed", extra={"subject": msg.subject, "error": _describe(exc)})

        await self.js.subscribe(
            filter_subject,
            stream=self.stream(_stream_of_events(events)),
            cb=deliver,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            idle_heartbeat=WATCH_HEARTBEAT_SECONDS,
        )

    async def delete_streams(self) -> None:
        """Removes this namespace's streams (tests clean up with it)."""
        for name in STREAMS:
            with contextlib.suppress(js_errors.NotFoundError):
                await self.js.delete_stream(self.stream(name))

    async def close(self) -> None:
        await self.nc.drain()


async def _log_connection_error(exc: Exception) -> None:
    # One line per failure: nats-py's default prints a traceback for every reconnect attempt.
    log.warning("nats connection error", extra={"error": f"{type(exc).__name__}: {exc}"})


# Called with the decoded event (one of the spec's `events`).
Handler = Callable[[Any], Awaitable[None]]
# Called with the decoded event (None if it could not be decoded) and the error, before dead-lettering.
DeadLetterHandler = Callable[[Any, str], Awaitable[None]]


@dataclass
class ConsumerSpec:
    """A durable pull consumer of some event types of one stream, with bounded redelivery and a
    dead-letter subject.

    The runtime decodes each message into its registered type and calls the handler once with the
    event; the message is acked only after the handler returns (at-least-once: a crash before the
    ack redelivers it, so handlers are idempotent). Undecodable bytes, or a handler raising
    PoisonMessage, are dead-lettered at once. Any other exception redelivers the message after
    `backoff[n]` seconds, up to `max_deliver` deliveries, then it goes to `deadletter.<durable>`
    with the error and is terminated. Until its handler returns, a fetched message's ack deadline is
    extended every third of `ack_wait_seconds`, so a long handler (or a message queued behind one in
    its batch) is never redelivered meanwhile, and the messages of a crashed process are
    redelivered after at most `ack_wait_seconds`: keep it short. Events of the stream that the spec
    does not list (a wider filter such as "graph.>") are acked without calling the handler.
    """

    durable: str
    events: Sequence[EventType[Any]]
    handler: Handler
    max_deliver: int = 5
    backoff: tuple[float, ...] = (0.5, 2.0, 10.0, 30.0)
    ack_wait_seconds: float = 30.0
    batch: int = 64
    on_dead_letter: DeadLetterHandler | None = field(default=None)


async def run_consumer(bus: Bus, spec: ConsumerSpec) -> None:
    """Pulls and handles messages until cancelled. Several processes may run the same durable."""
    durable = f"{bus.namespace}_{spec.durable}"
    subject = bus.subject(_filter_of(spec.events))
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=spec.ack_wait_seconds,
        max_deliver=spec.max_deliver,
        filter_subject=subject,
        num_replicas=bus.replicas,
    )
    stream = bus.stream(_stream_of_events(spec.events))
    sub = await bus.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
    log.info("consuming", extra={"consumer": durable, "subject": subject})
    task = asyncio.current_task()
    try:
        while True:
            # nats-py waits with asyncio.wait_for, which on CPython 3.11 can swallow a cancellation that
            # lands just as its wait ends (python/cpython#86296): the loop would then fetch forever and
            # whoever cancelled it would wait forever (seen once in the cluster suite). A cancellation
            # requested is honoured here whatever a fetch did with it.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            try:
                messages = await _fetch_batch(sub, spec.batch)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            # Messages of a batch are handled one after another; until each is done, its ack
            # deadline is extended, so a short ack wait never redelivers a message still queued.
            pending = list(messages)
            heartbeat = asyncio.create_task(_keep_in_progress(pending, spec.ack_wait_seconds / 3))
            try:
                while pending:
                    await _handle(bus, spec, pending[0])
                    pending.pop(0)
            finally:
                heartbeat.cancel()
    finally:
        # Leaves the durable in place (its position is kept) but frees this client's interest,
        # so closing the connection does not wait for the pending pull.
        await asyncio.shield(sub.unsubscribe())


# How long a consumer waits for the rest of a batch once its first message is in: about the time
# the server takes to answer a no-wait pull on loopback. What arrives later waits in the client's
# queue for the next fetch. Measured (40 lone events at random moments into an idle consumer,
# batch 64, one NATS 2.9 server): one fetch(64) handled the median in 1 ms but a tenth of them only
# after 0.4-0.54 s (held by nats-py's lingering pull until its expiry); this way, median 4 ms, worst 15 ms.
_REST_OF_BATCH_SECONDS = 0.002


async def _fetch_batch(sub: JetStreamContext.PullSubscription, batch: int) -> list[Msg]:
    """Up to `batch` messages: waits up to 1 s for the first (TimeoutError if none comes), then takes
    whatever else is already available.

    One `fetch(batch, timeout=1.0)` would hold a message that reaches an idle consumer until the
    batch fills or the second ends (nats-py's lingering pull returns only then), so each event of
    a quiet system would wait up to 1 s before its handler runs.
    """
    messages: list[Msg] = await sub.fetch(1, timeout=1.0)
    if batch > 1:
        with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
            messages += await sub.fetch(batch - 1, timeout=_REST_OF_BATCH_SECONDS)
    return messages


async def _handle(bus: Bus, spec: ConsumerSpec, msg: Msg) -> None:
    deliveries = msg.metadata.num_delivered
    entry = by_subject(msg.subject.removeprefix(bus.namespace + "."))
    if entry is None or entry not in spec.events:
        await msg.ack()  # another event of the same stream, not this consumer's business
        CONSUMED.labels(spec.durable, "ignored").inc()
        return
    try:
        event = entry.decode(msg.data)
    except PoisonMessage as exc:
        await _dead_letter(bus, spec, msg, None, f"poison: {exc}")
        return
    try:
        await spec.handler(event)
    except asyncio.CancelledError:
        raise
    except PoisonMessage as exc:
        await _dead_letter(bus, spec, msg, event, f"poison: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - any failure is retried, then dead-lettered
        reason = _describe(exc)
        if deliveries >= spec.max_deliver:
            await _dead_letter(bus, spec, msg, event, reason)
            return
        delay = spec.backoff[min(deliveries - 1, len(spec.backoff) - 1)]
        log.warning(
            "handler failed; will retry", extra={"consumer": spec.durable, "delivery": deliveries, "error": reason}
        )
        CONSUMED.labels(spec.durable, "retry").inc()
        await msg.nak(delay=delay)
        return
    await msg.ack()
    CONSUMED.labels(spec.durable, "ok").inc()


async def _keep_in_progress(pending: list[Msg], every: float) -> None:
    """Extends the ack deadline of every message in `pending` (a live list) every `every` seconds
    until cancelled."""
    while True:
        await asyncio.sleep(every)
        for msg in list(pending):
            try:
                await msg.in_progress()
            except nats.errors.Error as exc:
                # Reconnecting: the message may be redelivered, which handlers tolerate.
                log.warning("could not extend an ack deadline", extra={"error": _describe(exc)})


async def _dead_letter(bus: Bus, spec: ConsumerSpec, msg: Msg, event: Message | None, reason: str) -> None:
    log.error("dead-lettering message", extra={"consumer": spec.durable, "subject": msg.subject, "error": reason})
    if spec.on_dead_letter is not None:
        await spec.on_dead_letter(event, reason)
    seq = str(msg.metadata.sequence.stream) if msg.metadata.sequence else "?"
    await bus.publish(
        dead_letter_subject(spec.durable),
        msg.data,
        msg_id=f"dlq-{spec.durable}-{seq}",
        headers={"Glimpse-Original-Subject": msg.subject, "Glimpse-Error": reason[:1000]},
    )
    await msg.term()
    CONSUMED.labels(spec.durable, "dead_letter").inc()


def _describe(exc: Exception) -> str:
    """One line for logs and dead-letter headers (an RPC error's debug string spans lines)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


def _stream_of_events(events: Sequence[EventType[Any]]) -> str:
    """The one stream storing all of `events` (ValueError if they span streams, or none are given)."""
    streams = {e.stream for e in events}
    if len(streams) != 1:
        raise ValueError(f"a consumer reads events of exactly one stream, not {sorted(streams) or 'none'}")
    return streams.pop()


def _filter_of(events: Sequence[EventType[Any]]) -> str:
    """The subject filter for `events`: the subject itself for one event, else a wildcard over the
    subjects' common first token ("graph.>"); events outside the list are skipped by the reader."""
    stream = _stream_of_events(events)
    if len(events) == 1:
        return events[0].subject
    heads = {e.subject.split(".", 1)[0] for e in events}
    if len(heads) != 1:
        raise ValueError(f"events of stream {stream} have no common subject prefix")
    return f"{heads.pop()}.>"
