from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Annotated, Any

import pytest
from pydantic import Field

from mesh.errors import InvalidArgument
from mesh.names import parse_user_name
from mesh.pagination import (
    INT64_MAX,
    MALFORMED,
    Count,
    Id,
    Page,
    PageCursor,
    TimestampUs,
    decode_cursor,
    encode_cursor,
    from_timestamp_us,
    page_of,
    page_size,
    timestamp_us,
)


class FollowCursor(PageCursor):
    created_at_us: TimestampUs
    id: Id


class FeedCursor(PageCursor):
    before: Id
    served: Count


class NameCursor(PageCursor):
    name: Annotated[str, Field(max_length=8, pattern=r"^[a-z]+$")]


def token_of(body: Any) -> str:
    """A token as a client could forge it: base64url of any JSON, unpadded."""
    return base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()


def body_of(token: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def malformed(token: str, model: type[PageCursor], scope: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_cursor(token, model, scope)
    assert caught.value.fields == {"page_token": MALFORMED}
    assert caught.value.message == f"page_token: {MALFORMED}"


def test_page_size_defaults_and_clamps():
    assert page_size(0) == 20
    assert page_size(7) == 7
    assert page_size(10_000) == 100
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_cursors_round_trip_within_their_scope_only():
    cursor = FollowCursor(created_at_us=1_767_225_600_000_000, id=INT64_MAX)
    token = encode_cursor(cursor, "followers:1")
    assert "=" not in token and token.isascii()
    assert decode_cursor(token, FollowCursor, "followers:1") == cursor
    assert decode_cursor("", FollowCursor, "followers:1") is None
    for other_scope in ("followers:2", "following:1", ""):
        with pytest.raises(InvalidArgument, match="different list") as caught:
            decode_cursor(token, FollowCursor, other_scope)
        assert set(caught.value.fields) == {"page_token"}


@pytest.mark.parametrize("token", ["%%%", "bm90IGpzb24", "WzEsMl0", "eyJzIjoieCJ9", "\u00e9t\u00e9", "x" * 2000])
def test_garbage_tokens_are_malformed(token):
    malformed(token, FeedCursor, "x")


@pytest.mark.parametrize(
    "envelope",
    [
        {"s": "x"},  # no cursor
        {"c": {"before": 1, "served": 0}},  # no scope
        {"s": 7, "c": {"before": 1, "served": 0}},  # a scope that is not a string
        {"s": "x", "c": {"before": 1, "served": 0}, "extra": 1},
        {"s": "x", "c": [1, 0]},
        {"s": "x", "c": None},
        ["x", {"before": 1, "served": 0}],
    ],
)
def test_broken_envelopes_are_malformed(envelope):
    malformed(token_of(envelope), FeedCursor, "x")


FORGED_INTEGERS = [2**64, 2**63, -1, 1.0, 1.5, "1", True, None, [1], {"v": 1}, float("nan"), float("inf")]


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field in ("before", "served") for value in FORGED_INTEGERS] + [("before", 0)],
    ids=repr,
)
def test_every_forged_integer_is_malformed(field, value):
    good = {"before": 10, "served": 5}
    malformed(token_of({"s": "x", "c": {**good, field: value}}), FeedCursor, "x")


def test_bounds_themselves_are_accepted():
    for before, served in ((1, 0), (INT64_MAX, INT64_MAX)):
        token = token_of({"s": "x", "c": {"before": before, "served": served}})
        assert decode_cursor(token, FeedCursor, "x") == FeedCursor(before=before, served=served)


@pytest.mark.parametrize(
    "cursor",
    [
        {"before": 10},  # a missing field
        {"before": 10, "served": 1, "after": 3},  # an unknown field
        {},
    ],
)
def test_missing_and_unknown_fields_are_malformed(cursor):
    malformed(token_of({"s": "x", "c": cursor}), FeedCursor, "x")


def test_timestamps_run_from_the_epoch_to_what_a_datetime_holds():
    high = timestamp_us(dt.datetime.max.replace(tzinfo=dt.UTC))
    for us in (0, high):
        cursor = decode_cursor(token_of({"s": "f", "c": {"created_at_us": us, "id": 1}}), FollowCursor, "f")
        assert cursor is not None and timestamp_us(from_timestamp_us(cursor.created_at_us)) == us
    for us in (-1, high + 1, 2**63, -(2**63) - 1):
        malformed(token_of({"s": "f", "c": {"created_at_us": us, "id": 1}}), FollowCursor, "f")


def test_timestamps_keep_microseconds():
    moment = dt.datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=dt.UTC)
    assert from_timestamp_us(timestamp_us(moment)) == moment


@pytest.mark.parametrize("name", ["", "UPPER", "toolongname", "a\x00b", "a b", 5])
def test_string_fields_are_checked_by_pattern_and_length(name):
    malformed(token_of({"s": "n", "c": {"name": name}}), NameCursor, "n")


def test_a_token_of_one_cursor_type_is_malformed_for_another():
    token = encode_cursor(FeedCursor(before=5, served=1), "shared")
    malformed(token, FollowCursor, "shared")


def test_cursor_types_must_bound_every_field():
    with pytest.raises(TypeError, match="both bounds"):

        class Unbounded(PageCursor):
            id: int

    with pytest.raises(TypeError, match="both bounds"):

        class HalfBounded(PageCursor):
            id: Annotated[int, Field(ge=0)]

    with pytest.raises(TypeError, match="max_length"):

        class Endless(PageCursor):
            name: str

    with pytest.raises(TypeError, match="bounded ints or strs"):

        class Floating(PageCursor):
            score: float


def test_page_of_reads_one_extra_item_to_know_there_is_more():
    def cursor_of(n: int) -> FeedCursor:
        return FeedCursor(before=n, served=0)

    page = page_of([9, 8, 7], 2, "x", cursor_of)
    assert page.items == [9, 8]
    assert decode_cursor(page.next_page_token, FeedCursor, "x") == FeedCursor(before=8, served=0)
    assert page_of([9, 8], 2, "x", cursor_of) == Page([9, 8], "")
    assert page_of([], 2, "x", cursor_of) == Page([], "")


def test_forging_a_real_token_is_caught():
    token = encode_cursor(FollowCursor(created_at_us=1_000, id=42), "followers:7")
    body = body_of(token)
    body["c"]["id"] = 2**64
    malformed(token_of(body), FollowCursor, "followers:7")


def test_user_names():
    assert parse_user_name("users/42") == 42
    for bad in ("users/0", "users/042", "42", "users/9223372036854775808"):
        with pytest.raises(InvalidArgument):
            parse_user_name(bad)
