"""Live watches of events for in-process caches, resumed within about a second of a NATS restart.

`watch` is `mesh.bus.Bus.watch` with a shorter idle heartbeat, kept apart only until Bus.watch takes
the same value. Why the heartbeat decides the staleness: a restarted server has forgotten the
watch's ordered consumer (an in-memory ephemeral), and the client notices only when heartbeats stop
for two intervals, then recreates it from the last stream sequence it saw. With Bus.watch's 2 s
heartbeat that is 4 to 8 s after the server went away, however quickly it came back (measured: a
deletion published 0.5 s after a 1 s restart was heard 6 s later), and the cache serves the deleted
post meanwhile. With 0.5 s it is 1 to 2 s, and no message is lost either way. The price is one
heartbeat every 0.5 s per watch while nothing is published.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from mesh.bus import WATCH_ERRORS, Bus, _describe, _filter_of, _stream_of_events
from mesh.events import EventType

log = logging.getLogger("mesh.watch")

# Seconds between the server's idle heartbeats to a watch; a watch whose server restarted resumes
# after two missed ones.
WATCH_HEARTBEAT_SECONDS = 0.5


async def watch(bus: Bus, events: Sequence[EventType[Any]], callback: Callable[[Any], Awaitable[None]]) -> None:
    """Calls `callback(event)` for each of `events` published from now on, in this process only.

    An ordered consumer of the events' stream (ValueError if they span streams): after a reconnect or
    a server restart it resumes from the last sequence it saw within 2 idle heartbeats (about 1 s),
    so a message published meanwhile is delivered late, never lost. Delivery is at-most-once across a
    restart of this process, which starts with empty caches anyway. A failing callback is logged and
    counted (glimpse_event_watch_errors_total), never retried.
    """
    filter_subject = bus.subject(_filter_of(events))
    wanted = {e.subject: e for e in events}

    async def deliver(msg: Msg) -> None:
        entry = wanted.get(msg.subject.removeprefix(bus.namespace + "."))
        if entry is None:
            return
        try:
            await callback(entry.decode(msg.data))
        except Exception as exc:  # noqa: BLE001 - a watcher must not stop on one bad message
            WATCH_ERRORS.labels(entry.subject).inc()
            log.warning("watch callback failed", extra={"subject": msg.subject, "error": _describe(exc)})

    await bus.js.subscribe(
        filter_subject,
        stream=bus.stream(_stream_of_events(events)),
        cb=deliver,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
        idle_heartbeat=WATCH_HEARTBEAT_SECONDS,
    )
