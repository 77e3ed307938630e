"""Changing a password, which ends every other session of the account (whoever else holds one of its
tokens, perhaps the reason for the change, is logged out).

Raises mesh.errors.DomainError subclasses.
"""

from __future__ import annotations

from graph_svc import repository as repo
from graph_svc.credentials import Passwords, check_password
from graph_svc.sessions import revoke_others
from mesh.db import Database
from mesh.errors import InvalidArgument, Unauthenticated, invalid_field


def wrong_password(field: str) -> InvalidArgument:
    """INVALID_ARGUMENT (WRONG_PASSWORD) naming `field`: a 400, not a 401, so that a client does not
    take a mistyped password for an expired session."""
    return InvalidArgument(
        f"{field}: is not your password", reason="WRONG_PASSWORD", fields={field: "is not your password"}
    )


class PasswordChangeService:
    def __init__(self, *, db: Database, passwords: Passwords) -> None:
        self._db = db
        self._passwords = passwords

    async def change_password(
        self, user_id: int, current_password: str, new_password: str, current_session_id: int | None
    ) -> int:
        """Replaces `user_id`'s password and revokes every other live session of theirs (reason
        password_changed; `current_session_id` stays, None revokes all), in one transaction; returns how
        many were revoked.

        INVALID_ARGUMENT: field current_password empty or WRONG_PASSWORD; field new_password
        WEAK_PASSWORD (credentials.check_password), or the same as the current one. UNAUTHENTICATED
        (ACCOUNT_GONE) if the account was deleted.
        """
        if not current_password:
            raise invalid_field("current_password", "is required")
        async with self._db.read_only() as session:
            user = await repo.get_user(session, user_id)
        if user is None:
            raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
        check = await self._passwords.verify(user.password_hash, current_password)
        if not check.matched:
            raise wrong_password("current_password")
        check_password(new_password, user.username, field="new_password")
        if (await self._passwords.verify(user.password_hash, new_password)).matched:
            raise invalid_field("new_password", "must differ from your current password")
        new_hash = await self._passwords.hash(new_password)
        async with self._db.unit_of_work() as session:
            # Compared again under the row lock: a concurrent change made in between wins, this one fails.
            locked = await repo.lock_users(session, [user_id])
            current = await repo.get_user(session, user_id)
            if not locked or current is None:
                raise Unauthenticated("your account no longer exists", reason="ACCOUNT_GONE")
            if current.password_hash != user.password_hash:
                raise wrong_password("current_password")
            await repo.set_password_hash(session, user_id, new_hash)
            return len(await revoke_others(session, user_id, current_session_id))
