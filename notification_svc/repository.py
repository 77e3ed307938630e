"""SQL of the notifications schema. Every function runs inside the caller's unit of work.

Locking: a writer locks the inbox row of each recipient it touches (`lock_inbox`, or `lock_inboxes`
in ascending recipient order) before reading or writing that inbox's notifications and actors, and
holds it until commit. So one inbox's writes never interleave (no row of it needs a lock of its
own), its sequence numbers are taken in commit order, and no two writers wait for each other in a
circle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, DateTime, and_, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from mesh.db import Session, Statement
from notification_svc.models import deleted_posts, inboxes, notification_actors, notifications

RECENT_ACTORS = 3


@dataclass(frozen=True)
class Inbox:
    recipient_id: int
    last_sequence: int
    read_up_to: int
    disabled_kinds: int

    def receives(self, kind: int) -> bool:
        return not self.disabled_kinds & (1 << kind)


@dataclass(frozen=True)
class NotificationRecord:
    id: int
    recipient_id: int
    kind: int
    post_id: int
    comment_id: int
    comment_preview: str
    actor_count: int
    recent_actor_ids: tuple[int, ...]
    latest_id: int
    sequence: int
    window_start: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def live(self) -> bool:
        return self.actor_count > 0


@dataclass(frozen=True)
class ActorRecord:
    notification_id: int
    actor_id: int
    activity_id: int
    event_id: int
    live: bool


_INBOX_COLUMNS = (inboxes.c.recipient_id, inboxes.c.last_sequence, inboxes.c.read_up_to, inboxes.c.disabled_kinds)
_COLUMNS = (
    notifications.c.id,
    notifications.c.recipient_id,
    notifications.c.kind,
    notifications.c.post_id,
    notifications.c.comment_id,
    notifications.c.comment_preview,
    notifications.c.actor_count,
    notifications.c.recent_actor_ids,
    notifications.c.latest_id,
    notifications.c.sequence,
    notifications.c.window_start,
    notifications.c.created_at,
    notifications.c.updated_at,
)
_ACTOR_COLUMNS = (
    notification_actors.c.notification_id,
    notification_actors.c.actor_id,
    notification_actors.c.activity_id,
    notification_actors.c.event_id,
    notification_actors.c.live,
)


def _inbox(row: Any) -> Inbox:
    return Inbox(row.recipient_id, row.last_sequence, row.read_up_to, row.disabled_kinds)


def _notification(row: Any) -> NotificationRecord:
    m = row._mapping
    return NotificationRecord(
        id=m["id"],
        recipient_id=m["recipient_id"],
        kind=m["kind"],
        post_id=m["post_id"],
        comment_id=m["comment_id"],
        comment_preview=m["comment_preview"],
        actor_count=m["actor_count"],
        recent_actor_ids=tuple(m["recent_actor_ids"]),
        latest_id=m["latest_id"],
        sequence=m["sequence"],
        window_start=m["window_start"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _actor(row: Any) -> ActorRecord:
    m = row._mapping
    return ActorRecord(m["notification_id"], m["actor_id"], m["activity_id"], m["event_id"], m["live"])


async def inbox(session: Session, recipient_id: int) -> Inbox:
    """The inbox as it is (an inbox never written has sequence 0, nothing read, every type on)."""
    row = (await session.execute(select(*_INBOX_COLUMNS).where(inboxes.c.recipient_id == recipient_id))).one_or_none()
    return _inbox(row) if row else Inbox(recipient_id, 0, 0, 0)


_LOCK_INBOX = Statement(
    select(*_INBOX_COLUMNS).where(inboxes.c.recipient_id == bindparam("recipient_id")).with_for_update()
)
_CREATE_INBOX = Statement(pg_insert(inboxes).values(recipient_id=bindparam("new_id")).on_conflict_do_nothing())


async def lock_inbox(session: Session, recipient_id: int) -> Inbox:
    """The inbox, created if missing, locked until the transaction ends."""
    row = (await session.execute(_LOCK_INBOX, {"recipient_id": recipient_id})).one_or_none()
    if row is None:
        await session.execute(_CREATE_INBOX, {"new_id": recipient_id})
        row = (await session.execute(_LOCK_INBOX, {"recipient_id": recipient_id})).one()
    return _inbox(row)


async def lock_inboxes(session: Session, recipient_ids: Sequence[int], *, create: bool = True) -> dict[int, Inbox]:
    """The inboxes, created if missing (unless `create` is False: then only those that exist), locked in
    ascending recipient order until the transaction ends."""
    ids = sorted(set(recipient_ids))
    if not ids:
        return {}
    query = select(*_INBOX_COLUMNS).where(inboxes.c.recipient_id.in_(ids)).order_by(inboxes.c.recipient_id)
    found = {row.recipient_id: _inbox(row) for row in await session.execute(query.with_for_update())}
    missing = [r for r in ids if r not in found]
    if missing and create:
        await session.execute(
            pg_insert(inboxes).values([{"recipient_id": r} for r in missing]).on_conflict_do_nothing()
        )
        query = select(*_INBOX_COLUMNS).where(inboxes.c.recipient_id.in_(missing)).order_by(inboxes.c.recipient_id)
        found |= {row.recipient_id: _inbox(row) for row in await session.execute(query.with_for_update())}
    return found


_ADVANCE = Statement(
    update(inboxes)
    .where(inboxes.c.recipient_id == bindparam("recipient_id"))
    .values(last_sequence=bindparam("new_sequence"))
)


async def advance(session: Session, recipient_id: int, sequence: int) -> None:
    """Records `sequence` as the inbox's last change (its row locked by the caller)."""
    await session.execute(_ADVANCE, {"recipient_id": recipient_id, "new_sequence": sequence})


