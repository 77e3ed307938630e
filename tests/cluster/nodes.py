"""Kills and restarts single nodes of the local clusters, through the scripts that run them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from pathlib import Path

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
