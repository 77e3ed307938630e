"""Real-time inboxes: this process's open WatchNotifications streams, woken by ONE watch of
`notifications.changed` (mesh.bus.Bus.watch) whichever replica wrote the change.

The event only wakes a stream; what the stream sends is read from the store (changes after the
sequence it has sent), so a wake-up lost or repeated costs nothing but a read, and a stream opened
with the last sequence a client saw replays what it missed first. A wake-up lost entirely (the
watch is at-most-once across a NATS restart) delays a change until the next one wakes the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from glimpse.events.v1 import events_pb2
from mesh.errors import ResourceExhausted
from notification_svc.inbox import InboxChanges, InboxReader


class _Listener:
    def __init__(self) -> None:
        self._woken = asyncio.Event()
        # The highest sequence announced for the inbox since the listener was made.
        self.heard = 0

    def wake(self, sequence: int) -> None:
        self.heard = max(self.heard, sequence)
        self._woken.set()

    async def wait(self) -> None:
        await self._woken.wait()
        self._woken.clear()


class Watchers:
    def __init__(self, reader: InboxReader, *, max_streams: int) -> None:
        self._reader = reader
        self._max = max_streams
        self._listeners: dict[int, set[_Listener]] = {}
        self._open = 0

    @property
    def open_streams(self) -> int:
        return self._open

    async def on_changed(self, event: events_pb2.NotificationChanged) -> None:
        """The `notifications.changed` watch: wakes the recipient's open streams in this process."""
        for listener in self._listeners.get(event.recipient_id, ()):
            listener.wake(event.sequence)

    @contextlib.contextmanager
    def _listening(self, recipient_id: int) -> Iterator[_Listener]:
        if self._open >= self._max:
            raise ResourceExhausted(
                f"this server already streams {self._max} inboxes; retry shortly", reason="TOO_MANY_STREAMS"
            )
        listener = _Listener()
        self._listeners.setdefault(recipient_id, set()).add(listener)
        self._open += 1
        try:
            yield listener
        finally:
            self._open -= 1
            listeners = self._listeners[recipient_id]
            listeners.discard(listener)
            if not listeners:
                del self._listeners[recipient_id]

    async def follow(self, recipient_id: int, after_sequence: int) -> AsyncIterator[InboxChanges]:
        """The inbox's changes after `after_sequence`, page by page, then each new batch as it commits,
        until the caller stops iterating. With `after_sequence` 0 (or above the inbox's last, a client
        of a restored database) it starts from now, and the first page is empty: its last_sequence is
        the position. INVALID_ARGUMENT for a negative `after_sequence`; RESOURCE_EXHAUSTED
        (TOO_MANY_STREAMS) when this process streams `max_streams` inboxes already."""
        # Listening before the first read: a change committed during it still wakes us.
        with self._listening(recipient_id) as listener:
            first = await self._reader.changes(recipient_id, after_sequence)
            # The newest sequence known to exist: read on until the cursor reaches it.
            target = first.last_sequence
            if after_sequence == 0 or after_sequence > first.last_sequence:
                cursor = first.last_sequence
                yield InboxChanges([], cursor, first.unread_count, first.read_up_to)
            else:
                cursor = first.changes[-1].sequence if first.changes else after_sequence
                yield first
            while True:
                if cursor >= max(target, listener.heard):
                    await listener.wait()
                    continue
                found = await self._reader.changes(recipient_id, cursor)
                target = max(target, found.last_sequence)
                if found.changes:
                    cursor = found.changes[-1].sequence
                    yield found
                else:
                    # Announced but nothing after the cursor: a sequence this stream already passed.
                    cursor = max(cursor, found.last_sequence)