async def set_read_up_to(session: Session, recipient_id: int, read_up_to: int) -> None:
    await session.execute(update(inboxes).where(inboxes.c.recipient_id == recipient_id).values(read_up_to=read_up_to))


async def set_disabled_kinds(session: Session, recipient_id: int, disabled_kinds: int) -> None:
    await session.execute(
        update(inboxes).where(inboxes.c.recipient_id == recipient_id).values(disabled_kinds=disabled_kinds)
    )


async def newest_id(session: Session, recipient_id: int) -> int:
    """The id of the inbox's newest live notification; 0 if it has none."""
    query = select(func.max(notifications.c.latest_id)).where(
        notifications.c.recipient_id == recipient_id, notifications.c.actor_count > 0
    )
    return int((await session.execute(query)).scalar() or 0)


Found = tuple[NotificationRecord | None, ActorRecord | None]


def _with_actor(*conditions: ColumnElement[bool]) -> Statement:
    """The newest notification (by window start) meeting `conditions`, with the row of the actor
    `actor_id` in it (LEFT JOIN: its columns are NULL when there is none)."""
    actor_columns = [c.label(f"a_{c.name}") for c in _ACTOR_COLUMNS]
    return Statement(
        select(*_COLUMNS, *actor_columns)
        .outerjoin(
            notification_actors,
            and_(
                notification_actors.c.notification_id == notifications.c.id,
                notification_actors.c.actor_id == bindparam("actor_id"),
            ),
        )
        .where(notifications.c.recipient_id == bindparam("recipient_id"), *conditions)
        .order_by(notifications.c.window_start.desc())
        .limit(1)
    )


_OPEN_GROUP = _with_actor(
    notifications.c.kind == bindparam("kind"),
    notifications.c.post_id == bindparam("post_id"),
    notifications.c.window_start > bindparam("since"),
)
_BY_KEY_WITH_ACTOR = _with_actor(notifications.c.natural_key == bindparam("natural_key"))


async def open_group(
    session: Session, recipient_id: int, kind: int, post_id: int, since: dt.datetime, actor_id: int
) -> Found:
    """The inbox's newest group of `kind` about `post_id` (0 for follows) whose window started after
    `since`, live or removed (a removed group takes people again), and the actor's row in it if any:
    one round trip."""
    params = {"recipient_id": recipient_id, "kind": kind, "post_id": post_id, "since": since, "actor_id": actor_id}
    return _found(await session.execute(_OPEN_GROUP, params))


async def by_key_with_actor(session: Session, recipient_id: int, natural_key: str, actor_id: int) -> Found:
    """The inbox's notification of that key, and the actor's row in it if any: one round trip."""
    params = {"recipient_id": recipient_id, "natural_key": natural_key, "actor_id": actor_id}
    return _found(await session.execute(_BY_KEY_WITH_ACTOR, params))


def _found(result: Any) -> Found:
    row = result.one_or_none()
    if row is None:
        return None, None
    m = row._mapping
    actor = None
    if m["a_notification_id"] is not None:
        actor = ActorRecord(m["a_notification_id"], m["a_actor_id"], m["a_activity_id"], m["a_event_id"], m["a_live"])
    return _notification(row), actor


async def by_natural_key(session: Session, recipient_id: int, natural_key: str) -> NotificationRecord | None:
    query = select(*_COLUMNS).where(
        notifications.c.recipient_id == recipient_id, notifications.c.natural_key == natural_key
    )
    row = (await session.execute(query)).one_or_none()
    return _notification(row) if row else None


