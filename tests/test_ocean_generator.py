"""The built-in ocean generator: AI-GOMS channel layout, land filled with ocean means, physically sized and
evolving fields, deterministic bytes and a content-hashed cache."""

from __future__ import annotations

import time

import numpy as np
import pytest

from runners.data.ocean import cell_centres, channels, ocean_mask, orography_m
from runners.data.ocean_generator import (
    GENERATOR_VERSION,
    OceanConfig,
    builtin_ocean_dataset,
    generate,
)
from runners.data.source import InvalidDataError
from runners.workloads.aigoms.config import AIGOMSConfig

DEPTHS = (0, 50, 200)
SMALL = OceanConfig(img_size=(32, 64), depths_m=DEPTHS, n_days=120, spinup_days=20)
N_LEVELS = len(DEPTHS)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ocean")
    path, meta = generate(SMALL, cache)
    return cache, path, meta, np.load(path)


def _ocean_cells(data: np.ndarray, name: str) -> np.ndarray:
    """(time, ocean cells) of a t/s/u/v/ssh channel at its own level's mask."""
    names = channels(DEPTHS)
    c = names.index(name)
    level = 0 if name == "ssh" else c % N_LEVELS
    return data[:, c][:, ocean_mask(SMALL.img_size, DEPTHS)[level]]


@pytest.mark.parametrize("img_size, depths", [((32, 64), DEPTHS), ((64, 128), (0, 10, 50, 100, 300))])
def test_channels_are_the_aigoms_inputs(img_size, depths):
    cfg = AIGOMSConfig(
        img_size=img_size, patch_size=4, depths_m=depths, embed_dim=32, depth=1,
        decoder_embed_dim=64, decoder_depth=1, num_blocks=4,
    )  # fmt: skip
    assert channels(depths) == cfg.in_channels
    assert len(set(cfg.in_channels)) == cfg.in_chans  # u10, the current at 10 m, is not u10m, the wind
    assert cfg.in_channels[: cfg.out_chans] == cfg.out_channels


def test_shape_dtype_finite_and_metadata(generated):
    _, path, meta, data = generated
    names = channels(DEPTHS)
    assert data.dtype == np.float32 and data.shape == (120, len(names), 32, 64)
    assert np.isfinite(data).all()
    assert path.parent.name == f"ocean-{SMALL.digest()}" and meta["generator"] == GENERATOR_VERSION
    assert meta["channels"] == list(names) and meta["depths_m"] == list(DEPTHS) and meta["grid"] == [32, 64]
    land = meta["land_fraction"]
    assert len(land) == N_LEVELS and 0.2 < land[0] < land[1] < land[2] < 0.5
    np.testing.assert_array_equal(
        data[:, names.index("orog")], np.broadcast_to(orography_m((32, 64)).astype(np.float32), (120, 32, 64))
    )


def test_land_holds_each_channels_ocean_mean(generated):
    data = generated[3]
    levels = ocean_mask(SMALL.img_size, DEPTHS)
    assert (~levels[2]).sum() > (~levels[0]).sum()  # more land at 200 m than at the surface
    for c, name in enumerate(channels(DEPTHS)[: 4 * N_LEVELS + 1]):
        mask = levels[0 if name == "ssh" else c % N_LEVELS]
        for day in (0, 77):
            field = data[day, c].astype(np.float64)
            np.testing.assert_allclose(field[~mask], field[mask].mean(), rtol=1e-5, atol=1e-6, err_msg=name)
            assert field[mask].std() > 0, name


def test_currents_are_physically_sized_and_alive(generated):
    data = generated[3]
    speed = np.hypot(_ocean_cells(data, "u0"), _ocean_cells(data, "v0"))
    assert np.percentile(speed, 99) < 1.0 and speed.max() < 3.0  # m/s
    assert 0.02 < np.sqrt((speed**2).mean()) < 0.5
    deep = np.hypot(_ocean_cells(data, "u200"), _ocean_cells(data, "v200"))
    assert 0 < np.sqrt((deep**2).mean()) < 0.5 * np.sqrt((speed**2).mean())  # surface-intensified
    ssh = _ocean_cells(data, "ssh")
    assert 0.03 < ssh.std() < 1.0 and np.abs(ssh).max() < 2.0  # m


