"""Kills and restarts single nodes of the local clusters, through the scripts that run them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ClusterInfo

from mesh.bus import Bus

ROOT = Path(__file__).resolve().parents[2]
NATS_SCRIPT = ROOT / "dev" / "cluster" / "nats-cluster.sh"
REDIS_SCRIPT = ROOT / "dev" / "cluster" / "redis-cluster.sh"
REDIS_PORTS = range(7001, 7007)


def _run(script: Path, *args: str) -> None:
    subprocess.run([str(script), *args], check=True, capture_output=True, timeout=60)


def kill_nats_node(n: int) -> None:
    """SIGKILL NATS server n (1-3): no goodbye to its peers or clients."""
    _run(NATS_SCRIPT, "kill-node", str(n))


def start_nats_node(n: int) -> None:
    _run(NATS_SCRIPT, "start-node", str(n))


def nats_node_number(server_name: str) -> int:
    """The node number of a server name such as "glimpse-nats-2"."""
    return int(server_name.rsplit("-", 1)[1])


def nats_jetstream_report(n: int) -> dict:
    """Server n's /jsz monitoring report (streams and their raft state)."""
    with urllib.request.urlopen(f"http://127.0.0.1:823{n}/jsz?streams=true", timeout=2) as response:
        return json.load(response)


def kill_redis_node(port: int) -> None:
    _run(REDIS_SCRIPT, "kill-node", str(port))


def start_redis_node(port: int) -> None:
    _run(REDIS_SCRIPT, "start-node", str(port))


async def wait_redis_cluster_healthy(within_seconds: float = 60.0) -> None:
    """Until every node reports cluster_state:ok and each master has its replica attached again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while True:
        states = [await _redis_node_state(port) for port in REDIS_PORTS]
        masters = [s for s in states if s.get("role") == "master"]
        if (
            all(s.get("cluster_state") == "ok" for s in states)
            and len(masters) == 3
            and all(s.get("connected_slaves") == "1" for s in masters)
        ):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"redis cluster not healthy after {within_seconds:g}s: {states}")
        await asyncio.sleep(0.2)


async def _redis_node_state(port: int) -> dict[str, str]:
    state: dict[str, str] = {}
    for section in ("cluster info", "info replication"):
        process = await asyncio.create_subprocess_exec(
            "redis-cli", "-p", str(port), *section.split(), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        for line in out.decode().splitlines():
            key, sep, value = line.strip().partition(":")
            if sep:
                state[key] = value
    return state


async def redis_serving_masters(port: int) -> set[int]:
    """The ports of the masters that node `port` sees serving slots (not failed)."""
    process = await asyncio.create_subprocess_exec(
        "redis-cli", "-p", str(port), "cluster", "nodes", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    masters = set()
    for line in out.decode().splitlines():
        # <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>
        fields = line.split()
        flags = fields[2].split(",") if len(fields) > 2 else []
        if "master" in flags and "fail" not in flags and len(fields) > 8:
            masters.add(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
    return masters


async def wait_redis_failed_over(victim: int, within_seconds: float = 30.0) -> None:
    """Until every other node sees the killed master `victim` as failed and three other masters
    serving all the slots (its replica promoted in its place)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    survivors = [port for port in REDIS_PORTS if port != victim]
    while True:
        views = [await redis_serving_masters(port) for port in survivors]
        states = [await _redis_node_state(port) for port in survivors]
        if all(len(v) == 3 and victim not in v for v in views) and all(s.get("cluster_state") == "ok" for s in states):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"redis master :{victim} not failed over after {within_seconds:g}s: {views}")
        await asyncio.sleep(0.1)


async def wait_nats_current(
    js: JetStreamContext,
    streams: Iterable[str],
    consumers: Iterable[tuple[str, str]] = (),
    within_seconds: float = 30.0,
) -> None:
    """Until the JetStream meta group, each stream and each (stream, durable) consumer has a leader and
    two replicas that are online and current (a restarted server has caught up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    streams, consumers = list(streams), list(consumers)
    last: object = None
    while True:
        try:
            clusters = [(await js.stream_info(s)).cluster for s in streams]
            clusters += [(await js.consumer_info(s, c)).cluster for s, c in consumers]
            meta = await asyncio.to_thread(_meta_cluster)
            if all(_raft_current(cluster) for cluster in clusters) and _raft_current(meta):
                return
            last = (meta, clusters)
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            last = exc
        if loop.time() > deadline:
            raise TimeoutError(f"nats streams not current after {within_seconds:g}s: {last}")
        await asyncio.sleep(0.2)


def _raft_current(cluster: ClusterInfo | None) -> bool:
    replicas = (cluster.replicas or []) if cluster is not None else []
    return (
        cluster is not None
        and bool(cluster.leader)
        and len(replicas) == 2
        and all(peer.current and not peer.offline for peer in replicas)
    )


def _meta_cluster() -> ClusterInfo | None:
    """The meta group as its leader reports it (only the leader lists the replicas), if every server
    agrees on that leader."""
    metas = [nats_jetstream_report(n).get("meta_cluster", {}) for n in (1, 2, 3)]
    leaders = {meta.get("leader") for meta in metas}
    reports = [meta for meta in metas if meta.get("replicas")]
    if len(leaders) != 1 or len(reports) != 1:
        return None
    return ClusterInfo.from_response(dict(reports[0]))


async def delete_streams_when_answered(bus: Bus, within_seconds: float = 60.0) -> None:
    """Deletes the test namespace's streams, retrying while the cluster does not answer: a test that
    stopped a server leaves JetStream electing leaders for seconds after it, and the deletion of a
    stream whose leader is being elected times out meanwhile (seen at a fixture's teardown)."""
    deadline = asyncio.get_running_loop().time() + within_seconds
    while True:
        try:
            await bus.delete_streams()
            return
        except nats.errors.TimeoutError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1.0)
