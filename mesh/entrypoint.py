"""The shared `main()` of every Glimpse process: --help, settings, logging, run until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import uvloop
from pydantic import ValidationError

from mesh.config import MeshSettings
from mesh.logs import configure_logging
from mesh.server import ServiceHost

S = TypeVar("S", bound=MeshSettings)


def describe_settings(settings_cls: type[MeshSettings]) -> str:
    """One line per setting: its environment variable and default."""
    prefix = settings_cls.model_config.get("env_prefix", "")
    lines = []
    for name, field in settings_cls.model_fields.items():
        default = field.default if field.default is not None else "(unset)"
        if "secret" in name:
            default = "(a development value; set it in production)"
        lines.append(f"  {prefix}{name.upper():<34} default: {default}")
    return "\n".join(lines)


def load_settings(settings_cls: type[S], name: str, description: str, argv: list[str] | None = None) -> S:
    """Parses --help, then reads settings from the environment; exits with a clear message if invalid."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {name}",
        description=description,
        epilog="Configured through the environment:\n" + describe_settings(settings_cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    try:
        return settings_cls()
    except ValidationError as exc:
        sys.exit(f"{name}: invalid settings:\n{exc}")


def run_service(
    name: str,
    description: str,
    settings_cls: type[S],
    build: Callable[[S], AbstractAsyncContextManager[ServiceHost]],
) -> None:
    """Runs `build(settings)`'s host until SIGTERM/SIGINT, then stops it gracefully."""
    settings = load_settings(settings_cls, name, description)
    configure_logging(name, settings.log_level, settings.log_json)

    async def serve() -> None:
        async with build(settings) as host:
            await host.run_until_signal()

    if settings.event_loop == "uvloop":
        uvloop.run(serve())
    else:
        asyncio.run(serve())
