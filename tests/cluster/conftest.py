"""Tests that need the local clusters (dev/cluster/): a 3-node NATS JetStream cluster and a Redis
Cluster of 3 masters + 3 replicas. `make test-cluster` starts them and points GLIMPSE_* at them;
under plain `make test` (single servers) every test here is skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.config import MeshSettings

ENV = MeshSettings()
CLUSTERED = (
    ENV.redis_url.startswith("redis+cluster://") and len(ENV.nats_url.split(",")) >= 3 and ENV.stream_replicas == 3
)
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CLUSTERED:
        return
    skip = pytest.mark.skip(reason="needs the local NATS and Redis clusters: run `make test-cluster`")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)
