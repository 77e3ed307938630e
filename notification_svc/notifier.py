"""The rules of writing notifications: who is told, grouping, distinct people, undoing before it was
read, and one `notifications.changed` event per inbox per transaction.

Idempotence: a redelivered event changes nothing. Each (notification, actor) row remembers the id of
the last event applied to it, and an event no newer than that is skipped, so a repeat is a no-op and
an old event delivered late (a like redelivered after its unlike) cannot undo a newer one. The
notification an activity lands on is found by a natural key ("comment:<id>", "follow_request:<user>")
or, for a group, by its window, under the inbox's lock, so two writers never make two of it.

Group commit: the writes of one inbox that arrive while a transaction of that inbox runs (several
consumer loops, a storm of likes on one post) are applied together in the next transaction, so one
lock, one sequence update and one `notifications.changed` serve them all. Each caller still learns
its own outcome, and returns (and so has its event acked) only once its write is committed. If a
batch fails, its writes are retried one by one, so only the one at fault fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from glimpse.events.v1 import events_pb2
from mesh.db import Database, Session
from mesh.ids import IdGenerator
from mesh.outbox import Outbox
from notification_svc import repository as repo
from notification_svc.models import COMMENT, FOLLOW_ACCEPTED, FOLLOW_REQUEST, GROUPED, LIKE, MENTION, REPLY
from notification_svc.repository import Inbox, NotificationRecord


@dataclass(frozen=True)
class Activity:
    """Something `actor_id` did that `recipient_id` may be told about."""

    recipient_id: int
    kind: int
    actor_id: int
    # The id of the event that announced it (time-ordered): the row remembers it (see the module doc).
    event_id: int
    # When it happened (the event's time): what places it in a group's window.
    at: dt.datetime
    post_id: int = 0
    comment_id: int = 0
    comment_preview: str = ""


def natural_key(activity: Activity) -> str | None:
    """The key of the one notification an ungrouped activity is (None for a grouped kind). A comment,
    a reply and a mention in a comment share the comment's key: one notification per comment."""
    if activity.kind in GROUPED:
        return None
    if activity.kind in (COMMENT, REPLY) or (activity.kind == MENTION and activity.comment_id):
        return f"comment:{activity.comment_id}"
    if activity.kind == MENTION:
        return f"mention:{activity.post_id}"
    if activity.kind in (FOLLOW_REQUEST, FOLLOW_ACCEPTED):
        return f"{'follow_request' if activity.kind == FOLLOW_REQUEST else 'follow_accepted'}:{activity.actor_id}"
    raise ValueError(f"no notification kind {activity.kind}")


def _group_key(activity: Activity) -> str:
    """The natural key of a group that an activity starts: its subject and the window's start."""
    started_ms = int(activity.at.timestamp() * 1000)
    return f"like:{activity.post_id}:{started_ms}" if activity.kind == LIKE else f"follow:{started_ms}"


class _InboxChanges:
    """The sequence numbers one transaction takes in one inbox (one per notification written), and
    what it learnt of posts' deletion."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.last = inbox.last_sequence
        self._deleted: dict[int, bool] = {}

    async def post_deleted(self, session: Session, post_id: int) -> bool:
        if post_id not in self._deleted:
            self._deleted[post_id] = await repo.is_deleted_post(session, post_id)
        return self._deleted[post_id]

    def next(self) -> int:
        self.last += 1
        return self.last

    @property
    def changed(self) -> bool:
        return self.last != self.inbox.last_sequence


# One write to an inbox, run inside its transaction: whether it changed what the inbox shows.
_Write = Callable[[Session, _InboxChanges], Awaitable[bool]]


class _Batch:
    """The writes waiting for an inbox's next transaction, and the task that runs them."""

    def __init__(self) -> None:
        self.writes: list[tuple[_Write, asyncio.Future[bool]]] = []
        self.runner: asyncio.Task[None] | None = None


