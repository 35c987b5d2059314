"""Numerical parity between two frameworks' outputs: relative L2 differences, the bounds that apply, and the
verdict. A NaN or Inf anywhere fails the check and is named; a parameter without a gradient is reported as
such, never compared as zeros; low-precision bounds apply only where they were measured."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# fp32: the acceptance bounds every device must meet (a requirement of the paired runners, checked on CPU).
FP32_BOUNDS = {"forward": 1e-5, "gradients": 1e-4, "losses": 1e-4}
# Low precision: each framework rounds differently (kernels, accumulation order), so the two agree only to the
# dtype's resolution. A bound applies only to a (precision, device kind) on which both frameworks have run; each
# says where its figures come from. Every other combination is "bounds not established".
MEASURED_BOUNDS: dict[tuple[str, str], tuple[dict[str, float], str]] = {
    ("fp16", "cpu"): (
        {"forward": 5e-3, "gradients": 1e-1, "losses": 1e-4},
        "fp16 on CPU, fourcastnet-tiny, seed 12345, 21 Adam steps, torch 2.13.0 and MindSpore 2.10.0 (2026-12-02): "
        "measured forward 4.7e-4, gradients 2.0e-2, losses 9.4e-6; bounds 5x (gradients) to 10x those",
    ),
}
NOT_ESTABLISHED = "bounds not established"


def bounds_for(precision: str, device_kind: str) -> tuple[dict[str, float] | None, str]:
    """The bounds that apply to a comparison at ``precision`` on ``device_kind``, and where they come from;
    ``(None, why)`` where no run has established them."""
    if precision == "fp32":
        return dict(FP32_BOUNDS), "fp32 acceptance bounds of the paired runners"
    if (precision, device_kind) in MEASURED_BOUNDS:
        bounds, source = MEASURED_BOUNDS[precision, device_kind]
        return dict(bounds), source
    return None, f"{NOT_ESTABLISHED}: no {precision} comparison on {device_kind} has been measured yet"


def relative_l2(value: np.ndarray, reference: np.ndarray) -> float:
    """``||value - reference|| / ||reference||`` in float64; 0 when both are exactly zero.

    A zero reference with a non-zero value gives ``inf``: a difference that cannot be scaled is
    never reported as small. A NaN or Inf in either gives NaN or Inf, which :func:`compare` names.
    """
    v = np.asarray(value, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if v.shape != r.shape:
        raise ValueError(f"shapes differ: {v.shape} vs {r.shape}")
    if not (np.isfinite(v).all() and np.isfinite(r).all()):
        return math.nan
    diff = float(np.linalg.norm(v - r))
    norm = float(np.linalg.norm(r))
    if norm == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / norm


def relative_differences(values: list[float], references: list[float]) -> list[float]:
    """Element-wise ``|v - r| / |r|`` for scalar sequences such as per-step losses (NaN where either is not
    finite, Inf where only the reference is zero)."""
    if len(values) != len(references):
        raise ValueError(f"lengths differ: {len(values)} vs {len(references)}")
    out = []
    for v, r in zip(values, references, strict=True):
        if not (math.isfinite(v) and math.isfinite(r)):
            out.append(math.nan)
        else:
            out.append(0.0 if v == r else abs(v - r) / abs(r) if r else math.inf)
    return out


def has_gradient(g: np.ndarray | None) -> bool:
    """Absent, or exactly zero everywhere, is no gradient: PyTorch leaves ``.grad`` unset for a parameter the
    loss does not reach, MindSpore returns zeros for it."""
    return g is not None and bool(np.any(np.asarray(g) != 0))


@dataclass
class GradientComparison:
    worst: float | None  # largest finite relative L2 over the parameters both sides have a gradient for
    where: str | None
    nonfinite: list[str] = field(default_factory=list)  # parameters whose difference is NaN or Inf
    missing: list[str] = field(default_factory=list)  # no gradient on either side
    mismatch: list[str] = field(default_factory=list)  # a gradient on one side only, as a phrase


def compare_gradients(
    values: dict[str, np.ndarray | None], references: dict[str, np.ndarray | None], names: tuple[str, str]
) -> GradientComparison:
    """Compare two frameworks' gradients by parameter name; ``names`` are (values' side, references' side)."""
    if set(values) != set(references):
        odd = sorted(set(values) ^ set(references))[0]
        raise ValueError(f"parameter '{odd}' is present on one side only")
    if not references:
        raise ValueError("nothing to compare")
    out = GradientComparison(None, None)
    diffs = {}
    for name in sorted(references):
        has_v, has_r = has_gradient(values[name]), has_gradient(references[name])
        if not has_v and not has_r:
            out.missing.append(name)
        elif has_v != has_r:
            without = names[0] if not has_v else names[1]
            out.mismatch.append(f"{name} (no gradient in {without})")
        else:
            d = relative_l2(values[name], references[name])
            if math.isfinite(d):
                diffs[name] = d
            else:
                out.nonfinite.append(f"gradient of {name}")
    if diffs:
        out.where = max(diffs, key=diffs.__getitem__)
        out.worst = diffs[out.where]
    return out


def worst_repeat_difference(first: list[np.ndarray], second: list[np.ndarray], names: list[str]) -> tuple[float, str]:
    """The largest ``max|a - b| / max|a|`` over named arrays computed twice from the same inputs, and where;
    a NaN or Inf difference counts as infinitely large, so that it can never pass a bound."""
    worst, where = 0.0, ""
    for name, a, b in zip(names, first, second, strict=True):
        d = float(np.abs(a - b).max() / (np.abs(a).max() + 1e-30))
        d = d if math.isfinite(d) else math.inf
        if d > worst or not where:
            worst, where = d, name
    return worst, where


