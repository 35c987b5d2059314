"""netCDF and zarr fields (WeatherBench style) read lazily through xarray, one variable per channel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from runners.data.files import checked_path
from runners.data.source import InvalidDataError, check_range

# Dimension names that select_variables recognises (ERA5 from the Copernicus data store has "valid_time").
TIME_NAMES = ("time", "valid_time")
LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "longitude")


class XarraySource:
    """A FieldSource over variables of netCDF files or zarr stores, read with ``isel(time=...)`` slice by slice.

    Each variable becomes one channel. A variable may be split over several files along time (one file per
    year, say): its pieces are read in the order of ``paths``. All variables must share the latitude and
    longitude grid and the times. Latitudes are returned north to south: a grid stored south to north is
    flipped on reading, and ``lats_deg`` is given flipped too.

    Parameters
    ----------
    paths : str, Path or sequence of them
        netCDF files, or zarr stores (paths ending in ``.zarr``).
    variables : sequence of str or of (str, mapping)
        Variable names, in channel order; a ``(name, levels)`` pair selects ``levels`` (e.g. ``{"level": 500}``)
        on that variable only, over ``level``, so that one variable can give several channels.
    lat, lon, time : str
        Names of the latitude, longitude and time dimensions.
    level : mapping, optional
        Values to select on extra dimensions, e.g. ``{"level": 500}``; applied to every variable that has
        that dimension, whose channel is then named with the value appended (``z`` -> ``z500``). A variable
        with any other dimension is rejected.
    time_step_hours : float, optional
        Hours between steps; by default inferred from the times (NaN when they are irregular or absent).

    Examples
    --------
    >>> src = XarraySource(["uwnd_mean.nc", "vwnd_mean.nc"], ["uwnd", "vwnd"], lat="latitude", lon="longitude")
    ... # doctest: +SKIP
    >>> src.read(0, 12).shape  # doctest: +SKIP
    (12, 2, 73, 144)
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        variables: Sequence[str],
        lat: str = "lat",
        lon: str = "lon",
        time: str = "time",
        level: Mapping[str, object] | None = None,
        time_step_hours: float | None = None,
    ):
        path_list = [paths] if isinstance(paths, (str, Path)) else list(paths)
        if not path_list or not list(variables):
            raise InvalidDataError("XarraySource needs at least one path and one variable")
        self._datasets = [open_store(Path(p)) for p in path_list]
        self._dims = (time, lat, lon)
        self._pieces = []
        names = []
        for entry in variables:
            name, own = (entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1]))
            pieces, channel = self._variable_pieces(name, {**dict(level or {}), **own})
            self._pieces.append(pieces)
            names.append(channel)
        self.channels = tuple(names)
        self._offsets = [np.cumsum([0] + [p.sizes[time] for p in pieces]) for pieces in self._pieces]
        lats = np.asarray(self._pieces[0][0][lat].values, dtype=np.float64)
        self._flip = bool(lats.size > 1 and lats[0] < lats[-1])
        self.lats_deg = lats[::-1].copy() if self._flip else lats
        self.lons_deg = np.asarray(self._pieces[0][0][lon].values, dtype=np.float64)
        self.times = self._check_shared_axes()
        self.n_times = int(self._offsets[0][-1])
        self.time_step_hours = float(time_step_hours) if time_step_hours is not None else infer_step(self.times)

    def _variable_pieces(self, name: str, level: dict) -> tuple[list, str]:
        """The time pieces of variable ``name`` (one per file holding it) and its channel name."""
        pieces = [ds[name] for ds in self._datasets if name in ds.data_vars]
        if not pieces:
            available = sorted({v for ds in self._datasets for v in ds.data_vars})
            raise InvalidDataError(
                f"variable '{name}' is not in the files; available variables: {', '.join(available)}"
            )
        selected = [_select_levels(piece, name, level, self._dims) for piece in pieces]
        suffix = "".join(_format_level(level[d]) for d in pieces[0].dims if d in level and d not in self._dims)
        return selected, name + suffix

    def _check_shared_axes(self) -> np.ndarray | None:
        """Check that every variable has the first one's grid and times; return those times (None if not datetimes)."""
        time, lat, lon = self._dims
        ref = self._pieces[0][0]
        ref_times = _times(self._pieces[0], time)
        for dim, values in ((lat, np.asarray(ref[lat].values)), (lon, np.asarray(ref[lon].values)), (time, ref_times)):
            if values.dtype.kind in "mM":
                missing = np.isnat(values)
            elif values.dtype.kind in "fiu":
                missing = ~np.isfinite(values.astype(np.float64))
            else:  # cftime objects and the like: their own checks
                continue
            if missing.any():
                raise InvalidDataError(f"the {dim} coordinate of '{self.channels[0]}' has missing or non-finite values")
        for name, pieces in zip(self.channels, self._pieces, strict=True):
            for piece in pieces:
                if not (_same(piece[lat], ref[lat]) and _same(piece[lon], ref[lon])):
                    raise InvalidDataError(f"variable '{name}' is not on the grid of '{self.channels[0]}'")
            times = _times(pieces, time)
            if len(times) != len(ref_times) or not np.array_equal(times, ref_times):
                raise InvalidDataError(f"variable '{name}' does not have the times of '{self.channels[0]}'")
        return ref_times if ref_times.dtype.kind == "M" else None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Return float32 (stop - start, C, lat, lon), latitudes north to south."""
        start, stop = check_range(self, start, stop)
        out = np.empty((stop - start, len(self.channels), len(self.lats_deg), len(self.lons_deg)), dtype=np.float32)
        for c, (pieces, offsets) in enumerate(zip(self._pieces, self._offsets, strict=True)):
            for piece, first, last in zip(pieces, offsets[:-1], offsets[1:], strict=True):
                lo, hi = max(start, first), min(stop, last)
                if lo < hi:
                    out[lo - start : hi - start, c] = _read_piece(piece, self._dims, lo - first, hi - first)
        return out[:, :, ::-1].copy() if self._flip else out

    def close(self) -> None:
        """Close the underlying datasets."""
        for ds in self._datasets:
            ds.close()


def open_store(path: str | Path):
    """Open one netCDF file or zarr store (a path ending in ``.zarr``) lazily, without dask.

    Raises MissingDataError when ``path`` does not exist and InvalidDataError when it cannot be opened.
    """
    import xarray as xr

    path = Path(path)
    is_zarr = path.name.rstrip("/").endswith(".zarr")
    checked_path(path, directory=is_zarr)
    try:
        return xr.open_dataset(path, engine="zarr" if is_zarr else None, chunks=None)
    except (ValueError, OSError, ImportError) as err:
        kind = "zarr store" if is_zarr else "netCDF file"
        reason = str(err).split(". ")[0]  # xarray's message about its engines goes on with advice
        raise InvalidDataError(f"{path} could not be opened as a {kind} ({reason})") from err


def _select_levels(piece, name: str, level: dict, dims: tuple[str, str, str]):
    """``piece`` with the ``level`` values selected on its extra dimensions; raise if any other remains."""
    missing = [d for d in dims if d not in piece.dims]
    if missing:
        raise InvalidDataError(
            f"variable '{name}' has dimensions {piece.dims} without {missing}; name its time, latitude and "
            "longitude dimensions with time=, lat=, lon="
        )
    for dim in [d for d in piece.dims if d not in dims]:
        if dim not in level:
            raise InvalidDataError(
                f"variable '{name}' has the extra dimension '{dim}'; select one value with level={{'{dim}': value}}"
            )
        try:
            piece = piece.sel({dim: level[dim]})
        except KeyError as err:
            values = piece[dim].values.tolist() if dim in piece.coords else "no coordinate"
            raise InvalidDataError(f"variable '{name}' has no {dim} {level[dim]!r} (values: {values})") from err
    return piece


def _format_level(value: object) -> str:
    """A level value as a channel-name suffix: 500.0 -> '500'."""
    if isinstance(value, (int, float, np.number)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _read_piece(piece, dims: tuple[str, str, str], lo: int, hi: int) -> np.ndarray:
    """Local time steps [lo, hi) of one piece as (time, lat, lon), read from disk only for that slice."""
    return piece.isel({dims[0]: slice(int(lo), int(hi))}).transpose(*dims).values


def _times(pieces: list, time: str) -> np.ndarray:
    """The time coordinate of a variable's pieces, concatenated (datetime64[ns] where they are datetimes)."""
    values = np.concatenate([np.asarray(p[time].values) for p in pieces])
    return values.astype("datetime64[ns]") if values.dtype.kind == "M" else values


