"""The one mapping from a failure to an HTTP response, and the exception handlers that apply it.

Every error body has the same shape, whether it came from a service (a gRPC status with google.rpc
details), from the gateway itself (bad token, bad request, unknown route) or from a bug:

    {"error": {"code": "NOT_FOUND", "message": "...", "details": [...]}}

An error that says when to retry (a google.rpc.RetryInfo detail: rate limits) also sets `Retry-After`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from starlette.exceptions import HTTPException as StarletteHTTPException

from mesh.errors import ERROR_DOMAIN, DomainError

log = logging.getLogger("gateway.errors")

HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# Errors the gateway raises before any service is called (routing, body size), named like gRPC codes
# so clients read one vocabulary. gRPC itself reports an oversized message as RESOURCE_EXHAUSTED.
_CODE_FOR_HTTP: Mapping[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_REASON_FOR_HTTP: Mapping[int, str] = {404: "ROUTE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "BODY_TOO_LARGE"}

INTERNAL_MESSAGE = "internal error; it has been logged"
# The reason the gateway gives when no bearer token came at all (every other token failure is "invalid").
TOKEN_MISSING = "TOKEN_MISSING"
# What a client sees when the channel (not the service) gave up: the raw text names internal addresses.
_TRANSPORT_MESSAGES: Mapping[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "the service is unavailable; try again shortly",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the service did not answer in time; try again",
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC status code; 500 for any code a client cannot act on."""
    return HTTP_STATUS.get(code, 500)


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Iterable[dict[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A response with the gateway's error body; every 401 carries a Bearer challenge (RFC 7235)."""
    all_headers = dict(headers or {})
    if status_code == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    body = {"error": {"code": code, "message": message, "details": list(details)}}
    return JSONResponse(body, status_code=status_code, headers=all_headers)


def client_field_names(**names: str) -> Callable[[Request], None]:
    """A route dependency naming the upstream request's fields as the route's clients know them (e.g.
    `query="q"`: SearchTagsRequest.query is the query parameter `q`), for the fields its errors name."""

    def name_fields(request: Request) -> None:
        request.state.client_field_names = names

    return name_fields


def render_details(status: status_pb2.Status, names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """ErrorInfo, BadRequest and RetryInfo details of a google.rpc.Status as JSON, each field a
    BadRequest names as `names` renames it (see client_field_names). Other detail types (DebugInfo
    may hold a stack trace) are left out on purpose."""
    names = names or {}
    rendered: list[dict[str, Any]] = []
    for packed in status.details:
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            rendered.append(error_info(info.reason, info.domain, dict(info.metadata)))
        elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            packed.Unpack(bad_request)
            rendered.append(
                bad_request_detail((names.get(v.field, v.field), v.description) for v in bad_request.field_violations)
            )
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
            rendered.append({"type": "RetryInfo", "retry_delay": retry.retry_delay.ToJsonString()})
    return rendered


def retry_after(status: status_pb2.Status) -> dict[str, str]:
    """A `Retry-After` header (whole seconds, rounded up) if the status carries a RetryInfo; else none."""
    for packed in status.details:
        if packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
            seconds = math.ceil(retry.retry_delay.ToTimedelta().total_seconds())
            return {"Retry-After": str(max(seconds, 0))}
    return {}


def error_info(reason: str, domain: str = ERROR_DOMAIN, metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A google.rpc.ErrorInfo detail as JSON."""
    return {"type": "ErrorInfo", "reason": reason, "domain": domain, "metadata": dict(metadata or {})}


def bad_request_detail(violations: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A google.rpc.BadRequest detail as JSON, from (field, description) pairs."""
    return {
        "type": "BadRequest",
        "field_violations": [{"field": field, "description": text} for field, text in violations],
    }


def install_error_handlers(app: FastAPI) -> None:
    """Makes every failure, expected or not, leave the gateway as the one error shape."""
    app.add_exception_handler(grpc.aio.AioRpcError, _on_rpc_error)
    app.add_exception_handler(DomainError, _on_domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unhandled)


async def _on_rpc_error(request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
    code = exc.code()
    status_code = http_status(code)
    try:
        rich = rpc_status.from_call(exc)
    except (ValueError, DecodeError):
        # Details that contradict the status are not trusted; the status itself still is.
        rich = None
    if status_code == 500:
        log.error(
            "upstream failed",
            extra={"method": request.method, "path": request.url.path, "code": code.name, "detail": exc.details()},
        )
        return error_response(500, code.name, INTERNAL_MESSAGE)
    if status_code >= 500:
        log.warning(
            "upstream unavailable",
            extra={"method": request.method, "path": request.url.path, "code": code.name, "detail": exc.details()},
        )
        if rich is None:
            return error_response(status_code, code.name, _TRANSPORT_MESSAGES[code])
    message = rich.message if rich is not None else (exc.details() or code.name)
    names: Mapping[str, str] = getattr(request.state, "client_field_names", {})
    for upstream, client in names.items():
        # invalid_field's message starts with the field's name (mesh.errors).
        if message.startswith(f"{upstream}: "):
            message = f"{client}: {message.removeprefix(f'{upstream}: ')}"
    details = render_details(rich, names) if rich is not None else []
    headers = retry_after(rich) if rich is not None else {}
    return error_response(status_code, code.name, message, details, headers)


async def _on_domain_error(request: Request, exc: DomainError) -> JSONResponse:
    status_code = http_status(exc.code)
    if status_code == 500:
        log.error("unmapped domain error", exc_info=exc, extra={"method": request.method, "path": request.url.path})
        return error_response(500, exc.code.name, INTERNAL_MESSAGE)
    status = exc.to_status()
    headers = retry_after(status)
    if exc.code == grpc.StatusCode.UNAUTHENTICATED and exc.reason != TOKEN_MISSING:
        # RFC 6750: a presented-but-rejected token is "invalid_token", so clients know to log in again.
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return error_response(status_code, exc.code.name, exc.message, render_details(status), headers)


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    violations = [_violation(error) for error in exc.errors()]
    field, text = violations[0]
    message = f"{field}: {text}" + (f" (and {len(violations) - 1} more)" if len(violations) > 1 else "")
    details = [error_info("INVALID_ARGUMENT"), bad_request_detail(violations)]
    return error_response(400, grpc.StatusCode.INVALID_ARGUMENT.name, message, details)


def _violation(error: Mapping[str, Any]) -> tuple[str, str]:
    """(field, description) for one pydantic error; the offending input is never echoed (passwords)."""
    location = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        return "body", f"is not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
    # The first element says where the value was (body, query, path); the rest names the field.
    field = ".".join(location[1:]) or (location[0] if location else "request")
    return field, str(error.get("msg", "is invalid"))


async def _on_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status_code = exc.status_code
    default = grpc.StatusCode.INVALID_ARGUMENT if status_code < 500 else grpc.StatusCode.INTERNAL
    code = _CODE_FOR_HTTP.get(status_code, default)
    if status_code == 404:
        message = f"no route matches {request.method} {request.url.path}"
    elif status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    elif status_code >= 500:
        message = INTERNAL_MESSAGE
    else:
        message = str(exc.detail)
    details = [error_info(_REASON_FOR_HTTP.get(status_code, code.name))] if status_code < 500 else []
    return error_response(status_code, code.name, message, details, exc.headers)


async def _on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc, extra={"method": request.method, "path": request.url.path})
    return error_response(500, grpc.StatusCode.INTERNAL.name, INTERNAL_MESSAGE)
