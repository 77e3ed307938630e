"""The right to erasure (issue 16): how each service's share of deleting a user runs.

graph_svc deletes the account (follows both ways, requests, blocks, mutes, sessions, the user row)
and writes `graph.user_deleted` (mesh.events.USER_DELETED) in the same unit of work. Every other
service holding something the user owns or caused consumes that event with a durable of its own,
"<svc>_erasure" (`erasure_consumer`), and removes its share in batches of at most `ERASURE_BATCH`
rows (or objects, or keys), each batch its own unit of work, until a batch finds nothing left.

Why this is idempotent and resumable without any progress record (which would itself hold the id):
what is left to erase *is* the progress. A batch that committed is never found again; a batch cut
by kill -9 rolled back and is found again. The event is acked only when the handler returned
(mesh.bus: at-least-once), so a process killed mid-erasure has the event redelivered within its
ack wait, to itself after a restart or to another replica, which finishes the job. A handler that
keeps failing (the store or a database down) is retried for `ERASURE_MAX_DELIVER` deliveries with
backoff up to a minute (more than an hour and a half) before the event is dead-lettered on
"deadletter.<durable>", which keeps it a week for an operator to publish again.

What stays, by design (documented in README's erasure paragraph): the events themselves. The
JetStream streams keep every event for mesh.bus.STREAM_MAX_AGE_SECONDS (7 days), and each outbox keeps
a published row for mesh.outbox.OutboxRelay's `keep_published` (1 hour) until its relay prunes it:
both hold the user id inside protobuf payloads (this event, and the `posts.deleted` or
`stories.deleted` events an erasure emits so that other services forget the content as for any
deletion). Reports keep their snapshots (graph_svc, per the issue). In-process caches forget on
their own within their TTLs (feed_svc's hydrated items and authors 60 s, visibility answers 10 s).

A known window: an event about the user published *before* the deletion but handled *after* a
service's erasure (a like they made a moment earlier, still queued for notification_svc) is handled
as usual and can write about them again. graph_svc ends their sessions in the deleting transaction,
so no new activity of theirs starts after it; what was in flight is at most a consumer's backlog.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from mesh.bus import ConsumerSpec, Handler
from mesh.events import USER_DELETED, PoisonMessage

# Rows (objects, keys) removed per unit of work: big enough that a user with 1,000 posts and 10,000
# likes is a few dozen transactions, small enough that no lock is held for long and a transaction
# stays well under a second on a 2-core machine.
ERASURE_BATCH = 500
# Deliveries before the event is dead-lettered, and the waits between them (the last one repeats).
ERASURE_MAX_DELIVER = 100
ERASURE_BACKOFF_SECONDS = (0.5, 2.0, 10.0, 30.0, 60.0)

ERASED = Counter("glimpse_erasure_items_total", "Items removed by users' erasures, by service and kind.", ["kind"])
ERASURES_FINISHED = Counter("glimpse_erasures_finished_total", "Erasures a consumer finished.", ["consumer"])


def erased_user(event: Any) -> int:
    """The id of the user a `graph.user_deleted` event erases; PoisonMessage if it names none."""
    if event.user_id <= 0:
        raise PoisonMessage("UserDeleted without a user_id")
    return int(event.user_id)


def erasure_consumer(durable: str, handler: Handler, *, ack_wait_seconds: float = 10.0) -> ConsumerSpec:
    """The consumer of `graph.user_deleted` that runs one service's erasure (`handler`), one event at
    a time (an erasure can take seconds; the bus extends its ack deadline meanwhile)."""
    return ConsumerSpec(
        durable=durable,
        events=[USER_DELETED],
        handler=handler,
        max_deliver=ERASURE_MAX_DELIVER,
        backoff=ERASURE_BACKOFF_SECONDS,
        ack_wait_seconds=ack_wait_seconds,
        batch=1,
    )
