"""64-bit, time-ordered ids generated in-process (Instagram's scheme).

    | 41 bits: ms since EPOCH_MS | 13 bits: shard | 10 bits: sequence |

Sorting ids sorts by creation time (to the millisecond); within one millisecond one shard can mint
1024 ids before it waits for the next millisecond. Ids stay below 2**63, so they fit a Postgres
BIGINT and a protobuf int64.
"""

from __future__ import annotations

import os
import threading
import time

EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
# Processes that write to PostgreSQL lease their shard from this sequence at start-up (mesh.runtime),
# so replicas never share one; it wraps after 8192 starts, long after older processes have gone.
ID_SHARD_SEQUENCE = "glimpse_id_shards"
SHARD_BITS = 13
SEQUENCE_BITS = 10
MAX_SHARD = (1 << SHARD_BITS) - 1
_SEQUENCE_MASK = (1 << SEQUENCE_BITS) - 1
_TIME_SHIFT = SHARD_BITS + SEQUENCE_BITS


class IdGenerator:
    """Mints unique ids for one shard; safe to share between threads."""

    def __init__(self, shard: int | None = None) -> None:
        if shard is None:
            # Only for processes with no database to lease a shard from (tools, tests).
            shard = os.getpid() & MAX_SHARD
        if not 0 <= shard <= MAX_SHARD:
            raise ValueError(f"shard must be within 0..{MAX_SHARD}, got {shard}")
        self._shard = shard
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def next_id(self) -> int:
        with self._lock:
            now = _now_ms()
            if now < self._last_ms:
                # The clock stepped back: keep minting on the last millisecond we used, so ids
                # never go backwards or repeat.
                now = self._last_ms
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & _SEQUENCE_MASK
                if self._sequence == 0:
                    while now <= self._last_ms:
                        now = _now_ms()
            else:
                self._sequence = 0
            self._last_ms = now
            return ((now - EPOCH_MS) << _TIME_SHIFT) | (self._shard << SEQUENCE_BITS) | self._sequence


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def timestamp_ms(entity_id: int) -> int:
    """The Unix time in milliseconds at which `entity_id` was minted."""
    return (entity_id >> _TIME_SHIFT) + EPOCH_MS


def lowest_id_at(unix_ms: int) -> int:
    """The smallest id that could be minted at `unix_ms`: a bound for time-range queries."""
    return max(unix_ms - EPOCH_MS, 0) << _TIME_SHIFT
