"""The protobuf contracts stay lint-clean (buf, STANDARD rules minus the AIP resource-return ones)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_buf_lint_is_clean():
    result = subprocess.run(
        [str(ROOT / ".venv/bin/buf"), "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_is_in_the_generated_package():
    from glimpse.feed.v1 import feed_pb2_grpc
    from glimpse.graph.v1 import graph_pb2_grpc
    from glimpse.media.v1 import media_pb2_grpc
    from glimpse.post.v1 import post_pb2_grpc

    for module in (graph_pb2_grpc, post_pb2_grpc, media_pb2_grpc, feed_pb2_grpc):
        assert any(name.endswith("ServiceStub") for name in dir(module))
