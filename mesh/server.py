"""The one gRPC server bootstrap: every service's entry point is a few lines on top of `ServiceHost`.

A host carries health (grpc.health.v1) and reflection for every servicer it serves, the error,
telemetry and request-text (mesh.validation) interceptors, optional background tasks (outbox relay,
consumers) and graceful shutdown: SIGTERM -> health NOT_SERVING -> stop background work ->
`server.stop(grace)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from mesh.interceptors import ErrorInterceptor, TelemetryInterceptor
from mesh.validation import TextInterceptor

log = logging.getLogger("mesh.server")

Background = Callable[[], Awaitable[None]]


class ServiceHost:
    def __init__(
        self,
        name: str,
        address: str,
        *,
        grace_seconds: float = 10.0,
        metrics_port: int | None = None,
        bind_patience_seconds: float = 5.0,
    ):
        self.name = name
        self._address = address
        self._bind_patience = bind_patience_seconds
        self._grace = grace_seconds
        self._metrics_port = metrics_port
        self._server = grpc.aio.server(
            # Outermost first: the text check runs inside the error mapping, which turns its refusal
            # into INVALID_ARGUMENT with details, and telemetry counts it.
            interceptors=[TelemetryInterceptor(), ErrorInterceptor(), TextInterceptor()],
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 8 * 1024 * 1024)],
        )
        self._health = health.aio.HealthServicer()
        self._service_names: list[str] = []
        self._background: list[Background] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._on_failure: Callable[[], None] | None = None
        self.port: int | None = None

    def add_servicer(
        self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, service: ServiceDescriptor
    ) -> None:
        """Serves `servicer` (registered with its generated `add_*_to_server`) and its health/reflection."""
        register(servicer, self._server)
        self._service_names.append(service.full_name)

    def add_background(self, run: Background) -> None:
        """Runs `run()` while serving; it is cancelled at shutdown. If it fails, the host stops."""
        self._background.append(run)

    async def start(self) -> int:
        """Binds, starts serving and marks every service SERVING; returns the bound port."""
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self._server)
        self.port = await self._bind()
        if self._metrics_port:
            start_http_server(self._metrics_port, addr="127.0.0.1" if self._address.startswith("127.") else "0.0.0.0")
        await self._server.start()
        for name in ["", *self._service_names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        for run in self._background:
            self._tasks.append(asyncio.create_task(self._guard(run), name=f"{self.name}:{run}"))
        log.info("serving", extra={"address": self._address, "port": self.port, "services": self._service_names})
        return self.port

    async def _bind(self) -> int:
        """Binds the address, trying again for bind_patience_seconds while it is in use: a fixed port
        inside the kernel's ephemeral range can be the source port of someone's outgoing connection
        for a moment (dev/ensure-services.sh reserves ours where it may). RuntimeError, naming the
        address and what to do, if it stays in use."""
        deadline = time.monotonic() + self._bind_patience
        while True:
            try:
                port = self._server.add_insecure_port(self._address)
            except RuntimeError:  # grpc: "Failed to bind to address ..."
                port = 0
            if port:
                return port
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{self.name}: cannot listen on {self._address}: the address is in use (another process "
                    "listens on it, or a connection holds it as its source port); stop that process or "
                    "choose another address (its GLIMPSE_*LISTEN setting)"
                )
            log.warning("address in use; trying again", extra={"address": self._address})
            await asyncio.sleep(0.25)

    async def stop(self) -> None:
        """NOT_SERVING first so load balancers drain us, then stop background work and the server."""
        await self._health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.stop(self._grace)
        log.info("stopped")

    async def run_until_signal(self) -> None:
        """Starts, serves until SIGTERM/SIGINT (or a background task dies), then stops gracefully."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        self._on_failure = stopping.set
        await self.start()
        await stopping.wait()
        log.info("shutting down", extra={"grace_seconds": self._grace})
        await self.stop()

    async def _guard(self, run: Background) -> None:
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A dead relay or consumer must not leave a healthy-looking server behind.
            log.exception("background task failed; stopping", extra={"task": getattr(run, "__qualname__", str(run))})
            if self._on_failure is not None:
                self._on_failure()
            else:
                await self._health.enter_graceful_shutdown()
