"""Domain errors: raised by service code, turned into a gRPC status by one interceptor.

Each carries the gRPC code a client should see, a message a person can act on, a machine-readable
`reason` (google.rpc.ErrorInfo) and, for bad input, the offending fields (google.rpc.BadRequest).
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

ERROR_DOMAIN = "glimpse.dev"


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    default_reason = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        fields: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.fields = dict(fields or {})
        self.metadata = dict(metadata or {})

    def to_status(self) -> status_pb2.Status:
        """The google.rpc.Status carrying this error and its details."""
        details = []
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata)
        details.append(_pack(info))
        if self.fields:
            bad_request = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=name, description=text)
                    for name, text in self.fields.items()
                ]
            )
            details.append(_pack(bad_request))
        # StatusCode's value is (number, name): every code maps, with no table of ours to fall behind.
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=details)


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


def invalid_field(field: str, description: str, *, reason: str = "INVALID_ARGUMENT") -> InvalidArgument:
    """An INVALID_ARGUMENT naming one bad field; the message repeats it for humans."""
    return InvalidArgument(f"{field}: {description}", reason=reason, fields={field: description})


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
