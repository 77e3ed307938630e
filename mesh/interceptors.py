"""The two server interceptors every Glimpse service runs: errors and telemetry.

`ErrorInterceptor` is the one place an exception becomes a gRPC status: a DomainError keeps its code
and details, an upstream RPC error keeps its status, anything else is logged with its traceback and
reaches the client as a bare INTERNAL, never a stack trace.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram

from mesh.errors import DomainError

log = logging.getLogger("mesh.rpc")

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
RPC_LATENCY = Histogram(
    "glimpse_grpc_server_handling_seconds",
    "Time to handle one RPC, by method and status code.",
    ["method", "code"],
    buckets=_BUCKETS,
)
RPC_TOTAL = Counter("glimpse_grpc_server_handled_total", "RPCs handled, by method and status code.", ["method", "code"])
RPC_CLIENT_LATENCY = Histogram(
    "glimpse_grpc_client_handling_seconds",
    "Time from sending a unary RPC to its status, as the caller sees it, by method and status code.",
    ["method", "code"],
    buckets=_BUCKETS,
)

_GRPC_DETAILS_KEY = "grpc-status-details-bin"

UnaryBehaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
StreamBehaviour = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]


class _WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Wraps unary-unary and unary-stream handlers (the only shapes Glimpse's contracts use)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self.wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            # A streaming handler is either an async generator or a coroutine that calls
            # context.write() (grpc's own health Watch); each needs its own wrapper shape.
            behaviour = handler.unary_stream
            wrapped = (
                self.wrap_stream(method, behaviour)
                if inspect.isasyncgenfunction(behaviour)
                else self.wrap_unary(method, behaviour)
            )
            return grpc.unary_stream_rpc_method_handler(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def wrap_unary(self, method: str, behaviour: UnaryBehaviour) -> UnaryBehaviour:
        raise NotImplementedError

    def wrap_stream(self, method: str, behaviour: StreamBehaviour) -> StreamBehaviour:
        raise NotImplementedError


class ErrorInterceptor(_WrappingInterceptor):
    def wrap_unary(self, method: str, behaviour: UnaryBehaviour) -> UnaryBehaviour:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behaviour(request, context)
            except Exception as exc:  # noqa: BLE001 - this is the one place that maps every error
                await _abort_for(exc, method, context)

        return unary

    def wrap_stream(self, method: str, behaviour: StreamBehaviour) -> StreamBehaviour:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for response in behaviour(request, context):
                    yield response
            except Exception as exc:  # noqa: BLE001 - this is the one place that maps every error
                await _abort_for(exc, method, context)

        return stream


async def _abort_for(exc: Exception, method: str, context: grpc.aio.ServicerContext) -> None:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    if isinstance(exc, DomainError):
        await context.abort_with_status(rpc_status.to_status(exc.to_status()))
    if isinstance(exc, grpc.aio.AioRpcError):
        # An upstream service refused: pass its status through, rich details included, so the
        # client learns e.g. PERMISSION_DENIED rather than a meaningless INTERNAL.
        trailing = exc.trailing_metadata() or ()
        details = [(k, v) for k, v in trailing if k == _GRPC_DETAILS_KEY]
        if details:
            context.set_trailing_metadata(tuple(details))
        log.warning("upstream error", extra={"method": method, "code": exc.code().name, "detail": exc.details()})
        await context.abort(exc.code(), exc.details() or "upstream error")
    log.error("unhandled error", exc_info=exc, extra={"method": method})
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")


class TelemetryInterceptor(_WrappingInterceptor):
    """One log line and one histogram sample per RPC (errors at WARNING, successes at DEBUG)."""

    def wrap_unary(self, method: str, behaviour: UnaryBehaviour) -> UnaryBehaviour:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                return await behaviour(request, context)
            finally:
                _record(method, context, started)

        return unary

    def wrap_stream(self, method: str, behaviour: StreamBehaviour) -> StreamBehaviour:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                async for response in behaviour(request, context):
                    yield response
            finally:
                _record(method, context, started)

        return stream


def _record(method: str, context: grpc.aio.ServicerContext, started: float) -> None:
    elapsed = time.perf_counter() - started
    code = context.code()
    # code() is a StatusCode once set by abort; an int or None when the RPC simply returned.
    name = code.name if isinstance(code, grpc.StatusCode) else "OK"
    RPC_LATENCY.labels(method, name).observe(elapsed)
    RPC_TOTAL.labels(method, name).inc()
    level = logging.DEBUG if name == "OK" else logging.WARNING
    if log.isEnabledFor(level):
        log.log(level, "rpc", extra={"method": method, "code": name, "ms": round(elapsed * 1000, 2)})


class ClientTelemetryInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """One histogram sample per outgoing unary RPC, as the caller sees it (network, queueing and
    channel retries included), which the callee's own histogram cannot show."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryUnaryCall]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> grpc.aio.UnaryUnaryCall:
        started = time.perf_counter()
        call = await continuation(client_call_details, request)
        code = await call.code()  # waits for the status without raising; the caller still gets the result
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else method
        RPC_CLIENT_LATENCY.labels(name, code.name).observe(time.perf_counter() - started)
        return call
