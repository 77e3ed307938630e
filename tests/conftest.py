"""Test fixtures: real PostgreSQL, Redis and NATS, isolated per test run.

Each run gets a fresh database (`glimpse_test_<hex>`, migrated once, dropped at the end) and a fresh
namespace (`t<hex>`) for NATS streams and Redis keys, so it never sees `make run`'s data or
another run's. Services run in-process on port 0 and are called through real gRPC stubs.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlsplit

import grpc
import httpx
import pytest

from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from graph_svc.app import graph_host
from graph_svc.settings import GraphSettings
from mesh.bus import Bus
from mesh.config import MeshSettings
from mesh.identity import as_caller
from mesh.migrate import drop_database, ensure_database, upgrade

RUN_ID = uuid.uuid4().hex[:10]
# Where the backing services are: the usual GLIMPSE_* variables, so the same suite runs against a
# Redis Cluster or a NATS cluster (make test-cluster) as well as the single local servers.
ENV = MeshSettings()
NATS_URL = ENV.nats_url
STREAM_REPLICAS = ENV.stream_replicas
BACKING = {
    "PostgreSQL": "postgresql://127.0.0.1:5432",
    "Redis": ENV.redis_url.split(",")[0].replace("redis+cluster://", "redis://"),
    "NATS": NATS_URL.split(",")[0],
}


def pytest_sessionstart(session: pytest.Session) -> None:
    _check_backing_services()


def _check_backing_services() -> None:
    down = []
    for name, url in BACKING.items():
        address = urlsplit(url)
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex((address.hostname or "127.0.0.1", address.port or 0)) != 0:
                down.append(f"{name} ({address.netloc})")
    if down:
        pytest.exit(f"backing services are down: {', '.join(down)}; run `make test` (it starts them)", returncode=3)


def fresh_database_url(tag: str) -> str:
    base = os.environ.get("GLIMPSE_TEST_DATABASE_BASE", "postgresql+psycopg://postgres@127.0.0.1:5432")
    return f"{base}/glimpse_test_{tag}"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = fresh_database_url(RUN_ID)
    ensure_database(url)
    upgrade(url, "graph_svc")
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def namespace() -> str:
    return f"t{RUN_ID}"


@pytest.fixture(scope="session")
def graph_settings(database_url: str, namespace: str) -> GraphSettings:
    # Cheap argon2 parameters keep the suite fast; production cost is covered by the defaults.
    return GraphSettings(
        database_url=database_url,
        namespace=namespace,
        listen="127.0.0.1:0",
        argon2_time_cost=1,
        argon2_memory_kib=8 * 1024,
        argon2_parallelism=1,
        log_json=False,
        shutdown_grace_seconds=1,
    )


@pytest.fixture(scope="session")
async def bus(namespace: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(NATS_URL, namespace, STREAM_REPLICAS)
    await bus.ensure_streams()
    yield bus
    await bus.delete_streams()
    await bus.close()


@pytest.fixture(scope="session")
async def graph_addr(graph_settings: GraphSettings, bus: Bus) -> AsyncIterator[str]:
    async with graph_host(graph_settings) as host:
        port = await host.start()
        yield f"127.0.0.1:{port}"
        await host.stop()


@pytest.fixture(scope="session")
async def graph(graph_addr: str) -> AsyncIterator[graph_pb2_grpc.GraphServiceStub]:
    async with grpc.aio.insecure_channel(graph_addr) as channel:
        yield graph_pb2_grpc.GraphServiceStub(channel)


_counter = itertools.count()


@pytest.fixture
def new_username() -> Callable[[], str]:
    """Makes usernames unique across tests and runs (3-30 chars of [a-z0-9_])."""
    return lambda: f"u{RUN_ID[:8]}_{next(_counter)}"


PASSWORD = "a long enough passphrase"


class Account:
    def __init__(self, user: graph_pb2.User, access_token: str) -> None:
        self.user = user
        self.id = user.id
        self.access_token = access_token
        self.metadata = as_caller(user.id)
        self.headers = {"Authorization": f"Bearer {access_token}"}


@pytest.fixture
def make_account(
    graph: graph_pb2_grpc.GraphServiceStub, new_username: Callable[[], str]
) -> Callable[[], Awaitable[Account]]:
    """Registers and logs in a fresh user through graph_svc."""

    async def make() -> Account:
        name = new_username()
        await graph.RegisterUser(
            graph_pb2.RegisterUserRequest(username=name, email=f"{name}@example.com", password=PASSWORD)
        )
        session = await graph.AuthenticateUser(graph_pb2.AuthenticateUserRequest(login=name, password=PASSWORD))
        return Account(session.user, session.access_token)

    return make


@pytest.fixture(scope="session")
async def gateway_url(graph_addr: str, database_url: str, namespace: str) -> AsyncIterator[str]:
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    settings = GatewaySettings(graph_addr=graph_addr, namespace=namespace, database_url=database_url, log_json=False)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def http(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        yield client
