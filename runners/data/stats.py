"""Normalisation statistics and climatologies computed by streaming a FieldSource, and FourCastNet's stats files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runners.data.files import checked_path
from runners.data.source import FieldSource, InvalidDataError, MissingDataError, iter_chunks

MEANS_FILE = "global_means.npy"
STDS_FILE = "global_stds.npy"
CLIMATOLOGY_FILE = "time_means.npy"
STATS_FILES = (MEANS_FILE, STDS_FILE, CLIMATOLOGY_FILE)


def channel_stats(
    source: FieldSource, start: int, stop: int, chunk: int = 64, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over time, latitude and longitude of [start, stop).

    Streams ``chunk`` time steps at a time and merges the chunks' means and sums of squared deviations in
    float64 (Chan et al.'s parallel form of Welford's algorithm). The standard deviation is the population
    one (ddof=0), unweighted over the grid, as FourCastNet's global_stds.npy. With ``mask`` (C, lat, lon),
    only the cells where it is nonzero count, the others (NaN, say) are ignored.

    Returns
    -------
    mean, std : np.ndarray
        float64 arrays of shape (C,).
    """
    keep = None if mask is None else np.asarray(mask) != 0
    shape = (len(source.channels), len(source.lats_deg), len(source.lons_deg))
    if keep is not None and keep.shape != shape:
        raise InvalidDataError(f"mask has shape {keep.shape}, not the source's (channel, lat, lon) = {shape}")
    cells = np.full(shape[0], shape[1] * shape[2]) if keep is None else keep.sum(axis=(1, 2))
    if not cells.all():
        raise InvalidDataError(f"the mask keeps no cell of channel '{source.channels[int(np.argmin(cells))]}'")
    count = np.zeros(shape[0])
    mean = np.zeros(shape[0])
    m2 = np.zeros(shape[0])
    for _, block in iter_chunks(source, start, stop, chunk):
        block = block.astype(np.float64)
        if keep is not None:
            block = np.where(keep, block, 0.0)
        n_b = block.shape[0] * cells
        mean_b = block.sum(axis=(0, 2, 3)) / n_b
        deviation = block - mean_b[:, None, None]
        m2_b = ((deviation if keep is None else np.where(keep, deviation, 0.0)) ** 2).sum(axis=(0, 2, 3))
        delta = mean_b - mean
        total = count + n_b
        mean = mean + delta * (n_b / total)
        m2 = m2 + m2_b + delta**2 * (count * n_b / total)
        count = total
    return mean, np.sqrt(m2 / count)


def finite_mask(source: FieldSource, start: int, stop: int, chunk: int = 64) -> np.ndarray:
    """Boolean (C, lat, lon): True where the field is finite at every time step of [start, stop), read by chunks."""
    keep = np.ones((len(source.channels), len(source.lats_deg), len(source.lons_deg)), dtype=bool)
    for _, block in iter_chunks(source, start, stop, chunk):
        keep &= np.isfinite(block).all(axis=0)
    return keep


def time_mean_climatology(source: FieldSource, start: int, stop: int, chunk: int = 64) -> np.ndarray:
    """Mean over time of [start, stop) as float32 (C, lat, lon), summed in float64 (FourCastNet's time_means)."""
    total = np.zeros((len(source.channels), len(source.lats_deg), len(source.lons_deg)))
    for _, block in iter_chunks(source, start, stop, chunk):
        total += block.sum(axis=0, dtype=np.float64)
    return (total / (stop - start)).astype(np.float32)


