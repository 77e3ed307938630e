"""Deleting an account (right to erasure), graph side.

In one transaction: the user's follows both ways (each other user's follower or following count
adjusted), follow requests, blocks and mutes both ways, every session (so refresh tokens die at once
and the gateway refuses the access tokens: gateway.auth), the user row, a hold on the username for
the grace period (graph.username_holds: the name and its release time, no id), and the
`graph.user_deleted` event (mesh.events.USER_DELETED) through the outbox, on which every other
service erases what it holds. The transaction commits all of it or none, and the event is published
at least once after it commits (mesh.outbox), so a crash at any point leaves nothing half done here.

No `graph.unfollowed` is emitted for the removed follows: `graph.user_deleted` stands for all of
them, and its consumers clean up what those would have (fanout_svc drops the user's inbox and
outbox; the user's posts leave followers' inboxes as post_svc deletes them).

What stays: reports. A report the user made keeps its snapshot, subject and reported user, without
the reporter (reporter_id NULL); a report about the user keeps its snapshot (the content as the
reporter saw it: evidence, which the issue asks to keep) and `reported_user_id`.

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

import datetime as dt

from glimpse.events.v1 import events_pb2
from graph_svc import erasure_repository as erasure_repo
from graph_svc import repository as repo
from graph_svc import session_repository as session_repo
from graph_svc.credentials import Passwords
from graph_svc.password_change import wrong_password
from mesh.db import Database
from mesh.db import Session as DbSession
from mesh.errors import Unauthenticated, invalid_field
from mesh.outbox import Outbox


async def require_caller(session: DbSession, user_id: int) -> None:
    """In the caller's unit of work, before writing a row that holds `user_id`: holds the account
    against a concurrent erasure (erasure_repository.hold_caller); UNAUTHENTICATED (ACCOUNT_GONE) if
    it is already deleted, so no row of a deleted account is written after its erasure."""
    if not await erasure_repo.hold_caller(session, user_id):
        raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")


class ErasureService:
    def __init__(self, *, db: Database, outbox: Outbox, passwords: Passwords, username_hold: dt.timedelta) -> None:
        self._db = db
        self._outbox = outbox
        self._passwords = passwords
        self._username_hold = username_hold

    async def delete_user(self, user_id: int, password: str) -> dt.datetime:
        """Deletes `user_id`'s account, graph side (see the module); returns when its username becomes
        free again (now + the grace period, GraphSettings.username_hold_seconds).

        INVALID_ARGUMENT: field password empty, or WRONG_PASSWORD. UNAUTHENTICATED (ACCOUNT_GONE) if
        the account is already deleted.
        """
        if not password:
            raise invalid_field("password", "is required: confirm the deletion with your password")
        gone = Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
        async with self._db.read_only() as session:
            user = await repo.get_user(session, user_id)
        if user is None:
            raise gone
        if not (await self._passwords.verify(user.password_hash, password)).matched:
            raise wrong_password("password")
        released_at = dt.datetime.now(dt.UTC) + self._username_hold
        async with self._db.unit_of_work() as session:
            locked = await erasure_repo.lock_user_and_neighbours(session, user_id)
            if user_id not in locked:
                raise gone
            await erasure_repo.remove_follows(session, user_id)
            await erasure_repo.remove_relations(session, user_id)
            await erasure_repo.forget_reporter(session, user_id)
            await session_repo.delete_user_sessions(session, user_id)
            await erasure_repo.hold_username(session, user.username, released_at)
            await erasure_repo.delete_user(session, user_id)
            await self._outbox.add(session, events_pb2.UserDeleted(user_id=user_id))
        return released_at
