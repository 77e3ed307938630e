"""The rules of private accounts: turning the caller's account private or public (within UpdateUser,
whose other paths are graph_svc.profile's), and the incoming follow requests of a private account
(list, approve, deny). Asking to follow is FollowUser on a private account and withdrawing is
UnfollowUser (graph_svc.follows).

Also the page shape every list of a user's relations shares (requests, blocks, mutes).

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from glimpse.events.v1 import events_pb2
from graph_svc import privacy_repository as privacy_repo
from graph_svc import repository as repo
from graph_svc.privacy_repository import Relation
from graph_svc.repository import UserRecord
from mesh.db import Database, Session
from mesh.errors import NotFound, Unauthenticated, invalid_field
from mesh.outbox import Outbox
from mesh.pagination import (
    Id,
    Page,
    PageCursor,
    TimestampUs,
    decode_cursor,
    from_timestamp_us,
    page_of,
    page_size,
    timestamp_us,
)


@dataclass(frozen=True)
class RelatedUser:
    """A user on one of the caller's relation lists (a request, a block, a mute), and since when."""

    user: UserRecord
    since: dt.datetime


class RelationCursor(PageCursor):
    """A page of a user's relations starts after this one: newest first, ties broken by the other
    user's id."""

    created_at_us: TimestampUs
    id: Id


def relation_scope(kind: str, user_id: int) -> str:
    return f"{kind}:{user_id}"


def after_of(token: str, scope: str) -> tuple[dt.datetime, int] | None:
    """The keyset a relation page token carries; INVALID_ARGUMENT for a bad token (decode_cursor)."""
    cursor = decode_cursor(token, RelationCursor, scope)
    return (from_timestamp_us(cursor.created_at_us), cursor.id) if cursor else None


async def relation_page(session: Session, found: Sequence[Relation], limit: int, scope: str) -> Page[RelatedUser]:
    """The page of `limit` relations from `found` (read with limit + 1), with their users (one batch
    read); the next token is the last relation's, so a user gone meanwhile shifts nothing."""
    page = page_of(
        found, limit, scope, lambda r: RelationCursor(created_at_us=timestamp_us(r.created_at), id=r.user_id)
    )
    users = await repo.get_users(session, [r.user_id for r in page.items]) if page.items else {}
    items = [RelatedUser(users[r.user_id], r.created_at) for r in page.items if r.user_id in users]
    return Page(items, page.next_page_token)


class PrivacyService:
    def __init__(self, *, db: Database, outbox: Outbox) -> None:
        self._db = db
        self._outbox = outbox

    async def set_private(self, session: Session, caller_id: int, is_private: bool) -> None:
        """Makes the caller's account private or public, in the caller's unit of work (UpdateUser's,
        graph_svc.profile), locking the caller's row.

        Turning is_private off approves every pending request in the same transaction: each becomes
        a follow, counted, with its `graph.followed` (approved_request) event; then
        `graph.privacy_changed`. Setting the value it has changes nothing and emits nothing.
        UNAUTHENTICATED (ACCOUNT_GONE) if the caller's account is gone.
        """
        # Requests are read before the lock so that every row this may touch is locked in id
        # order, as follows lock theirs; a request made in between is locked late (rare).
        pending = [] if is_private else await privacy_repo.incoming_requester_ids(session, caller_id)
        locked = await repo.lock_users(session, [caller_id, *pending])
        if caller_id not in locked:
            raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
        if locked[caller_id].is_private != is_private:
            await repo.set_private(session, caller_id, is_private)
            if not is_private:
                await self._approve_all(session, caller_id, set(locked))
            await self._outbox.add(session, events_pb2.UserPrivacyChanged(user_id=caller_id, is_private=is_private))

    async def _approve_all(self, session: Session, target_id: int, locked: set[int]) -> None:
        requesters = await privacy_repo.delete_incoming_requests(session, target_id)
        late = sorted(set(requesters) - locked)
        if late:
            await repo.lock_users(session, late)
        followers = await repo.insert_followers(session, requesters, target_id)
        await repo.add_followers_to_counts(session, followers, target_id)
        for follower_id in followers:
            event = events_pb2.UserFollowed(follower_id=follower_id, followee_id=target_id, approved_request=True)
            await self._outbox.add(session, event)

    async def list_requests(self, caller_id: int, size: int, token: str) -> Page[RelatedUser]:
        """Requests to follow the caller, newest first. INVALID_ARGUMENT for a bad page size or token."""
        limit = page_size(size)
        scope = relation_scope("follow_requests", caller_id)
        after = after_of(token, scope)
        async with self._db.read_only() as session:
            found = await privacy_repo.list_incoming_requests(session, caller_id, after, limit + 1)
            return await relation_page(session, found, limit, scope)

    async def approve(self, caller_id: int, requester_id: int) -> tuple[bool, UserRecord]:
        """The caller lets `requester_id` follow it: request -> follow, both counts and `graph.followed`
        (approved_request) in one transaction. Returns (approved, the follower); approved is False when
        the requester already follows the caller.

        INVALID_ARGUMENT (requester_id) for an id that is not positive; NOT_FOUND (USER_NOT_FOUND) for
        an unknown requester, (FOLLOW_REQUEST_NOT_FOUND) if it neither asked nor follows;
        UNAUTHENTICATED (ACCOUNT_GONE) if the caller's account is gone.
        """
        _check_requester(requester_id)
        async with self._db.unit_of_work() as session:
            locked = await repo.lock_users(session, [caller_id, requester_id])
            if caller_id not in locked:
                raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
            if requester_id not in locked:
                raise NotFound(f"user {requester_id} does not exist", reason="USER_NOT_FOUND")
            approved = False
            if await privacy_repo.delete_follow_request(session, requester_id, caller_id):
                # The requester's pending request already counted against its following limit.
                approved = await repo.insert_follow(session, requester_id, caller_id)
                if approved:
                    await repo.add_to_counts(session, requester_id, caller_id, +1)
                    event = events_pb2.UserFollowed(
                        follower_id=requester_id, followee_id=caller_id, approved_request=True
                    )
                    await self._outbox.add(session, event)
            elif not await repo.follow_exists(session, requester_id, caller_id):
                raise NotFound(f"user {requester_id} has not asked to follow you", reason="FOLLOW_REQUEST_NOT_FOUND")
            follower = await repo.get_user(session, requester_id)
        assert follower is not None  # locked above
        return approved, follower

    async def deny(self, caller_id: int, requester_id: int) -> bool:
        """Drops `requester_id`'s pending request to follow the caller (the requester is not told;
        `graph.follow_request_removed` takes it out of the caller's notifications); False if there was
        none. INVALID_ARGUMENT (requester_id) for an id that is not positive."""
        _check_requester(requester_id)
        async with self._db.unit_of_work() as session:
            denied = await privacy_repo.delete_follow_request(session, requester_id, caller_id)
            if denied:
                removed = events_pb2.FollowRequestRemoved(requester_id=requester_id, target_id=caller_id)
                await self._outbox.add(session, removed)
            return denied


def _check_requester(requester_id: int) -> None:
    if requester_id <= 0:
        raise invalid_field("requester_id", "must be a user id")
