"""Benchmarking a session: latency at batch 1 (median, p99) and throughput at a large batch.

Every measurement warms up first (the first calls of an engine allocate, compile,
and pick kernels), then times whole requests with ``time.perf_counter``. Counts
are bounded by time so a slow candidate does not stall the search.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MeasureSettings:
    """How long to measure. ``quick()`` is for tests: numbers are then rough."""

    warmup: int = 3
    latency_min_runs: int = 20
    latency_max_runs: int = 300
    latency_seconds: float = 2.0
    throughput_min_runs: int = 3
    throughput_seconds: float = 3.0
    #: the ``leaders`` fastest candidates within budget are measured again, with the baseline,
    #: in ``final_rounds`` interleaved rounds (0 = not at all)
    leaders: int = 3
    final_rounds: int = 2

    @classmethod
    def quick(cls) -> MeasureSettings:
        return cls(
            warmup=1,
            latency_min_runs=5,
            latency_max_runs=20,
            latency_seconds=0.2,
            throughput_min_runs=2,
            throughput_seconds=0.3,
            final_rounds=1,
        )


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    runs: int


def measure_latency(
    run: Callable[[Mapping[str, np.ndarray]], object], inputs: Mapping[str, np.ndarray], settings: MeasureSettings
) -> Latency:
    """Median and 99th-percentile wall time of single requests."""
    for _ in range(settings.warmup):
        run(inputs)
    times: list[float] = []
    deadline = time.perf_counter() + settings.latency_seconds
    while len(times) < settings.latency_max_runs and (
        len(times) < settings.latency_min_runs or time.perf_counter() < deadline
    ):
        start = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1000.0
    return Latency(float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(times))


def measure_throughput(
    run: Callable[[Mapping[str, np.ndarray]], object],
    inputs: Mapping[str, np.ndarray],
    batch: int,
    settings: MeasureSettings,
) -> float:
    """Items per second over repeated requests of ``batch`` rows."""
    for _ in range(max(1, settings.warmup - 1)):
        run(inputs)
    count = 0
    start = time.perf_counter()
    deadline = start + settings.throughput_seconds
    while count < settings.throughput_min_runs or time.perf_counter() < deadline:
        run(inputs)
        count += 1
    return batch * count / (time.perf_counter() - start)
