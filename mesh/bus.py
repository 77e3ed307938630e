"""NATS JetStream: stream provisioning, publishing with de-duplication ids, durable pull consumers.

Subjects and stream names live under the deployment's namespace ("glimpse.posts.created" in stream
"GLIMPSE_POSTS"), so a test run on the same server never sees another environment's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from prometheus_client import Counter

log = logging.getLogger("mesh.bus")

# Stream -> the subjects (below the namespace) it stores.
STREAMS: dict[str, tuple[str, ...]] = {
    "POSTS": ("posts.created", "posts.deleted"),
    "GRAPH": ("graph.followed", "graph.unfollowed"),
    "MEDIA": ("media.ready", "media.failed"),
    "DEADLETTER": ("deadletter.>",),
}
# Republishing the same event id within this window is dropped by the server; the outbox relay
# relies on it to make "published, then crashed before marking sent" harmless.
DUPLICATE_WINDOW_SECONDS = 600.0
STREAM_MAX_AGE_SECONDS = 7 * 24 * 3600.0

CONSUMED = Counter("glimpse_events_consumed_total", "Events handled, by consumer and outcome.", ["consumer", "outcome"])


class PoisonMessage(Exception):
    """A message that can never be handled (undecodable, impossible): dead-lettered at once."""


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


Handler = Callable[[Msg], Awaitable[None]]


@dataclass
class ConsumerSpec:
    """A durable pull consumer of one subject, with bounded redelivery and a dead-letter subject.

    The handler is called once per message; the message is acked only after it returns. If it
    raises, the message is redelivered after `backoff[n]` seconds, up to `max_deliver` deliveries,
    then published to `deadletter.<durable>` with the error and terminated.
    """

    durable: str
    subject: str
    handler: Handler
    max_deliver: int = 5
    backoff: tuple[float, ...] = (0.5, 2.0, 10.0, 30.0)
    ack_wait_seconds: float = 30.0
    batch: int = 64
    on_dead_letter: Callable[[Msg, str], Awaitable[None]] | None = field(default=None)


async def run_consumer(bus: Bus, spec: ConsumerSpec) -> None:
    """Pulls and handles messages until cancelled. Several processes may run the same durable."""
    durable = f"{bus.namespace}_{spec.durable}"
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=spec.ack_wait_seconds,
        max_deliver=spec.max_deliver,
        filter_subject=bus.subject(spec.subject),
        num_replicas=bus.replicas,
    )
    stream = bus.stream(_stream_of(spec.subject))
    sub = await bus.js.pull_subscribe(bus.subject(spec.subject), durable=durable, stream=stream, config=config)
    log.info("consuming", extra={"consumer": durable, "subject": bus.subject(spec.subject)})
    try:
        while True:
            try:
                messages = await sub.fetch(spec.batch, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for msg in messages:
                await _handle(bus, spec, msg)
    finally:
        # Leaves the durable in place (its position is kept) but frees this client's interest,
        # so closing the connection does not wait for the pending pull.
        await asyncio.shield(sub.unsubscribe())


async def _handle(bus: Bus, spec: ConsumerSpec, msg: Msg) -> None:
    deliveries = msg.metadata.num_delivered
    try:
        await spec.handler(msg)
    except asyncio.CancelledError:
        raise
    except PoisonMessage as exc:
        await _dead_letter(bus, spec, msg, f"poison: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - any failure is retried, then dead-lettered
        reason = _describe(exc)
        if deliveries >= spec.max_deliver:
            await _dead_letter(bus, spec, msg, reason)
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


async def _dead_letter(bus: Bus, spec: ConsumerSpec, msg: Msg, reason: str) -> None:
    log.error("dead-lettering message", extra={"consumer": spec.durable, "subject": msg.subject, "error": reason})
    if spec.on_dead_letter is not None:
        await spec.on_dead_letter(msg, reason)
    seq = str(msg.metadata.sequence.stream) if msg.metadata.sequence else "?"
    await bus.publish(
        f"deadletter.{spec.durable}",
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


def _stream_of(subject: str) -> str:
    """The stream storing `subject` ("posts.created", or a wildcard over one stream like "graph.>")."""
    prefix = subject.removesuffix(">")
    for name, subjects in STREAMS.items():
        if subject in subjects or (prefix and prefix != subject and all(s.startswith(prefix) for s in subjects)):
            return name
    raise ValueError(f"no stream stores subject {subject!r}")
