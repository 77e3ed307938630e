"""mesh.server.ServiceHost binding its address: a port in use for a moment (someone's connection
holding it as its source port) is waited for; one that stays in use fails naming it."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mesh.server import ServiceHost


def listening_socket() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


async def test_a_port_in_use_for_a_moment_is_waited_for() -> None:
    sock, port = listening_socket()
    host = ServiceHost("probe", f"127.0.0.1:{port}", grace_seconds=0, bind_patience_seconds=10)
    asyncio.get_running_loop().call_later(0.6, sock.close)
    try:
        assert await host.start() == port
    finally:
        sock.close()
        await host.stop()


async def test_a_port_that_stays_in_use_fails_naming_the_address() -> None:
    sock, port = listening_socket()
    host = ServiceHost("probe", f"127.0.0.1:{port}", grace_seconds=0, bind_patience_seconds=0.5)
    try:
        with pytest.raises(RuntimeError, match=rf"probe: cannot listen on 127\.0\.0\.1:{port}: the address is in use"):
            await host.start()
    finally:
        sock.close()
