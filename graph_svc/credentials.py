"""Account credentials: what a valid username, email and password are, and argon2id hashing."""

from __future__ import annotations

import asyncio
import re

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mesh.errors import invalid_field

USERNAME = re.compile(r"^[a-z0-9._]{3,30}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
# The most common leaked passwords of 8+ characters; a real deployment would check a breach corpus.
_COMMON = frozenset(
    {"password", "password1", "12345678", "123456789", "1234567890", "qwertyuiop", "11111111", "iloveyou",
     "sunshine", "princess", "football", "baseball", "welcome1", "abc12345", "passw0rd", "qwerty123"}
)  # fmt: skip


def normalize_username(raw: str) -> str:
    """Lower-cased username; INVALID_ARGUMENT unless it is 3-30 characters of [a-z0-9._]."""
    username = raw.strip().lower()
    if not USERNAME.match(username):
        raise invalid_field("username", "must be 3-30 characters of a-z, 0-9, '.' and '_'")
    if username.startswith(".") or username.endswith(".") or ".." in username:
        raise invalid_field("username", "must not start or end with '.' or contain '..'")
    return username


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or not EMAIL.match(email):
        raise invalid_field("email", "must be an email address like name@example.com")
    return email


def check_password(password: str, username: str) -> None:
    """INVALID_ARGUMENT (reason WEAK_PASSWORD) for a password too short, too common or too guessable."""
    if len(password) < PASSWORD_MIN:
        raise invalid_field("password", f"must be at least {PASSWORD_MIN} characters", reason="WEAK_PASSWORD")
    if len(password) > PASSWORD_MAX:
        raise invalid_field("password", f"must be at most {PASSWORD_MAX} characters", reason="WEAK_PASSWORD")
    lowered = password.lower()
    if lowered in _COMMON or len(set(password)) < 4 or username in lowered:
        raise invalid_field(
            "password", "is too easy to guess; use a longer phrase not containing your username", reason="WEAK_PASSWORD"
        )


class Passwords:
    """argon2id hashing, off the event loop (each hash takes tens of milliseconds by design)."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verified against when the login names no account, so both paths cost the same time.
        self._decoy = self._hasher.hash("decoy password for timing")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored_hash or self._decoy, password) and stored_hash is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
