"""media_svc's processes as an operator sees them: health and reflection over real gRPC."""

from __future__ import annotations

import asyncio
import json

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import grpcurl


async def test_operator_sees_media_service_health_and_reflection(media_addr):
    listed = await asyncio.to_thread(grpcurl, media_addr, "list")
    assert listed.returncode == 0, listed.stderr
    assert "glimpse.media.v1.MediaService" in listed.stdout.split()
    described = await asyncio.to_thread(grpcurl, media_addr, "describe", "glimpse.media.v1.MediaService")
    assert "rpc AttachMedia ( .glimpse.media.v1.AttachMediaRequest )" in described.stdout
    health = await asyncio.to_thread(
        grpcurl, "-d", '{"service": "glimpse.media.v1.MediaService"}', media_addr, "grpc.health.v1.Health/Check"
    )
    assert json.loads(health.stdout) == {"status": "SERVING"}


async def test_worker_serves_health_for_its_probes(media_worker):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{media_worker}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