def day_of_year_climatology(
    source: FieldSource, start: int, stop: int, window_days: int = 0, chunk: int = 64
) -> np.ndarray:
    """Mean for each day of the year (1 January is row 0, 31 December of a leap year row 365), float32.

    Every time step of [start, stop) counts towards its calendar day of year (all hours of a day together).
    With ``window_days > 0`` each day averages the samples of the days within ``window_days`` of it, wrapping
    around the year end. Days without any sample are NaN. The accumulators are float64 (366, C, lat, lon):
    meant for coarse grids, not full 0.25 degree ERA5.

    Returns
    -------
    np.ndarray
        float32 (366, C, lat, lon).
    """
    times = getattr(source, "times", None)
    if times is None:
        raise InvalidDataError("a day-of-year climatology needs a source with times, and this one has none")
    if window_days < 0:
        raise InvalidDataError(f"window_days must be at least 0, got {window_days}")
    if len(times) != source.n_times:
        raise InvalidDataError(f"the source has {len(times)} times for {source.n_times} time steps")
    days = _day_of_year(np.asarray(times))
    sums = np.zeros((366, len(source.channels), len(source.lats_deg), len(source.lons_deg)))
    counts = np.zeros(366)
    for t0, block in iter_chunks(source, start, stop, chunk):
        block_days = days[t0 : t0 + block.shape[0]]
        np.add.at(sums, block_days, block.astype(np.float64))
        np.add.at(counts, block_days, 1.0)
    if window_days:
        sums, counts = _circular_window(sums, window_days), _circular_window(counts, window_days)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts[:, None, None, None]).astype(np.float32)


def _day_of_year(times: np.ndarray) -> np.ndarray:
    """Zero-based day of year of each ``datetime64`` in ``times``."""
    days = times.astype("datetime64[D]")
    return (days - days.astype("datetime64[Y]")).astype(np.int64)


def _circular_window(values: np.ndarray, half_width: int) -> np.ndarray:
    """Sum of ``values`` over rows i - half_width .. i + half_width along axis 0, wrapping around."""
    return sum(np.roll(values, shift, axis=0) for shift in range(-half_width, half_width + 1))


def save_stats(directory: str | Path, mean: np.ndarray, std: np.ndarray, clim: np.ndarray) -> None:
    """Write FourCastNet's stats files: global_means.npy, global_stds.npy (1, C, 1, 1), time_means.npy (1, C, lat, lon).

    All three are float32; ``directory`` is created if needed.
    """
    mean, std, clim = np.asarray(mean), np.asarray(std), np.asarray(clim)
    n_channels = mean.shape[0]
    if mean.shape != (n_channels,) or std.shape != (n_channels,) or clim.ndim != 3 or clim.shape[0] != n_channels:
        raise InvalidDataError(
            f"expected mean (C,), std (C,) and clim (C, lat, lon); got {mean.shape}, {std.shape}, {clim.shape}"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / MEANS_FILE, mean.astype(np.float32).reshape(1, -1, 1, 1))
    np.save(directory / STDS_FILE, std.astype(np.float32).reshape(1, -1, 1, 1))
    np.save(directory / CLIMATOLOGY_FILE, clim.astype(np.float32)[None])


def stats_folder(*folders: str | Path) -> Path | None:
    """The first of ``folders`` holding all three of FourCastNet's stats files, or None when none holds any.

    A folder holding only some of them is an InvalidDataError.
    """
    for folder in map(Path, folders):
        present = [name for name in STATS_FILES if os.path.lexists(folder / name)]
        for name in present:  # a FIFO or a device among them is refused before anything opens it
            checked_path(folder / name, "stats file")
        if len(present) == len(STATS_FILES):
            return folder
        if present:
            missing = [name for name in STATS_FILES if name not in present]
            raise InvalidDataError(f"{folder} holds {', '.join(present)} but not {', '.join(missing)}")
    return None