def _same(a, b) -> bool:
    """True if two coordinate arrays hold the same values."""
    return a.shape == b.shape and np.allclose(np.asarray(a.values, dtype=np.float64), np.asarray(b.values, np.float64))


def infer_step(times: np.ndarray | None) -> float:
    """Hours between steps when the times are evenly spaced, NaN otherwise."""
    if times is None or len(times) < 2:
        return float("nan")
    steps = np.unique(np.diff(times).astype("timedelta64[s]").astype(np.int64))
    return float(steps[0]) / 3600.0 if steps.size == 1 else float("nan")


def select_variables(
    paths: Sequence[str | Path], channels: Sequence[str] | None = None
) -> tuple[tuple[str, str, str], list[tuple[str, dict]]]:
    """Detect the files' (time, lat, lon) dimension names and resolve channel names to :class:`XarraySource` variables.

    Parameters
    ----------
    paths : sequence of str or Path
        netCDF files or zarr stores, opened lazily here and closed again.
    channels : sequence of str, optional
        Variable names, or ``name@level`` for a variable with one extra dimension (WeatherBench 2's
        ``geopotential@500``: the value 500 of its ``level`` dimension). By default every data variable whose
        dimensions are exactly time, latitude and longitude, in file order.

    Returns
    -------
    dims : (str, str, str)
        The names of the time, latitude and longitude dimensions (``time``; ``lat`` or ``latitude``; ``lon`` or
        ``longitude``).
    variables : list of (str, dict)
        One ``(name, {dimension: value})`` pair per channel, for ``XarraySource(paths, variables, ...)``.
    """
    datasets = []
    try:
        for path in paths:
            datasets.append(open_store(path))
        found: dict[str, object] = {}
        for ds in datasets:
            for name, var in ds.data_vars.items():
                if isinstance(name, str):
                    found.setdefault(name, var)
        present = {d for var in found.values() for d in var.dims}
        dims = (_pick_dim(TIME_NAMES, present, "time"), _pick_dim(LAT_NAMES, present, "latitude"),
                _pick_dim(LON_NAMES, present, "longitude"))  # fmt: skip
        if channels is None:
            channels = [name for name, var in found.items() if len(var.dims) == 3 and set(var.dims) == set(dims)]
            if not channels:
                raise InvalidDataError(
                    f"no variable has exactly the dimensions {dims}; name the channels (variables: {_listing(found)})"
                )
        return dims, [_channel_variable(spec, found, dims) for spec in channels]
    finally:
        for ds in datasets:
            ds.close()


