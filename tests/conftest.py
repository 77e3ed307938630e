"""Test fixtures: real PostgreSQL, Redis and NATS, isolated per test run.

Each run gets a fresh database (`glimpse_test_<hex>`, migrated once, dropped at the end) and a fresh
namespace (`t<hex>`) for NATS streams and Redis keys, so it never sees `make run`'s data or
another run's. Services run in-process on port 0 and are called through real gRPC stubs.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from PIL import Image

from engagement_svc.app import engagement_host
from engagement_svc.settings import EngagementSettings
from export_svc.app import export_host
from export_svc.settings import ExportSettings
from export_svc.storage import remove_bucket as remove_export_bucket
from fanout_svc.app import fanout_host
from fanout_svc.settings import FanoutSettings
from feed_svc.app import feed_host
from feed_svc.settings import FeedSettings
from glimpse.engagement.v1 import engagement_pb2_grpc
from glimpse.feed.v1 import feed_pb2_grpc
from glimpse.graph.v1 import graph_pb2, graph_pb2_grpc
from glimpse.media.v1 import media_pb2, media_pb2_grpc
from glimpse.post.v1 import post_pb2_grpc
from graph_svc.app import graph_host
from graph_svc.settings import GraphSettings
from media_svc.app import media_host, worker_host
from media_svc.settings import MediaSettings
from media_svc.storage import remove_bucket
from mesh.bus import Bus
from mesh.config import MeshSettings
from mesh.identity import as_caller
from mesh.migrate import drop_database, ensure_database, upgrade
from mesh.server import ServiceHost
from notification_svc.app import notification_host
from notification_svc.settings import NotificationSettings
from post_svc.app import post_host
from post_svc.settings import PostSettings
from story_svc.app import story_host
from story_svc.settings import StorySettings

RUN_ID = uuid.uuid4().hex[:10]
# Where the backing services are: the usual GLIMPSE_* variables, so the same suite runs against a
# Redis Cluster or a NATS cluster (make test-cluster) as well as the single local servers.
ENV = MeshSettings()
NATS_URL = ENV.nats_url
STREAM_REPLICAS = ENV.stream_replicas
CLUSTERED = ENV.redis_url.startswith("redis+cluster://") and len(NATS_URL.split(",")) >= 3 and STREAM_REPLICAS == 3
# tests/cluster needs the local clusters (make test-cluster starts them); elsewhere it is not collected.
collect_ignore = [] if CLUSTERED else ["cluster"]
BACKING = {
    "PostgreSQL": "postgresql://127.0.0.1:5432",
    "Redis": ENV.redis_url.split(",")[0].replace("redis+cluster://", "redis://"),
    "NATS": NATS_URL.split(",")[0],
    "S3 (moto)": os.environ.get("GLIMPSE_S3_ENDPOINT", "http://127.0.0.1:9000"),
}


GRPCURL = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "grpcurl")


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    """What an operator runs: grpcurl (plaintext) with `args`."""
    return subprocess.run([GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30)


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


SCHEMAS = (
    "graph_svc",
    "post_svc",
    "media_svc",
    "engagement_svc",
    "notification_svc",
    "story_svc",
    "export_svc",
)  # every service with a database (tests/mesh/test_migrate.py checks each)
# Lowered so a handful of test users exercise both fan-out paths (push and pull).
CELEBRITY_THRESHOLD = 4


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = fresh_database_url(RUN_ID)
    ensure_database(url)
    for service in SCHEMAS:
        upgrade(url, service)
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
async def graph_addr(graph_settings: GraphSettings, bus: Bus, media_addr: str) -> AsyncIterator[str]:
    # SetAvatar asks media_svc, whose port is known once it runs.
    async with graph_host(graph_settings.model_copy(update={"media_addr": media_addr})) as host:
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


def _common(database_url: str, namespace: str) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "namespace": namespace,
        "listen": "127.0.0.1:0",
        "log_json": False,
        "shutdown_grace_seconds": 1,
    }


@pytest.fixture(scope="session")
def media_settings(database_url: str, namespace: str) -> Iterator[MediaSettings]:
    settings = MediaSettings(
        **_common(database_url, namespace),
        worker_listen="127.0.0.1:0",
        rendition_backoff_seconds=(0.1,),
        rendition_max_deliveries=3,
        # The suite's worker never sweeps the shared database (tests/media_svc/test_sweeper.py runs
        # its own sweepers, with short grace periods and this run's post_svc).
        sweep_interval_seconds=7 * 24 * 3600,
    )
    yield settings
    remove_bucket(settings)


@pytest.fixture(scope="session")
async def media_addr(media_settings: MediaSettings, bus: Bus) -> AsyncIterator[str]:
    async with media_host(media_settings) as host:
        yield f"127.0.0.1:{await host.start()}"
        await host.stop()


@pytest.fixture(scope="session")
async def media_worker(media_settings: MediaSettings, bus: Bus) -> AsyncIterator[int]:
    """The rendition worker, consuming posts.created; its host serves health on the returned port."""
    async with worker_host(media_settings) as host:
        yield await host.start()
        await host.stop()


@pytest.fixture(scope="session")
async def post_addr(database_url: str, namespace: str, media_addr: str, graph_addr: str) -> AsyncIterator[str]:
    settings = PostSettings(**_common(database_url, namespace), media_addr=media_addr, graph_addr=graph_addr)
    async with post_host(settings) as host:
        yield f"127.0.0.1:{await host.start()}"
        await host.stop()


@pytest.fixture(scope="session")
async def engagement_addr(database_url: str, namespace: str, graph_addr: str, post_addr: str) -> AsyncIterator[str]:
    settings = EngagementSettings(
        **_common(database_url, namespace),
        graph_addr=graph_addr,
        post_addr=post_addr,
        # Short, so a test that kills a consumer mid-batch sees the redelivery quickly.
        ack_wait_seconds=2,
    )
    async with engagement_host(settings) as host:
        yield f"127.0.0.1:{await host.start()}"
        await host.stop()


@pytest.fixture(scope="session")
async def notification_addr(
    database_url: str, namespace: str, graph_addr: str, post_addr: str, engagement_addr: str
) -> AsyncIterator[str]:
    settings = NotificationSettings(
        **_common(database_url, namespace),
        graph_addr=graph_addr,
        post_addr=post_addr,
        engagement_addr=engagement_addr,
        # Short, so a test that kills a consumer mid-batch sees the redelivery quickly.
        ack_wait_seconds=2,
        # One pull loop: events are written in the order they were published, so a test can say which
        # notification is newest (concurrent writes are tested on the notifier itself).
        consumer_concurrency=1,
    )
    async with notification_host(settings) as host:
        yield f"127.0.0.1:{await host.start()}"
        await host.stop()


@pytest.fixture(scope="session")
def story_settings(database_url: str, namespace: str, graph_addr: str, media_addr: str) -> StorySettings:
    return StorySettings(
        **_common(database_url, namespace),
        graph_addr=graph_addr,
        media_addr=media_addr,
        # The tests run the sweeper's passes themselves; expiry must hold without any.
        sweep_interval_seconds=24 * 3600,
    )


@pytest.fixture(scope="session")
async def story_addr(story_settings: StorySettings) -> AsyncIterator[str]:
    async with story_host(story_settings) as host:
        yield f"127.0.0.1:{await host.start()}"
        await host.stop()


@pytest.fixture(scope="session")
def export_settings(
    database_url: str,
    namespace: str,
    graph_addr: str,
    post_addr: str,
    media_addr: str,
    engagement_addr: str,
    story_addr: str,
) -> Iterator[ExportSettings]:
    settings = ExportSettings(
        **_common(database_url, namespace),
        graph_addr=graph_addr,
        post_addr=post_addr,
        media_addr=media_addr,
        engagement_addr=engagement_addr,
        story_addr=story_addr,
        # Failed attempts come back quickly; tests run the sweeper's passes themselves.
        build_backoff_seconds=(0.2,),
        build_max_attempts=3,
        build_ack_wait_seconds=2,
        sweep_interval_seconds=24 * 3600,
    )
    yield settings
    remove_export_bucket(settings)


@pytest.fixture(scope="session")
async def export_addr(export_settings: ExportSettings) -> AsyncIterator[str]:
    async with export_host(export_settings) as host:
        yield f"127.0.0.1:{await host.start()}"
        await host.stop()


@pytest.fixture(scope="session")
def fanout_settings(database_url: str, namespace: str, graph_addr: str, post_addr: str) -> FanoutSettings:
    return FanoutSettings(
        **_common(database_url, namespace),
        graph_addr=graph_addr,
        post_addr=post_addr,
        celebrity_threshold=CELEBRITY_THRESHOLD,
        # Short, so a test that kills the fan-out mid-batch sees the redelivery quickly.
        ack_wait_seconds=2,
    )


@pytest.fixture(scope="session")
async def fanout(fanout_settings: FanoutSettings) -> AsyncIterator[ServiceHost]:
    async with fanout_host(fanout_settings) as host:
        await host.start()
        yield host
        await host.stop()


@pytest.fixture(scope="session")
async def feed_addr(
    database_url: str, namespace: str, graph_addr: str, post_addr: str, media_addr: str, engagement_addr: str
) -> AsyncIterator[str]:
    settings = FeedSettings(
        **_common(database_url, namespace),
        graph_addr=graph_addr,
        post_addr=post_addr,
        media_addr=media_addr,
        engagement_addr=engagement_addr,
        celebrity_threshold=CELEBRITY_THRESHOLD,
        # Tests move authors across the threshold and expect readers to see it at once.
        celebrity_cache_seconds=0,
        celebrity_head_seconds=0,
        # Tests like a post and expect the next ranked feed to rank with it.
        ranking_counts_cache_seconds=0,
    )
    async with feed_host(settings) as host:
        yield f"127.0.0.1:{await host.start()}"
        await host.stop()


@pytest.fixture(scope="session")
async def stubs(
    graph_addr: str, post_addr: str, media_addr: str, feed_addr: str, engagement_addr: str
) -> AsyncIterator[Stubs]:
    """Stubs of every service of the running stack (with the fan-out consuming)."""
    async with (
        grpc.aio.insecure_channel(post_addr) as post,
        grpc.aio.insecure_channel(media_addr) as media,
        grpc.aio.insecure_channel(feed_addr) as feed,
        grpc.aio.insecure_channel(graph_addr) as graph,
        grpc.aio.insecure_channel(engagement_addr) as engagement,
    ):
        yield Stubs(
            graph=graph_pb2_grpc.GraphServiceStub(graph),
            post=post_pb2_grpc.PostServiceStub(post),
            media=media_pb2_grpc.MediaServiceStub(media),
            feed=feed_pb2_grpc.FeedServiceStub(feed),
            engagement=engagement_pb2_grpc.EngagementServiceStub(engagement),
        )


@dataclass(frozen=True)
class Stubs:
    graph: graph_pb2_grpc.GraphServiceStub
    post: post_pb2_grpc.PostServiceStub
    media: media_pb2_grpc.MediaServiceStub
    feed: feed_pb2_grpc.FeedServiceStub
    engagement: engagement_pb2_grpc.EngagementServiceStub


def tiny_png(seed: int) -> bytes:
    """A valid 8x6 PNG whose colour depends on `seed`."""
    image = Image.new("RGB", (8, 6), ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="session")
async def upload_photo(stubs: Stubs) -> AsyncIterator[Callable[..., Awaitable[int]]]:
    """Uploads a photo as `account` exactly as a client does (grant, then a form POST to the store);
    returns the media id, ready to attach to a post."""
    seeds = itertools.count()
    async with httpx.AsyncClient(timeout=30) as store:

        async def upload(account: Account, data: bytes | None = None, content_type: str = "image/png") -> int:
            data = data if data is not None else tiny_png(next(seeds))
            grant = await stubs.media.CreateUploadGrant(
                media_pb2.CreateUploadGrantRequest(content_type=content_type, size_bytes=len(data)),
                metadata=account.metadata,
            )
            sent = await store.post(grant.url, data=dict(grant.form_fields), files={"file": ("p", data, content_type)})
            assert sent.status_code in (200, 201, 204), sent.text
            return grant.media_id

        yield upload


@pytest.fixture(scope="session")
async def gateway_url(
    graph_addr: str,
    post_addr: str,
    media_addr: str,
    feed_addr: str,
    engagement_addr: str,
    notification_addr: str,
    story_addr: str,
    export_addr: str,
    database_url: str,
    namespace: str,
) -> AsyncIterator[str]:
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    settings = GatewaySettings(
        graph_addr=graph_addr,
        post_addr=post_addr,
        media_addr=media_addr,
        feed_addr=feed_addr,
        engagement_addr=engagement_addr,
        notification_addr=notification_addr,
        story_addr=story_addr,
        export_addr=export_addr,
        namespace=namespace,
        database_url=database_url,
        log_json=False,
        # One address serves the whole suite; the budgets themselves are tested in tests/gateway.
        **{name: "100000/minute" for name in GatewaySettings.model_fields if "_per_" in name},
    )
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_config=None, lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            # uvicorn logs a failed start-up (lifespan) and returns instead of raising.
            raise RuntimeError("the gateway did not start; its start-up error is logged above")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def http(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as client:
        yield client


def _dump_tasks(signum: int, frame: object) -> None:
    """`kill -USR1 <pytest pid>` writes every asyncio task's stack to .run/pytest-tasks.txt: where a
    hung test waits (thread dumps show only the idle event loop)."""
    import io

    out = io.StringIO()
    # A signal handler's exception would land in whatever test is running: nothing may escape.
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError as exc:  # no running loop at that moment
        tasks, _ = set(), out.write(f"{exc}\n")
    for task in tasks:
        out.write(f"--- {task!r}\n")
        try:
            task.print_stack(limit=20, file=out)
        except Exception as exc:  # noqa: BLE001 - e.g. a Cython coroutine's frame has no line number
            out.write(f"(stack not printable: {exc!r})\n")
    target = Path(__file__).resolve().parents[1] / ".run" / "pytest-tasks.txt"
    target.parent.mkdir(exist_ok=True)
    target.write_text(out.getvalue())


signal.signal(signal.SIGUSR1, _dump_tasks)
