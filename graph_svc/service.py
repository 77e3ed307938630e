"""The rules of accounts and the follow graph. Raises mesh.errors.DomainError subclasses."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from glimpse.events.v1 import events_pb2
from graph_svc import repository as repo
from graph_svc.credentials import Passwords, check_password, normalize_email, normalize_username
from graph_svc.repository import FollowRecord, UserRecord
from mesh.db import Database
from mesh.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated, invalid_field
from mesh.ids import IdGenerator
from mesh.outbox import Outbox
from mesh.pagination import decode_page_token, encode_page_token, page_size
from mesh.tokens import ACCESS, REFRESH, IssuedToken, TokenSigner

MAX_BATCH = 100
DISPLAY_NAME_MAX = 64


@dataclass(frozen=True)
class Session:
    user: UserRecord
    access: IssuedToken
    refresh: IssuedToken


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


class GraphService:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        ids: IdGenerator,
        signer: TokenSigner,
        passwords: Passwords,
        max_following: int,
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._ids = ids
        self._signer = signer
        self._passwords = passwords
        self._max_following = max_following

    # Accounts -----------------------------------------------------------------------------------

    async def register(self, username: str, email: str, password: str, display_name: str) -> UserRecord:
        """Creates an account. INVALID_ARGUMENT for bad fields, ALREADY_EXISTS if taken."""
        username = normalize_username(username)
        email = normalize_email(email)
        check_password(password, username)
        display_name = display_name.strip()
        if len(display_name) > DISPLAY_NAME_MAX:
            raise invalid_field("display_name", f"must be at most {DISPLAY_NAME_MAX} characters")
        password_hash = await self._passwords.hash(password)
        record = UserRecord(
            id=self._ids.next_id(),
            username=username,
            email=email,
            password_hash=password_hash,
            display_name=display_name or username,
            bio="",
            follower_count=0,
            following_count=0,
            created_at=dt.datetime.now(dt.UTC),
        )
        async with self._db.unit_of_work() as session:
            return await repo.insert_user(session, record)

    async def authenticate(self, login: str, password: str) -> Session:
        """A token pair for a username (or email) and password; UNAUTHENTICATED otherwise."""
        login = login.strip().lower()
        async with self._db.read_only() as session:
            if "@" in login:
                user = await repo.find_user(session, email=login)
            else:
                user = await repo.find_user(session, username=login)
        if not await self._passwords.verify(user.password_hash if user else None, password) or user is None:
            raise Unauthenticated("wrong username or password", reason="BAD_CREDENTIALS")
        if self._passwords.needs_rehash(user.password_hash):
            new_hash = await self._passwords.hash(password)
            async with self._db.unit_of_work() as session:
                await repo.set_password_hash(session, user.id, new_hash)
        return self._session_for(user)

    async def refresh(self, refresh_token: str) -> Session:
        user_id = self._signer.verify(refresh_token, REFRESH)
        async with self._db.read_only() as session:
            user = await repo.get_user(session, user_id)
        if user is None:
            raise Unauthenticated("the account no longer exists", reason="ACCOUNT_GONE")
        return self._session_for(user)

    def _session_for(self, user: UserRecord) -> Session:
        return Session(user, self._signer.issue(user.id, ACCESS), self._signer.issue(user.id, REFRESH))

    async def get_user(self, user_id: int) -> UserRecord:
        async with self._db.read_only() as session:
            user = await repo.get_user(session, user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")
        return user

    async def batch_get_users(self, user_ids: list[int]) -> list[UserRecord]:
        if len(user_ids) > MAX_BATCH:
            raise invalid_field("user_ids", f"at most {MAX_BATCH} ids per call")
        if not user_ids:
            return []
        async with self._db.read_only() as session:
            found = await repo.get_users(session, list(set(user_ids)))
        return [found[i] for i in user_ids if i in found]

    async def lookup_user(self, username: str) -> UserRecord:
        name = username.strip().lower().removeprefix("@")
        async with self._db.read_only() as session:
            user = await repo.find_user(session, username=name)
        if user is None:
            raise NotFound(f"no user is called {name[:40]!r}", reason="USER_NOT_FOUND")
        return user

    async def search_users(self, query: str, size: int, token: str) -> Page[UserRecord]:
        prefix = query.strip().lower().removeprefix("@")
        if not prefix or len(prefix) > 30 or not all(c.isascii() and (c.isalnum() or c in "._") for c in prefix):
            raise invalid_field("query", "must be 1-30 characters of a-z, 0-9, '.' and '_'")
        limit = page_size(size)
        scope = f"search:{prefix}"
        cursor = decode_page_token(token, scope)
        after = _cursor_str(cursor, "u")
        async with self._db.read_only() as session:
            found = await repo.search_usernames(session, prefix, after, limit + 1)
        items = found[:limit]
        next_token = encode_page_token(scope, {"u": items[-1].username}) if len(found) > limit else ""
        return Page(items, next_token)

    # Follow graph -------------------------------------------------------------------------------

    async def follow(self, follower_id: int, followee_id: int) -> tuple[bool, UserRecord]:
        """The caller follows `followee_id`; returns (created, followee). Idempotent."""
        self._check_target(follower_id, followee_id)
        async with self._db.unit_of_work() as session:
            following_counts = await repo.lock_users(session, [follower_id, followee_id])
            self._check_exists(following_counts, follower_id, followee_id)
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
                event = events_pb2.UserFollowed(follower_id=follower_id, followee_id=followee_id)
                await self._outbox.add(session, "graph.followed", event)
            followee = await repo.get_user(session, followee_id)
        assert followee is not None  # locked above
        return created, followee

    async def unfollow(self, follower_id: int, followee_id: int) -> bool:
        """The caller stops following `followee_id`; returns whether a follow was removed."""
        self._check_target(follower_id, followee_id)
        async with self._db.unit_of_work() as session:
            following_counts = await repo.lock_users(session, [follower_id, followee_id])
            self._check_exists(following_counts, follower_id, followee_id)
            deleted = await repo.delete_follow(session, follower_id, followee_id)
            if deleted:
                await repo.add_to_counts(session, follower_id, followee_id, -1)
                event = events_pb2.UserUnfollowed(follower_id=follower_id, followee_id=followee_id)
                await self._outbox.add(session, "graph.unfollowed", event)
        return deleted

    @staticmethod
    def _check_target(follower_id: int, followee_id: int) -> None:
        if followee_id <= 0:
            raise invalid_field("target_user_id", "must be a user id")
        if follower_id == followee_id:
            raise InvalidArgument(
                "you cannot follow yourself", reason="SELF_FOLLOW", fields={"target_user_id": "is you"}
            )

    @staticmethod
    def _check_exists(found: dict[int, int], follower_id: int, followee_id: int) -> None:
        if followee_id not in found:
            raise NotFound(f"user {followee_id} does not exist", reason="USER_NOT_FOUND")
        if follower_id not in found:
            raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")

    async def list_follows(self, user_id: int, *, followers: bool, size: int, token: str) -> Page[FollowRecord]:
        """Followers (or followees) of `user_id`, newest first. NOT_FOUND for an unknown user."""
        limit = page_size(size)
        scope = f"{'followers' if followers else 'following'}:{user_id}"
        cursor = decode_page_token(token, scope)
        after = _keyset(cursor)
        async with self._db.read_only() as session:
            if await repo.get_user(session, user_id) is None:
                raise NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")
            found = await repo.list_follows(session, user_id, followers=followers, after=after, limit=limit + 1)
        items = found[:limit]
        next_token = ""
        if len(found) > limit:
            last = items[-1]
            next_token = encode_page_token(scope, {"t": last.created_at.isoformat(), "id": last.user.id})
        return Page(items, next_token)

    async def stream_follower_ids(self, user_id: int, batch_size: int) -> AsyncIterator[list[int]]:
        """Every follower id of `user_id` in id order, `batch_size` at a time.

        Each batch is its own short keyset query on one connection (no long-running cursor), so
        batches cost one round trip each and a slow reader holds no snapshot open.
        """
        if batch_size < 0:
            raise invalid_field("batch_size", "must not be negative")
        batch = min(batch_size or 1000, 5000)
        async with self._db.read_only() as session:
            if await repo.get_user(session, user_id) is None:
                raise NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")
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
        async with self._db.read_only() as session:
            if await repo.get_user(session, user_id) is None:
                raise NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")
            return await repo.followee_ids(session, user_id)

    async def follower_count(self, user_id: int) -> int:
        return (await self.get_user(user_id)).follower_count

    async def celebrity_followees(self, user_id: int, threshold: int) -> list[int]:
        if threshold < 0:
            raise invalid_field("threshold", "must not be negative")
        async with self._db.read_only() as session:
            return await repo.celebrity_followee_ids(session, user_id, threshold)


def _cursor_str(cursor: dict[str, object] | None, key: str) -> str | None:
    if cursor is None:
        return None
    value = cursor.get(key)
    if not isinstance(value, str):
        raise invalid_field("page_token", "is malformed; pass back next_page_token unchanged")
    return value


def _keyset(cursor: dict[str, object] | None) -> tuple[dt.datetime, int] | None:
    if cursor is None:
        return None
    try:
        return dt.datetime.fromisoformat(str(cursor["t"])), int(str(cursor["id"]))
    except (KeyError, ValueError) as exc:
        raise invalid_field("page_token", "is malformed; pass back next_page_token unchanged") from exc
