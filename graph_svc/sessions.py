"""Sessions: one per login on one device, with refresh tokens rotated on every use and stored only as
a hash, so a session can be listed, revoked, and killed when one of its refresh tokens is used twice.

A refresh token carries its session's id (`sid`) and generation (`gen`, mesh.tokens). The row keeps
the SHA-256 of the one current refresh token. Refreshing locks the row, checks the presented token
is the current one, and stores the next one (generation + 1) in the same transaction. Presenting any
other token of a live session (an older one: it was already exchanged) is reuse, so the session is
revoked, which kills both the thief's and the owner's tokens (OAuth 2.0 Security BCP, section 4.14,
"refresh token rotation"). A client that lost the answer to a refresh and retries with the same
token is logged out by this rule: the price of detecting theft.

Access tokens carry `sid` as well; they stay valid for their (short) lifetime unless their holder
asks whether the session is live: the gateway does (CheckSessions, gateway.auth), so a revoked
session's access tokens are refused within its cache's few seconds.

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata
from dataclasses import dataclass

from graph_svc import erasure_repository as erasure_repo
from graph_svc import repository as repo
from graph_svc import session_repository as session_repo
from graph_svc.repository import UserRecord
from graph_svc.session_repository import SessionRecord
from mesh.db import Database
from mesh.db import Session as DbSession
from mesh.errors import NotFound, Unauthenticated, invalid_field
from mesh.ids import IdGenerator
from mesh.pagination import Id, Page, PageCursor, decode_cursor, page_of, page_size
from mesh.tokens import ACCESS, REFRESH, IssuedToken, TokenSigner

# graph.sessions' check constraint device_label_bounded: a User-Agent is rarely longer.
DEVICE_LABEL_MAX = 200
# CheckSessions' batch, as every batch RPC of GraphService.
MAX_CHECK = 100
# How long an ended session's row is kept (for an operator looking into a reuse); each login of the
# user deletes their rows older than that, so a user's rows stay bounded by their logins in that time.
ENDED_KEPT = dt.timedelta(days=7)
# Why a session ended (graph_svc.models.SESSION_REVOKE_REASONS).
LOGGED_OUT, REVOKED, PASSWORD_CHANGED, REFRESH_TOKEN_REUSED = (
    "logged_out",
    "revoked",
    "password_changed",
    "refresh_token_reused",
)


@dataclass(frozen=True)
class Login:
    """A token pair of a session, with its user."""

    user: UserRecord
    session_id: int
    access: IssuedToken
    refresh: IssuedToken


class SessionCursor(PageCursor):
    """A session list page starts after this session id (newest first)."""

    id: Id


def token_hash(token: str) -> bytes:
    """The SHA-256 of a refresh token: what graph.sessions stores instead of the token (a token is
    random and high-entropy, so no salt or slow hash is needed)."""
    return hashlib.sha256(token.encode()).digest()


def device_label(raw: str) -> str:
    """A device label from a User-Agent: control and format characters dropped, runs of spaces made
    one, cut at DEVICE_LABEL_MAX characters."""
    kept = "".join(c for c in raw if unicodedata.category(c)[0] != "C")
    return " ".join(kept.split())[:DEVICE_LABEL_MAX]


class SessionService:
    def __init__(self, *, db: Database, ids: IdGenerator, signer: TokenSigner) -> None:
        self._db = db
        self._ids = ids
        self._signer = signer

    async def start(self, user: UserRecord, label: str) -> Login:
        """A new session of `user`, labelled from `label` (device_label), and its first token pair."""
        session_id = self._ids.next_id()
        refresh = self._signer.issue(user.id, REFRESH, session_id=session_id, generation=1)
        now = dt.datetime.now(dt.UTC)
        record = SessionRecord(
            id=session_id,
            user_id=user.id,
            device_label=device_label(label),
            refresh_token_hash=token_hash(refresh.token),
            generation=1,
            created_at=now,
            last_used_at=now,
            expires_at=refresh.expires_at,
            revoked_at=None,
            revoke_reason=None,
        )
        async with self._db.unit_of_work() as session:
            # Logging in read the account before checking the password: it may be gone by now.
            if not await erasure_repo.hold_caller(session, user.id):
                raise Unauthenticated("wrong username or password", reason="BAD_CREDENTIALS")
            await session_repo.prune_ended(session, user.id, now - ENDED_KEPT)
            await session_repo.insert_session(session, record)
        return Login(user, session_id, self._signer.issue(user.id, ACCESS, session_id=session_id), refresh)

    async def refresh(self, refresh_token: str) -> Login:
        """The next token pair of the refresh token's session; the presented token is spent.

        UNAUTHENTICATED: TOKEN_EXPIRED, TOKEN_INVALID (also a refresh token without a session, issued
        before sessions existed), TOKEN_WRONG_KIND (mesh.tokens); ACCOUNT_GONE if the account was
        deleted; SESSION_REVOKED if the session was logged out, revoked or has expired;
        REFRESH_TOKEN_REUSED for a token of the session that is not its current one, which revokes
        the session (committed before the error is answered).
        """
        claims = self._signer.claims(refresh_token, REFRESH)
        if claims.session_id is None or claims.generation is None:
            raise Unauthenticated(
                "this refresh token belongs to no session (it predates revocable sessions); log in again",
                reason="TOKEN_INVALID",
            )
        refused: Unauthenticated | None = None
        async with self._db.unit_of_work() as session:
            row = await session_repo.lock_session(session, claims.session_id)
            user = await repo.get_user(session, claims.user_id)
            if user is None:
                refused = Unauthenticated("the account no longer exists", reason="ACCOUNT_GONE")
            elif row is None or row.user_id != user.id or row.revoked_at is not None:
                refused = _revoked()
            elif row.refresh_token_hash != token_hash(refresh_token):
                # Signed for this session but not its current token: one that was already exchanged.
                await session_repo.revoke(session, user.id, [row.id], REFRESH_TOKEN_REUSED)
                refused = Unauthenticated(
                    "this refresh token was already used, so the session was ended to protect the account; "
                    "log in again",
                    reason="REFRESH_TOKEN_REUSED",
                )
            elif row.expires_at <= dt.datetime.now(dt.UTC):
                refused = _revoked()
            else:
                generation = row.generation + 1
                refresh = self._signer.issue(user.id, REFRESH, session_id=row.id, generation=generation)
                await session_repo.rotate(
                    session,
                    row.id,
                    refresh_token_hash=token_hash(refresh.token),
                    generation=generation,
                    expires_at=refresh.expires_at,
                )
                login = Login(user, row.id, self._signer.issue(user.id, ACCESS, session_id=row.id), refresh)
        if refused is not None:
            raise refused
        return login

    async def list_sessions(
        self, user_id: int, *, size: int, token: str, current_session_id: int | None
    ) -> Page[SessionRecord]:
        """The live sessions of `user_id`, newest first. INVALID_ARGUMENT for a bad page size or token."""
        limit = page_size(size)
        scope = f"sessions:{user_id}"
        cursor = decode_cursor(token, SessionCursor, scope)
        async with self._db.read_only() as session:
            found = await session_repo.live_sessions(
                session, user_id, before_id=cursor.id if cursor else None, limit=limit + 1
            )
        return page_of(found, limit, scope, lambda record: SessionCursor(id=record.id))

    async def revoke(self, user_id: int, session_id: int, reason: str = REVOKED) -> bool:
        """Ends `user_id`'s session `session_id`; False if it had already ended. NOT_FOUND
        (SESSION_NOT_FOUND) if it is not one of theirs; INVALID_ARGUMENT for a non-positive id."""
        if session_id <= 0:
            raise invalid_field("session_id", "must be a session id")
        async with self._db.unit_of_work() as session:
            row = await session_repo.get_session(session, session_id)
            if row is None or row.user_id != user_id:
                raise NotFound(f"you have no session {session_id}", reason="SESSION_NOT_FOUND")
            return bool(await session_repo.revoke(session, user_id, [session_id], reason))

    async def live_among(self, session_ids: list[int]) -> list[int]:
        """Those of `session_ids` that are live (not revoked, not expired, their account not deleted),
        in request order. INVALID_ARGUMENT (session_ids) for more than MAX_CHECK ids."""
        if len(session_ids) > MAX_CHECK:
            raise invalid_field("session_ids", f"at most {MAX_CHECK} ids per call")
        if not session_ids:
            return []
        async with self._db.read_only(transaction=False) as session:
            live = set(await session_repo.live_among(session, list(set(session_ids))))
        return [i for i in session_ids if i in live]


async def revoke_others(session: DbSession, user_id: int, keep_id: int | None) -> list[int]:
    """In the caller's unit of work: revokes every live session of `user_id` but `keep_id` (None: all),
    as a password change does; returns the revoked ids."""
    if keep_id is None:
        return await session_repo.revoke(session, user_id, None, PASSWORD_CHANGED)
    return await session_repo.revoke_all_but(session, user_id, keep_id, PASSWORD_CHANGED)


def _revoked() -> Unauthenticated:
    return Unauthenticated("this session has ended (logged out or revoked); log in again", reason="SESSION_REVOKED")
