from __future__ import annotations

import pytest

from mesh.errors import InvalidArgument
from mesh.names import parse_user_name
from mesh.pagination import decode_page_token, encode_page_token, page_size


def test_page_size_defaults_and_clamps():
    assert page_size(0) == 20
    assert page_size(7) == 7
    assert page_size(10_000) == 100
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_tokens_round_trip_within_their_scope_only():
    token = encode_page_token("followers:1", {"t": "2026-01-01T00:00:00+00:00", "id": 9})
    assert decode_page_token(token, "followers:1") == {"t": "2026-01-01T00:00:00+00:00", "id": 9}
    assert decode_page_token("", "followers:1") is None
    with pytest.raises(InvalidArgument, match="different list"):
        decode_page_token(token, "followers:2")


@pytest.mark.parametrize("token", ["%%%", "bm90IGpzb24", "WzEsMl0", "eyJzIjoieCJ9", "\u00e9t\u00e9"])
def test_malformed_tokens_are_invalid_argument(token):
    with pytest.raises(InvalidArgument) as caught:
        decode_page_token(token, "x")
    assert caught.value.fields == {"page_token": "is malformed; pass back next_page_token unchanged"}


def test_user_names():
    assert parse_user_name("users/42") == 42
    for bad in ("users/0", "users/042", "42", "users/9223372036854775808"):
        with pytest.raises(InvalidArgument):
            parse_user_name(bad)
