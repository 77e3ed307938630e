"""A NATS JetStream server of the test's own, which a fault test may stop and start again.

The project's server (127.0.0.1:4222, dev/ensure-services.sh) serves every other test of the run and
any suite running beside it; restarting it would fail their work. This one is started by the same
binary with the same flags as dev/ensure-services.sh, on a free port and its own store directory
(kept across restarts, as the server's /var/lib/nats-server is), and is always stopped at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.stack import free_port

ROOT = Path(__file__).resolve().parents[2]


def nats_binary() -> str:
    """The server binary dev/ensure-services.sh starts: Debian's, else the one in the venv."""
    system = "/usr/sbin/nats-server"
    return system if os.access(system, os.X_OK) else str(ROOT / ".venv" / "bin" / "nats-server")


class NatsServer:
    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.log = store / "nats-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self, within: float = 10.0) -> None:
        """Starts the server and returns once it accepts connections; RuntimeError if it does not
        within `within` seconds (its log says why)."""
        self._process = subprocess.Popen(
            [
                nats_binary(),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.store / "jetstream"),
                "-l",
                str(self.log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + within
        while not _listening(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not listen on 127.0.0.1:{self.port}; see {self.log}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, as `start-stop-daemon --stop` sends: the server flushes its streams and exits."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None


@contextlib.contextmanager
def private_nats_server() -> Iterator[NatsServer]:
    """A running server, stopped (whatever happened) and its store removed on exit."""
    store = Path(tempfile.mkdtemp(prefix="glimpse-nats-"))
    server = NatsServer(store)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(store, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
