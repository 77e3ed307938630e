"""gRPC client channels between services: one per upstream per process, with keepalive and
automatic retries of UNAVAILABLE (the call never reached a healthy server, so a retry is safe)."""

from __future__ import annotations

import json

import grpc

from mesh.interceptors import ClientTelemetryInterceptor

_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def open_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel to a service inside the mesh (TLS is the platform's job: mesh sidecars)."""
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
        ],
        interceptors=[ClientTelemetryInterceptor()],
    )
