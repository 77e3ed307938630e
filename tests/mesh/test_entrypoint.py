"""mesh.entrypoint.run_service: the event loop a service runs on, chosen by GLIMPSE_EVENT_LOOP.

Each case runs in a child process: run_service parses argv, configures logging and owns its loop.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_SERVICE = """
import asyncio
from contextlib import asynccontextmanager

from mesh.config import MeshSettings
from mesh.entrypoint import run_service


class Host:
    async def run_until_signal(self):
        loop = asyncio.get_running_loop()
        print(type(loop).__module__ + "." + type(loop).__name__)


@asynccontextmanager
async def build(settings):
    yield Host()


run_service("probe", "A service that reports its event loop.", MeshSettings, build)
"""


def _run(event_loop: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GLIMPSE_EVENT_LOOP"}
    if event_loop is not None:
        env["GLIMPSE_EVENT_LOOP"] = event_loop
    return subprocess.run(
        [sys.executable, "-c", _SERVICE], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_service_runs_on_uvloop_by_default() -> None:
    done = _run(None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "uvloop.Loop"


def test_glimpse_event_loop_asyncio_runs_on_asyncios_own_loop() -> None:
    done = _run("asyncio")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("asyncio.")


@pytest.mark.parametrize("value", ["trio", ""])
def test_an_unknown_event_loop_stops_the_service_naming_the_setting(value: str) -> None:
    done = _run(value)
    assert done.returncode != 0
    assert "invalid settings" in done.stderr and "event_loop" in done.stderr
    assert "Traceback" not in done.stderr
