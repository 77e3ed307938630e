"""The fault tests' own NATS server (see nats_server.py), shared by the module that asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.nats_server import NatsServer, private_nats_server


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    with private_nats_server() as server:
        yield server
