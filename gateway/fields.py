"""Field types shared by request bodies and query/path parameters, checked before any upstream call so
that bad input is a 400 here rather than an exception while building the protobuf request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

_MAX_INT64 = 2**63 - 1
_USER_ID_TEXT = "must be a user id: a positive 64-bit integer, preferably as a decimal string"


def _encodable(value: str) -> str:
    # JSON allows lone surrogates ("\ud800"); protobuf cannot encode them and would raise mid-request.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError("string_unicode", "must be valid Unicode text") from exc
    return value


def _user_id(value: Any) -> int:
    # Strings are the canonical form (JavaScript cannot hold every 64-bit integer); plain integers
    # are accepted for convenience. bool is an int in Python but never an id.
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and 0 < len(value) <= 19 and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise PydanticCustomError("user_id", _USER_ID_TEXT)
    if not 0 < number <= _MAX_INT64:
        raise PydanticCustomError("user_id", _USER_ID_TEXT)
    return number


Text = Annotated[str, AfterValidator(_encodable)]

UserId = Annotated[
    int,
    BeforeValidator(_user_id),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": "^[0-9]{1,19}$"}, {"type": "integer", "minimum": 1}],
            "description": "A user id: a positive 64-bit integer as a decimal string (an integer is accepted).",
            "examples": ["7240392310784001"],
        }
    ),
]

PageSize = Annotated[
    int,
    # The upper bound only keeps the value inside protobuf's int32; the service clamps to its maximum.
    Query(ge=0, le=2**31 - 1, description="Items per page: 0 means the default (20); above 100 means 100."),
]

PageToken = Annotated[
    str,
    Query(max_length=2048, description="`next_page_token` of the previous page; empty for the first page."),
]