def load_stats(
    directory: str | Path, channels: Sequence[int] | None = None, crop_lat: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read FourCastNet's stats files and return mean (C,), std (C,) and clim (C, lat, lon).

    Parameters
    ----------
    directory : str or Path
        Holds global_means.npy, global_stds.npy and time_means.npy.
    channels : sequence of int, optional
        Keep only these channels (for example ``range(20)`` of FourCastNet's 21).
    crop_lat : int, optional
        Keep only the first ``crop_lat`` latitude rows of the climatology (720 for FourCastNet).
    """
    mean, std, clim = (_load(Path(directory) / name) for name in STATS_FILES)
    n_channels = mean.shape[1] if mean.ndim == 4 else -1
    if mean.shape != (1, n_channels, 1, 1) or std.shape != mean.shape:
        raise InvalidDataError(f"means and stds must have shape (1, C, 1, 1), got {mean.shape} and {std.shape}")
    if clim.ndim != 4 or clim.shape[:2] != (1, n_channels):
        raise InvalidDataError(f"time_means must have shape (1, {n_channels}, lat, lon), got {clim.shape}")
    if crop_lat is not None and not 0 < crop_lat <= clim.shape[2]:
        raise InvalidDataError(f"crop_lat {crop_lat} is outside the climatology's {clim.shape[2]} latitude rows")
    picked = _channel_index(channels, n_channels)
    rows = slice(None) if crop_lat is None else slice(0, crop_lat)
    return (
        mean[0, picked, 0, 0].astype(np.float64),
        std[0, picked, 0, 0].astype(np.float64),
        np.array(clim[0, picked, rows], dtype=np.float32),
    )


def _load(path: Path) -> np.ndarray:
    """Memory-map one .npy file, or raise MissingDataError."""
    if not path.is_file():
        raise MissingDataError(f"stats file {path} does not exist")
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as err:  # empty, truncated, not .npy, or pickled (refused)
        raise InvalidDataError(f"stats file {path} is not a readable .npy array ({err})") from None


def _channel_index(channels: Sequence[int] | None, n_channels: int) -> np.ndarray:
    """Validated channel indices (all channels when None)."""
    if channels is None:
        return np.arange(n_channels)
    picked = np.asarray(list(channels), dtype=np.int64)
    bad = picked[(picked < 0) | (picked >= n_channels)]
    if bad.size:
        raise InvalidDataError(f"channel index {int(bad[0])} is out of range for {n_channels} channels")
    return picked


class Normalizer:
    """Per-channel standardisation ``(x - mean) / std`` on arrays (..., C, lat, lon).

    Parameters
    ----------
    mean, std : array_like
        Shape (C,).
    channels : sequence of str, optional
        Channel names, used in error messages.

    Examples
    --------
    >>> norm = Normalizer([1.0, 2.0], [2.0, 4.0])
    >>> norm.normalize(np.full((2, 1, 1), 3.0)).ravel().tolist()
    [1.0, 0.25]
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, channels: Sequence[str] | None = None):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"mean has {self.mean.size} channels and std {self.std.size}")
        names = list(channels) if channels is not None else [str(i) for i in range(self.mean.size)]
        if len(names) != self.mean.size:
            raise ValueError(f"{len(names)} channel names given for {self.mean.size} channels")
        for i, (name, s) in enumerate(zip(names, self.std, strict=True)):
            if not np.isfinite(s) or s <= 0:
                raise ValueError(f"channel {i} ({name}) has standard deviation {s}; it cannot be normalised")

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Return ``(x - mean) / std`` as float32."""
        mean, std = self._broadcast(x)
        return ((x - mean) / std).astype(np.float32, copy=False)

    def denormalize(self, x: np.ndarray) -> np.ndarray:
        """Return ``x * std + mean`` as float32."""
        mean, std = self._broadcast(x)
        return (x * std + mean).astype(np.float32, copy=False)

    def _broadcast(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std shaped (C, 1, 1) in x's precision (at least float32), after checking x's channel axis."""
        if x.ndim < 3 or x.shape[-3] != self.mean.size:
            raise ValueError(f"expected an array (..., {self.mean.size}, lat, lon), got shape {x.shape}")
        dtype = np.result_type(x.dtype, np.float32)
        return self.mean.astype(dtype)[:, None, None], self.std.astype(dtype)[:, None, None]
