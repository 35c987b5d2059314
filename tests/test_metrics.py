"""Timing summaries and parity arithmetic on hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metrics.parity import (
    bounds_for,
    compare,
    compare_gradients,
    relative_differences,
    relative_l2,
    worst_repeat_difference,
)
from metrics.timing import summarize, time_steps


def test_relative_l2_hand_worked():
    ref = np.array([3.0, 4.0])  # norm 5
    assert relative_l2(np.array([3.0, 4.5]), ref) == pytest.approx(0.1)
    assert relative_l2(ref, ref) == 0.0
    assert relative_l2(np.zeros(2), np.zeros(2)) == 0.0
    assert relative_l2(np.ones(2), np.zeros(2)) == math.inf
    assert math.isnan(relative_l2(np.array([3.0, np.nan]), ref))
    assert math.isnan(relative_l2(ref, np.array([np.inf, 4.0])))
    with pytest.raises(ValueError, match="shapes differ"):
        relative_l2(np.ones(2), np.ones(3))


def test_gradient_comparison_names_the_worst_and_never_hides_a_nan():
    refs = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 2.0]), "c": np.array([4.0])}
    vals = {"a": np.array([1.01, 0.0]), "b": np.array([0.0, 2.1]), "c": np.array([4.0])}
    out = compare_gradients(vals, refs, ("ms", "pt"))
    assert out.where == "b" and out.worst == pytest.approx(0.05) and not out.nonfinite
    # A NaN in the first parameter (sorted order) used to survive max() only by coming first; anywhere now.
    for name in ("a", "b", "c"):
        bad = {**vals, name: np.full_like(vals[name], np.nan)}
        out = compare_gradients(bad, refs, ("ms", "pt"))
        assert out.nonfinite == [f"gradient of {name}"] and out.where != name
    with pytest.raises(ValueError, match="'d' is present on one side only"):
        compare_gradients({**vals, "d": np.zeros(1)}, refs, ("ms", "pt"))


def test_a_parameter_without_gradient_is_reported_never_compared_as_zeros():
    refs = {"used": np.array([1.0, 2.0]), "unused": None}
    both = compare_gradients({"used": np.array([1.0, 2.0]), "unused": np.zeros(2)}, refs, ("ms", "pt"))
    assert both.missing == ["unused"] and both.mismatch == [] and both.worst == 0.0
    one_side = compare_gradients({"used": np.array([1.0, 2.0]), "unused": np.array([0.0, 1e-3])}, refs, ("ms", "pt"))
    assert one_side.mismatch == ["unused (no gradient in pt)"]
    other_side = compare_gradients({"used": np.zeros(2), "unused": None}, refs, ("ms", "pt"))
    assert other_side.mismatch == ["used (no gradient in ms)"]


def _compare(grads_other, precision="fp32", kind="cpu", losses=(1.0, 0.9)):
    grads_ref = {"w": np.array([1.0, 2.0]), "norm": None}
    fwd = np.array([1.0, 2.0, 3.0])
    return compare((fwd, fwd), (grads_other, grads_ref), (list(losses), [1.0, 0.9]), ("ms", "pt"), precision, kind)


def test_parity_verdicts():
    good = {"w": np.array([1.0, 2.0]), "norm": np.zeros(2)}
    p = _compare(good)
    assert p["verdict"] == "pass" and p["within_tolerance"] is True and p["gradient_missing"] == ["norm"]
    nan = _compare({"w": np.array([np.nan, 2.0]), "norm": np.zeros(2)})
    assert nan["verdict"] == "fail" and nan["nonfinite"] == ["gradient of w"] and nan["gradient_max_rel_l2"] is None
    loss = _compare(good, losses=(1.0, math.inf))
    assert loss["verdict"] == "fail" and loss["nonfinite"] == ["loss at step 1"]
    assert loss["loss_rel_per_step"] == [0.0, None] and loss["loss_max_rel"] == 0.0
    one_sided = _compare({"w": np.array([1.0, 2.0]), "norm": np.array([0.0, 1.0])})
    assert one_sided["verdict"] == "fail" and one_sided["gradient_mismatch"] == ["norm (no gradient in pt)"]
    off = _compare({"w": np.array([1.0, 2.01]), "norm": None})
    assert off["verdict"] == "fail" and off["gradient_max_rel_l2"] == pytest.approx(0.01 / math.sqrt(5))
    # Low precision: a bound applies only where measured; elsewhere no pass and no fail.
    assert _compare(good, "fp16", "cpu")["verdict"] == "pass"
    for precision, kind in (("bf16", "cpu"), ("bf16", "cuda"), ("fp16", "ascend")):
        p = _compare(good, precision, kind)
        assert p["verdict"] == "bounds not established" and p["within_tolerance"] is None and p["tolerances"] is None
        assert p["bounds_source"].startswith("bounds not established")
    # A NaN fails even where no bound is established.
    assert _compare({"w": np.array([np.nan, 2.0]), "norm": None}, "bf16", "cuda")["verdict"] == "fail"
    assert bounds_for("fp32", "ascend")[0] == {"forward": 1e-5, "gradients": 1e-4, "losses": 1e-4}
    # Nothing to compare is a failure that says so, never a silent pass or an unexplained fail.
    nothing = compare(
        (np.ones(2), np.ones(2)), ({"a": None, "b": np.zeros(1)}, {"a": np.zeros(1), "b": None}),
        ([1.0], [1.0]), ("ms", "pt"), "fp32", "cpu",
    )  # fmt: skip
    assert nothing["verdict"] == "fail" and nothing["gradient_mismatch"] == [
        "no parameter has a gradient in both frameworks: nothing to compare"
    ]


def test_repeated_gradients_check_never_lets_a_nan_pass():
    """MindSpore's compiled-step check computes the gradients twice; a NaN in any parameter is the worst."""
    a = [np.array([1.0, 2.0]), np.array([3.0]), np.array([4.0])]
    assert worst_repeat_difference(a, [x.copy() for x in a], ["p", "q", "r"]) == (0.0, "p")
    b = [np.array([1.0, 2.0]), np.array([3.3]), np.array([np.nan])]
    assert worst_repeat_difference(a, b, ["p", "q", "r"]) == (math.inf, "r")  # after a finite 0.1 in "q"
    worst, where = worst_repeat_difference(a, [a[0], np.array([3.3]), a[2]], ["p", "q", "r"])
    assert where == "q" and worst == pytest.approx(0.1)


