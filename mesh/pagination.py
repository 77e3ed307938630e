"""AIP-158 pagination: page sizes are clamped, page tokens are opaque and checked.

A token is base64url(JSON) of the cursor plus the scope it was issued for (the list and its
filters); using it with another scope, or sending garbage, is INVALID_ARGUMENT, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from mesh.errors import invalid_field

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(requested: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """0 means the default; above the maximum is clamped down; negative is an error."""
    if requested < 0:
        raise invalid_field("page_size", "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def encode_page_token(scope: str, cursor: dict[str, Any]) -> str:
    raw = json.dumps({"s": scope, "c": cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_page_token(token: str, scope: str) -> dict[str, Any] | None:
    """The cursor in `token` (None for the first page, i.e. an empty token)."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise invalid_field("page_token", "is malformed; pass back next_page_token unchanged") from exc
    if not isinstance(body, dict) or not isinstance(body.get("c"), dict):
        raise invalid_field("page_token", "is malformed; pass back next_page_token unchanged")
    if body.get("s") != scope:
        raise invalid_field("page_token", "was issued for a different list or query")
    cursor: dict[str, Any] = body["c"]
    return cursor