_INSERT_NOTIFICATION = Statement(
    insert(notifications).values(
        id=bindparam("new_id"),
        recipient_id=bindparam("new_recipient"),
        kind=bindparam("new_kind"),
        natural_key=bindparam("new_key"),
        post_id=bindparam("new_post"),
        comment_id=bindparam("new_comment"),
        comment_preview=bindparam("new_preview"),
        actor_count=bindparam("new_count"),
        recent_actor_ids=bindparam("new_recent", type_=ARRAY(BigInteger)),
        latest_id=bindparam("new_latest"),
        sequence=bindparam("new_sequence"),
        window_start=bindparam("new_window", type_=DateTime(timezone=True)),
        created_at=bindparam("new_created", type_=DateTime(timezone=True)),
        updated_at=bindparam("new_updated", type_=DateTime(timezone=True)),
    )
)


async def insert_notification(session: Session, record: NotificationRecord, natural_key: str) -> None:
    await session.execute(
        _INSERT_NOTIFICATION,
        {
            "new_id": record.id,
            "new_recipient": record.recipient_id,
            "new_kind": record.kind,
            "new_key": natural_key,
            "new_post": record.post_id,
            "new_comment": record.comment_id,
            "new_preview": record.comment_preview,
            "new_count": record.actor_count,
            "new_recent": list(record.recent_actor_ids),
            "new_latest": record.latest_id,
            "new_sequence": record.sequence,
            "new_window": record.window_start,
            "new_created": record.created_at,
            "new_updated": record.updated_at,
        },
    )


_SAVE_NOTIFICATION = Statement(
    update(notifications)
    .where(notifications.c.id == bindparam("notification_id"))
    .values(
        actor_count=bindparam("new_count"),
        recent_actor_ids=bindparam("new_recent", type_=ARRAY(BigInteger)),
        latest_id=bindparam("new_latest"),
        sequence=bindparam("new_sequence"),
        created_at=bindparam("new_created", type_=DateTime(timezone=True)),
        updated_at=bindparam("new_updated", type_=DateTime(timezone=True)),
    )
)


async def save_notification(session: Session, record: NotificationRecord) -> None:
    """Writes the notification's people, position and sequence."""
    await session.execute(
        _SAVE_NOTIFICATION,
        {
            "notification_id": record.id,
            "new_count": record.actor_count,
            "new_recent": list(record.recent_actor_ids),
            "new_latest": record.latest_id,
            "new_sequence": record.sequence,
            "new_created": record.created_at,
            "new_updated": record.updated_at,
        },
    )


async def actor_in_groups(
    session: Session, recipient_id: int, kind: int, post_id: int, actor_id: int
) -> tuple[NotificationRecord, ActorRecord] | None:
    """The actor's row in the inbox's newest group of `kind` about `post_id` that has one."""
    query = (
        select(*_COLUMNS, *(c.label(f"a_{c.name}") for c in _ACTOR_COLUMNS))
        .join(notification_actors, notification_actors.c.notification_id == notifications.c.id)
        .where(
            notifications.c.recipient_id == recipient_id,
            notifications.c.kind == kind,
            notifications.c.post_id == post_id,
            notification_actors.c.actor_id == actor_id,
        )
        .order_by(notifications.c.window_start.desc())
        .limit(1)
    )
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    m = row._mapping
    found = ActorRecord(m["a_notification_id"], m["a_actor_id"], m["a_activity_id"], m["a_event_id"], m["a_live"])
    return _notification(row), found


_INSERT_ACTOR = Statement(
    insert(notification_actors).values(
        notification_id=bindparam("new_notification"),
        actor_id=bindparam("new_actor"),
        activity_id=bindparam("new_activity"),
        event_id=bindparam("new_event"),
        live=bindparam("new_live"),
    )
)


async def insert_actor(
    session: Session, notification_id: int, actor_id: int, activity_id: int, event_id: int, *, live: bool = True
) -> None:
    params = {
        "new_notification": notification_id,
        "new_actor": actor_id,
        "new_activity": activity_id,
        "new_event": event_id,
        "new_live": live,
    }
    await session.execute(_INSERT_ACTOR, params)


_SAVE_ACTOR = Statement(
    update(notification_actors)
    .where(
        notification_actors.c.notification_id == bindparam("notification_id"),
        notification_actors.c.actor_id == bindparam("actor_id"),
    )
    .values(
        event_id=bindparam("new_event"),
        live=bindparam("new_live"),
        # NULL keeps the activity id (a row that only learns of a newer event).
        activity_id=func.coalesce(bindparam("new_activity", type_=BigInteger), notification_actors.c.activity_id),
    )
)