def test_temperature_salinity_and_forcings_are_ocean_like(generated):
    data = generated[3]
    names = channels(DEPTHS)
    lats, _ = cell_centres(SMALL.img_size)
    sst = np.where(ocean_mask(SMALL.img_size, (0,))[0], data[:, names.index("t0")], np.nan)
    tropics = np.nanmean(sst[:, np.abs(lats) < 15])
    high = np.nanmean(sst[:, np.abs(lats) > 45])
    assert tropics > 24 and high < 8 and sst[np.isfinite(sst)].min() >= -1.8 - 1e-4
    t0, t200 = _ocean_cells(data, "t0").mean(), _ocean_cells(data, "t200").mean()
    assert t200 < t0 - 1.0  # deg C: cooler below the thermocline
    sal = _ocean_cells(data, "s0")
    assert 32 < sal.min() and sal.max() < 38 and sal.std() > 0.2  # psu
    tp, msl, t2m = (data[:, names.index(n)] for n in ("tp", "msl", "t2m"))
    assert tp.min() >= 0 and 1 < tp.mean() < 5  # mm/day
    assert abs(msl.mean() - 101325) < 50 and 500 < msl.std() < 3000  # Pa
    assert 190 < t2m.min() and t2m.max() < 330 and 270 < t2m.mean() < 290  # K
    wind = np.hypot(data[:, names.index("u10m")], data[:, names.index("v10m")])
    assert 3 < wind.mean() < 12


def test_fields_evolve_but_persist_and_stay_bounded(generated):
    data = generated[3]
    for name in channels(DEPTHS)[: 4 * N_LEVELS + 1]:
        x = _ocean_cells(data, name).astype(np.float64)
        spatial = x.std(axis=1).mean()
        step = np.sqrt(((x[1:] - x[:-1]) ** 2).mean())
        assert 0.003 * spatial < step < 0.9 * spatial, name  # neither frozen nor white noise
        anom = x - x.mean(axis=0)
        lag1 = (anom[:-1] * anom[1:]).sum() / np.sqrt((anom[:-1] ** 2).sum() * (anom[1:] ** 2).sum())
        assert 0.3 < lag1 < 0.9999, name  # tomorrow is partly predictable from today
        stds = [x[i].std() for i in (0, 60, 119)]
        assert max(stds) < 2.0 * min(stds), name  # no blow-up, no decay to rest


def test_generation_is_deterministic_and_cached(tmp_path):
    cfg = OceanConfig(img_size=(32, 64), depths_m=DEPTHS, n_days=60, spinup_days=5)
    path_a, meta_a = generate(cfg, tmp_path / "a")
    path_b, meta_b = generate(cfg, tmp_path / "b")
    assert meta_a["cached"] is False and meta_a["generation_s"] > 0
    assert meta_a["sha256"] == meta_b["sha256"] and path_a.read_bytes() == path_b.read_bytes()
    t0 = time.perf_counter()
    path_c, meta_c = generate(cfg, tmp_path / "a")
    assert time.perf_counter() - t0 < 0.5
    assert path_c == path_a and meta_c["cached"] is True and meta_c["sha256"] == meta_a["sha256"]
    assert not list(path_a.parent.glob("*.tmp*"))
    other, meta_o = generate(OceanConfig(**{**cfg.__dict__, "seed": cfg.seed + 1}), tmp_path / "a")
    assert other.parent != path_a.parent and meta_o["sha256"] != meta_a["sha256"]


def test_builtin_ocean_dataset(generated):
    cache = generated[0]
    data = builtin_ocean_dataset((32, 64), DEPTHS, cache=cache, n_days=30)
    assert {"sha256", "generator", "grid", "depths_m", "land_fraction"} <= set(data.meta)
    assert data.weights_convention == "uniform" and data.meta["grid"] == [32, 64] and data.path.is_file()
    source = data.source
    assert source.channels == channels(DEPTHS) and source.time_step_hours == 24.0
    assert source.read(0, 2).shape == (2, len(channels(DEPTHS)), 32, 64) and source.read(0, 2).dtype == np.float32
    np.testing.assert_array_equal(source.lats_deg, cell_centres((32, 64))[0])
    (a, b), (c, d) = data.train, data.test
    assert 0 == a < b == c < d == source.n_times and b == int(round(0.8 * d))
    with pytest.raises(InvalidDataError):
        builtin_ocean_dataset((32, 48), DEPTHS, cache=cache)


@pytest.mark.parametrize(
    "change",
    [{"img_size": (32, 48)}, {"depths_m": (50, 0)}, {"depths_m": (0, 6000)}, {"n_days": 1}, {"substeps_per_day": 8}],
)
def test_invalid_configurations(change):
    with pytest.raises(ValueError):
        OceanConfig(**{**SMALL.__dict__, **change})
