"""Deterministic synthetic batches for parity and timing, identical bytes in every process."""

from __future__ import annotations

import numpy as np

# The name (and version) of the stream synthetic_batch draws; part of a run's identity.
DATA_GENERATOR = "synthetic-normal-advect-east/1"


def synthetic_batch(
    shape: tuple[int, int, int, int], out_chans: int, seed: int, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Batch ``index`` of the stream for ``seed``: standard-normal inputs of ``shape`` (B, C, H, W),
    and as target the input advected one grid cell east (a linear map the model can learn), output
    channel j taken from input channel j mod C. float32, C-contiguous."""
    rng = np.random.default_rng([seed, index])
    x = rng.standard_normal(shape, dtype=np.float32)
    channels = np.arange(out_chans) % shape[1]
    y = np.ascontiguousarray(np.roll(x, 1, axis=-1)[:, channels])
    return x, y
