"""The built-in generator: deterministic bytes, real dynamics (non-divergent flow, Rossby-wave
turbulence that decorrelates), conservative coarsening and a content-hashed cache."""

from __future__ import annotations

import numpy as np
import pytest

from runners.data.barotropic import BarotropicConfig, _Spectral, coarsen, generate, simulate

SMALL = BarotropicConfig(nlat=32, nlon=64, n_steps=60, substeps=4, spinup_steps=20)


@pytest.fixture(scope="module")
def trajectory():
    return simulate(SMALL)


def test_same_parameters_give_the_same_bytes(trajectory):
    again = simulate(SMALL)
    assert again.dtype == np.float32 and again.shape == (60, 3, 32, 64)
    assert np.array_equal(again, trajectory)
    other = simulate(BarotropicConfig(**{**SMALL.__dict__, "seed": SMALL.seed + 1}))
    assert not np.allclose(other, trajectory)


def test_flow_is_non_divergent_and_vorticity_is_its_curl(trajectory):
    sp = _Spectral(SMALL)
    u_hat, v_hat = sp.to_spec(trajectory[-1, 0].astype(np.float64)), sp.to_spec(trajectory[-1, 1].astype(np.float64))
    div = sp.to_grid(sp.ikx * u_hat + sp.iky * v_hat)
    curl = sp.to_grid(sp.ikx * v_hat - sp.iky * u_hat)
    vo = trajectory[-1, 2]
    assert np.abs(div).max() < 1e-4 * np.abs(vo).max()
    np.testing.assert_allclose(curl, vo, atol=1e-4 * np.abs(vo).max())


def test_dynamics_are_alive_bounded_and_decorrelate(trajectory):
    energy = 0.5 * (trajectory[:, 0] ** 2 + trajectory[:, 1] ** 2).mean(axis=(1, 2))
    assert np.isfinite(trajectory).all()
    assert 0.01 < energy.min() and energy.max() < 10 * energy.min()  # forced-dissipative balance
    a = trajectory[:, 2] - trajectory[:, 2].mean(axis=0)
    lag1 = (a[:-1] * a[1:]).sum() / np.sqrt((a[:-1] ** 2).sum() * (a[1:] ** 2).sum())
    lag20 = (a[:-20] * a[20:]).sum() / np.sqrt((a[:-20] ** 2).sum() * (a[20:] ** 2).sum())
    assert 0.3 < lag1 < 0.999 and abs(lag20) < lag1  # evolves, and forgets


def test_coarsen_is_a_block_mean():
    x = np.arange(2 * 4 * 8, dtype=np.float32).reshape(1, 2, 4, 8)
    c = coarsen(x, 2)
    assert c.shape == (1, 2, 2, 4)
    assert c[0, 0, 0, 0] == np.mean([0, 1, 8, 9])
    with pytest.raises(ValueError, match="not divisible"):
        coarsen(x, 3)


def test_cache_is_keyed_by_content_and_reused(tmp_path):
    path, meta = generate(SMALL, tmp_path)
    assert meta["cached"] is False and meta["generation_s"] > 0 and meta["shape"] == [60, 3, 32, 64]
    path2, meta2 = generate(SMALL, tmp_path)
    assert path2 == path and meta2["cached"] is True and meta2["sha256"] == meta["sha256"]
    other, _ = generate(BarotropicConfig(**{**SMALL.__dict__, "beta": 1.0}), tmp_path)
    assert other.parent != path.parent


@pytest.mark.parametrize("change", [{"nlon": 96}, {"nlat": 7, "nlon": 14}, {"n_steps": 1}, {"dt": 0.0}])
def test_invalid_configurations(change):
    with pytest.raises(ValueError):
        BarotropicConfig(**{**SMALL.__dict__, **change})
