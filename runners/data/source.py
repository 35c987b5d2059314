"""The FieldSource protocol, data errors, and helpers that read a source by index and in chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

# FourCastNet's 20 input channels, in file order (channel 20 of the ERA5 files is not used).
FOURCASTNET_CHANNELS: tuple[str, ...] = (
    "u10", "v10", "t2m", "sp", "msl", "t850", "u1000", "v1000", "z1000", "u850",
    "v850", "z850", "u500", "v500", "z500", "t500", "z50", "r500", "r850", "tcwv",
)  # fmt: skip


class DataError(Exception):
    """A data set that cannot be read as asked; the message is one sentence saying why."""


class MissingDataError(DataError, FileNotFoundError):
    """A data file or directory that does not exist."""


class InvalidDataError(DataError, ValueError):
    """Data or a request that does not fit: wrong shape, missing key, index out of range."""


@runtime_checkable
class FieldSource(Protocol):
    """Gridded fields indexed by time, read in slices.

    Attributes
    ----------
    channels : tuple of str
        Channel names, in the order of axis 1 of :meth:`read`.
    lats_deg : np.ndarray
        Latitudes in degrees, north to south (the order of axis 2 of :meth:`read`).
    lons_deg : np.ndarray
        Longitudes in degrees (the order of axis 3 of :meth:`read`).
    n_times : int
        Number of time steps.
    time_step_hours : float
        Hours between consecutive time steps (NaN where the spacing is irregular or unknown).

    A source may also have ``times``: a ``datetime64`` array of length ``n_times``, or None.
    """

    channels: tuple[str, ...]
    lats_deg: np.ndarray
    lons_deg: np.ndarray
    n_times: int
    time_step_hours: float

    def read(self, start: int, stop: int) -> np.ndarray:
        """Return float32 (stop - start, C, lat, lon) in physical units, reading only that slice."""
        ...


def check_range(source: FieldSource, start: int, stop: int) -> tuple[int, int]:
    """Return ``(start, stop)`` as ints, or raise InvalidDataError unless ``0 <= start < stop <= n_times``."""
    start, stop = int(start), int(stop)
    if not 0 <= start < stop <= source.n_times:
        raise InvalidDataError(
            f"time range [{start}, {stop}) is empty or outside the source's {source.n_times} time steps"
        )
    return start, stop


class ArraySource:
    """A FieldSource over an in-memory array (T, C, lat, lon), latitudes north to south.

    Parameters
    ----------
    data : np.ndarray
        Fields of shape (T, C, lat, lon) in physical units.
    channels : sequence of str
        One name per channel.
    lats_deg, lons_deg : np.ndarray
        Grid coordinates; latitudes must run north to south.
    time_step_hours : float
        Hours between steps.
    times : np.ndarray, optional
        ``datetime64`` array of length T.

    Examples
    --------
    >>> src = ArraySource(np.zeros((4, 1, 3, 4)), ["z500"], np.array([90.0, 0, -90]), np.arange(4) * 90.0)
    >>> src.read(1, 3).shape
    (2, 1, 3, 4)
    """

    def __init__(
        self,
        data: np.ndarray,
        channels: Sequence[str],
        lats_deg: np.ndarray,
        lons_deg: np.ndarray,
        time_step_hours: float = 6.0,
        times: np.ndarray | None = None,
    ):
        data = np.asarray(data)
        if data.ndim != 4:
            raise InvalidDataError(f"data must have shape (T, C, lat, lon), got {data.shape}")
        expected = (len(channels), len(lats_deg), len(lons_deg))
        if data.shape[1:] != expected:
            raise InvalidDataError(f"data shape {data.shape[1:]} does not match (channels, lat, lon) = {expected}")
        if times is not None and len(times) != data.shape[0]:
            raise InvalidDataError(f"{len(times)} times given for {data.shape[0]} time steps")
        self._data = data
        self.channels = tuple(channels)
        self.lats_deg = np.asarray(lats_deg, dtype=np.float64)
        self.lons_deg = np.asarray(lons_deg, dtype=np.float64)
        self.n_times = int(data.shape[0])
        self.time_step_hours = float(time_step_hours)
        self.times = times

    def read(self, start: int, stop: int) -> np.ndarray:
        """Return float32 (stop - start, C, lat, lon)."""
        start, stop = check_range(self, start, stop)
        return np.array(self._data[start:stop], dtype=np.float32)


def iter_chunks(source: FieldSource, start: int, stop: int, chunk: int = 64) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t0, block)`` pairs covering [start, stop), each block at most ``chunk`` time steps long.

    ``t0`` is the source time index of ``block[0]``; only one block is in memory at a time.
    """
    start, stop = check_range(source, start, stop)
    if int(chunk) < 1:
        raise InvalidDataError(f"chunk must be at least 1, got {chunk}")
    for t0 in range(start, stop, int(chunk)):
        yield t0, source.read(t0, min(t0 + int(chunk), stop))


def read_indices(source: FieldSource, indices: Sequence[int]) -> np.ndarray:
    """Read the time steps ``indices`` (any order, repeats allowed) as float32 (len, C, lat, lon).

    Each run of consecutive indices is read once, in one call to ``source.read``.
    """
    wanted = np.asarray(indices, dtype=np.int64)
    unique = np.unique(wanted)
    if unique.size == 0:
        raise InvalidDataError("no time indices to read")
    check_range(source, unique[0], unique[-1] + 1)
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    blocks = [source.read(int(run[0]), int(run[-1]) + 1) for run in np.split(unique, breaks)]
    data = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return data[np.searchsorted(unique, wanted)]


class CroppedSource:
    """A FieldSource keeping the first ``rows`` latitudes and ``cols`` longitudes of another one."""

    def __init__(self, source: FieldSource, rows: int, cols: int):
        if not (0 < rows <= len(source.lats_deg) and 0 < cols <= len(source.lons_deg)):
            raise InvalidDataError(f"a crop to {rows} x {cols} does not fit the source's grid")
        self.inner, self._rows, self._cols = source, rows, cols
        self.channels = tuple(source.channels)
        self.lats_deg = np.asarray(source.lats_deg)[:rows]
        self.lons_deg = np.asarray(source.lons_deg)[:cols]
        self.n_times = source.n_times
        self.time_step_hours = source.time_step_hours
        self.times = getattr(source, "times", None)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Return float32 (stop - start, C, rows, cols)."""
        return np.ascontiguousarray(self.inner.read(start, stop)[:, :, : self._rows, : self._cols])

    def close(self) -> None:
        """Close the inner source's files."""
        close_source(self.inner)


def close_source(source: FieldSource) -> None:
    """Close a source's files when it can."""
    close = getattr(source, "close", None)
    if close is not None:
        close()
