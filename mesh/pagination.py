"""AIP-158 pagination: clamped page sizes, one typed `Page[T]`, and page tokens decoded in one place.

A page token is base64url(JSON) of `{"s": scope, "c": cursor}`. The scope names the list and its
filters (`followers:42`, `search:ada`), so a token is refused by every other list. The cursor is a
`PageCursor` model declared next to the list that issues it; `decode_cursor` is the only way back
from a token to a cursor.

Tokens are opaque but not signed: a client can forge any of them. So every value taken from a token
is type- and range-checked before it reaches SQL or Redis (ids and timestamps within int64 and what
a datetime can hold, counts >= 0, strings by pattern); a forged token is INVALID_ARGUMENT, never a
500. A forged in-range cursor only moves the caller within the same list, which it may read anyway.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mesh.errors import InvalidArgument, invalid_field

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Issued tokens are a few hundred characters at most; anything longer was not issued by us.
MAX_TOKEN_LENGTH = 1024

INT64_MAX = 2**63 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)

# Bounded integer types for cursor fields. Timestamps start at the Unix epoch (nothing in Glimpse is
# older) and end where a Python datetime does (year 9999), so turning one back cannot overflow.
Id = Annotated[int, Field(ge=1, le=INT64_MAX)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
TimestampUs = Annotated[int, Field(ge=0, le=(dt.datetime.max.replace(tzinfo=dt.UTC) - _EPOCH) // _MICROSECOND)]

MALFORMED = "is malformed; pass back next_page_token unchanged"
FOREIGN = "was issued for a different list or query; start again with an empty page_token"

T = TypeVar("T")
C = TypeVar("C", bound="PageCursor")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items and the token of the next page ("" on the last page)."""

    items: list[T]
    next_page_token: str


class PageCursor(BaseModel):
    """Where the next page of a list starts. Subclasses declare each field with a bounded type:
    `int` fields with both bounds (use Id, Count or TimestampUs), `str` fields with a max_length
    (and a pattern); anything else is a TypeError at import, so an unchecked value cannot slip in.

    Decoding is strict: no extra or missing fields, no coercion (1.0, "1" and true are not ints).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, field in cls.model_fields.items():
            # The constraints Field(ge=..., le=..., max_length=...) attached to the annotation.
            kinds = {attr for m in field.metadata for attr in ("ge", "le", "max_length") if hasattr(m, attr)}
            if field.annotation is int and not {"ge", "le"} <= kinds:
                raise TypeError(f"{cls.__name__}.{name}: a cursor int needs both bounds (use Id, Count or TimestampUs)")
            if field.annotation is str and "max_length" not in kinds:
                raise TypeError(f"{cls.__name__}.{name}: a cursor str needs a max_length")
            if field.annotation not in (int, str):
                raise TypeError(f"{cls.__name__}.{name}: cursor fields are bounded ints or strs")


def page_size(requested: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """0 means the default; above the maximum is clamped down; negative is INVALID_ARGUMENT (page_size)."""
    if requested < 0:
        raise invalid_field("page_size", "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def encode_cursor(cursor: PageCursor, scope: str) -> str:
    """The opaque token carrying `cursor`, valid only for lists of `scope`."""
    raw = json.dumps({"s": scope, "c": cursor.model_dump()}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(token: str, model: type[C], scope: str) -> C | None:
    """The `model` cursor in `token`; None for the first page (an empty token).

    INVALID_ARGUMENT (field page_token) if the token is not one we issued: not base64url JSON, a
    cursor with missing, extra, mistyped or out-of-range fields ("is malformed; pass back
    next_page_token unchanged"), or a token of another list or query (another scope).
    """
    if not token:
        return None
    body = _envelope(token)
    if body["s"] != scope:
        raise invalid_field("page_token", FOREIGN)
    try:
        return model.model_validate(body["c"])
    except ValidationError as exc:
        raise _malformed() from exc


def page_of(fetched: Sequence[T], size: int, scope: str, cursor_of: Callable[[T], PageCursor]) -> Page[T]:
    """The page of `size` items from `fetched`, read with limit `size + 1`: the extra item, if any,
    only says there is a next page, whose token is the cursor of the page's last item."""
    items = list(fetched[:size])
    if len(fetched) > size and items:
        return Page(items, encode_cursor(cursor_of(items[-1]), scope))
    return Page(items, "")


def timestamp_us(moment: dt.datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact: Postgres keeps microseconds)."""
    return (moment - _EPOCH) // _MICROSECOND


def from_timestamp_us(us: int) -> dt.datetime:
    """The aware UTC datetime of a TimestampUs."""
    return _EPOCH + us * _MICROSECOND


def _envelope(token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_LENGTH:
        raise _malformed()
    try:
        padded = token + "=" * (-len(token) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    # RecursionError: deeply nested JSON arrays; ValueError covers JSON, Unicode and huge-int errors.
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise _malformed() from exc
    if not isinstance(body, dict) or set(body) != {"s", "c"} or not isinstance(body["s"], str):
        raise _malformed()
    return body


def _malformed() -> InvalidArgument:
    return invalid_field("page_token", MALFORMED)
