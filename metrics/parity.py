"""Numerical parity between two frameworks' outputs: relative L2 differences."""

from __future__ import annotations

import numpy as np


def relative_l2(value: np.ndarray, reference: np.ndarray) -> float:
    """``||value - reference|| / ||reference||`` in float64; 0 when both are exactly zero.

    A zero reference with a non-zero value gives ``inf``: a difference that cannot be scaled is
    never reported as small.
    """
    v = np.asarray(value, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if v.shape != r.shape:
        raise ValueError(f"shapes differ: {v.shape} vs {r.shape}")
    diff = float(np.linalg.norm(v - r))
    norm = float(np.linalg.norm(r))
    if norm == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / norm


def worst_relative_l2(values: dict[str, np.ndarray], references: dict[str, np.ndarray]) -> tuple[float, str]:
    """Largest :func:`relative_l2` over matching keys, and the key where it occurs."""
    if set(values) != set(references):
        odd = sorted(set(values) ^ set(references))[0]
        raise ValueError(f"'{odd}' is present on one side only")
    if not references:
        raise ValueError("nothing to compare")
    diffs = {name: relative_l2(values[name], references[name]) for name in sorted(references)}
    where = max(diffs, key=diffs.__getitem__)
    return diffs[where], where


def relative_differences(values: list[float], references: list[float]) -> list[float]:
    """Element-wise ``|v - r| / |r|`` for scalar sequences such as per-step losses."""
    if len(values) != len(references):
        raise ValueError(f"lengths differ: {len(values)} vs {len(references)}")
    out = []
    for v, r in zip(values, references, strict=True):
        out.append(0.0 if v == r else abs(v - r) / abs(r) if r else float("inf"))
    return out
