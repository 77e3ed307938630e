"""Runs the real services as separate processes on a fresh database and namespace, for benchmarks.

    with running_stack(["graph_svc", "post_svc", "media_svc", "fanout_svc"], celebrity_threshold="10000") as stack:
        stack.addr["post_svc"]          # "127.0.0.1:<port>"
        stack.database_url, stack.namespace, stack.env

Every process gets the same GLIMPSE_* environment (extra settings as keyword arguments), its own
free port, and logs at WARNING to .run/bench-logs/. Everything is removed afterwards: processes,
database, JetStream streams, Redis keys and the media bucket.

Fault tests (tests/faults) kill and restart single processes of a running stack:

    stack.kill("fanout_svc")        # SIGKILL: no graceful stop, nothing flushed
    stack.start("fanout_svc")       # the same command and environment, back when its health says SERVING

Every benchmark prints the peak memory of each process it ran (`peak_rss`, formatted by
bench.stats.peak_rss_line), read while they still run: the kernel forgets it when a process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from export_svc.settings import ExportSettings
from export_svc.storage import remove_bucket as remove_export_bucket
from media_svc.settings import MediaSettings
from media_svc.storage import remove_bucket
from mesh.bus import Bus
from mesh.config import MeshSettings
from mesh.migrate import drop_database, ensure_database, upgrade
from mesh.redis_client import connect_redis

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / ".run" / "bench-logs"
SCHEMAS = ("graph_svc", "post_svc", "media_svc", "engagement_svc", "notification_svc", "story_svc", "export_svc")
# Setting that names each process's own gRPC address (and the one others use to reach it).
ADDR_SETTING = {
    "graph_svc": "GRAPH_ADDR",
    "post_svc": "POST_ADDR",
    "media_svc": "MEDIA_ADDR",
    "feed_svc": "FEED_ADDR",
    "fanout_svc": "FANOUT_ADDR",
    "engagement_svc": "ENGAGEMENT_ADDR",
    "notification_svc": "NOTIFICATION_ADDR",
    "story_svc": "STORY_ADDR",
    "export_svc": "EXPORT_ADDR",
}


@dataclass
class Stack:
    database_url: str
    namespace: str
    env: dict[str, str]
    addr: dict[str, str] = field(default_factory=dict)
    gateway_url: str = ""
    # The running child of each started process name.
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, process: str, *, within: float = 60.0) -> None:
        """Starts `process` (again) and returns once it serves: SERVING on gRPC health (the rendition
        worker's host too), or the gateway accepting connections. RuntimeError if any process of the
        stack exits meanwhile, or `process` is not serving within `within` seconds. Blocks: from a
        coroutine, run it in a thread (asyncio.to_thread)."""
        self._spawn(process)
        self.wait_serving([process], within=within)

    def _spawn(self, process: str) -> None:
        env = dict(self.env)
        if process in self.addr:
            env["GLIMPSE_LISTEN"] = self.addr[process]
        log = open(LOGS / f"{self.namespace}-{process}.log", "ab")  # noqa: SIM115 - closed with the process
        self.running[process] = subprocess.Popen(
            [sys.executable, "-m", process], cwd=ROOT, env=env, stdout=log, stderr=log
        )

    def kill(self, process: str) -> None:
        """SIGKILL `process` (no graceful stop: nothing acked, flushed or deregistered) and reaps it."""
        child = self.running.pop(process)
        child.kill()
        child.wait(timeout=20)

    def wait_serving(self, processes: list[str], *, within: float = 60.0) -> None:
        """Until every one of `processes` serves (see start)."""
        health = [self.health_addr(p) for p in processes if p != "gateway"]
        asyncio.run(_wait_serving(health, list(self.running.values()), within))
        if "gateway" in processes:
            _wait_http(int(self.gateway_url.rsplit(":", 1)[1]), list(self.running.values()), within)

    def health_addr(self, process: str) -> str:
        """Where `process` serves gRPC health."""
        if process == "media_svc.worker":
            return self.env["GLIMPSE_WORKER_LISTEN"]
        return self.addr[process]


@dataclass(frozen=True)
class PeakRss:
    """The most memory a process has held resident so far (VmHWM), in bytes."""

    process: str
    bytes: int


def peak_rss(variants: Mapping[str, str] | None = None) -> list[PeakRss]:
    """The peak resident set size of this process and of every live process it started, directly or
    not (the stack's services, a second instance a benchmark runs, client processes, wrk), by name:
    the module of `python -m <module>`, "<module> worker" for a process started by one (the workers
    of a pre-forking server), "bench client" for this process's multiprocessing children, else the
    program's name. `variants` tells same-named processes apart: an environment entry (e.g.
    "GLIMPSE_COUNTER_SHARDS=1") -> a note added to the name of the processes started with it.

    A process that has exited is not listed (its peak is gone with it), so call this while they run.
    """
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(proc.name))
    me = os.getpid()
    found = [PeakRss("bench (this process)", peak_rss_of(me) or 0)]
    pending = [(pid, "") for pid in children.get(me, [])]
    while pending:
        pid, parent_name = pending.pop()
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # exited while we looked
        name = _process_name(argv, parent_name)
        peak = peak_rss_of(pid)
        if name is not None and peak is not None:
            notes = [note for entry, note in (variants or {}).items() if entry in environ]
            found.append(PeakRss(name + "".join(f" ({note})" for note in notes), peak))
        pending.extend((child, name or parent_name) for child in children.get(pid, []))
    return found


def _process_name(argv: list[str], parent_name: str) -> str | None:
    """None for what is not worth a line (multiprocessing's resource tracker)."""
    if any("resource_tracker" in part for part in argv):
        return None
    if parent_name:
        return f"{parent_name.removesuffix(' worker')} worker"
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    if "--multiprocessing-fork" in argv:
        return "bench client"
    return Path(argv[0]).name or "?"


def peak_rss_of(pid: int) -> int | None:
    """The peak resident set size (VmHWM) of process `pid` in bytes; None if it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    return None  # a zombie has no memory left to report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_stack(processes: list[str], **settings: str) -> Iterator[Stack]:
    """`processes`: any of graph_svc, post_svc, media_svc, media_svc.worker, fanout_svc, feed_svc,
    engagement_svc, notification_svc, story_svc, export_svc, gateway."""
    tag = uuid.uuid4().hex[:8]
    base = MeshSettings()
    database_url = base.database_url.rsplit("/", 1)[0] + f"/glimpse_bench_{tag}"
    stack = Stack(database_url, f"bench{tag}", {})
    ensure_database(database_url)
    for schema in SCHEMAS:
        upgrade(database_url, schema)
    stack.env = {
        **os.environ,
        "GLIMPSE_DATABASE_URL": database_url,
        "GLIMPSE_NAMESPACE": stack.namespace,
        "GLIMPSE_LOG_LEVEL": "WARNING",
        **{f"GLIMPSE_{k.upper()}": v for k, v in settings.items()},
    }
    for name, setting in ADDR_SETTING.items():
        stack.addr[name] = f"127.0.0.1:{free_port()}"
        stack.env[f"GLIMPSE_{setting}"] = stack.addr[name]
    http_port = free_port()
    stack.env["GLIMPSE_HTTP_PORT"] = str(http_port)
    stack.env["GLIMPSE_WORKER_LISTEN"] = f"127.0.0.1:{free_port()}"
    stack.gateway_url = f"http://127.0.0.1:{http_port}"
    LOGS.mkdir(parents=True, exist_ok=True)
    try:
        for process in processes:
            stack._spawn(process)
        stack.wait_serving(processes)
        yield stack
    finally:
        for child in stack.running.values():
            child.terminate()
        for child in stack.running.values():
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        asyncio.run(_clean(stack))
        drop_database(database_url)


async def _wait_serving(addresses: list[str], running: list[subprocess.Popen[bytes]], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    for address in addresses:
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                _check_alive(running)
                try:
                    response = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if response.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{address} did not become SERVING; see {LOGS}")
                await asyncio.sleep(0.05)


def _wait_http(port: int, running: list[subprocess.Popen[bytes]], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        _check_alive(running)
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the gateway did not listen on {port}; see {LOGS}")


def _check_alive(running: list[subprocess.Popen[bytes]]) -> None:
    for process in running:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited ({process.returncode}); see {LOGS}")


async def _clean(stack: Stack) -> None:
    settings = MeshSettings()
    # The stack's own servers when the caller named others (a fault test runs its own NATS).
    bus = await Bus.connect(stack.env.get("GLIMPSE_NATS_URL", settings.nats_url), stack.namespace)
    await bus.delete_streams()
    await bus.close()
    redis = connect_redis(stack.env.get("GLIMPSE_REDIS_URL", settings.redis_url))
    async for key in redis.scan_iter(match=f"{stack.namespace}:*", count=1000):
        await redis.delete(key)
    await redis.aclose()
    remove_bucket(MediaSettings(namespace=stack.namespace))
    remove_export_bucket(ExportSettings(namespace=stack.namespace))
