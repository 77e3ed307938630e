"""Account credentials: what a valid username, email and password are, and argon2id hashing.

Passwords are prepared per RFC 8265's OpaqueString profile (as NIST SP 800-63B asks) before they are
checked, hashed or verified: non-ASCII spaces become U+0020 and the text is put in Unicode NFC, so
"café" typed as one code point (NFC, most keyboards) or as "e" + combining accent (NFD, some macOS
and iOS inputs) is the same password.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

from mesh.errors import invalid_field

USERNAME = re.compile(r"^[a-z0-9._]{3,30}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
# zxcvbn's score (0-4) of a password's guessability, from its dictionaries of leaked passwords, names,
# words, keyboard patterns, dates and repeats (Wheeler, "zxcvbn: Low-Budget Password Strength
# Estimation", USENIX Security 2016). 2 = "somewhat guessable": more than 10^6 guesses, enough against
# throttled online guessing (our login limits), which is what NIST SP 800-63B section 5.1.1.2 asks a
# blocklist to stop: "password123" scores 0, "summer2024!" 2, a four-word passphrase 4.
MIN_STRENGTH = 2
# zxcvbn's matching is superlinear in the length; what it sees of a longer password is plenty.
_STRENGTH_PREFIX = 64


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


def prepare_password(raw: str) -> str:
    """The RFC 8265 OpaqueString preparation of a password: every non-ASCII space (Unicode Zs) mapped
    to U+0020, then NFC. No case folding and no width mapping: those would weaken the password."""
    spaced = "".join(" " if c != " " and unicodedata.category(c) == "Zs" else c for c in raw)
    return unicodedata.normalize("NFC", spaced)


def check_password(raw: str, username: str, *, field: str = "password") -> None:
    """Checks a new password, counting characters of its prepared form (prepare_password); errors
    name `field`.

    INVALID_ARGUMENT (reason WEAK_PASSWORD) for one too short, too long, containing the username, or
    scoring below MIN_STRENGTH in zxcvbn's estimate (a common, patterned or dictionary password);
    INVALID_ARGUMENT (reason INVALID_ARGUMENT) for one with control characters, which
    OpaqueString disallows (RFC 8264 section 9.12) and which are usually a paste accident.
    """
    password = prepare_password(raw)
    if any(unicodedata.category(c) == "Cc" for c in password):
        raise invalid_field(field, "must not contain control characters such as tabs or line breaks")
    if len(password) < PASSWORD_MIN:
        raise invalid_field(field, f"must be at least {PASSWORD_MIN} characters", reason="WEAK_PASSWORD")
    if len(password) > PASSWORD_MAX:
        raise invalid_field(field, f"must be at most {PASSWORD_MAX} characters", reason="WEAK_PASSWORD")
    lowered = password.lower()
    if len(set(password)) < 4 or username in lowered:
        raise invalid_field(
            field, "is too easy to guess; use a longer phrase not containing your username", reason="WEAK_PASSWORD"
        )
    estimate = zxcvbn(password[:_STRENGTH_PREFIX], user_inputs=[username])
    if estimate["score"] < MIN_STRENGTH:
        warning = estimate["feedback"]["warning"].rstrip(".")
        because = f" ({warning[0].lower()}{warning[1:]})" if warning else ""
        raise invalid_field(
            field,
            f"is too easy to guess{because}; use a longer phrase of a few unrelated words",
            reason="WEAK_PASSWORD",
        )


@dataclass(frozen=True)
class PasswordCheck:
    """The outcome of verifying a password against a stored hash."""

    matched: bool
    # Matched, but the hash should be replaced by `Passwords.hash` of the same password: it was made
    # with older argon2 parameters, or from the password before preparation existed.
    needs_rehash: bool


class Passwords:
    """argon2id hashing of prepared passwords (prepare_password), off the event loop (each hash takes
    tens of milliseconds by design)."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verified against when the login names no account, so both paths cost the same time.
        self._decoy = self._hasher.hash("decoy password for timing")

    async def hash(self, password: str) -> str:
        """The argon2id hash of the prepared `password`."""
        return await asyncio.to_thread(self._hasher.hash, prepare_password(password))

    async def verify(self, stored_hash: str | None, password: str) -> PasswordCheck:
        """Whether `password` matches `stored_hash` (None: no such account; a decoy is verified so that
        both paths take the same time).

        Hashes stored before passwords were prepared hold the raw text: when the prepared form
        misses and differs from the raw one, the raw one is tried too, and a match asks for a
        rehash, so each such account moves to the prepared form at its next login.
        """
        prepared = prepare_password(password)

        def check(candidate: str) -> bool:
            try:
                return self._hasher.verify(stored_hash or self._decoy, candidate) and stored_hash is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        if await asyncio.to_thread(check, prepared):
            assert stored_hash is not None
            return PasswordCheck(matched=True, needs_rehash=self._hasher.check_needs_rehash(stored_hash))
        if prepared != password and await asyncio.to_thread(check, password):
            return PasswordCheck(matched=True, needs_rehash=True)
        return PasswordCheck(matched=False, needs_rehash=False)
