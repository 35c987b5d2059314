"""Ratios with bootstrap confidence intervals over per-step samples, and the framework x hardware split."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ratio:
    """``value`` = stat(numerator) / stat(denominator), with a percentile bootstrap interval."""

    value: float
    low: float
    high: float
    level: float

    @property
    def within_noise(self) -> bool:
        """True when the interval contains 1: the two sides are not distinguishable."""
        return self.low <= 1.0 <= self.high

    def label(self) -> str:
        mark = " (within noise)" if self.within_noise else ""
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]{mark}"


def bootstrap_ratio(
    numerator, denominator, level: float = 0.95, n_resamples: int = 2000, seed: int = 0, stat=np.median
) -> Ratio:
    """Ratio of ``stat`` of two independent sample sets, each resampled with replacement.

    Deterministic for a given ``seed``. Needs at least two samples per side: a single timing has no
    spread to speak of, and its interval would claim a certainty it does not have.
    """
    a = np.asarray(numerator, dtype=float)
    b = np.asarray(denominator, dtype=float)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 samples per side, got {a.size} and {b.size}")
    if (b <= 0).any() or (a <= 0).any():
        raise ValueError("ratios are taken of positive samples (times, energies) only")
    rng = np.random.default_rng(seed)
    ra = stat(a[rng.integers(0, a.size, size=(n_resamples, a.size))], axis=1)
    rb = stat(b[rng.integers(0, b.size, size=(n_resamples, b.size))], axis=1)
    ratios = ra / rb
    tail = (1.0 - level) / 2.0
    return Ratio(
        float(stat(a) / stat(b)), float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1 - tail)), level
    )


def bootstrap_interval(samples, level: float = 0.95, n_resamples: int = 2000, seed: int = 0, stat=np.median):
    """Percentile bootstrap interval of ``stat`` of one sample set: (low, high)."""
    a = np.asarray(samples, dtype=float)
    if a.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 samples, got {a.size}")
    rng = np.random.default_rng(seed)
    values = stat(a[rng.integers(0, a.size, size=(n_resamples, a.size))], axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def factor_split(times: dict[tuple[str, str], float]) -> dict[str, float]:
    """Split the migration gap T(mindspore, npu) / T(torch, gpu) into a framework and a hardware factor.

    ``times`` maps (framework, device kind) to a time per step for all four of torch/mindspore x
    cuda/ascend. Each factor is the geometric mean of its two estimates (on either device, with either
    framework), so that framework x hardware equals the gap exactly:

        framework = sqrt(T(ms, gpu) / T(pt, gpu) * T(ms, npu) / T(pt, npu))
        hardware  = sqrt(T(pt, npu) / T(pt, gpu) * T(ms, npu) / T(ms, gpu))
    """
    need = [(fw, kind) for fw in ("torch", "mindspore") for kind in ("cuda", "ascend")]
    missing = [k for k in need if k not in times]
    if missing:
        raise ValueError(f"the split needs both frameworks on both devices; missing {missing}")
    t = {k: float(times[k]) for k in need}
    framework = math.sqrt(t["mindspore", "cuda"] / t["torch", "cuda"] * t["mindspore", "ascend"] / t["torch", "ascend"])
    hardware = math.sqrt(t["torch", "ascend"] / t["torch", "cuda"] * t["mindspore", "ascend"] / t["mindspore", "cuda"])
    return {
        "gap": t["mindspore", "ascend"] / t["torch", "cuda"],
        "framework_factor": framework,
        "hardware_factor": hardware,
    }
