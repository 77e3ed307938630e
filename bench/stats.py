"""Latency percentiles and the one report format every benchmark prints."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.stack import peak_rss


@dataclass(frozen=True)
class Sample:
    name: str
    seconds: list[float]
    wall: float
    units: int  # items handled in `wall` (calls, ids, images)
    unit: str = "calls"

    @property
    def rate(self) -> float:
        return self.units / self.wall if self.wall else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    def line(self) -> str:
        return (
            f"  {self.name:<46} {self.rate:>12,.0f} {self.unit}/s   "
            f"p50 {self.percentile(50) * 1000:8.3f} ms   p99 {self.percentile(99) * 1000:8.3f} ms   "
            f"(n={len(self.seconds)})"
        )


def mean_ms(values: list[float]) -> float:
    return statistics.fmean(values) * 1000 if values else 0.0


async def time_calls(name: str, call: Callable[[], Awaitable[object]], n: int) -> Sample:
    """Runs `call` n times in sequence and records each latency."""
    seconds = []
    started = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - t)
    return Sample(name, seconds, time.perf_counter() - started, n)


async def empty_call_floor(channel: grpc.aio.Channel, n: int = 3000) -> Sample:
    """The floor every gRPC figure is read against: grpc.health.v1.Health/Check on the same channel."""
    health = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest()
    for _ in range(200):
        await health.Check(request)
    return await time_calls("floor: empty call (Health/Check)", lambda: health.Check(request), n)


def peak_rss_line(variants: Mapping[str, str] | None = None) -> str:
    """ "  peak RSS: feed_svc 96 MiB, ..., bench client x4 41-44 MiB, bench (this process) 120 MiB":
    bench.stack.peak_rss of every process this one started (read now, while they run; `variants`
    as there), same-named processes on one entry, the largest first."""
    by_name: dict[str, list[int]] = {}
    for peak in peak_rss(variants):
        by_name.setdefault(peak.process, []).append(peak.bytes)
    parts = []
    for name, peaks in sorted(by_name.items(), key=lambda item: -max(item[1])):
        low, high = min(peaks) / 2**20, max(peaks) / 2**20
        count = f" x{len(peaks)}" if len(peaks) > 1 else ""
        spread = f"{low:.0f}-{high:.0f}" if round(low) != round(high) else f"{high:.0f}"
        parts.append(f"{name}{count} {spread} MiB")
    return "  peak RSS (VmHWM, per process): " + ", ".join(parts)
