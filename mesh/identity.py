"""The caller's identity between services: the gateway verifies the bearer token and passes the
user id in the `x-user-id` metadata entry; services read it here and check ownership themselves."""

from __future__ import annotations

import grpc

from mesh.errors import Unauthenticated

CALLER_KEY = "x-user-id"


def caller_id(context: grpc.aio.ServicerContext) -> int:
    """The calling user's id; Unauthenticated if the call carries none (or a malformed one)."""
    for key, value in context.invocation_metadata() or ():
        if key == CALLER_KEY:
            try:
                user_id = int(value)
            except (TypeError, ValueError):
                break
            if user_id > 0:
                return user_id
            break
    raise Unauthenticated("this call needs a signed-in user", reason="NO_CALLER")


def optional_caller_id(context: grpc.aio.ServicerContext) -> int | None:
    """The calling user's id, or None for a call without one (a service acting for no user)."""
    try:
        return caller_id(context)
    except Unauthenticated:
        return None


def as_caller(user_id: int) -> tuple[tuple[str, str], ...]:
    """Call metadata that makes a service see `user_id` as the caller."""
    return ((CALLER_KEY, str(user_id)),)
