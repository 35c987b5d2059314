"""Per-step timing: time a callable with device synchronisation, and summarise the samples."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def time_steps(step: Callable[[], object], warmup: int, steps: int, synchronize: Callable[[], None]) -> list[float]:
    """Run ``step`` ``warmup`` times untimed, then ``steps`` times; each timed call is fenced by
    ``synchronize`` on both sides. Returns every timed latency in milliseconds."""
    for _ in range(warmup):
        step()
    synchronize()
    out = []
    for _ in range(steps):
        synchronize()
        t0 = time.perf_counter()
        step()
        synchronize()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def summarize(samples_ms: list[float], prefix: str) -> dict[str, float]:
    """Median, p90, p99, mean, min and max of latencies, keyed ``{prefix}_ms_{stat}``.

    Percentiles use NumPy's linear interpolation. An empty sample list raises: a missing timing must
    never show as zero.
    """
    if not samples_ms:
        raise ValueError(f"no {prefix} timings were taken")
    a = np.asarray(samples_ms, dtype=float)
    stats = {
        "p50": np.percentile(a, 50),
        "p90": np.percentile(a, 90),
        "p99": np.percentile(a, 99),
        "mean": a.mean(),
        "min": a.min(),
        "max": a.max(),
    }
    return {f"{prefix}_ms_{k}": float(v) for k, v in stats.items()}
