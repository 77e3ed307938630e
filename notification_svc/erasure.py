"""notification_svc's share of a user's erasure (issue 16; the scheme is mesh.erasure's).

What they caused, in batches of up to ERASURE_BATCH notifications, each one unit of work holding
the inboxes it changes (locked in recipient order, as every writer does): their actor row goes for
good, live or not; a notification they were live in counts one person less (distinct counts stay
exact) and shows its remaining most recent people; one left with nobody becomes a tombstone, as when
the last like is taken back, whose key and comment preview are wiped (a follow request's key names
its requester, a comment's preview is its author's words). Each inbox changed takes a new sequence
number and announces it (`notifications.changed`), so open streams drop what went, as for an unlike.

What they received goes after that: every notification of their inbox with its people, then the
inbox row (sequence, read marker, settings).

Idempotent and resumable: a batch finds only what is left, and a committed batch is never found again.
"""

from __future__ import annotations

import dataclasses
import logging

from glimpse.events.v1 import events_pb2
from mesh.db import Database, Session
from mesh.erasure import ERASED, ERASURE_BATCH, ERASURES_FINISHED, erased_user
from mesh.outbox import Outbox
from notification_svc import repository as repo

log = logging.getLogger("notification_svc.erasure")

ERASURE_DURABLE = "notification_erasure"


class NotificationErasure:
    def __init__(self, db: Database, outbox: Outbox, *, batch_size: int = ERASURE_BATCH) -> None:
        self._db = db
        self._outbox = outbox
        self._batch_size = batch_size

    async def on_user_deleted(self, event: events_pb2.UserDeleted) -> None:
        """`graph.user_deleted`: the user leaves every notification they caused, then their inbox goes.
        Unavailable (retried by the bus) if the database is down."""
        user_id = erased_user(event)
        caused = 0
        while True:
            async with self._db.unit_of_work() as session:
                found = await repo.caused_by(session, user_id, self._batch_size)
                await self._leave(session, user_id, [notification_id for notification_id, _ in found])
            caused += len(found)
            ERASED.labels("notifications_caused").inc(len(found))
            if len(found) < self._batch_size:
                break
        received = 0
        while True:
            async with self._db.unit_of_work() as session:
                await repo.lock_inbox(session, user_id)
                removed = await repo.remove_received(session, user_id, self._batch_size)
                if removed < self._batch_size:
                    await repo.remove_inbox(session, user_id)
            received += removed
            ERASED.labels("notifications_received").inc(removed)
            if removed < self._batch_size:
                break
        ERASURES_FINISHED.labels(ERASURE_DURABLE).inc()
        log.info("user's notifications erased", extra={"user_id": user_id, "caused": caused, "received": received})

    async def _leave(self, session: Session, user_id: int, notification_ids: list[int]) -> None:
        """Takes the user out of the notifications (see the module doc), their inboxes locked first."""
        if not notification_ids:
            return
        first = await repo.notifications_by_id(session, notification_ids)
        # Existing inboxes only: a recipient erased meanwhile must not get an empty inbox back.
        inboxes = await repo.lock_inboxes(session, [n.recipient_id for n in first], create=False)
        # Read again under the inboxes' locks: a writer may have changed them meanwhile.
        current = await repo.notifications_by_id(session, notification_ids)
        sequences = {recipient_id: inbox.last_sequence for recipient_id, inbox in inboxes.items()}
        was_live = await repo.remove_actor_from(session, user_id, notification_ids)
        # Only notifications of an inbox that exists (without one, the recipient's own erasure is
        # removing them) and that show the user: live in them, or among their recent people.
        changed = [
            n
            for n in current
            if n.id in was_live and n.recipient_id in inboxes and (was_live[n.id] or user_id in n.recent_actor_ids)
        ]
        recent = await repo.recent_actors_of(session, [n.id for n in changed])
        saved = []
        for notification in changed:
            count = notification.actor_count - (1 if was_live[notification.id] else 0)
            people = recent.get(notification.id, []) if count else []
            sequences[notification.recipient_id] += 1
            saved.append(
                dataclasses.replace(
                    notification,
                    actor_count=count,
                    recent_actor_ids=tuple(actor for actor, _ in people),
                    latest_id=people[0][1] if people else notification.latest_id,
                    sequence=sequences[notification.recipient_id],
                )
            )
        await repo.save_notifications(session, saved)
        await repo.forget_wording(
            session,
            [n.id for n in current if n.id in was_live and n.actor_count - (1 if was_live[n.id] else 0) == 0],
        )
        for recipient_id, sequence in sequences.items():
            if sequence != inboxes[recipient_id].last_sequence:
                await repo.advance(session, recipient_id, sequence)
                announced = events_pb2.NotificationChanged(recipient_id=recipient_id, sequence=sequence)
                await self._outbox.add(session, announced)
