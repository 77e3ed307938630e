"""Password preparation (RFC 8265 OpaqueString) and the password rules, without a database."""

from __future__ import annotations

import unicodedata

import pytest
from argon2 import PasswordHasher, Type

from graph_svc.credentials import Passwords, check_password, prepare_password
from mesh.errors import InvalidArgument


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [
        ("cafe\u0301", "caf\u00e9"),  # NFD to NFC
        ("a\u00a0b\u2009c\u3000d", "a b c d"),  # no-break, thin and ideographic spaces become U+0020
        ("  two  spaces  ", "  two  spaces  "),  # ASCII spaces are kept, leading and trailing too
        ("MiXeD", "MiXeD"),  # no case mapping
        ("\uff21\uff22", "\uff21\uff22"),  # no width mapping (fullwidth stays fullwidth)
        ("\u212b", "\u00c5"),  # a canonical singleton (ANGSTROM SIGN) composes under NFC
        ("\ufb01", "\ufb01"),  # a compatibility ligature is not NFKC-folded
    ],
)
def test_prepare_password_is_opaque_string(raw, prepared):
    assert prepare_password(raw) == prepared
    assert prepare_password(prepared) == prepared  # idempotent


def test_check_password_counts_prepared_characters():
    check_password(unicodedata.normalize("NFD", "éèêëabcd"), "someone")  # 8 composed characters
    with pytest.raises(InvalidArgument) as caught:
        check_password(unicodedata.normalize("NFD", "éèêëabc"), "someone")
    assert caught.value.reason == "WEAK_PASSWORD"


def test_check_password_finds_the_username_through_unusual_spaces():
    with pytest.raises(InvalidArgument) as caught:
        check_password("my\u00a0ada.l\u00a0password", "ada.l")
    assert caught.value.reason == "WEAK_PASSWORD"


async def test_passwords_verify_the_prepared_form_and_flag_legacy_hashes():
    passwords = Passwords(time_cost=1, memory_kib=8 * 1024, parallelism=1)
    nfc, nfd = (
        "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e",
        unicodedata.normalize("NFD", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e"),
    )
    prepared_hash = await passwords.hash(nfd)
    for form in (nfc, nfd):
        check = await passwords.verify(prepared_hash, form)
        assert check.matched and not check.needs_rehash
    # A hash of the raw decomposed text, as stored before preparation existed.
    legacy_hash = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID).hash(nfd)
    check = await passwords.verify(legacy_hash, nfd)
    assert check.matched and check.needs_rehash
    assert not (await passwords.verify(legacy_hash, nfc)).matched  # the raw text was NFD, not this
    assert not (await passwords.verify(legacy_hash, nfd + "!")).matched
    assert not (await passwords.verify(None, nfd)).matched
