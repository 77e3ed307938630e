"""The rules of the follow graph: follow and unfollow (with their events; following a private account
asks it first, graph_svc.privacy), follower and followee pages, the fan-out's follower stream,
followee ids, counts and celebrity followees.

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass

from glimpse.events.v1 import events_pb2
from graph_svc import privacy_repository as privacy_repo
from graph_svc import repository as repo
from graph_svc.repository import FollowRecord, LockedUser, UserRecord
from graph_svc.visibility import refuse_if_blocked
from mesh.db import Database, Session
from mesh.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unauthenticated, invalid_field
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


class FollowState(enum.Enum):
    FOLLOWING = "following"
    # The target is private: the caller asked, and follows once the target approves.
    REQUESTED = "requested"


@dataclass(frozen=True)
class FollowOutcome:
    created: bool  # a follow or request was made by this call
    state: FollowState
    followee: UserRecord


class FollowService:
    def __init__(self, *, db: Database, outbox: Outbox, max_following: int) -> None:
        self._db = db
        self._outbox = outbox
        self._max_following = max_following

    async def follow(self, follower_id: int, followee_id: int) -> FollowOutcome:
        """The caller follows `followee_id` (`graph.followed`), or asks to if it is private (a follow
        request, `graph.follow_requested`). Idempotent: an event is emitted only when the follow or
        request is new; following someone the caller follows answers FOLLOWING whatever its privacy.

        INVALID_ARGUMENT for a bad target or oneself (SELF_FOLLOW), NOT_FOUND (USER_NOT_FOUND) for an
        unknown target or one that blocks the caller or is blocked by it, UNAUTHENTICATED
        (ACCOUNT_GONE) if the caller's account is gone, FAILED_PRECONDITION (FOLLOWING_LIMIT) when the
        caller's follows plus pending requests reach max_following.
        """
        _check_target(follower_id, followee_id)
        async with self._db.unit_of_work() as session:
            locked = await repo.lock_users(session, [follower_id, followee_id])
            _check_exists(locked, follower_id, followee_id)
            await refuse_if_blocked(session, follower_id, followee_id, _no_such_user(followee_id))
            if not locked[followee_id].is_private:
                state = FollowState.FOLLOWING
                created = await repo.insert_follow(session, follower_id, followee_id)
                if created:
                    await self._check_limit(session, follower_id, locked[follower_id], follow=True)
                    await repo.add_to_counts(session, follower_id, followee_id, +1)
                    await self._outbox.add(
                        session, events_pb2.UserFollowed(follower_id=follower_id, followee_id=followee_id)
                    )
            elif await repo.follow_exists(session, follower_id, followee_id):
                state, created = FollowState.FOLLOWING, False
            else:
                state = FollowState.REQUESTED
                created = await privacy_repo.insert_follow_request(session, follower_id, followee_id)
                if created:
                    await self._check_limit(session, follower_id, locked[follower_id], follow=False)
                    await self._outbox.add(
                        session, events_pb2.FollowRequested(requester_id=follower_id, target_id=followee_id)
                    )
            followee = await repo.get_user(session, followee_id)
        assert followee is not None  # locked above
        return FollowOutcome(created, state, followee)

    async def _check_limit(self, session: Session, follower_id: int, follower: LockedUser, *, follow: bool) -> None:
        """FOLLOWING_LIMIT if the follower's follows and pending requests, with the one just inserted
        (a `follow`, else a request, already among the pending), exceed the cap. Checked only for a new
        follow or request, so repeating one stays idempotent; raising rolls the insert back. Pending
        requests count, so approving one never takes the requester over it."""
        pending = await privacy_repo.outgoing_request_count(session, follower_id)
        if follower.following_count + pending + (1 if follow else 0) > self._max_following:
            raise FailedPrecondition(
                f"you already follow or asked to follow {self._max_following} accounts, the most allowed; "
                "unfollow some or withdraw requests first",
                reason="FOLLOWING_LIMIT",
            )

    async def unfollow(self, follower_id: int, followee_id: int) -> bool:
        """The caller stops following `followee_id` (`graph.unfollowed`), or withdraws its pending
        request to (`graph.follow_request_removed`); returns whether a follow or request was removed.
        The same errors as `follow`, except FOLLOWING_LIMIT."""
        _check_target(follower_id, followee_id)
        async with self._db.unit_of_work() as session:
            locked = await repo.lock_users(session, [follower_id, followee_id])
            _check_exists(locked, follower_id, followee_id)
            await refuse_if_blocked(session, follower_id, followee_id, _no_such_user(followee_id))
            deleted = await repo.delete_follow(session, follower_id, followee_id)
            if deleted:
                await repo.add_to_counts(session, follower_id, followee_id, -1)
                await self._outbox.add(
                    session, events_pb2.UserUnfollowed(follower_id=follower_id, followee_id=followee_id)
                )
            else:
                deleted = await privacy_repo.delete_follow_request(session, follower_id, followee_id)
                if deleted:
                    await self._outbox.add(
                        session,
                        events_pb2.FollowRequestRemoved(
                            requester_id=follower_id, target_id=followee_id, withdrawn=True
                        ),
                    )
        return deleted

    async def list_follows(
        self, user_id: int, *, followers: bool, size: int, token: str, viewer_id: int | None = None
    ) -> Page[FollowRecord]:
        """Followers (or followees) of `user_id`, newest follow first, as `viewer_id` (None: anonymous)
        sees them: without users that block or are blocked by the viewer.

        NOT_FOUND (USER_NOT_FOUND) for an unknown user or one blocked either way with the viewer;
        PERMISSION_DENIED (ACCOUNT_PRIVATE) for a private account's list unless the viewer is that
        account or follows it; INVALID_ARGUMENT for a bad page size or token (mesh.pagination).
        """
        limit = page_size(size)
        kind = "followers" if followers else "following"
        scope = f"{kind}:{user_id}"
        cursor = decode_cursor(token, FollowCursor, scope)
        after = (from_timestamp_us(cursor.created_at_us), cursor.id) if cursor else None
        async with self._db.read_only() as session:
            user = await _existing(session, user_id)
            await refuse_if_blocked(session, viewer_id, user_id, _no_such_user(user_id))
            if user.is_private and not await _follows_or_is(session, viewer_id, user_id):
                raise PermissionDenied(
                    f"user {user_id}'s account is private: only its followers see its {kind}",
                    reason="ACCOUNT_PRIVATE",
                )
            found = await repo.list_follows(
                session, user_id, followers=followers, after=after, limit=limit + 1, viewer_id=viewer_id
            )
        return page_of(
            found, limit, scope, lambda f: FollowCursor(created_at_us=timestamp_us(f.created_at), id=f.user.id)
        )

    async def stream_follower_ids(
        self, user_id: int, batch_size: int, *, audience_only: bool = False
    ) -> AsyncIterator[list[int]]:
        """Every follower id of `user_id` in id order, `batch_size` at a time (0: the default, capped
        at STREAM_BATCH_MAX); with `audience_only`, without the followers who must not receive the
        user's posts (graph_svc.visibility: they mute the user, or one blocks the other), filtered in
        the same query. NOT_FOUND for an unknown user, INVALID_ARGUMENT for a negative size.

        Each batch is its own short keyset query on one connection (no long-running cursor), so
        batches cost one round trip each and a slow reader holds no snapshot open.
        """
        if batch_size < 0:
            raise invalid_field("batch_size", "must not be negative")
        batch = min(batch_size or STREAM_BATCH_DEFAULT, STREAM_BATCH_MAX)
        # Statements alone (no transaction): each batch reads what is committed when it runs.
        async with self._db.read_only(transaction=False) as session:
            after = 0
            while True:
                ids = await repo.follower_ids_after(session, user_id, after, batch, audience_only=audience_only)
                if not ids:
                    if after == 0:  # no follower at all: is there such a user?
                        await _existing(session, user_id)
                    return
                yield ids
                if len(ids) < batch:
                    return
                after = ids[-1]

    async def followee_ids(self, user_id: int) -> list[int]:
        """Every user `user_id` follows (at most max_following); NOT_FOUND for an unknown user."""
        async with self._db.read_only(transaction=False) as session:
            await _existing(session, user_id)
            return await repo.followee_ids(session, user_id)

    async def audience(self, user_id: int, max_ids: int) -> tuple[int, list[int] | None]:
        """(follower count, the audience of `stream_follower_ids(audience_only=True)` if it has at
        most `max_ids` ids, else None). NOT_FOUND for an unknown user, INVALID_ARGUMENT for `max_ids`
        outside 0..STREAM_BATCH_MAX."""
        if not 0 <= max_ids <= STREAM_BATCH_MAX:
            raise invalid_field("max_ids", f"must be between 0 and {STREAM_BATCH_MAX}")
        async with self._db.read_only(transaction=False) as session:
            count = await repo.follower_count(session, user_id)
            if count is None:
                raise NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")
            if count > max_ids:
                return count, None
            # The audience is at most the followers; one more id than asked tells a follow that
            # arrived since the count apart from a complete answer.
            ids = await repo.follower_ids_after(session, user_id, 0, max_ids + 1, audience_only=True)
        return count, ids if len(ids) <= max_ids else None

    async def follower_count(self, user_id: int) -> int:
        """How many users follow `user_id`; NOT_FOUND for an unknown user."""
        async with self._db.read_only(transaction=False) as session:
            count = await repo.follower_count(session, user_id)
        if count is None:
            raise NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")
        return count

    async def celebrity_followees(self, user_id: int, threshold: int) -> list[int]:
        """The followees of `user_id` with more than `threshold` followers; INVALID_ARGUMENT if negative."""
        if threshold < 0:
            raise invalid_field("threshold", "must not be negative")
        async with self._db.read_only() as session:
            return await repo.celebrity_followee_ids(session, user_id, threshold)


async def _existing(session: Session, user_id: int) -> UserRecord:
    user = await repo.get_user(session, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")
    return user


def _check_target(follower_id: int, followee_id: int) -> None:
    if followee_id <= 0:
        raise invalid_field("target_user_id", "must be a user id")
    if follower_id == followee_id:
        raise InvalidArgument("you cannot follow yourself", reason="SELF_FOLLOW", fields={"target_user_id": "is you"})


async def _follows_or_is(session: Session, viewer_id: int | None, user_id: int) -> bool:
    if viewer_id is None:
        return False
    return viewer_id == user_id or await repo.follow_exists(session, viewer_id, user_id)


def _no_such_user(user_id: int) -> NotFound:
    return NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")


def _check_exists(found: dict[int, LockedUser], follower_id: int, followee_id: int) -> None:
    if followee_id not in found:
        raise _no_such_user(followee_id)
    if follower_id not in found:
        raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
