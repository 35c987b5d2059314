"""FourCastNet's ERA5 layout: one HDF5 file per year, dataset "fields" of shape (T, 21, 721, 1440), read with h5py."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runners.data.files import checked_path
from runners.data.source import FOURCASTNET_CHANNELS, InvalidDataError, MissingDataError, check_range

YEAR_FILE = re.compile(r"^(\d{4})\.h5$")


class Era5Hdf5Source:
    """A FieldSource over FourCastNet's year files, read lazily slice by slice.

    The global time index runs through the files in order (years sorted when discovered, as given otherwise),
    treating them as one series. Latitudes are those of the stored grid, 90 to -90 in equal steps (721 rows
    at 0.25 degree), of which the first ``crop_lat`` rows are kept (FourCastNet keeps 720, dropping the
    south pole row); longitudes run 0 to 360 - 360 / n_lon. Where every file is named ``YYYY.h5``, ``times``
    starts at 00 UTC on 1 January of each year and steps by ``time_step_hours`` (FourCastNet's files hold
    1460 steps, so a leap year's 31 December is absent); otherwise ``times`` is None.

    Parameters
    ----------
    data_dir : str, Path or sequence of them
        A directory of ``YYYY.h5`` files, or one HDF5 file, or an explicit list of them in time order.
    years : list of int, optional
        Years to read from ``data_dir``; all ``YYYY.h5`` files when None.
    channels : sequence of int
        Channel indices in the file, in the order wanted (FourCastNet's in_channels are 0..19).
    channel_names : sequence of str, optional
        One name per channel; FourCastNet's names (u10, v10, t2m, ...) by default.
    crop_lat : int or None
        Keep latitude rows 0 .. crop_lat - 1; None keeps all.
    dataset : str
        Dataset key inside each file.
    time_step_hours : float
        Hours between steps.

    Examples
    --------
    >>> src = Era5Hdf5Source("/data/era5/test", years=[2016, 2017])  # doctest: +SKIP
    >>> src.read(0, 2).shape  # doctest: +SKIP
    (2, 20, 720, 1440)
    """

    def __init__(
        self,
        data_dir: str | Path | Sequence[str | Path],
        years: list[int] | None = None,
        channels: Sequence[int] = range(20),
        channel_names: Sequence[str] | None = None,
        crop_lat: int | None = 720,
        dataset: str = "fields",
        time_step_hours: float = 6.0,
    ):
        self.paths = _find_files(data_dir, years)
        self.dataset = dataset
        shapes = [_dataset_shape(path, dataset) for path in self.paths]
        _check_same_grid(self.paths, shapes)
        n_file_channels, n_lat, n_lon = shapes[0][1:]
        self._channel_index = _check_channels(channels, n_file_channels)
        self._channel_key, self._channel_order = _channel_selection(self._channel_index)
        if crop_lat is not None and not 0 < crop_lat <= n_lat:
            raise InvalidDataError(f"crop_lat {crop_lat} is outside the files' {n_lat} latitude rows")
        self._n_rows = n_lat if crop_lat is None else int(crop_lat)
        self.channels = _channel_names(self._channel_index, channel_names)
        self.lats_deg = (90.0 - np.arange(n_lat) * 180.0 / max(n_lat - 1, 1))[: self._n_rows]
        self.lons_deg = np.arange(n_lon) * 360.0 / n_lon
        self._offsets = np.cumsum([0] + [shape[0] for shape in shapes])
        self.file_starts = tuple(
            int(o) for o in self._offsets[1:-1]
        )  # the global index of each later file's first step
        self.n_times = int(self._offsets[-1])
        self.time_step_hours = float(time_step_hours)
        self.times = _year_times(self.paths, [shape[0] for shape in shapes], self.time_step_hours)
        self._open: dict[int, object] = {}

    def read(self, start: int, stop: int) -> np.ndarray:
        """Return float32 (stop - start, C, lat, lon) for global time indices [start, stop), across year files."""
        start, stop = check_range(self, start, stop)
        out = np.empty((stop - start, len(self.channels), self._n_rows, len(self.lons_deg)), dtype=np.float32)
        first = int(np.searchsorted(self._offsets, start, side="right")) - 1
        for i in range(first, len(self.paths)):
            lo, hi = max(start, self._offsets[i]), min(stop, self._offsets[i + 1])
            if lo >= hi:
                break
            out[lo - start : hi - start] = self._read_block(i, lo - self._offsets[i], hi - self._offsets[i])
        return out

    def _read_block(self, file_index: int, lo: int, hi: int) -> np.ndarray:
        """Local time steps [lo, hi) of one file, selected channels and kept rows only."""
        block = self._fields(file_index)[int(lo) : int(hi), self._channel_key, : self._n_rows]
        if self._channel_order is not None:
            block = block[:, self._channel_order]
        return block

    def _fields(self, file_index: int):
        """The h5py dataset of one file, opened on first use and kept open."""
        if file_index not in self._open:
            import h5py

            self._open[file_index] = h5py.File(self.paths[file_index], "r")
        return self._open[file_index][self.dataset]

    def close(self) -> None:
        """Close the open files (they reopen on the next read)."""
        for handle in self._open.values():
            handle.close()
        self._open.clear()

    def __enter__(self) -> Era5Hdf5Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        """Pickle without open file handles (for worker processes)."""
        return {**self.__dict__, "_open": {}}


def _find_files(data_dir: str | Path | Sequence[str | Path], years: list[int] | None) -> list[Path]:
    """The year files to read, in time order, each checked to exist."""
    if isinstance(data_dir, (str, Path)) and Path(data_dir).is_file():
        data_dir = [data_dir]
    if not isinstance(data_dir, (str, Path)):
        if years is not None:
            raise InvalidDataError("give either a list of files or years within a directory, not both")
        paths = [Path(p) for p in data_dir]
        if not paths:
            raise InvalidDataError("the list of HDF5 files is empty")
    else:
        directory = Path(data_dir)
        if not directory.is_dir():
            raise MissingDataError(f"data directory {directory} does not exist")
        if years is None:
            paths = sorted(p for p in directory.iterdir() if YEAR_FILE.match(p.name))
            if not paths:
                raise MissingDataError(f"data directory {directory} holds no year files named YYYY.h5")
        else:
            paths = [directory / f"{int(year)}.h5" for year in years]
            if not paths:
                raise InvalidDataError("the list of years is empty")
    return [checked_path(path) for path in paths]


def _dataset_shape(path: Path, dataset: str) -> tuple[int, ...]:
    """Shape of ``dataset`` in ``path``, which must be 4-D (time, channel, lat, lon)."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise InvalidDataError(f"data file {path} is not a readable HDF5 file ({err})") from err
    with handle:
        if dataset not in handle or not isinstance(handle[dataset], h5py.Dataset):
            raise InvalidDataError(f"data file {path} has no dataset '{dataset}' (it has: {', '.join(handle)})")
        shape = handle[dataset].shape
    if len(shape) != 4:
        raise InvalidDataError(f"dataset '{dataset}' in {path} has shape {shape}, not (time, channel, lat, lon)")
    return shape


def _check_same_grid(paths: list[Path], shapes: list[tuple[int, ...]]) -> None:
    """Raise unless every file has the first file's (channel, lat, lon) shape."""
    for path, shape in zip(paths, shapes, strict=True):
        if shape[1:] != shapes[0][1:]:
            raise InvalidDataError(
                f"data file {path} has (channel, lat, lon) = {shape[1:]} but {paths[0]} has {shapes[0][1:]}"
            )


def _check_channels(channels: Sequence[int], n_channels: int) -> np.ndarray:
    """Channel indices as an int array, each in [0, n_channels)."""
    index = np.asarray(list(channels), dtype=np.int64)
    if index.size == 0:
        raise InvalidDataError("no channels selected")
    bad = index[(index < 0) | (index >= n_channels)]
    if bad.size:
        raise InvalidDataError(f"channel index {int(bad[0])} is out of range: the files have {n_channels} channels")
    return index


def _channel_selection(index: np.ndarray) -> tuple[slice | list[int], np.ndarray | None]:
    """An h5py key for the channels (a slice when contiguous) and the reordering to apply after reading."""
    if np.array_equal(index, np.arange(index[0], index[0] + index.size)):
        return slice(int(index[0]), int(index[-1]) + 1), None
    unique = np.unique(index)
    return unique.tolist(), np.searchsorted(unique, index)


def _channel_names(index: np.ndarray, names: Sequence[str] | None) -> tuple[str, ...]:
    """Given names (one per channel) or FourCastNet's names for the indices."""
    if names is None:
        return tuple(FOURCASTNET_CHANNELS[i] if i < len(FOURCASTNET_CHANNELS) else f"channel{i}" for i in index)
    if len(names) != index.size:
        raise InvalidDataError(f"{len(names)} channel names given for {index.size} channels")
    return tuple(names)


def _year_times(paths: list[Path], counts: list[int], step_hours: float) -> np.ndarray | None:
    """Times from 00 UTC on 1 January of each file's year, or None unless every file is named YYYY.h5."""
    matches = [YEAR_FILE.match(path.name) for path in paths]
    if not all(matches):
        return None
    step = np.timedelta64(int(round(step_hours * 3600)), "s")
    starts = [np.datetime64(f"{m.group(1)}-01-01T00:00:00") for m in matches]
    parts = [first + np.arange(n) * step for first, n in zip(starts, counts, strict=True)]
    return np.concatenate(parts).astype("datetime64[ns]")


def channel_indices(names: Sequence[str]) -> list[int]:
    """Indices in FourCastNet's files of channels named as in FOURCASTNET_CHANNELS (``z500``, ``t850``, ...)."""
    for name in names:
        if name not in FOURCASTNET_CHANNELS:
            raise InvalidDataError(
                f"unknown channel {name!r}; FourCastNet's channels are {', '.join(FOURCASTNET_CHANNELS)}"
            )
    return [FOURCASTNET_CHANNELS.index(name) for name in names]


def split_folders(directory: str | Path) -> tuple[Path, Path] | None:
    """``(directory/train, directory/test)`` when both exist (FourCastNet's layout), None when neither does."""
    folders = (Path(directory) / "train", Path(directory) / "test")
    present = [folder.is_dir() for folder in folders]
    if all(present):
        return folders
    if any(present):
        have, lack = (folders[0], folders[1]) if present[0] else (folders[1], folders[0])
        raise InvalidDataError(f"{directory} has a {have.name}/ folder but no {lack.name}/ folder")
    return None