def test_relative_differences():
    assert relative_differences([1.0, 2.2, 0.0], [1.0, 2.0, 0.0]) == pytest.approx([0.0, 0.1, 0.0])
    assert relative_differences([1.0], [0.0]) == [math.inf]
    assert math.isnan(relative_differences([math.nan], [1.0])[0])


def test_summarize_percentiles():
    s = summarize([float(v) for v in range(1, 101)], "step")
    assert s["step_ms_p50"] == pytest.approx(50.5)
    assert s["step_ms_p90"] == pytest.approx(90.1)
    assert s["step_ms_min"] == 1 and s["step_ms_max"] == 100 and s["step_ms_mean"] == 50.5
    with pytest.raises(ValueError, match="no forward timings"):
        summarize([], "forward")


def test_time_steps_counts_warmup_apart_and_fences_each_step():
    import time

    events = []

    def step():
        events.append("step")
        time.sleep(0.003)

    out = time_steps(step, warmup=2, steps=5, synchronize=lambda: events.append("sync"))
    # Two untimed steps, one fence, then each timed step fenced on both sides.
    assert events == ["step", "step", "sync"] + ["sync", "step", "sync"] * 5
    # Each timing covers its step: never shorter than the step's 3 ms sleep.
    assert len(out) == 5 and min(out) >= 3.0, out


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
