"""A user's data set named on the command line (era5:DIR, xarray:PATH): channels, crop, splits, mask and statistics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metrics.skill import latitude_weights
from runners.data.era5 import Era5Hdf5Source, channel_indices, split_folders
from runners.data.files import checked_path, file_entry
from runners.data.source import (
    FOURCASTNET_CHANNELS,
    ArraySource,
    CroppedSource,
    DataError,
    FieldSource,
    InvalidDataError,
    MissingDataError,
    close_source,
)
from runners.data.stats import (
    CLIMATOLOGY_FILE,
    STATS_FILES,
    Normalizer,
    channel_stats,
    finite_mask,
    load_stats,
    stats_folder,
    time_mean_climatology,
)
from runners.data.xarray_source import XarraySource, infer_step, select_variables
from runners.options import flag

DATA_KINDS = ("era5", "xarray")
LAT_WEIGHTS = ("cell-area", "cosine")
CHUNK_BYTES = 64 * 2**20  # time steps read at once for the mask and statistics: about this many bytes of float32


@dataclass(frozen=True)
class DataRequest:
    """What the user asked for on the command line, checked on creation (InvalidDataError, one sentence).

    Parameters
    ----------
    text : str
        ``era5:DIR`` (FourCastNet's year files) or ``xarray:PATH`` (a netCDF file, a ``.zarr`` store, or several
        of them joined by commas).
    channels : tuple of str, or str, optional
        Channel names (a string is split at commas); None takes all: FourCastNet's 20 in_channels for era5, every
        variable with exactly the time, lat and lon dimensions for xarray (``name@level`` picks a level).
    test_fraction : float
        The last share of the time steps, in (0, 1), is the test split (era5 with train/ and test/: the folders).
    lat_weights : str
        Latitude-weighting convention of the skill metrics, one of LAT_WEIGHTS.
    time_step_hours : float, optional
        Hours between steps; needed when the file's times are irregular or absent (era5: 6 by default).
    """

    text: str
    channels: tuple[str, ...] | None = None
    test_fraction: float = 0.2
    lat_weights: str = "cell-area"
    time_step_hours: float | None = None

    def __post_init__(self):
        if not isinstance(self.text, str):
            raise InvalidDataError(f"the data set must be text such as era5:DIR or xarray:PATH, not {self.text!r}")
        kind, colon, rest = self.text.partition(":")
        if not colon or kind not in DATA_KINDS:
            raise InvalidDataError(f"{self.text!r} is not KIND:PATH with KIND one of {', '.join(DATA_KINDS)}")
        if any(not path for path in self.paths):
            raise InvalidDataError(f"{self.text!r} has an empty path after '{kind}:'")
        fraction = _number("test_fraction", self.test_fraction)
        if not 0.0 < fraction < 1.0:
            raise InvalidDataError(f"--test-fraction must lie strictly between 0 and 1, got {self.test_fraction!r}")
        if not isinstance(self.lat_weights, str) or self.lat_weights not in LAT_WEIGHTS:
            raise InvalidDataError(f"--lat-weights must be one of {', '.join(LAT_WEIGHTS)}, got {self.lat_weights!r}")
        step = None if self.time_step_hours is None else _number("time_step_hours", self.time_step_hours)
        if step is not None and not (math.isfinite(step) and step > 0):
            raise InvalidDataError(
                f"--time-step-hours must be a positive number of hours, got {self.time_step_hours!r}"
            )
        object.__setattr__(self, "channels", _channel_list(self.channels))
        object.__setattr__(self, "test_fraction", fraction)
        object.__setattr__(self, "time_step_hours", step)

    @property
    def kind(self) -> str:
        """``era5`` or ``xarray``."""
        return self.text.partition(":")[0]

    @property
    def paths(self) -> tuple[str, ...]:
        """The path (era5) or the comma-separated paths (xarray) after ``KIND:``, stripped of blanks."""
        rest = self.text.partition(":")[2]
        return (rest.strip(),) if self.kind == "era5" else tuple(path.strip() for path in rest.split(","))


@dataclass(frozen=True, eq=False)
class Dataset:
    """An opened data set: the source on the cropped grid, its splits, mask and normalisation statistics.

    ``mean`` and ``std`` (C,) float64 are over the masked-in cells of the training split (or from the stats
    files); ``clim`` (C, lat, lon) float32 is the time mean of the training split (or time_means.npy) with the
    channel mean in masked-out cells; ``mask`` (C, lat, lon) float32 is 1 where a cell is finite at every time
    step, None when all are. ``identity`` and ``worker`` are JSON-able: what makes a run's data the same, and
    what :func:`reopen` needs to open the same source in another process.
    """

    source: FieldSource
    channels: tuple[str, ...]
    lats_deg: np.ndarray
    lons_deg: np.ndarray
    img_size: tuple[int, int]
    time_step_hours: float
    train: tuple[int, int]
    test: tuple[int, int]
    mean: np.ndarray
    std: np.ndarray
    clim: np.ndarray
    mask: np.ndarray | None
    weights_convention: str
    stats_source: str
    identity: dict
    worker: dict
    # Time indices i whose next step i + 1 is in another file: FourCastNet's year files are not one series (a leap
    # year's last day is absent, years may be missing), so no training pair or rollout crosses from one to the next.
    breaks: tuple[int, ...] = ()


def open_dataset(request: DataRequest, patch_size: int, progress: Callable[[str], None] | None = None) -> Dataset:
    """Open ``request``'s data on a grid cropped to multiples of ``patch_size``, and compute its statistics.

    The grid keeps its first rows and columns (FourCastNet's 721 rows become 720). The mask and, without stats
    files, the statistics are computed by streaming the source a few time steps at a time; ``progress`` is
    called with one line at each tenth of each pass. Every problem with the data or the request is a
    MissingDataError or InvalidDataError whose message is one sentence.
    """
    if not isinstance(request, DataRequest):
        raise InvalidDataError(f"open_dataset takes a DataRequest, not {type(request).__name__}")
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)) or patch_size < 1:
        raise InvalidDataError(f"patch_size must be a positive integer, got {patch_size!r}")
    try:
        return _open(request, int(patch_size), progress or (lambda line: None))
    except DataError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError) as err:  # netCDF4 reports a damaged file as a RuntimeError
        raise InvalidDataError(f"{request.text} could not be read ({_reason(err)})") from err


def _open(request: DataRequest, patch: int, say: Callable[[str], None]) -> Dataset:
    """:func:`open_dataset` once its arguments are checked."""
    plan = _plan_era5(request) if request.kind == "era5" else _plan_xarray(request)
    first = reopen(plan["worker"])
    grid = (len(first.lats_deg), len(first.lons_deg))
    close_source(first)
    if len(set(first.channels)) < len(first.channels):
        raise InvalidDataError(f"the channels {', '.join(first.channels)} name one field twice")
    rows, cols = grid[0] // patch * patch, grid[1] // patch * patch
    if not rows or not cols:
        raise InvalidDataError(f"the grid of {grid[0]} x {grid[1]} cells is smaller than one {patch} x {patch} patch")
    worker = {**plan["worker"], "crop": [rows, cols]}
    source = reopen(worker)
    if not math.isfinite(source.time_step_hours):
        raise InvalidDataError(
            f"the times in {request.text} are irregular or absent, so give the time step in hours (--time-step-hours)"
        )
    worker["time_step_hours"] = float(source.time_step_hours)
    try:
        latitude_weights(rows, request.lat_weights, source.lats_deg)
    except ValueError as err:
        raise InvalidDataError(f"{request.lat_weights} latitude weights do not fit this grid ({err})") from err
    train, test = _splits(source.n_times, plan["n_train"], request.test_fraction)
    times = getattr(source, "times", None)
    for lo, hi in [train, test] if plan["n_train"] is not None else [(0, source.n_times)]:
        if times is not None and np.any(np.diff(times[lo:hi]) <= np.timedelta64(0)):
            raise InvalidDataError(f"the times in {request.text} do not increase: files out of order or overlapping")
    _check_given_step(request, source)
    say(f"{request.text}: {len(source.channels)} channels, {source.n_times} time steps, {rows} x {cols} cells")
    keep, mean, std, clim, stats_source = _statistics(source, plan["stats"], worker.get("channels"), grid, train, say)
    identity = {
        "kind": request.kind,
        "files": [file_entry(path) for path in plan["files"]],
        "channels": list(source.channels),
        "selection": worker["channels"] if request.kind == "era5" else worker["variables"],
        "grid": {"file": list(grid), "cropped": [rows, cols], "patch_size": patch,
                 "lat_deg": [float(source.lats_deg[0]), float(source.lats_deg[-1])],
                 "lon_deg": [float(source.lons_deg[0]), float(source.lons_deg[-1])]},
        "times": _time_span(source),
        "splits": {"train": list(train), "test": list(test), "by": plan["split_by"]},
        "time_step_hours": worker["time_step_hours"],
        "lat_weights": request.lat_weights,
        "stats_source": stats_source,
    }  # fmt: skip
    return Dataset(
        source=source,
        channels=tuple(source.channels),
        lats_deg=np.asarray(source.lats_deg, dtype=np.float64),
        lons_deg=np.asarray(source.lons_deg, dtype=np.float64),
        img_size=(rows, cols),
        time_step_hours=worker["time_step_hours"],
        train=train,
        test=test,
        mean=mean,
        std=std,
        clim=clim,
        mask=None if keep.all() else keep.astype(np.float32),
        weights_convention=request.lat_weights,
        stats_source=stats_source,
        identity=identity,
        worker=worker,
        breaks=tuple(start - 1 for start in getattr(getattr(source, "inner", source), "file_starts", ())),
    )


def _check_given_step(request: DataRequest, source: FieldSource) -> None:
    """Refuse a time step given for a file whose own times are evenly spaced by another one."""
    times = getattr(source, "times", None)
    if request.kind != "xarray" or request.time_step_hours is None or times is None:
        return
    own = infer_step(times)
    if math.isfinite(own) and abs(own - request.time_step_hours) > 1e-6 * own:
        raise InvalidDataError(
            f"the times in {request.text} are {own:g} h apart, not the {request.time_step_hours:g} h given; "
            "leave out --time-step-hours"
        )


def _statistics(
    source: FieldSource, folder: Path | None, channels: list | None, grid: tuple, train: tuple, say
) -> tuple:
    """The finite mask, mean, std, NaN-free climatology and where they come from, streaming ``source`` by chunks.

    The statistics are read from the stats files in ``folder`` (file channels ``channels``, climatology on the
    file ``grid``, cropped) when it is given, else computed over the masked-in cells of the ``train`` range.
    """
    rows, cols = len(source.lats_deg), len(source.lons_deg)
    chunk = max(1, min(64, CHUNK_BYTES // (4 * len(source.channels) * rows * cols)))
    keep = finite_mask(_Progress(source, say, "missing values"), 0, source.n_times, chunk)
    for name, cells in zip(source.channels, keep, strict=True):
        if not cells.any():
            raise InvalidDataError(f"channel '{name}' has no cell with a value at every time step")
    if folder is not None:
        mean, std, clim = load_stats(folder, channels)
        if clim.shape[1:] != grid:
            raise InvalidDataError(f"{folder / CLIMATOLOGY_FILE} has {clim.shape[1:]} cells but the data {grid}")
        clim, stats_source = clim[:, :rows, :cols], f"the stats files in {folder.name}/ (see files)"
        if not np.isfinite(clim[keep]).all():
            raise InvalidDataError(f"{folder / CLIMATOLOGY_FILE} is not finite at cells the data has at every time")
    else:
        view = _Progress(source, say, "statistics of the training split")
        mean, std = channel_stats(view, *train, chunk, mask=None if keep.all() else keep)
        clim = time_mean_climatology(_Progress(source, say, "climatology"), *train, chunk)
        stats_source = f"computed from the training split (time steps {train[0]}-{train[1] - 1})"
    for name, m, s in zip(source.channels, mean, std, strict=True):
        if not (math.isfinite(m) and math.isfinite(s) and s >= 0):
            raise InvalidDataError(f"channel '{name}' has mean {m:g} and standard deviation {s:g} ({stats_source})")
        if s <= 1e-12 * abs(m) or s == 0:  # zero but for rounding in the float64 sums
            raise InvalidDataError(f"channel '{name}' is constant ({stats_source}), so it cannot be normalised")
    clim = np.where(keep & np.isfinite(clim), clim, mean[:, None, None]).astype(np.float32)
    return keep, np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64), clim, stats_source


def _plan_era5(request: DataRequest) -> dict:
    """The worker description of an era5: request, its files, the training length when folders split it, stats."""
    directory = _existing(request.paths[0])
    if not directory.is_dir():
        raise InvalidDataError(f"{directory} is a file, but era5: takes a directory of FourCastNet's YYYY.h5 files")
    index = channel_indices(request.channels or FOURCASTNET_CHANNELS)
    folders = split_folders(directory)
    if folders:
        train, test = (Era5Hdf5Source(folder, channels=index, crop_lat=None) for folder in folders)
        paths, n_train = train.paths + test.paths, train.n_times
    else:
        paths, n_train = Era5Hdf5Source(directory, channels=index, crop_lat=None).paths, None
    worker = {"kind": "era5", "paths": [str(p) for p in paths], "channels": index,
              "time_step_hours": request.time_step_hours or 6.0}  # fmt: skip
    stats = stats_folder(directory / "stats", directory)
    files = list(paths) + ([stats / name for name in STATS_FILES] if stats else [])
    split_by = "train/ and test/ folders" if folders else f"test_fraction {request.test_fraction}"
    return {"worker": worker, "files": files, "n_train": n_train, "split_by": split_by, "stats": stats}


def _plan_xarray(request: DataRequest) -> dict:
    """The worker description of an xarray: request and its files (split by test_fraction, statistics computed)."""
    paths = [_existing(text) for text in request.paths]
    if len(set(paths)) < len(paths):
        raise InvalidDataError(f"{request.text!r} names one file twice")
    for path in paths:
        if path.is_dir() and not path.name.endswith(".zarr"):
            raise InvalidDataError(f"{path} is a directory, not a netCDF file or a store named *.zarr")
    (time, lat, lon), variables = select_variables(paths, request.channels)
    worker = {"kind": "xarray", "paths": [str(p) for p in paths], "variables": [[n, lv] for n, lv in variables],
              "time": time, "lat": lat, "lon": lon, "time_step_hours": request.time_step_hours}  # fmt: skip
    split_by = f"test_fraction {request.test_fraction}"
    return {"worker": worker, "files": paths, "n_train": None, "split_by": split_by, "stats": None}


def reopen(worker: dict) -> FieldSource:
    """The source that ``worker`` (:attr:`Dataset.worker`, possibly through JSON) describes, in any process.

    Besides the kinds of DATA_KINDS it takes ``{"kind": "npy", "path": P, "channels": [...], "lats_deg": [...],
    "lons_deg": [...], "time_step_hours": h}`` for a plain (T, C, lat, lon) .npy file, memory-mapped. An optional
    ``"crop": [rows, cols]`` keeps the first rows and columns.
    """
    kind = worker.get("kind") if isinstance(worker, dict) else None
    if kind not in ("era5", "xarray", "npy"):
        raise InvalidDataError(f"a worker description needs a kind of era5, xarray or npy, got {kind!r}")
    try:
        crop = worker.get("crop")
        if kind == "era5":
            rows = crop[0] if crop else None
            paths, step = [Path(p) for p in worker["paths"]], worker["time_step_hours"]
            source = Era5Hdf5Source(paths, channels=worker["channels"], crop_lat=rows, time_step_hours=step)
        elif kind == "xarray":
            variables = [(name, dict(levels)) for name, levels in worker["variables"]]
            source = XarraySource(worker["paths"], variables, worker["lat"], worker["lon"], worker["time"],
                                  time_step_hours=worker["time_step_hours"])  # fmt: skip
        else:
            data = np.load(worker["path"], mmap_mode="r", allow_pickle=False)
            source = ArraySource(data, worker["channels"], np.asarray(worker["lats_deg"]),
                                 np.asarray(worker["lons_deg"]), float(worker["time_step_hours"]))  # fmt: skip
    except DataError:
        raise
    except FileNotFoundError as err:
        raise MissingDataError(f"data file {err.filename} does not exist") from err
    except (KeyError, TypeError, ValueError, OSError, EOFError) as err:
        raise InvalidDataError(f"the {kind} worker description cannot be opened ({_reason(err)})") from err
    if crop and (len(source.lats_deg), len(source.lons_deg)) != (crop[0], crop[1]):
        source = CroppedSource(source, int(crop[0]), int(crop[1]))
    return source


def normalise(fields: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(fields - mean) / std`` over axis -3 as C-contiguous float32, with NaN (masked cells) set to 0.

    Zero is the channel mean, so no NaN ever reaches a network.
    """
    out = np.ascontiguousarray(Normalizer(mean, std).normalize(np.asarray(fields)), dtype=np.float32)
    out[~np.isfinite(out)] = 0.0
    return out


class _Progress:
    """The same source, telling ``say`` how far a pass over it has got at each tenth of the time steps read."""

    def __init__(self, source: FieldSource, say: Callable[[str], None], what: str):
        self._source, self._say, self._what, self._done, self._told = source, say, what, 0, 0

    def __getattr__(self, name: str):
        return getattr(self._source, name)

    def read(self, start: int, stop: int) -> np.ndarray:
        block = self._source.read(start, stop)
        self._done += stop - start
        tenth = 10 * self._done // self._source.n_times
        if tenth > self._told:
            self._told = tenth
            self._say(f"{self._what}: {self._done} time steps read")
        return block


def _splits(n_times: int, n_train: int | None, fraction: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """Train and test index ranges: the folders' (``n_train`` given) or the last ``fraction`` of the steps."""
    how = "the train/ and test/ folders split"
    if n_train is None:
        n_train = n_times - math.floor(n_times * fraction + 0.5)
        how = f"a test fraction of {fraction:g} splits"
    if n_train < 2 or n_times - n_train < 2:
        raise InvalidDataError(
            f"{how} the {n_times} time steps into {n_train} for training and {n_times - n_train} for testing, "
            "but each split needs at least 2"
        )
    return (0, n_train), (n_train, n_times)


def _channel_list(channels: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """Channel names as a tuple (a string split at commas), each non-empty and given once; None stays None."""
    if channels is None:
        return None
    names = channels.split(",") if isinstance(channels, str) else channels
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
        raise InvalidDataError(f"channels must be names, such as 'z500,t850', got {channels!r}")
    names = tuple(name.strip() for name in names)
    if not names:
        raise InvalidDataError("channels is empty; give None for all channels")
    if not all(names):
        raise InvalidDataError(f"channels {channels!r} has an empty name")
    if len(set(names)) != len(names):
        raise InvalidDataError(f"channels {channels!r} names a channel twice")
    return names


def _number(what: str, value: object) -> float:
    """``value`` of the request's field ``what`` as a float, or InvalidDataError naming its option."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidDataError(f"{flag(what)} must be a number, got {value!r}") from None


def _existing(text: str) -> Path:
    """``text`` as an absolute path to a regular file or a directory (checked before anything opens it)."""
    if not text.isprintable():
        raise InvalidDataError(f"{text!r} is not a usable path: it holds control characters")
    checked_path(Path(text).expanduser(), "--data path", directory=True)
    try:
        return Path(text).expanduser().resolve()
    except (OSError, ValueError, RuntimeError) as err:
        raise InvalidDataError(f"{text!r} is not a usable path ({err})") from err


def _time_span(source: FieldSource) -> list[str] | None:
    """First and last time as ISO strings, when the source has times."""
    times = getattr(source, "times", None)
    if times is None or not len(times):
        return None
    return [str(np.datetime_as_string(times[0], unit="s")), str(np.datetime_as_string(times[-1], unit="s"))]


def _reason(err: BaseException) -> str:
    """The first sentence of an exception's message."""
    return str(err).split(". ")[0] or type(err).__name__
