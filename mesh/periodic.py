"""Periodic background passes (the sweepers of media_svc, story_svc and export_svc).

`run_passes` waits one interval before the first pass: replicas started together by a rollout do not
all sweep at once, and nothing a sweeper does is urgent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from mesh.errors import Unavailable


async def run_passes(interval: dt.timedelta, one_pass: Callable[[], Awaitable[object]], log: logging.Logger) -> None:
    """Calls `one_pass` every `interval` until cancelled. A pass that meets an outage (Unavailable) is
    logged on `log` and the next one retries; anything else is a bug and propagates (stopping the
    host that runs it)."""
    while True:
        await asyncio.sleep(interval.total_seconds())
        try:
            await one_pass()
        except Unavailable as exc:
            log.warning("sweep pass cut short; retrying next interval", extra={"error": str(exc)})
