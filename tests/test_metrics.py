"""Timing summaries and parity arithmetic on hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrics.parity import relative_differences, relative_l2, worst_relative_l2
from metrics.timing import summarize, time_steps


def test_relative_l2_hand_worked():
    ref = np.array([3.0, 4.0])  # norm 5
    assert relative_l2(np.array([3.0, 4.5]), ref) == pytest.approx(0.1)
    assert relative_l2(ref, ref) == 0.0
    assert relative_l2(np.zeros(2), np.zeros(2)) == 0.0
    assert relative_l2(np.ones(2), np.zeros(2)) == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        relative_l2(np.ones(2), np.ones(3))


def test_worst_relative_l2_names_the_worst_key():
    refs = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 2.0]), "c": np.zeros(1)}
    vals = {"a": np.array([1.01, 0.0]), "b": np.array([0.0, 2.1]), "c": np.zeros(1)}
    worst, where = worst_relative_l2(vals, refs)
    assert where == "b" and worst == pytest.approx(0.05)
    with pytest.raises(ValueError, match="'d' is present on one side only"):
        worst_relative_l2({**vals, "d": np.zeros(1)}, refs)


def test_relative_differences():
    assert relative_differences([1.0, 2.2, 0.0], [1.0, 2.0, 0.0]) == pytest.approx([0.0, 0.1, 0.0])
    assert relative_differences([1.0], [0.0]) == [math.inf]


def test_summarize_percentiles():
    s = summarize([float(v) for v in range(1, 101)], "step")
    assert s["step_ms_p50"] == pytest.approx(50.5)
    assert s["step_ms_p90"] == pytest.approx(90.1)
    assert s["step_ms_min"] == 1 and s["step_ms_max"] == 100 and s["step_ms_mean"] == 50.5
    with pytest.raises(ValueError, match="no forward timings"):
        summarize([], "forward")


def test_time_steps_counts_warmup_apart_and_fences_each_step():
    calls, fences = [], []
    out = time_steps(lambda: calls.append(1), warmup=2, steps=5, synchronize=lambda: fences.append(1))
    assert len(out) == 5 and len(calls) == 7 and all(t >= 0 for t in out)
    assert len(fences) == 1 + 2 * 5


def test_masked_skill_uses_only_the_cells_at_sea():
    """Hand-worked: a 2 x 2 field with uniform weights; land carries an error of 100 that the mask must hide;
    channel 1's mask keeps one cell only."""
    from metrics.skill import latitude_weights, rmse, score_lead_times, weighted_mse

    truth = np.zeros((1, 2, 2, 2))
    pred = np.array([[[[1.0, 3.0], [100.0, 1.0]], [[2.0, 100.0], [100.0, 100.0]]]])
    mask = np.array([[[1, 1], [0, 1]], [[1, 0], [0, 0]]])
    w = latitude_weights(2, "uniform")
    assert weighted_mse(pred, truth, w, mask=mask)[0].tolist() == [(1 + 9 + 1) / 3, 4.0]
    assert rmse(pred, truth, w, mask=mask[0])[0, 0] == np.sqrt(11 / 3)  # one mask for every channel
    with pytest.raises(ValueError, match="mask must have shape"):
        weighted_mse(pred, truth, w, mask=np.ones((3, 2)))
    with pytest.raises(ValueError, match="at least one cell"):
        weighted_mse(pred, truth, w, mask=np.zeros((2, 2, 2)))
    clim = np.zeros((2, 2, 2))
    s = score_lead_times(pred[None], np.ones((1, 1, 2, 2, 2)), clim, convention="uniform", mask=mask)
    assert s.acc[0, 1] == 1.0  # channel 1's only sea cell: prediction 2, truth 1, both positive anomalies
    assert np.isclose(s.rmse[0, 0], np.sqrt((0 + 4 + 0) / 3))
