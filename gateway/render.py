"""Protobuf -> JSON, in one place, so every response follows the same rules: snake_case names,
64-bit integers as strings (JavaScript loses precision above 2**53), timestamps in RFC 3339."""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message


def to_json(message: Message) -> dict[str, Any]:
    """The JSON object for `message`, with zero-valued fields included so clients see a stable shape."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