class Notifier:
    def __init__(self, db: Database, outbox: Outbox, ids: IdGenerator, *, group_window: dt.timedelta) -> None:
        self._db = db
        self._outbox = outbox
        self._ids = ids
        self._window = group_window
        self._batches: dict[int, _Batch] = {}

    async def add(self, activity: Activity) -> bool:
        """Tells the recipient about the activity, unless it is their own, its type is switched off,
        or its post was deleted. A like or follow joins the recipient's group for it (likes of that
        post, or follows) if the group started within the window, else starts one; the person counts
        once per group whatever they repeat. True if the inbox changed."""
        if activity.actor_id == activity.recipient_id:
            return False

        async def write(session: Session, changes: _InboxChanges) -> bool:
            if not changes.inbox.receives(activity.kind):
                return False
            if activity.post_id and await changes.post_deleted(session, activity.post_id):
                return False
            before = changes.last
            await self._add(session, changes, activity)
            return changes.last != before

        return await self._in_inbox(activity.recipient_id, write)

    async def _add(self, session: Session, changes: _InboxChanges, activity: Activity) -> None:
        key = natural_key(activity)
        if key is None:
            since = activity.at - self._window
            found, actor = await repo.open_group(
                session, activity.recipient_id, activity.kind, activity.post_id, since, activity.actor_id
            )
            key = _group_key(activity)
        else:
            found, actor = await repo.by_key_with_actor(session, activity.recipient_id, key, activity.actor_id)
        if found is None:
            activity_id = self._ids.next_id()
            record = NotificationRecord(
                id=activity_id,
                recipient_id=activity.recipient_id,
                kind=activity.kind,
                post_id=activity.post_id,
                comment_id=activity.comment_id,
                comment_preview=activity.comment_preview,
                actor_count=1,
                recent_actor_ids=(activity.actor_id,),
                latest_id=activity_id,
                sequence=changes.next(),
                window_start=activity.at,
                created_at=activity.at,
                updated_at=activity.at,
            )
            await repo.insert_notification(session, record, key)
            await repo.insert_actor(session, record.id, activity.actor_id, activity_id, activity.event_id)
            return
        if actor is not None and actor.event_id >= activity.event_id:
            return  # a repeat, or older than what this row already reflects
        if actor is not None and actor.live:
            # Already in it (liked, unliked after reading it, liked again): nothing to show, but the
            # row now reflects this event, so the unlike redelivered late cannot remove them.
            await repo.save_actor(
                session, found.id, actor.actor_id, event_id=activity.event_id, live=True, activity_id=None
            )
            return
        activity_id = self._ids.next_id()
        if actor is None:
            await repo.insert_actor(session, found.id, activity.actor_id, activity_id, activity.event_id)
        else:
            await repo.save_actor(
                session, found.id, actor.actor_id, event_id=activity.event_id, live=True, activity_id=activity_id
            )
        others = tuple(a for a in found.recent_actor_ids if a != activity.actor_id)
        revived = not found.live
        await repo.save_notification(
            session,
            dataclasses.replace(
                found,
                actor_count=found.actor_count + 1,
                recent_actor_ids=(activity.actor_id, *others)[: repo.RECENT_ACTORS],
                latest_id=activity_id,
                sequence=changes.next(),
                created_at=activity.at if revived else found.created_at,
                updated_at=max(found.updated_at, activity.at),
            ),
        )

    async def undo(self, activity: Activity) -> bool:
        """The actor undid a like or a follow: they leave the recipient's group for it if the
        recipient has not read their part yet (an undone like that was seen stays, as on Instagram);
        the group goes when nobody is left. An undo that overtakes its activity (two consumers) leaves
        a mark in the open group, so the activity arriving after it is not shown. True if the inbox
        changed."""
        if activity.actor_id == activity.recipient_id:
            return False

        async def write(session: Session, changes: _InboxChanges) -> bool:
            found = await repo.actor_in_groups(
                session, activity.recipient_id, activity.kind, activity.post_id, activity.actor_id
            )
            if found is None:
                await self._mark_undone(session, activity)
                return False
            notification, actor = found
            if actor.event_id >= activity.event_id:
                return False
            if not actor.live or actor.activity_id <= changes.inbox.read_up_to:
                await repo.save_actor(
                    session,
                    notification.id,
                    actor.actor_id,
                    event_id=activity.event_id,
                    live=actor.live,
                    activity_id=None,
                )
                return False
            before = changes.last
            await self._drop(session, changes, notification, [activity.actor_id], activity.event_id)
            return changes.last != before

        return await self._in_inbox(activity.recipient_id, write)

    async def _mark_undone(self, session: Session, activity: Activity) -> None:
        """Records, in the open group the activity would join, that the actor's activity is undone as
        of this event (a row that is not live: nothing shows)."""
        group, _ = await repo.open_group(
            session,
            activity.recipient_id,
            activity.kind,
            activity.post_id,
            activity.at - self._window,
            activity.actor_id,
        )
        if group is not None:
            await repo.insert_actor(session, group.id, activity.actor_id, 0, activity.event_id, live=False)

    async def retract(self, recipient_id: int, natural_key: str, event_id: int) -> bool:
        """Removes the recipient's notification of that key whether read or not (a follow request
        withdrawn or answered). True if the inbox changed."""

        async def write(session: Session, changes: _InboxChanges) -> bool:
            found = await repo.by_natural_key(session, recipient_id, natural_key)
            if found is None or not found.live:
                return False
            before = changes.last
            await self._drop(session, changes, found, None, event_id)
            return changes.last != before

        return await self._in_inbox(recipient_id, write)

    async def _in_inbox(self, recipient_id: int, write: _Write) -> bool:
        """Runs `write` in the inbox's next transaction (see the module doc); its outcome."""
        batch = self._batches.get(recipient_id)
        if batch is None:
            batch = self._batches[recipient_id] = _Batch()
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        batch.writes.append((write, done))
        if batch.runner is None:
            batch.runner = asyncio.create_task(self._run_batches(recipient_id, batch))
        return await done

    async def _run_batches(self, recipient_id: int, batch: _Batch) -> None:
        writes: list[tuple[_Write, asyncio.Future[bool]]] = []
        try:
            while batch.writes:
                writes, batch.writes = batch.writes, []
                try:
                    outcomes = await self._transaction(recipient_id, [write for write, _ in writes])
                except Exception as exc:  # noqa: BLE001 - each write's own outcome is found below
                    if len(writes) == 1:
                        _settle(writes[0][1], exc)
                        continue
                    for write, done in writes:
                        try:
                            (outcome,) = await self._transaction(recipient_id, [write])
                        except Exception as alone:  # noqa: BLE001 - reported to its caller
                            _settle(done, alone)
                        else:
                            _settle(done, outcome)
                    continue
                for (_, done), outcome in zip(writes, outcomes, strict=True):
                    _settle(done, outcome)
        finally:
            # Cancelled (shutdown): whoever still waits is cancelled too (its event is redelivered).
            for _, done in (*writes, *batch.writes):
                done.cancel()
            batch.writes = []
            batch.runner = None
            self._batches.pop(recipient_id, None)

    async def _transaction(self, recipient_id: int, writes: Sequence[_Write]) -> list[bool]:
        async with self._db.unit_of_work() as session:
            changes = _InboxChanges(await repo.lock_inbox(session, recipient_id))
            outcomes = [await write(session, changes) for write in writes]
            await self._finish(session, changes)
        return outcomes

    async def forget_post(self, post_id: int, event_id: int) -> int:
        """The post was deleted: every notification about it leaves every inbox, and activities on it
        arriving later write nothing. Returns how many notifications were removed."""
        async with self._db.unit_of_work() as session:
            await repo.record_deleted_post(session, post_id)
            return await self._drop_everywhere(session, lambda: repo.live_about_post(session, post_id), event_id)

    async def forget_comments(self, comment_ids: Sequence[int], event_id: int) -> int:
        """The comments were deleted: the notifications about them leave every inbox."""
        async with self._db.unit_of_work() as session:
            return await self._drop_everywhere(
                session, lambda: repo.live_about_comments(session, comment_ids), event_id
            )

    async def forget_between(self, first_id: int, second_id: int, event_id: int) -> int:
        """One of the two blocked the other: what each caused in the other's inbox goes, read or not.
        Returns how many notifications changed."""
        async with self._db.unit_of_work() as session:
            inboxes = await repo.lock_inboxes(session, [first_id, second_id])
            changed = 0
            for recipient, actor in ((first_id, second_id), (second_id, first_id)):
                changes = _InboxChanges(inboxes[recipient])
                for notification in await repo.live_caused_by(session, recipient, actor):
                    await self._drop(session, changes, notification, [actor], event_id)
                    changed += 1
                await self._finish(session, changes)
        return changed

    async def _drop_everywhere(
        self, session: Session, query: Callable[[], Awaitable[list[NotificationRecord]]], event_id: int
    ) -> int:
        """Removes every notification `query` finds, in whichever inboxes they are."""
        found = await query()
        if not found:
            return 0
        # Only inboxes that exist: one whose notifications were found may have been erased with its
        # user meanwhile (notification_svc.erasure), and must not come back empty.
        inboxes = await repo.lock_inboxes(session, [n.recipient_id for n in found], create=False)
        # Read again under the inboxes' locks: a writer may have changed them meanwhile.
        current = [n for n in await query() if n.recipient_id in inboxes]
        for recipient_id, inbox in inboxes.items():
            changes = _InboxChanges(inbox)
            for notification in current:
                if notification.recipient_id == recipient_id:
                    await self._drop(session, changes, notification, None, event_id)
            await self._finish(session, changes)
        return len(current)

    async def _drop(
        self,
        session: Session,
        changes: _InboxChanges,
        notification: NotificationRecord,
        actor_ids: Sequence[int] | None,
        event_id: int,
    ) -> None:
        """Removes the actors (all if None) from the notification and records its new state."""
        dropped = await repo.drop_actors(session, notification.id, actor_ids, event_id=event_id)
        if not dropped:
            return
        count = notification.actor_count - dropped
        recent = await repo.recent_actors(session, notification.id) if count else []
        await repo.save_notification(
            session,
            dataclasses.replace(
                notification,
                actor_count=count,
                recent_actor_ids=tuple(actor for actor, _ in recent),
                # A removed notification keeps its last position (it is not listed any more).
                latest_id=recent[0][1] if recent else notification.latest_id,
                sequence=changes.next(),
            ),
        )

    async def _finish(self, session: Session, changes: _InboxChanges) -> None:
        """Records the inbox's new sequence and announces it, if anything changed."""
        if not changes.changed:
            return
        await repo.advance(session, changes.inbox.recipient_id, changes.last)
        await self._outbox.add(
            session, events_pb2.NotificationChanged(recipient_id=changes.inbox.recipient_id, sequence=changes.last)
        )


def _settle(done: asyncio.Future[bool], outcome: bool | BaseException) -> None:
    """Hands a write's outcome to its caller, unless the caller stopped waiting."""
    if done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)
