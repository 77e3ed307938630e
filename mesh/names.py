"""Resource names (AIP-122) used as `parent` in List requests: "users/{user_id}"."""

from __future__ import annotations

import re

from mesh.errors import invalid_field

_USER_NAME = re.compile(r"^users/([1-9][0-9]{0,18})$")


def parse_user_name(value: str, field: str = "parent") -> int:
    """The user id in "users/{id}"; INVALID_ARGUMENT naming `field` if it is not of that form."""
    match = _USER_NAME.match(value)
    if not match or int(match.group(1)) >= 2**63:
        raise invalid_field(field, f'must be "users/{{user_id}}", got {value[:60]!r}')
    return int(match.group(1))


def user_name(user_id: int) -> str:
    return f"users/{user_id}"