def _pick_dim(names: tuple[str, ...], present: set, what: str) -> str:
    """The one name of ``names`` among the dimensions ``present``, or raise."""
    hits = [name for name in names if name in present]
    if len(hits) != 1:
        how = "no" if not hits else "more than one"
        raise InvalidDataError(
            f"the files have {how} {what} dimension named {' or '.join(names)} (dimensions: {_listing(present)})"
        )
    return hits[0]


def _channel_variable(spec: str, found: dict, dims: tuple[str, str, str]) -> tuple[str, dict]:
    """The ``(variable, {dimension: value})`` pair of one channel written ``name`` or ``name@level``."""
    name, level = spec.rpartition("@")[::2] if "@" in spec else (spec, None)
    if name not in found:
        raise InvalidDataError(f"variable '{name}' is not in the files; available variables: {_listing(found)}")
    var = found[name]
    missing = [d for d in dims if d not in var.dims]
    if missing:
        raise InvalidDataError(f"variable '{name}' has the dimensions {var.dims}, without {missing}")
    for dim in dims[1:]:
        if dim not in var.coords:
            raise InvalidDataError(f"the dimension '{dim}' of variable '{name}' has no coordinate values (degrees)")
    extra = [d for d in var.dims if d not in dims]
    if not extra:
        if level is not None:
            raise InvalidDataError(f"variable '{name}' has no level dimension, so write '{name}' instead of '{spec}'")
        return name, {}
    if len(extra) > 1:
        raise InvalidDataError(
            f"variable '{name}' has {len(extra)} extra dimensions {extra}; at most one can be chosen"
        )
    dim = extra[0]
    values = _level_values(var, dim, name)
    if level is None:
        raise InvalidDataError(
            f"variable '{name}' has the dimension '{dim}' (values: {_listing(values)}); "
            f"choose one, as in {name}@{values[0]}"
        )
    for value in values:
        matches = value == level if isinstance(value, str) else _number(level) == value
        if matches:
            return name, {dim: value}
    raise InvalidDataError(f"variable '{name}' has no {dim} {level!r} (values: {_listing(values)})")


def _level_values(var, dim: str, name: str) -> list:
    """The values of the extra dimension ``dim`` of ``var`` as Python numbers or strings."""
    if dim not in var.coords or var[dim].size == 0:
        raise InvalidDataError(f"the dimension '{dim}' of variable '{name}' has no values to choose from")
    values = np.asarray(var[dim].values)
    listed = values.tolist() if values.dtype.kind in "iufUO" else []
    if not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in listed) or not listed:
        raise InvalidDataError(f"the dimension '{dim}' of variable '{name}' has values of type {values.dtype}")
    return listed


def _number(text: str) -> float | None:
    """``text`` as a float, or None."""
    try:
        return float(text)
    except ValueError:
        return None


def _listing(names, limit: int = 20) -> str:
    """Up to ``limit`` names joined by commas, with how many more there are."""
    items = [str(n) for n in (sorted(names, key=str) if isinstance(names, (set, dict)) else names)]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
