"""Control characters in the request target (path and query) are a 400 naming the parameter, before
routing, authentication or rate limits.

A client can percent-encode anything (`/v1/users/ada%00`, `?page_token=%1b[2J`); decoded, such
text would reach a service (which refuses it too) or a log line. The rule is the services' own
(mesh.validation: category Cc except tab, line feed and carriage return). Request bodies are
checked field by field by gateway.fields.Text.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi.routing import iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import error_response, render_details
from mesh.errors import InvalidArgument, invalid_field
from mesh.validation import control_character_problem


class RequestTargetText:
    """ASGI middleware: refuses a request whose decoded path or query holds a control character, with
    the gateway's error body (INVALID_ARGUMENT, a BadRequest naming the path parameter, `path` when
    no route parameter holds it, or the query parameter)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = _path_refusal(scope) or _query_refusal(scope["query_string"])
            if refusal is not None:
                status = refusal.to_status()
                response = error_response(400, refusal.code.name, refusal.message, render_details(status))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _path_refusal(scope: Scope) -> InvalidArgument | None:
    # The ASGI server has already percent-decoded the path (invalid UTF-8 becomes U+FFFD).
    path: str = scope["path"]
    problem = control_character_problem(path)
    if problem is None:
        return None
    # Name the route parameter that holds it: the route the request is for, or failing that one
    # whose path matches with another method.
    matched = []
    for route in iter_route_contexts(scope["app"].routes):
        match, child = route.matches(scope)
        if match is not Match.NONE:
            matched.append((match is not Match.FULL, child.get("path_params", {})))
    for _, params in sorted(matched, key=lambda found: found[0]):
        for name, value in params.items():
            if isinstance(value, str) and (in_value := control_character_problem(value)) is not None:
                return invalid_field(name, in_value)
    # In a fixed part of the path, so no route would take it anyway; the offset is the path's.
    return invalid_field("path", problem)


def _query_refusal(query_string: bytes) -> InvalidArgument | None:
    if not query_string:
        return None
    # Decoded as Starlette decodes it for the routes (percent-escapes as UTF-8, '+' as a space).
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if (problem := control_character_problem(name)) is not None:
            # The broken name itself is not echoed back.
            return invalid_field("query", f"has a parameter name that {problem}")
        if (problem := control_character_problem(value)) is not None:
            return invalid_field(name, problem)
    return None
