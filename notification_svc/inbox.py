"""Reading an inbox: its pages, unread count and changes since a sequence number; and the read marker."""

from __future__ import annotations

from dataclasses import dataclass

from mesh.db import Database
from mesh.errors import invalid_field
from mesh.pagination import Id, Page, PageCursor, decode_cursor, page_of, page_size
from notification_svc import repository as repo
from notification_svc.repository import NotificationRecord

# Each notification carries up to 3 actors: 30 of them need at most 90 users, one BatchGetUsers (100).
MAX_PAGE_SIZE = 30
MAX_CHANGES = 100


class NotificationCursor(PageCursor):
    """An inbox page continues with the notifications whose id is below this one (newest first)."""

    before_id: Id


@dataclass(frozen=True)
class InboxPage:
    page: Page[NotificationRecord]
    unread_count: int
    read_up_to: int


@dataclass(frozen=True)
class InboxChanges:
    # Oldest change first; a notification whose actor_count is 0 was removed.
    changes: list[NotificationRecord]
    last_sequence: int
    unread_count: int
    read_up_to: int


class InboxReader:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(self, recipient_id: int, size: int, token: str) -> InboxPage:
        """The recipient's live notifications, newest first, and the unread count. INVALID_ARGUMENT
        for a negative page size or a page token not issued for this inbox (mesh.pagination)."""
        limit = page_size(size, maximum=MAX_PAGE_SIZE)
        scope = f"notifications:{recipient_id}"
        cursor = decode_cursor(token, NotificationCursor, scope)
        # One snapshot: a change committed between two statements cannot show in one and not the other.
        async with self._db.read_only(one_snapshot=True) as session:
            inbox = await repo.inbox(session, recipient_id)
            found = await repo.page(session, recipient_id, cursor.before_id if cursor else None, limit + 1)
            unread = await repo.unread_count(session, recipient_id, inbox.read_up_to)
        page = page_of(found, limit, scope, lambda n: NotificationCursor(before_id=n.latest_id))
        return InboxPage(page, unread, inbox.read_up_to)

    async def unread(self, recipient_id: int) -> tuple[int, int]:
        """(unread count, the inbox's last sequence number)."""
        # One snapshot: a change committed between two statements cannot show in one and not the other.
        async with self._db.read_only(one_snapshot=True) as session:
            inbox = await repo.inbox(session, recipient_id)
            return await repo.unread_count(session, recipient_id, inbox.read_up_to), inbox.last_sequence

    async def mark_read(self, recipient_id: int, up_to_id: int) -> int:
        """Moves the read marker up to `up_to_id`, never back and never past the newest notification;
        the unread count after. INVALID_ARGUMENT (up_to_id) unless it is a positive id."""
        if up_to_id <= 0:
            raise invalid_field("up_to_id", "must be a notification id (a positive integer)")
        async with self._db.unit_of_work() as session:
            # The inbox's lock: a notification being written commits before the newest id is read,
            # so nothing lands under the marker unseen.
            inbox = await repo.lock_inbox(session, recipient_id)
            marker = max(inbox.read_up_to, min(up_to_id, await repo.newest_id(session, recipient_id)))
            if marker != inbox.read_up_to:
                await repo.set_read_up_to(session, recipient_id, marker)
            return await repo.unread_count(session, recipient_id, marker)

    async def changes(self, recipient_id: int, after_sequence: int, size: int = 0) -> InboxChanges:
        """The notifications changed after `after_sequence`, oldest change first, each once in its
        current state, read in one snapshot with the inbox's last sequence and unread count.
        INVALID_ARGUMENT for a negative `after_sequence` or page size."""
        if after_sequence < 0:
            raise invalid_field("after_sequence", "must be a sequence number (0 or more)")
        limit = page_size(size, default=MAX_CHANGES, maximum=MAX_CHANGES)
        # One snapshot: a change committed between two statements cannot show in one and not the other.
        async with self._db.read_only(one_snapshot=True) as session:
            inbox = await repo.inbox(session, recipient_id)
            changed = await repo.changes(session, recipient_id, after_sequence, limit)
            unread = await repo.unread_count(session, recipient_id, inbox.read_up_to)
        return InboxChanges(changed, inbox.last_sequence, unread, inbox.read_up_to)