def _finite_max(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else None


def compare(
    forward: tuple[np.ndarray, np.ndarray],
    gradients: tuple[dict, dict],
    losses: tuple[list[float], list[float]],
    names: tuple[str, str],
    precision: str,
    device_kind: str,
) -> dict:
    """The parity of ``names[0]`` (other) against ``names[1]`` (reference): each pair is (other, reference).

    The verdict is ``fail`` on any NaN or Inf (listed in ``nonfinite``), any parameter with a gradient on one
    side only (``gradient_mismatch``) or any figure over its bound; ``bounds not established`` where no bound
    applies; else ``pass``. Figures are None where not finite, never NaN."""
    fwd = relative_l2(*forward)
    grads = compare_gradients(*gradients, names)
    loss_rel = relative_differences(*losses)
    nonfinite = ([] if math.isfinite(fwd) else ["forward output"]) + grads.nonfinite
    nonfinite += [f"loss at step {i}" for i, v in enumerate(loss_rel) if not math.isfinite(v)]
    bounds, source = bounds_for(precision, device_kind)
    figures = {"forward": fwd if math.isfinite(fwd) else None, "gradients": grads.worst}
    figures["losses"] = _finite_max(loss_rel)
    if grads.worst is None and not grads.nonfinite:
        grads.mismatch.append("no parameter has a gradient in both frameworks: nothing to compare")
    if nonfinite or grads.mismatch:
        within, verdict = False, "fail"
    elif bounds is None:
        within, verdict = None, NOT_ESTABLISHED
    else:
        within = all(figures[k] is not None and figures[k] <= bounds[k] for k in bounds)
        verdict = "pass" if within else "fail"
    return {
        "other": names[0],
        "reference": names[1],
        "forward_rel_l2": figures["forward"],
        "gradient_max_rel_l2": figures["gradients"],
        "gradient_worst_parameter": grads.where,
        "loss_max_rel": figures["losses"],
        "loss_rel_per_step": [v if math.isfinite(v) else None for v in loss_rel],
        "nonfinite": nonfinite,
        "gradient_missing": grads.missing,
        "gradient_mismatch": grads.mismatch,
        "tolerances": bounds,
        "bounds_source": source,
        "within_tolerance": within,
        "verdict": verdict,
    }


# Forecast trajectories: the first lead is one forward pass, held to the forward bound of the precision; later
# leads feed each framework's own output back, so rounding differences compound with the model's own growth.
# fp32 on CPU, measured (2026-12-02, torch 2.13.0, MindSpore 2.10.0, fresh weights; seeds 1, 2, 3, 11; eager and
# compiled; batch 1, 2 and 8): the worst relative L2 over 40 leads of fourcastnet-tiny was 1.7e-6 (4.0e-7 at seed
# 11), over 10 leads of aigoms-tiny 4.6e-7. Every lead is held to 10x the fp32 forward bound (1e-4), about 60 times
# the worst measured. Elsewhere (other precisions, other devices) no trajectory has been measured: "bounds not
# established".
TRAJECTORY_GROWTH = 10.0
TRAJECTORIES_MEASURED = {("fp32", "cpu")}


def compare_trajectories(
    other: np.ndarray, reference: np.ndarray, names: tuple[str, str], precision: str, device_kind: str,
    leads: list[int] | None = None,
) -> dict:  # fmt: skip
    """The parity of two forecasts (members, lead, channel, lat, lon) from the same initial conditions: the
    relative L2 difference at each lead, the bounds and the verdict (``fail`` on any NaN or Inf, named).
    ``leads``: the (1-based, increasing) lead numbers of axis 1 where only some leads were kept, the first and the
    last among them; ``rel_l2_per_lead`` then has every lead up to the last, None at those not compared."""
    if other.shape != reference.shape or other.ndim < 2:
        raise ValueError(f"trajectories differ in shape: {other.shape} vs {reference.shape}")
    leads = list(range(1, reference.shape[1] + 1)) if leads is None else [int(k) for k in leads]
    if len(leads) != reference.shape[1]:
        raise ValueError(f"{len(leads)} lead numbers for {reference.shape[1]} leads")
    compared = {k: relative_l2(other[:, i], reference[:, i]) for i, k in enumerate(leads)}
    per_lead = [compared.get(k, math.nan) for k in range(1, max(leads, default=0) + 1)]
    nonfinite = [f"lead {k}" for k, v in compared.items() if not math.isfinite(v)]
    bounds, source = bounds_for(precision, device_kind)
    tolerances = None
    if (precision, device_kind) not in TRAJECTORIES_MEASURED:
        source = f"{NOT_ESTABLISHED}: no {precision} forecast trajectories on {device_kind} have been measured yet"
    elif bounds is not None:
        tolerances = {"first_lead": bounds["forward"], "every_lead": bounds["forward"] * TRAJECTORY_GROWTH}
        source += f"; every lead within {TRAJECTORY_GROWTH:g}x the forward bound (trajectories measured on CPU)"
    first = per_lead[0] if per_lead and math.isfinite(per_lead[0]) else None
    worst = _finite_max(per_lead)
    if nonfinite:
        within, verdict = False, "fail"
    elif tolerances is None:
        within, verdict = None, NOT_ESTABLISHED
    else:
        within = first is not None and first <= tolerances["first_lead"] and worst <= tolerances["every_lead"]
        verdict = "pass" if within else "fail"
    return {
        "other": names[0],
        "reference": names[1],
        "rel_l2_per_lead": [v if math.isfinite(v) else None for v in per_lead],
        "rel_l2_first_lead": first,
        "rel_l2_max": worst,
        "tolerances": tolerances,
        "bounds_source": source,
        "nonfinite": nonfinite,
        "within_tolerance": within,
        "verdict": verdict,
    }