async def save_actor(
    session: Session, notification_id: int, actor_id: int, *, event_id: int, live: bool, activity_id: int | None
) -> None:
    params = {
        "notification_id": notification_id,
        "actor_id": actor_id,
        "new_event": event_id,
        "new_live": live,
        "new_activity": activity_id,
    }
    await session.execute(_SAVE_ACTOR, params)


async def drop_actors(session: Session, notification_id: int, actor_ids: Sequence[int] | None, *, event_id: int) -> int:
    """Marks the notification's live actors (those of `actor_ids`, or all) gone, as of `event_id` (an
    older event about them is ignored from now on); how many were live."""
    condition = and_(notification_actors.c.notification_id == notification_id, notification_actors.c.live)
    if actor_ids is not None:
        condition = and_(condition, notification_actors.c.actor_id.in_(list(actor_ids)))
    event = func.greatest(notification_actors.c.event_id, event_id)
    result = await session.execute(update(notification_actors).where(condition).values(live=False, event_id=event))
    return int(result.rowcount)


_RECENT_ACTORS = Statement(
    select(notification_actors.c.actor_id, notification_actors.c.activity_id)
    .where(notification_actors.c.notification_id == bindparam("notification_id"), notification_actors.c.live)
    .order_by(notification_actors.c.activity_id.desc())
    .limit(RECENT_ACTORS)
)


async def recent_actors(session: Session, notification_id: int) -> list[tuple[int, int]]:
    """(actor id, activity id) of the notification's RECENT_ACTORS most recent live actors."""
    rows = await session.execute(_RECENT_ACTORS, {"notification_id": notification_id})
    return [(row.actor_id, row.activity_id) for row in rows]


async def live_about_post(session: Session, post_id: int) -> list[NotificationRecord]:
    """Every live notification about the post, in any inbox."""
    query = select(*_COLUMNS).where(notifications.c.post_id == post_id, notifications.c.actor_count > 0)
    return [_notification(row) for row in await session.execute(query)]


async def live_about_comments(session: Session, comment_ids: Sequence[int]) -> list[NotificationRecord]:
    """Every live notification about one of the comments, in any inbox."""
    query = select(*_COLUMNS).where(notifications.c.comment_id.in_(list(comment_ids)), notifications.c.actor_count > 0)
    return [_notification(row) for row in await session.execute(query)]


async def live_caused_by(session: Session, recipient_id: int, actor_id: int) -> list[NotificationRecord]:
    """The inbox's live notifications that `actor_id` is a live actor of."""
    query = (
        select(*_COLUMNS)
        .join(notification_actors, notification_actors.c.notification_id == notifications.c.id)
        .where(
            notification_actors.c.actor_id == actor_id,
            notification_actors.c.live,
            notifications.c.recipient_id == recipient_id,
            notifications.c.actor_count > 0,
        )
    )
    return [_notification(row) for row in await session.execute(query)]


async def record_deleted_post(session: Session, post_id: int) -> None:
    await session.execute(pg_insert(deleted_posts).values(post_id=post_id).on_conflict_do_nothing())


_IS_DELETED_POST = Statement(select(deleted_posts.c.post_id).where(deleted_posts.c.post_id == bindparam("post_id")))


async def is_deleted_post(session: Session, post_id: int) -> bool:
    return (await session.execute(_IS_DELETED_POST, {"post_id": post_id})).first() is not None


async def page(session: Session, recipient_id: int, before_id: int | None, limit: int) -> list[NotificationRecord]:
    """The inbox's live notifications, newest first, with ids below `before_id`."""
    query = select(*_COLUMNS).where(notifications.c.recipient_id == recipient_id, notifications.c.actor_count > 0)
    if before_id is not None:
        query = query.where(notifications.c.latest_id < before_id)
    query = query.order_by(notifications.c.latest_id.desc()).limit(limit)
    return [_notification(row) for row in await session.execute(query)]


async def changes(session: Session, recipient_id: int, after_sequence: int, limit: int) -> list[NotificationRecord]:
    """The inbox's notifications (removed ones included) whose last change is after `after_sequence`,
    oldest change first."""
    query = (
        select(*_COLUMNS)
        .where(notifications.c.recipient_id == recipient_id, notifications.c.sequence > after_sequence)
        .order_by(notifications.c.sequence)
        .limit(limit)
    )
    return [_notification(row) for row in await session.execute(query)]


async def unread_count(session: Session, recipient_id: int, read_up_to: int) -> int:
    query = select(func.count()).where(
        notifications.c.recipient_id == recipient_id,
        notifications.c.actor_count > 0,
        notifications.c.latest_id > read_up_to,
    )
    return int((await session.execute(query)).scalar_one())


