"""Training batches and rollout truth from a field source, normalised: what a training loop reads."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from runners.data.source import FieldSource, InvalidDataError, check_range, read_indices
from runners.data.stats import Normalizer


def _batch_order(n: int, batch_size: int, rng: np.random.Generator | None, drop_last: bool) -> list[np.ndarray]:
    """Split ``range(n)`` (shuffled by ``rng`` when given) into batches of ``batch_size``."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return [order[i : i + batch_size] for i in range(0, stop, batch_size)]


def training_pairs(
    source: FieldSource,
    normalizer: Normalizer,
    start: int,
    stop: int,
    batch_size: int,
    lead: int = 1,
    rng: np.random.Generator | None = None,
    drop_last: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield normalised float32 batches ``(x, y)`` of shape (B, C, lat, lon) with ``y = state(t + lead)``.

    Initial times run over [start, stop - lead), so that every target also lies in [start, stop).
    Batches follow time order, or a permutation drawn from ``rng`` when one is given. Each batch reads
    only the time steps it needs (consecutive ones in one read).

    Parameters
    ----------
    source : FieldSource
        Where the fields come from.
    normalizer : Normalizer
        Applied to both inputs and targets.
    start, stop : int
        The split, as time indices [start, stop).
    batch_size : int
        Samples per batch.
    lead : int
        Steps between input and target.
    rng : np.random.Generator, optional
        Shuffles the samples when given.
    drop_last : bool
        Drop a final batch smaller than ``batch_size``.
    """
    start, stop = check_range(source, start, stop)
    if lead < 1 or batch_size < 1:
        raise InvalidDataError(f"lead and batch_size must be at least 1, got lead={lead}, batch_size={batch_size}")
    n_samples = stop - start - lead
    if n_samples < 1:
        raise InvalidDataError(f"time range [{start}, {stop}) is too short for lead {lead}")
    for batch in _batch_order(n_samples, batch_size, rng, drop_last):
        init = start + batch
        data = normalizer.normalize(read_indices(source, np.concatenate([init, init + lead])))
        yield data[: len(batch)], data[len(batch) :]


def rollout_truth(
    source: FieldSource, normalizer: Normalizer, init_index: int, n_lead: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the normalised initial state (C, lat, lon) and the ``n_lead`` states after it (n_lead, C, lat, lon)."""
    if n_lead < 1:
        raise InvalidDataError(f"n_lead must be at least 1, got {n_lead}")
    start, stop = check_range(source, init_index, int(init_index) + int(n_lead) + 1)
    data = normalizer.normalize(source.read(start, stop))
    return data[0], data[1:]
