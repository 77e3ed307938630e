"""The rules of the follow graph: follow and unfollow (with their events), follower and followee
pages, the fan-out's follower stream, followee ids, counts and celebrity followees.

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from glimpse.events.v1 import events_pb2
from graph_svc import repository as repo
from graph_svc.repository import FollowRecord, UserRecord
from mesh.db import Database
from mesh.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated, invalid_field
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

# Follower ids per StreamFollowerIds message: the default, and the most a caller may ask for.
STREAM_BATCH_DEFAULT, STREAM_BATCH_MAX = 1000, 5000


class FollowCursor(PageCursor):
    """A follower (or followee) page starts after this follow: newest first, ties broken by user id."""

    created_at_us: TimestampUs
    id: Id


class FollowService:
    def __init__(self, *, db: Database, outbox: Outbox, max_following: int) -> None:
        self._db = db
        self._outbox = outbox
        self._max_following = max_following

    async def follow(self, follower_id: int, followee_id: int) -> tuple[bool, UserRecord]:
        """The caller follows `followee_id`; returns (created, followee). Idempotent: `graph.followed`
        is emitted only when the follow is new.

        INVALID_ARGUMENT for a bad target or oneself (SELF_FOLLOW), NOT_FOUND (USER_NOT_FOUND) for an
        unknown target, UNAUTHENTICATED (ACCOUNT_GONE) if the caller's account is gone,
        FAILED_PRECONDITION (FOLLOWING_LIMIT) above max_following.
        """
        _check_target(follower_id, followee_id)
        async with self._db.unit_of_work() as session:
            following_counts = await repo.lock_users(session, [follower_id, followee_id])
            _check_exists(following_counts, follower_id, followee_id)
            created = await repo.insert_follow(session, follower_id, followee_id)
            if created:
                # Checked only for a new follow, so repeating an existing one stays idempotent;
                # raising here rolls the insert back.
                if following_counts[follower_id] >= self._max_following:
                    raise FailedPrecondition(
                        f"you already follow {self._max_following} accounts, the most allowed; unfollow some first",
                        reason="FOLLOWING_LIMIT",
                    )
                await repo.add_to_counts(session, follower_id, followee_id, +1)
                await self._outbox.add(
                    session, events_pb2.UserFollowed(follower_id=follower_id, followee_id=followee_id)
                )
            followee = await repo.get_user(session, followee_id)
        assert followee is not None  # locked above
        return created, followee

    async def unfollow(self, follower_id: int, followee_id: int) -> bool:
        """The caller stops following `followee_id`; returns whether a follow was removed (and
        `graph.unfollowed` emitted). The same errors as `follow`, except FOLLOWING_LIMIT."""
        _check_target(follower_id, followee_id)
        async with self._db.unit_of_work() as session:
            following_counts = await repo.lock_users(session, [follower_id, followee_id])
            _check_exists(following_counts, follower_id, followee_id)
            deleted = await repo.delete_follow(session, follower_id, followee_id)
            if deleted:
                await repo.add_to_counts(session, follower_id, followee_id, -1)
                await self._outbox.add(
                    session, events_pb2.UserUnfollowed(follower_id=follower_id, followee_id=followee_id)
                )
        return deleted

    async def list_follows(self, user_id: int, *, followers: bool, size: int, token: str) -> Page[FollowRecord]:
        """Followers (or followees) of `user_id`, newest follow first. NOT_FOUND for an unknown user;
        INVALID_ARGUMENT for a bad page size or token (see mesh.pagination.decode_cursor)."""
        limit = page_size(size)
        scope = f"{'followers' if followers else 'following'}:{user_id}"
        cursor = decode_cursor(token, FollowCursor, scope)
        after = (from_timestamp_us(cursor.created_at_us), cursor.id) if cursor else None
        async with self._db.read_only() as session:
            await _existing(session, user_id)
            found = await repo.list_follows(session, user_id, followers=followers, after=after, limit=limit + 1)
        return page_of(
            found, limit, scope, lambda f: FollowCursor(created_at_us=timestamp_us(f.created_at), id=f.user.id)
        )

    async def stream_follower_ids(self, user_id: int, batch_size: int) -> AsyncIterator[list[int]]:
        """Every follower id of `user_id` in id order, `batch_size` at a time (0: the default, capped
        at STREAM_BATCH_MAX). NOT_FOUND for an unknown user, INVALID_ARGUMENT for a negative size.

        Each batch is its own short keyset query on one connection (no long-running cursor), so
        batches cost one round trip each and a slow reader holds no snapshot open.
        """
        if batch_size < 0:
            raise invalid_field("batch_size", "must not be negative")
        batch = min(batch_size or STREAM_BATCH_DEFAULT, STREAM_BATCH_MAX)
        async with self._db.read_only() as session:
            await _existing(session, user_id)
            after = 0
            while True:
                ids = await repo.follower_ids_after(session, user_id, after, batch)
                await session.rollback()  # end the read transaction between batches
                if not ids:
                    return
                yield ids
                if len(ids) < batch:
                    return
                after = ids[-1]

    async def followee_ids(self, user_id: int) -> list[int]:
        """Every user `user_id` follows (at most max_following); NOT_FOUND for an unknown user."""
        async with self._db.read_only() as session:
            await _existing(session, user_id)
            return await repo.followee_ids(session, user_id)

    async def follower_count(self, user_id: int) -> int:
        """How many users follow `user_id`; NOT_FOUND for an unknown user."""
        async with self._db.read_only() as session:
            return (await _existing(session, user_id)).follower_count

    async def celebrity_followees(self, user_id: int, threshold: int) -> list[int]:
        """The followees of `user_id` with more than `threshold` followers; INVALID_ARGUMENT if negative."""
        if threshold < 0:
            raise invalid_field("threshold", "must not be negative")
        async with self._db.read_only() as session:
            return await repo.celebrity_followee_ids(session, user_id, threshold)


async def _existing(session: AsyncSession, user_id: int) -> UserRecord:
    user = await repo.get_user(session, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")
    return user


def _check_target(follower_id: int, followee_id: int) -> None:
    if followee_id <= 0:
        raise invalid_field("target_user_id", "must be a user id")
    if follower_id == followee_id:
        raise InvalidArgument("you cannot follow yourself", reason="SELF_FOLLOW", fields={"target_user_id": "is you"})


def _check_exists(found: dict[int, int], follower_id: int, followee_id: int) -> None:
    if followee_id not in found:
        raise NotFound(f"user {followee_id} does not exist", reason="USER_NOT_FOUND")
    if follower_id not in found:
        raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
