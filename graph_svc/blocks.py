"""The rules of blocks: blocking removes everything between two users in one transaction, and from
then on neither exists for the other (graph_svc.visibility).

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

from collections.abc import Collection

from glimpse.events.v1 import events_pb2
from graph_svc import privacy_repository as privacy_repo
from graph_svc import repository as repo
from graph_svc.privacy import RelatedUser, after_of, relation_page, relation_scope
from mesh.db import Database
from mesh.errors import InvalidArgument, NotFound, Unauthenticated, invalid_field
from mesh.outbox import Outbox
from mesh.pagination import Page, page_size


class BlockService:
    def __init__(self, *, db: Database, outbox: Outbox) -> None:
        self._db = db
        self._outbox = outbox

    async def block(self, blocker_id: int, blocked_id: int) -> bool:
        """The caller blocks `blocked_id`; returns whether the block is new. In the same transaction:
        the follows both ways are removed (counts, and a `graph.unfollowed` each, so the fan-out takes
        each one's posts out of the other's home feed), the pending requests both ways too, and
        `graph.blocked` is emitted. Idempotent: blocking again changes nothing and emits nothing.
        Blocking a user who blocks the caller is allowed.

        INVALID_ARGUMENT for a bad target or oneself (SELF_BLOCK); NOT_FOUND (USER_NOT_FOUND) for an
        unknown target; UNAUTHENTICATED (ACCOUNT_GONE) if the caller's account is gone.
        """
        _check_target(blocker_id, blocked_id)
        async with self._db.unit_of_work() as session:
            # Both rows, in id order like follows, since their counts may change.
            locked = await repo.lock_users(session, [blocker_id, blocked_id])
            _check_exists(locked.keys(), blocker_id, blocked_id)
            created = await privacy_repo.insert_block(session, blocker_id, blocked_id)
            if created:
                for follower_id, followee_id in ((blocker_id, blocked_id), (blocked_id, blocker_id)):
                    if await repo.delete_follow(session, follower_id, followee_id):
                        await repo.add_to_counts(session, follower_id, followee_id, -1)
                        event = events_pb2.UserUnfollowed(follower_id=follower_id, followee_id=followee_id)
                        await self._outbox.add(session, event)
                    await privacy_repo.delete_follow_request(session, follower_id, followee_id)
                await self._outbox.add(session, events_pb2.UserBlocked(blocker_id=blocker_id, blocked_id=blocked_id))
        return created

    async def unblock(self, blocker_id: int, blocked_id: int) -> bool:
        """Lifts the caller's block of `blocked_id` (`graph.unblocked`); returns whether there was one.
        Follows are not restored. The same errors as `block`."""
        _check_target(blocker_id, blocked_id)
        async with self._db.unit_of_work() as session:
            found = await repo.get_users(session, [blocker_id, blocked_id])
            _check_exists(found.keys(), blocker_id, blocked_id)
            deleted = await privacy_repo.delete_block(session, blocker_id, blocked_id)
            if deleted:
                event = events_pb2.UserUnblocked(blocker_id=blocker_id, blocked_id=blocked_id)
                await self._outbox.add(session, event)
        return deleted

    async def list_blocks(self, blocker_id: int, size: int, token: str) -> Page[RelatedUser]:
        """The users the caller blocks, newest block first. INVALID_ARGUMENT for a bad page size or token."""
        limit = page_size(size)
        scope = relation_scope("blocks", blocker_id)
        after = after_of(token, scope)
        async with self._db.read_only() as session:
            found = await privacy_repo.list_blocks(session, blocker_id, after, limit + 1)
            return await relation_page(session, found, limit, scope)


def _check_target(blocker_id: int, blocked_id: int) -> None:
    if blocked_id <= 0:
        raise invalid_field("target_user_id", "must be a user id")
    if blocker_id == blocked_id:
        raise InvalidArgument("you cannot block yourself", reason="SELF_BLOCK", fields={"target_user_id": "is you"})


def _check_exists(found: Collection[int], blocker_id: int, blocked_id: int) -> None:
    if blocked_id not in found:
        raise NotFound(f"user {blocked_id} does not exist", reason="USER_NOT_FOUND")
    if blocker_id not in found:
        raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
