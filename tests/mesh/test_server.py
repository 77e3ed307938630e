"""The shared gRPC host: health, reflection for grpcurl, error mapping, graceful shutdown."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc.accounts import AccountService
from graph_svc.blocks import BlockService
from graph_svc.credentials import Passwords
from graph_svc.erasure import ErasureService
from graph_svc.follows import FollowService
from graph_svc.mutes import MuteService
from graph_svc.password_change import PasswordChangeService
from graph_svc.privacy import PrivacyService
from graph_svc.profile import ProfileService
from graph_svc.reports import ReportService
from graph_svc.servicer import GraphServicer
from graph_svc.sessions import SessionService
from graph_svc.visibility import VisibilityService
from mesh.db import Database
from mesh.ids import IdGenerator
from mesh.server import ServiceHost
from mesh.tokens import signer_from
from tests.conftest import grpcurl


async def test_operator_sees_graph_service_health_and_reflection(graph_addr):
    listed = await asyncio.to_thread(grpcurl, graph_addr, "list")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == {
        "glimpse.graph.v1.GraphService",
        "glimpse.graph.v1.ModerationService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    # Python's reflection resolves services and messages (not "Service.Method" symbols).
    described = await asyncio.to_thread(grpcurl, graph_addr, "describe", "glimpse.graph.v1.GraphService")
    assert "rpc FollowUser ( .glimpse.graph.v1.FollowUserRequest )" in described.stdout
    message = await asyncio.to_thread(grpcurl, graph_addr, "describe", "glimpse.graph.v1.FollowUserRequest")
    assert "int64 target_user_id = 1;" in message.stdout
    health = await asyncio.to_thread(
        grpcurl, "-d", '{"service": "glimpse.graph.v1.GraphService"}', graph_addr, "grpc.health.v1.Health/Check"
    )
    assert json.loads(health.stdout) == {"status": "SERVING"}
    missing = await asyncio.to_thread(
        grpcurl, "-d", '{"user_id": "1"}', graph_addr, "glimpse.graph.v1.GraphService/GetUser"
    )
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def _broken_graph(db: Database | None, settings) -> GraphServicer:
    ids = IdGenerator(3)
    passwords = Passwords(time_cost=1, memory_kib=8192, parallelism=1)
    return GraphServicer(
        accounts=AccountService(db=db, ids=ids, signer=signer_from(settings), passwords=passwords),  # type: ignore[arg-type]
        follows=FollowService(db=db, outbox=None, max_following=10),  # type: ignore[arg-type]
        privacy=PrivacyService(db=db, outbox=None),  # type: ignore[arg-type]
        blocks=BlockService(db=db, outbox=None),  # type: ignore[arg-type]
        mutes=MuteService(db=db, outbox=None),  # type: ignore[arg-type]
        visibility=VisibilityService(db=db),  # type: ignore[arg-type]
        reports=ReportService(db=db, ids=ids),  # type: ignore[arg-type]
        sessions=SessionService(db=db, ids=ids, signer=signer_from(settings)),  # type: ignore[arg-type]
        password_changes=PasswordChangeService(db=db, passwords=passwords),  # type: ignore[arg-type]
        erasure=ErasureService(db=db, outbox=None, passwords=passwords, username_hold=dt.timedelta(0)),  # type: ignore[arg-type]
        profile=ProfileService(
            db=db, outbox=None, privacy=PrivacyService(db=db, outbox=None), media=None, media_timeout=1.0
        ),  # type: ignore[arg-type]
    )


@pytest.fixture
async def host_with(graph_settings):
    hosts = []

    async def start(servicer: GraphServicer) -> graph_pb2_grpc.GraphServiceStub:
        host = ServiceHost("probe", "127.0.0.1:0", grace_seconds=0.5)
        host.add_servicer(
            graph_pb2_grpc.add_GraphServiceServicer_to_server,
            servicer,
            graph_pb2.DESCRIPTOR.services_by_name["GraphService"],
        )
        port = await host.start()
        hosts.append(host)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return graph_pb2_grpc.GraphServiceStub(channel), host, channel

    yield start
    for host in hosts:
        await host.stop()


async def test_unexpected_errors_reach_clients_as_bare_internal(host_with, graph_settings):
    stub, _, channel = await host_with(_broken_graph(None, graph_settings))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetUser(graph_pb2.GetUserRequest(user_id=1))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error; it has been logged"
    assert "Traceback" not in str(caught.value.debug_error_string())
    await channel.close()


async def test_unreachable_database_is_unavailable(host_with, graph_settings):
    db = Database("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", pool_size=1)
    stub, _, channel = await host_with(_broken_graph(db, graph_settings))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetUser(graph_pb2.GetUserRequest(user_id=1))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry" in caught.value.details()
    await channel.close()
    await db.dispose()


async def test_stop_reports_not_serving_before_closing(host_with, graph_settings):
    _, host, channel = await host_with(_broken_graph(None, graph_settings))
    health = health_pb2_grpc.HealthStub(channel)
    assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service="glimpse.graph.v1.GraphService"))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    await host.stop()
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    await channel.close()


@pytest.mark.parametrize("code", list(grpc.StatusCode))
def test_every_status_code_becomes_its_google_rpc_number(code: grpc.StatusCode):
    """Domain errors carry any gRPC code; its number in google.rpc.Status is the wire number."""
    from google.rpc import code_pb2

    from mesh.errors import DomainError

    error = DomainError("probe")
    error.code = code
    assert error.to_status().code == code_pb2.Code.Value(code.name)