# Erasure (notification_svc.erasure) ----------------------------------------------------------------


async def caused_by(session: Session, actor_id: int, limit: int) -> list[tuple[int, int]]:
    """(notification id, recipient id) of up to `limit` notifications the actor is in, live or not,
    in anyone's inbox."""
    rows = await session.execute(
        select(notifications.c.id, notifications.c.recipient_id)
        .join(notification_actors, notification_actors.c.notification_id == notifications.c.id)
        .where(notification_actors.c.actor_id == actor_id)
        .order_by(notifications.c.id)
        .limit(limit)
    )
    return [(row.id, row.recipient_id) for row in rows]


async def notifications_by_id(session: Session, notification_ids: Sequence[int]) -> list[NotificationRecord]:
    """The notifications (their inboxes locked by the caller), by id."""
    query = select(*_COLUMNS).where(notifications.c.id.in_(list(notification_ids))).order_by(notifications.c.id)
    return [_notification(row) for row in await session.execute(query)]


async def remove_actor_from(session: Session, actor_id: int, notification_ids: Sequence[int]) -> dict[int, bool]:
    """Deletes the actor's rows of the notifications for good (their inboxes locked by the caller);
    notification id -> whether the actor was live in it, for each that had a row."""
    result = await session.execute(
        notification_actors.delete()
        .where(
            notification_actors.c.actor_id == actor_id,
            notification_actors.c.notification_id.in_(list(notification_ids)),
        )
        .returning(notification_actors.c.notification_id, notification_actors.c.live)
    )
    return {row.notification_id: bool(row.live) for row in result}


_RECENT_OF_MANY = text(
    f"""
    SELECT notification_id, actor_id, activity_id FROM (
        SELECT notification_id, actor_id, activity_id,
               row_number() OVER (PARTITION BY notification_id ORDER BY activity_id DESC) AS rank
          FROM {notification_actors.fullname}
         WHERE notification_id = ANY(CAST(:ids AS bigint[])) AND live
    ) ranked
    WHERE rank <= {RECENT_ACTORS}
    ORDER BY notification_id, activity_id DESC
    """
)


async def recent_actors_of(session: Session, notification_ids: Sequence[int]) -> dict[int, list[tuple[int, int]]]:
    """`recent_actors` of several notifications in one statement (those with no live actor left are
    missing)."""
    found: dict[int, list[tuple[int, int]]] = {}
    for row in await session.execute(_RECENT_OF_MANY, {"ids": list(notification_ids)}):
        found.setdefault(row.notification_id, []).append((row.actor_id, row.activity_id))
    return found


async def save_notifications(session: Session, records: Sequence[NotificationRecord]) -> None:
    """`save_notification` of several notifications (one statement run per record, sent together)."""
    if records:
        await session.execute(
            _SAVE_NOTIFICATION,
            [
                {
                    "notification_id": r.id,
                    "new_count": r.actor_count,
                    "new_recent": list(r.recent_actor_ids),
                    "new_latest": r.latest_id,
                    "new_sequence": r.sequence,
                    "new_created": r.created_at,
                    "new_updated": r.updated_at,
                }
                for r in records
            ],
        )


async def forget_wording(session: Session, notification_ids: Sequence[int]) -> None:
    """Gives removed notifications (tombstones) a natural key naming nobody and no comment preview
    (a follow request's key names the requester; a comment's preview is its author's words)."""
    if notification_ids:
        await session.execute(
            update(notifications)
            .where(notifications.c.id.in_(list(notification_ids)))
            .values(natural_key=func.concat("erased:", notifications.c.id), comment_preview="")
        )


_REMOVE_RECEIVED = text(
    f"""
    WITH gone AS (
        SELECT id FROM {notifications.fullname} WHERE recipient_id = :recipient_id ORDER BY id LIMIT :limit
    ), people AS (
        DELETE FROM {notification_actors.fullname} a USING gone WHERE a.notification_id = gone.id
    )
    DELETE FROM {notifications.fullname} n USING gone WHERE n.id = gone.id
    """
)


async def remove_received(session: Session, recipient_id: int, limit: int) -> int:
    """Deletes up to `limit` notifications of the inbox (its row locked by the caller) with their
    people; how many."""
    result = await session.execute(_REMOVE_RECEIVED, {"recipient_id": recipient_id, "limit": limit})
    return int(result.rowcount)


async def remove_inbox(session: Session, recipient_id: int) -> None:
    """Deletes the inbox row: its sequence, read marker and settings."""
    await session.execute(inboxes.delete().where(inboxes.c.recipient_id == recipient_id))
