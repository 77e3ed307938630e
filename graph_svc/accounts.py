"""The rules of accounts and sessions: registration, login, token refresh, and finding users (hiding
from a viewer the users it blocks or is blocked by: graph_svc.visibility).

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata
from typing import Annotated

from pydantic import Field

from graph_svc import erasure_repository as erasure_repo
from graph_svc import repository as repo
from graph_svc.credentials import USERNAME, Passwords, check_password, normalize_email, normalize_username
from graph_svc.profile import DISPLAY_NAME_MAX, checked_display_name
from graph_svc.repository import UserRecord
from graph_svc.sessions import Login, SessionService
from graph_svc.visibility import refuse_if_blocked
from mesh.db import Database
from mesh.errors import AlreadyExists, NotFound, Unauthenticated, invalid_field
from mesh.ids import IdGenerator
from mesh.pagination import Count, Page, PageCursor, decode_cursor, page_of, page_size
from mesh.tokens import TokenSigner

MAX_BATCH = 100
# A display name's length (graph_svc.profile): the longest thing worth searching for.
SEARCH_QUERY_MAX = DISPLAY_NAME_MAX


class SearchCursor(PageCursor):
    """A search page starts after this hit in the ranking (graph_svc.repository.search_users)."""

    tier: Annotated[int, Field(ge=0, le=repo.SIMILAR)]
    score: Annotated[int, Field(ge=0, le=repo.SCORE_SCALE)]
    follower_count: Count
    username: Annotated[str, Field(max_length=30, pattern=USERNAME.pattern)]


class AccountService:
    def __init__(self, *, db: Database, ids: IdGenerator, signer: TokenSigner, passwords: Passwords) -> None:
        self._db = db
        self._ids = ids
        self._passwords = passwords
        self._sessions = SessionService(db=db, ids=ids, signer=signer)

    async def register(self, username: str, email: str, password: str, display_name: str) -> UserRecord:
        """Creates an account, storing the hash of the prepared password (credentials.prepare_password).

        INVALID_ARGUMENT naming the field for a bad username, email, display name or password (reason
        WEAK_PASSWORD for a weak one); ALREADY_EXISTS (USERNAME_TAKEN, EMAIL_TAKEN) if taken, and
        (USERNAME_HELD) for the username of an account deleted within the grace period (graph_svc.erasure).
        """
        username = normalize_username(username)
        email = normalize_email(email)
        check_password(password, username)
        display_name = checked_display_name(display_name)  # the profile's rule
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
            is_private=False,
        )
        async with self._db.unit_of_work() as session:
            held_until = await erasure_repo.username_held_until(session, username)
            if held_until is not None:
                raise AlreadyExists(
                    f"username: belonged to a deleted account and is free again from {held_until:%Y-%m-%d %H:%M} UTC",
                    reason="USERNAME_HELD",
                    fields={"username": "held after the deletion of its account"},
                )
            return await repo.insert_user(session, record)

    async def authenticate(self, login: str, password: str, device_label: str = "") -> Login:
        """A new session (graph_svc.sessions, labelled `device_label`) and its token pair, for a
        username (or email) and password, in any Unicode form of the registered one; UNAUTHENTICATED
        (BAD_CREDENTIALS) otherwise, the same for an unknown login. A hash made with older parameters,
        or from an unprepared password, is replaced on success."""
        login = login.strip().lower()
        async with self._db.read_only() as session:
            if "@" in login:
                user = await repo.find_user(session, email=login)
            else:
                user = await repo.find_user(session, username=login)
        check = await self._passwords.verify(user.password_hash if user else None, password)
        if not check.matched or user is None:
            raise Unauthenticated("wrong username or password", reason="BAD_CREDENTIALS")
        if check.needs_rehash:
            new_hash = await self._passwords.hash(password)
            async with self._db.unit_of_work() as session:
                await repo.set_password_hash(session, user.id, new_hash)
        return await self._sessions.start(user, device_label)

    async def get_user(self, user_id: int, viewer_id: int | None = None) -> UserRecord:
        """The user; NOT_FOUND (USER_NOT_FOUND) if there is none, or if it and `viewer_id` (None:
        anonymous) block each other."""
        missing = NotFound(f"user {user_id} does not exist", reason="USER_NOT_FOUND")
        # Two statements, each reading what is committed when it runs (as in READ COMMITTED).
        async with self._db.read_only(transaction=False) as session:
            user = await repo.get_user(session, user_id)
            if user is None:
                raise missing
            await refuse_if_blocked(session, viewer_id, user.id, missing)
        return user

    async def batch_get_users(self, user_ids: list[int]) -> list[UserRecord]:
        """The users that exist, in request order (repeats kept); INVALID_ARGUMENT above MAX_BATCH ids."""
        if len(user_ids) > MAX_BATCH:
            raise invalid_field("user_ids", f"at most {MAX_BATCH} ids per call")
        if not user_ids:
            return []
        async with self._db.read_only(transaction=False) as session:
            found = await repo.get_users(session, list(set(user_ids)))
        return [found[i] for i in user_ids if i in found]

    async def lookup_user(self, username: str, viewer_id: int | None = None) -> UserRecord:
        """The user called `username` (case-insensitive, '@' optional); NOT_FOUND (USER_NOT_FOUND) if
        nobody is, or if that user and `viewer_id` (None: anonymous) block each other."""
        name = username.strip().lower().removeprefix("@")
        missing = NotFound(f"no user is called {name[:40]!r}", reason="USER_NOT_FOUND")
        async with self._db.read_only() as session:
            user = await repo.find_user(session, username=name)
            if user is None:
                raise missing
            await refuse_if_blocked(session, viewer_id, user.id, missing)
        return user

    async def search_users(self, query: str, size: int, token: str, viewer_id: int | None = None) -> Page[UserRecord]:
        """Users matching `query`, ranked (graph_svc.repository.search_users: exact username, then
        prefix, then one edit away, then two, then similar usernames and display names; by similarity, then
        followers, then username), without those that block or are blocked by `viewer_id`.

        The query is trimmed, case-folded and may start with '@'. Pages follow the ranking with a
        cursor on the last hit's whole sort key (a total order), so no user is shown twice or skipped
        while names and counts stay put; a user whose follower count changes between two page reads
        can move across the boundary (one of the two). INVALID_ARGUMENT (query) for an empty or too
        long query; for a bad page size or page token (mesh.pagination.decode_cursor).
        """
        text = unicodedata.normalize("NFKC", query).strip().lower().removeprefix("@").strip()
        if not 1 <= len(text) <= SEARCH_QUERY_MAX:
            raise invalid_field(
                "query",
                f"must be 1-{SEARCH_QUERY_MAX} characters: a username, its start or a misspelling of it, "
                "or words of a display name",
            )
        limit = page_size(size)
        # A digest: a query of 64 characters of another script would make a token too long.
        scope = f"search:{hashlib.blake2b(text.encode(), digest_size=12).hexdigest()}"
        cursor = decode_cursor(token, SearchCursor, scope)
        after = (cursor.tier, cursor.score, cursor.follower_count, cursor.username) if cursor else None
        async with self._db.read_only() as session:
            found = await repo.search_users(session, text, after, limit + 1, viewer_id=viewer_id)
        page = page_of(
            found,
            limit,
            scope,
            lambda hit: SearchCursor(
                tier=hit.tier, score=hit.score, follower_count=hit.user.follower_count, username=hit.user.username
            ),
        )
        return Page([hit.user for hit in page.items], page.next_page_token)
