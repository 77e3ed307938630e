"""Field types shared by request bodies and query/path parameters, checked before any upstream call so
that bad input is a 400 here rather than an exception while building the protobuf request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from mesh.errors import InvalidArgument
from mesh.validation import control_character_problem

_MAX_INT64 = 2**63 - 1


def _text(value: str) -> str:
    # JSON allows lone surrogates ("\ud800"); protobuf cannot encode them and would raise mid-request.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError("string_unicode", "must be valid Unicode text") from exc
    # JSON also allows "\u0000", which PostgreSQL text cannot store; services refuse it as well
    # (mesh.validation), here it is a 400 naming the body field before any upstream call.
    problem = control_character_problem(value)
    if problem is not None:
        raise PydanticCustomError("control_character", problem)
    return value


def _id_parser(kind: str) -> Callable[[Any], int]:
    # "an export", "a user": the kinds here that start with a vowel sound start with a, e, i or o.
    article = "an" if kind[0] in "aeio" else "a"
    text = f"must be {article} {kind} id: a positive 64-bit integer, preferably as a decimal string"

    def parse(value: Any) -> int:
        # Strings are the canonical form (JavaScript cannot hold every 64-bit integer); plain integers
        # are accepted for convenience. bool is an int in Python but never an id.
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and 0 < len(value) <= 19 and value.isascii() and value.isdigit():
            number = int(value)
        else:
            raise PydanticCustomError(f"{kind}_id", text)
        if not 0 < number <= _MAX_INT64:
            raise PydanticCustomError(f"{kind}_id", text)
        return number

    return parse


def _id_type(kind: str) -> Any:
    return Annotated[
        int,
        BeforeValidator(_id_parser(kind)),
        WithJsonSchema(
            {
                # The canonical form. Leading zeros and integers are accepted too; 2.0 is not.
                "anyOf": [
                    {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"},
                    {"type": "integer", "minimum": 1, "maximum": _MAX_INT64},
                ],
                "description": f"A {kind} id: a positive 64-bit integer as a decimal string (an integer is accepted).",
                "examples": ["7240392310784001"],
            }
        ),
    ]


# Every text field of a request body: valid Unicode without control characters (tab, line feed and
# carriage return allowed). Path segments and query values get the same check in gateway.request_target.
Text = Annotated[str, AfterValidator(_text)]

UserId = _id_type("user")
PostId = _id_type("post")
MediaId = _id_type("media")
CommentId = _id_type("comment")
StoryId = _id_type("story")
NotificationId = _id_type("notification")
SessionId = _id_type("session")
ExportId = _id_type("export")

PageSize = Annotated[
    int,
    # The upper bound only keeps the value inside protobuf's int32; the service clamps to its maximum.
    Query(ge=0, le=2**31 - 1, description="Items per page: 0 means the default (20); above 100 means 100."),
]

PageToken = Annotated[
    str,
    Query(max_length=2048, description="`next_page_token` of the previous page; empty for the first page."),
]


async def known_query_parameters(request: Request) -> None:
    """App-wide dependency: a query parameter the route does not declare is a 400 naming it, so a
    typo (`?pagesize=5`) is reported instead of silently ignored."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None or not request.query_params:
        return
    declared = _query_names(dependant)
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise InvalidArgument(
            f"unknown query parameter {unknown[0]!r} (this route takes: {known})",
            fields={name or "(empty name)": "is not a parameter of this route" for name in unknown},
        )


def _query_names(dependant: Any) -> set[str]:
    """The query parameter names a route declares, its dependencies' included."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
