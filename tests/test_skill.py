"""Skill metrics (latitude weights, RMSE, ACC, lead-time scores) against hand-worked values and xarray."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from conftest import run_python

from metrics.skill import (
    ACC,
    DEFAULT_ORDER,
    RMSE,
    Scores,
    acc,
    climatology_forecast,
    latitude_weights,
    persistence_forecast,
    rmse,
    rmse_mean_of_rmse,
    rmse_sqrt_of_mean_mse,
    score_lead_times,
    weighted_mse,
)

SQRT2 = math.sqrt(2.0)


def checkerboard(shape: tuple[int, ...]) -> np.ndarray:
    """+-1 pattern over (lat, lon): its weighted mean square is 1 under any weights."""
    lat, lon = np.indices(shape[-2:])
    return np.broadcast_to(np.where((lat + lon) % 2 == 0, 1.0, -1.0), shape).copy()


# ---------------------------------------------------------------------------------------------------------------
# Latitude weights


def test_cosine_weights_three_rows_by_hand():
    # Rows at 90, 0, -90: cos = 0, 1, 0; mean 1/3, so normalised weights 0, 3, 0.
    np.testing.assert_array_equal(latitude_weights(3), [0.0, 3.0, 0.0])


def test_cell_area_weights_three_rows_by_hand():
    # Bounds 90, 45, -45, -90: areas 1 - sqrt2/2, sqrt2, 1 - sqrt2/2 sum to 2; times 3/2 for mean 1.
    expected = [1.5 - 0.75 * SQRT2, 1.5 * SQRT2, 1.5 - 0.75 * SQRT2]
    np.testing.assert_allclose(latitude_weights(3, "cell-area"), expected, rtol=1e-14)
    assert latitude_weights(3, "cell-area")[0] == pytest.approx(0.439340, abs=1e-6)


@pytest.mark.parametrize("convention", ["cosine", "cell-area"])
@pytest.mark.parametrize("n_lat", [3, 4, 32, 721])
def test_weights_have_mean_one_and_are_symmetric(convention, n_lat):
    w = latitude_weights(n_lat, convention)
    assert w.shape == (n_lat,) and w.dtype == np.float64
    assert w.mean() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(w, w[::-1], rtol=1e-12, atol=1e-15)
    assert np.argmax(w) in (n_lat // 2, (n_lat - 1) // 2)


def test_cosine_weights_are_zero_at_the_poles_and_cell_area_are_not():
    cos, area = latitude_weights(721), latitude_weights(721, "cell-area")
    assert cos[0] == 0.0 and cos[-1] == 0.0 and cos[1] > 0.0
    assert area[0] > 0.0 and area[-1] > 0.0
    # Interior rows of an equiangular grid: the cell area is 2 cos(lat) sin(d/2), proportional to cosine.
    ratio = area[1:-1] / cos[1:-1]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-10)
    assert ratio[0] != pytest.approx(1.0, abs=1e-9)  # the pole caps take their share of the mean


def test_pole_free_grid_cell_area_equals_cosine_by_hand():
    # Rows at +-67.5, +-22.5 (45 deg spacing, no poles): both conventions give 2 - sqrt2, sqrt2, sqrt2, 2 - sqrt2.
    lats = np.array([67.5, 22.5, -22.5, -67.5])
    expected = [2 - SQRT2, SQRT2, SQRT2, 2 - SQRT2]
    np.testing.assert_allclose(latitude_weights(4, "cosine", lats), expected, rtol=1e-14)
    np.testing.assert_allclose(latitude_weights(4, "cell-area", lats), expected, rtol=1e-14)


def test_ascending_latitudes_reverse_the_weights():
    south_to_north = np.linspace(-90.0, 90.0, 7)
    for convention in ("cosine", "cell-area"):
        np.testing.assert_allclose(
            latitude_weights(7, convention, south_to_north), latitude_weights(7, convention)[::-1], rtol=1e-14
        )


def test_bad_weight_arguments_raise():
    with pytest.raises(ValueError, match="unknown latitude-weighting convention 'area'; known: cosine, cell-area"):
        latitude_weights(8, "area")
    with pytest.raises(ValueError, match="n_lat must be an integer of at least 2, got 1"):
        latitude_weights(1)
    with pytest.raises(ValueError, match="sum to zero"):
        latitude_weights(2)  # rows at the two poles only
    with pytest.raises(ValueError, match=r"lats_deg must have shape \(3,\), got \(4,\)"):
        latitude_weights(3, lats_deg=np.zeros(4))
    with pytest.raises(ValueError, match="strictly increasing or strictly decreasing"):
        latitude_weights(3, lats_deg=np.array([0.0, 10.0, 5.0]))
    with pytest.raises(ValueError, match=r"within \[-90, 90\]"):
        latitude_weights(2, lats_deg=np.array([95.0, 0.0]))


# ---------------------------------------------------------------------------------------------------------------
# RMSE


@pytest.mark.parametrize("convention", ["cosine", "cell-area"])
def test_constant_difference_is_the_rmse_under_any_weights(convention):
    w = latitude_weights(6, convention)
    pred = np.full((2, 3, 6, 5), 4.0)
    truth = np.full((2, 3, 6, 5), 1.5)
    np.testing.assert_allclose(rmse(pred, truth, w), np.full((2, 3), 2.5), rtol=1e-14)
    np.testing.assert_allclose(rmse(truth, pred, w), np.full((2, 3), 2.5), rtol=1e-14)


def test_cosine_pattern_weighted_mean_by_hand():
    # Rows 90, 45, 0, -45, -90; error cos(lat) = 0, c, 1, c, 0 with c = sqrt2/2, weights proportional to cos.
    # Weighted MSE = sum cos^3 / sum cos = (1 + 2c^3) / (1 + 2c) = (1 + sqrt2/2) / (1 + sqrt2) = sqrt2 / 2.
    err = np.array([0.0, SQRT2 / 2, 1.0, SQRT2 / 2, 0.0])[:, None] * np.ones((5, 4))
    pred = np.stack([err, 2.0 * err])  # channels: error and twice the error
    w = latitude_weights(5)
    np.testing.assert_allclose(weighted_mse(pred, np.zeros_like(pred), w), [SQRT2 / 2, 2 * SQRT2], rtol=1e-14)
    np.testing.assert_allclose(rmse(pred, np.zeros_like(pred), w), [2**-0.25, 2 * 2**-0.25], rtol=1e-14)
    # The weighted mean divides by sum(w): un-normalised weights (here 7 cos(lat)) give the same value.
    raw = 7.0 * np.array([0.0, SQRT2 / 2, 1.0, SQRT2 / 2, 0.0])
    np.testing.assert_allclose(rmse(pred, np.zeros_like(pred), raw), [2**-0.25, 2 * 2**-0.25], rtol=1e-14)


def test_pole_rows_count_under_cell_area_only():
    # Error 1 on the pole rows of a 3-row grid: cosine ignores them; cell area gives MSE 2 (1.5 - 0.75 sqrt2) / 3.
    pred = np.array([[[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]])
    truth = np.zeros_like(pred)
    assert rmse(pred, truth, latitude_weights(3))[0] == 0.0
    expected = math.sqrt(1 - SQRT2 / 2)
    assert rmse(pred, truth, latitude_weights(3, "cell-area"))[0] == pytest.approx(expected, rel=1e-14)


def test_std_scales_rmse_to_physical_units():
    pred = np.full((2, 3, 4), 0.5)
    truth = np.zeros((2, 3, 4))
    w = latitude_weights(3)
    np.testing.assert_allclose(rmse(pred, truth, w, std=np.array([2.0, 10.0])), [1.0, 5.0], rtol=1e-14)
    np.testing.assert_allclose(weighted_mse(pred, truth, w, std=[2.0, 10.0]), [1.0, 25.0], rtol=1e-14)
    for order in ("mean_of_rmse", "sqrt_of_mean_mse"):
        out = RMSE(order=order).compute(pred[None], truth[None], std=[2.0, 10.0])
        np.testing.assert_allclose(out, [1.0, 5.0], rtol=1e-14)


def test_perfect_forecast_has_zero_rmse():
    truth = np.random.default_rng(0).normal(size=(3, 2, 5, 6))
    assert np.all(rmse(truth, truth.copy(), latitude_weights(5)) == 0.0)


def test_the_two_orders_differ_by_hand():
    # Sample errors 1 and 3 everywhere: mean of RMSEs (1 + 3) / 2 = 2; root of mean MSE sqrt((1 + 9) / 2) = sqrt5.
    truth = np.zeros((2, 1, 4, 3))
    pred = np.stack([np.full((1, 4, 3), 1.0), np.full((1, 4, 3), -3.0)])
    w = latitude_weights(4, "cell-area")
    assert rmse_mean_of_rmse(pred, truth, w)[0] == pytest.approx(2.0, rel=1e-14)
    assert rmse_sqrt_of_mean_mse(pred, truth, w)[0] == pytest.approx(math.sqrt(5.0), rel=1e-14)
    diff = rmse_sqrt_of_mean_mse(pred, truth, w) - rmse_mean_of_rmse(pred, truth, w)
    assert diff[0] == pytest.approx(math.sqrt(5.0) - 2.0, rel=1e-12)  # 0.2360...
    assert RMSE(order="mean_of_rmse").compute(pred, truth)[0] == pytest.approx(2.0, rel=1e-14)
    assert RMSE().compute(pred, truth)[0] == pytest.approx(math.sqrt(5.0), rel=1e-14)


def test_default_order_is_weatherbench():
    assert DEFAULT_ORDER == "sqrt_of_mean_mse"
    assert RMSE().order == DEFAULT_ORDER and RMSE().convention == "cosine"


def test_rmse_orders_average_over_axis_zero_only():
    rng = np.random.default_rng(1)
    pred, truth = rng.normal(size=(2, 3, 4, 5, 6, 7)), rng.normal(size=(2, 3, 4, 5, 6, 7))
    w = latitude_weights(6)
    per_sample = rmse(pred, truth, w)
    assert per_sample.shape == (2, 3, 4, 5)
    np.testing.assert_allclose(rmse_mean_of_rmse(pred, truth, w), per_sample.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(rmse_sqrt_of_mean_mse(pred, truth, w), np.sqrt((per_sample**2).mean(axis=0)))


def test_rmse_shape_errors():
    w = latitude_weights(3)
    with pytest.raises(ValueError, match=r"pred and truth shapes differ: \(1, 3, 4\) vs \(1, 3, 5\)"):
        rmse(np.zeros((1, 3, 4)), np.zeros((1, 3, 5)), w)
    with pytest.raises(ValueError, match=r"fields must have shape \(\.\.\., channel, lat, lon\)"):
        rmse(np.zeros((3, 4)), np.zeros((3, 4)), w)
    with pytest.raises(ValueError, match=r"weights must have shape \(3,\) to match the lat axis"):
        rmse(np.zeros((1, 3, 4)), np.zeros((1, 3, 4)), np.ones(4))
    with pytest.raises(ValueError, match="weights must be finite, non-negative and not all zero"):
        rmse(np.zeros((1, 3, 4)), np.zeros((1, 3, 4)), np.array([1.0, -1.0, 3.0]))
    with pytest.raises(ValueError, match=r"std must have shape \(2,\) to match the channel axis"):
        rmse(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), w, std=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="averaging over samples needs shape"):
        rmse_mean_of_rmse(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), w)
    with pytest.raises(ValueError, match="averaging over samples needs shape"):
        RMSE().compute(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))


def test_metric_objects_validate_and_are_frozen():
    with pytest.raises(ValueError, match="unknown RMSE order 'fourcastnet'; known: sqrt_of_mean_mse, mean_of_rmse"):
        RMSE(order="fourcastnet")
    with pytest.raises(ValueError, match="unknown latitude-weighting convention 'gaussian'"):
        ACC(convention="gaussian")
    with pytest.raises(dataclasses.FrozenInstanceError):
        RMSE().convention = "cell-area"


# ---------------------------------------------------------------------------------------------------------------
# ACC


def test_acc_perfect_and_anti_correlated():
    rng = np.random.default_rng(2)
    clim = rng.normal(size=(2, 5, 6))
    truth = clim + rng.normal(size=(4, 2, 5, 6))
    w = latitude_weights(5)
    np.testing.assert_allclose(acc(truth, truth, clim, w), np.ones((4, 2)), rtol=1e-14)
    np.testing.assert_allclose(acc(2 * clim - truth, truth, clim, w), -np.ones((4, 2)), rtol=1e-14)  # p' = -t'
    np.testing.assert_allclose(ACC().compute(truth, truth, clim), [1.0, 1.0], rtol=1e-14)


def test_acc_by_hand_with_uneven_weights():
    # t' = [[1, 0], [0, 1]], p' = [[1, 1], [0, 0]], row weights 3 and 1:
    # sum w p't' = 3, sum w p'^2 = 6, sum w t'^2 = 3 + 1 = 4, ACC = 3 / sqrt(24).
    clim = np.full((1, 2, 2), 10.0)
    truth = clim + np.array([[[1.0, 0.0], [0.0, 1.0]]])
    pred = clim + np.array([[[1.0, 1.0], [0.0, 0.0]]])
    assert acc(pred, truth, clim, np.array([3.0, 1.0]))[0] == pytest.approx(3.0 / math.sqrt(24.0), rel=1e-14)
    assert acc(pred, truth, clim, np.array([1.0, 1.0]))[0] == pytest.approx(0.5, rel=1e-14)


def test_acc_removes_no_extra_mean():
    # A constant anomaly of +1 against a forecast anomaly of +2: ACC 1 (a centred correlation would be undefined).
    clim = np.zeros((1, 3, 4))
    assert acc(np.full((1, 3, 4), 2.0), np.ones((1, 3, 4)), clim, latitude_weights(3))[0] == pytest.approx(1.0)


def test_zero_denominator_acc_is_nan():
    w = latitude_weights(3)
    clim = np.zeros((1, 3, 4))
    truth = checkerboard((1, 3, 4))
    assert np.isnan(acc(clim, truth, clim, w)[0])  # zero forecast anomaly
    assert np.isnan(acc(truth, clim, clim, w)[0])  # zero verifying anomaly
    poles_only = np.zeros((1, 3, 4))
    poles_only[:, [0, 2]] = 1.0
    assert np.isnan(acc(poles_only, poles_only, clim, w)[0])  # anomalies only on zero-weight rows
    assert acc(poles_only, poles_only, clim, latitude_weights(3, "cell-area"))[0] == pytest.approx(1.0)
    # One undefined sample makes the mean over samples NaN; it is not dropped.
    pair = np.stack([truth, clim])
    assert np.isnan(ACC().compute(pair, np.stack([truth, truth]), clim)[0])


def test_acc_clim_must_broadcast():
    w = latitude_weights(3)
    with pytest.raises(ValueError, match=r"clim of shape \(2, 3, 4\) does not broadcast to the fields' shape"):
        acc(np.zeros((1, 3, 4)), np.zeros((1, 3, 4)), np.zeros((2, 3, 4)), w)
    with pytest.raises(ValueError, match="does not broadcast"):
        acc(np.zeros((1, 3, 4)), np.zeros((1, 3, 4)), np.zeros((1, 3, 5)), w)


# ---------------------------------------------------------------------------------------------------------------
# Independent check with xarray's weighted mean


@pytest.mark.parametrize("convention", ["cosine", "cell-area"])
def test_agrees_with_xarray_weighted_mean(convention):
    xr = pytest.importorskip("xarray")
    rng = np.random.default_rng(3)
    n_init, n_ch, n_lat, n_lon = 3, 2, 7, 8
    dims = ("init", "channel", "lat", "lon")
    if convention == "cosine":
        lats = 90.0 - np.arange(n_lat) * 180.0 / (n_lat - 1)
        raw = np.cos(np.deg2rad(lats))  # un-normalised, the pole rows as computed (about 6e-17)
    else:
        lats = -90.0 + (np.arange(n_lat) + 0.5) * 180.0 / n_lat  # pole-free, south to north
        bounds = np.concatenate([[-90.0], (lats[:-1] + lats[1:]) / 2, [90.0]])  # WeatherBench 2's construction
        raw = np.diff(np.sin(np.deg2rad(bounds)))
    weights = xr.DataArray(raw, dims="lat", coords={"lat": lats})
    pred_np, truth_np = rng.normal(size=(2, n_init, n_ch, n_lat, n_lon))
    clim_np = rng.normal(size=(n_ch, n_lat, n_lon))
    pred = xr.DataArray(pred_np, dims=dims, coords={"lat": lats})
    truth = xr.DataArray(truth_np, dims=dims, coords={"lat": lats})
    clim = xr.DataArray(clim_np, dims=dims[1:], coords={"lat": lats})

    sq = (pred - truth) ** 2
    w = latitude_weights(n_lat, convention, lats)
    np.testing.assert_allclose(weighted_mse(pred_np, truth_np, w), sq.weighted(weights).mean(("lat", "lon")), 1e-12)
    wb2 = np.sqrt(sq.weighted(weights).mean(("init", "lat", "lon")))
    np.testing.assert_allclose(RMSE(convention).compute(pred_np, truth_np, lats_deg=lats), wb2, rtol=1e-12)
    fcn = np.sqrt(sq.weighted(weights).mean(("lat", "lon"))).mean("init")
    got = RMSE(convention, "mean_of_rmse").compute(pred_np, truth_np, lats_deg=lats)
    np.testing.assert_allclose(got, fcn, rtol=1e-12)

    pa, ta = pred - clim, truth - clim
    space = ("lat", "lon")
    den = np.sqrt((pa**2).weighted(weights).sum(space) * (ta**2).weighted(weights).sum(space))
    expected_acc = ((pa * ta).weighted(weights).sum(space) / den).mean("init")
    np.testing.assert_allclose(ACC(convention).compute(pred_np, truth_np, clim_np, lats), expected_acc, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Lead-time scores and reference forecasts


def test_score_lead_times_by_hand():
    # Forecast anomaly a_k * t' with |t'| = 1: RMSE |1 - a_k| * std, ACC sign(a_k).
    n_init, n_lead = 3, 3
    clim = np.full((2, 5, 4), 7.0)
    anomaly = checkerboard((n_init, n_lead, 2, 5, 4))
    truth = clim + anomaly
    scale = np.array([1.0, 0.5, -1.0])[None, :, None, None, None]
    scores = score_lead_times(clim + scale * anomaly, truth, clim, std=[1.0, 10.0], channels=("z500", "t850"))
    np.testing.assert_allclose(scores.rmse, [[0.0, 0.0], [0.5, 5.0], [2.0, 20.0]], atol=1e-14)
    np.testing.assert_allclose(scores.acc, [[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]], rtol=1e-14)
    assert (scores.convention, scores.order, scores.channels) == ("cosine", "sqrt_of_mean_mse", ("z500", "t850"))
    other = score_lead_times(clim + scale * anomaly, truth, clim, convention="cell-area", order="mean_of_rmse")
    assert (other.convention, other.order, other.channels) == ("cell-area", "mean_of_rmse", None)


def test_score_lead_times_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"forecasts must have shape \(n_init, n_lead, channel, lat, lon\)"):
        score_lead_times(np.zeros((2, 1, 3, 4)), np.zeros((2, 1, 3, 4)), np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="pred and truth shapes differ"):
        score_lead_times(np.zeros((2, 2, 1, 3, 4)), np.zeros((2, 1, 1, 3, 4)), np.zeros((1, 3, 4)))


def test_persistence_forecast_scores_by_hand():
    # Truth alternates between the initial anomaly and its negative: persistence RMSE 0, 2, 0 and ACC 1, -1, 1.
    clim = np.full((1, 3, 4), 5.0)
    a = checkerboard((2, 1, 3, 4))
    initial = clim + a
    forecast = persistence_forecast(initial, 3)
    assert forecast.shape == (2, 3, 1, 3, 4)
    for k in range(3):
        np.testing.assert_array_equal(forecast[:, k], initial)
    truth = clim + np.stack([a, -a, a], axis=1)
    scores = score_lead_times(forecast, truth, clim, convention="cell-area")
    np.testing.assert_allclose(scores.rmse[:, 0], [0.0, 2.0, 0.0], atol=1e-14)
    np.testing.assert_allclose(scores.acc[:, 0], [1.0, -1.0, 1.0], rtol=1e-14)


def test_climatology_forecast_has_reference_rmse_and_nan_acc():
    clim = np.arange(24.0).reshape(2, 3, 4)
    forecast = climatology_forecast(clim, n_init=2, n_lead=3)
    assert forecast.shape == (2, 3, 2, 3, 4)
    np.testing.assert_array_equal(forecast[1, 2], clim)
    forecast[0, 0, 0, 0, 0] = -1.0  # a writable copy, not a view of clim
    assert clim[0, 0, 0] == 0.0
    truth = clim + 3.0 * checkerboard((2, 3, 2, 3, 4))
    scores = score_lead_times(climatology_forecast(clim, 2, 3), truth, clim)
    np.testing.assert_allclose(scores.rmse, np.full((3, 2), 3.0), rtol=1e-14)
    assert np.all(np.isnan(scores.acc))


def test_reference_forecast_arguments_are_checked():
    with pytest.raises(ValueError, match="n_lead must be a positive integer, got 0"):
        persistence_forecast(np.zeros((1, 1, 3, 4)), 0)
    with pytest.raises(ValueError, match=r"initial_states must have shape \(n_init, channel, lat, lon\)"):
        persistence_forecast(np.zeros((1, 3, 4)), 2)
    with pytest.raises(ValueError, match="n_init must be a positive integer, got 2.0"):
        climatology_forecast(np.zeros((1, 3, 4)), 2.0, 1)
    with pytest.raises(ValueError, match=r"clim must have shape \(channel, lat, lon\)"):
        climatology_forecast(np.zeros((3, 4)), 1, 1)


def test_scores_are_read_only_copies_and_checked():
    rmse_values = np.zeros((2, 1))
    scores = Scores(rmse_values, np.ones((2, 1)), "cosine", "mean_of_rmse", ("z500",))
    with pytest.raises(ValueError, match="read-only"):
        scores.rmse[0, 0] = 1.0
    rmse_values[0, 0] = 1.0  # the caller's array stays writable and separate
    assert scores.rmse[0, 0] == 0.0
    with pytest.raises(ValueError, match="2 channel names given for 1 channels"):
        Scores(np.zeros((2, 1)), np.zeros((2, 1)), "cosine", "mean_of_rmse", ("z500", "t850"))
    with pytest.raises(ValueError, match=r"rmse and acc must share a \(lead, channel\) shape"):
        Scores(np.zeros((2, 1)), np.zeros((3, 1)), "cosine", "mean_of_rmse")
    with pytest.raises(ValueError, match="unknown RMSE order"):
        Scores(np.zeros((2, 1)), np.zeros((2, 1)), "cosine", "rms")


def test_module_imports_no_framework_and_no_xarray():
    proc = run_python(
        "import sys, metrics.skill\n"
        "loaded = sorted(m for m in ('torch', 'mindspore', 'xarray', 'pandas') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
        "print('ok')"
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
