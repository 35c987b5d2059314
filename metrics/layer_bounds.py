"""Per-layer bounds for low-precision comparisons, measured with ``pairbench diagnose`` on a named CPU and applied
only where the same comparison runs on a CPU with the same relevant features (metrics.device.cpu) and the same framework
versions: low-precision differences depend on the kernels a CPU and a framework release pick (AMX or AVX-512 BF16
matrix products, 512- or 256-bit compiled code), so a bound measured on one is never assumed on another.

An entry (``layer_bounds.json`` beside this module, written by ``scripts/measure_layer_bounds.py``) holds, for a
workload and two sides (their labels, as ``pairbench diagnose --a/--b`` read them): the CPU's model name and
features, the framework versions, the seeds, and per layer and per parameter gradient the largest relative L2
difference measured over the seeds and the bound: ``FACTOR`` times the larger of that and ``SHARE`` of the largest
difference of its kind (layers, gradients) in the comparison, and at least ``FLOOR``. The share keeps a layer or a
small parameter that happened to agree closely in the measured seeds from being held to a bound that another seed
exceeds (a bias gradient measured at 1.9e-4 over three seeds gave 1.0e-3 in a fourth); a layer bit-identical in
every seed is held to the share, not to zero. fp32 comparisons keep metrics.parity's acceptance bounds."""

from __future__ import annotations

import json
import math
from pathlib import Path

from runners.errors import PairbenchError

FILE = Path(__file__).with_name("layer_bounds.json")
FACTOR = 5.0
SHARE = 0.1
FLOOR = 1e-6


def _bounds(measured: dict[str, list[float]]) -> dict[str, dict]:
    largest = max((max(v) for v in measured.values()), default=0.0)
    return {
        n: {"measured": max(v), "bound": max(FACTOR * max(max(v), SHARE * largest), FLOOR)} for n, v in measured.items()
    }


def entry_from_diagnoses(records: list[dict], cpu_name: str, cpu_features: str, versions: dict, date: str) -> dict:
    """One entry from diagnosis records of the same workload and sides over several seeds, each verdict reached
    with every value finite. Refuses records that disagree on what they compare or hold a non-finite value."""
    if not records:
        raise ValueError("no diagnosis to measure bounds from")
    key = {(r["workload"], r["side_a"]["label"], r["side_b"]["label"]) for r in records}
    if len(key) != 1:
        raise ValueError(f"the diagnoses compare different things: {sorted(key)}")
    (workload, a, b) = key.pop()
    layers: dict[str, list[float]] = {}
    grads: dict[str, list[float]] = {}
    for rec in records:
        if rec.get("first_nonfinite") or any(r["rel_l2"] is None for r in rec["layers"] if "note" not in r):
            raise ValueError(f"seed {rec['seed']}: a non-finite value; no bound is measured from it")
        for r in rec["layers"]:
            if r.get("rel_l2") is not None:
                layers.setdefault(r["layer"], []).append(r["rel_l2"])
        for g in rec["gradients"]:
            if g.get("rel_l2") is not None:
                grads.setdefault(g["parameter"], []).append(g["rel_l2"])
    return {
        "workload": workload,
        "side_a": a,
        "side_b": b,
        "cpu_name": cpu_name,
        "cpu_features": cpu_features,
        "versions": versions,
        "seeds": sorted(r["seed"] for r in records),
        "measured_on": date,
        "layers": _bounds(layers),
        "gradients": _bounds(grads),
    }


def load(path: Path = FILE) -> list[dict]:
    """The stored entries; a missing file is none, an unreadable one is one sentence naming it."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise PairbenchError(f"{path} cannot be read as layer bounds ({exc})") from None
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise PairbenchError(f"{path} holds no list of entries")
    return [e for e in entries if _well_formed(e)]


def _well_formed(e) -> bool:
    def bounds(d):
        return isinstance(d, dict) and all(
            isinstance(v, dict) and isinstance(v.get("bound"), (int, float)) and math.isfinite(v["bound"])
            for v in d.values()
        )

    keys = ("workload", "side_a", "side_b", "cpu_name", "cpu_features")
    return (
        isinstance(e, dict)
        and all(isinstance(e.get(k), str) for k in keys)
        and isinstance(e.get("versions"), dict)
        and bounds(e.get("layers"))
        and bounds(e.get("gradients"))
    )


def lookup(
    workload: str, side_a: str, side_b: str, cpu_features: str, versions: dict, entries: list[dict] | None = None
) -> tuple[dict | None, str]:
    """``({"layers": {name: bound}, "gradients": {parameter: bound}}, where from)`` for this comparison on this CPU
    and these framework versions, or ``(None, why not)``."""
    entries = load() if entries is None else entries
    same = [e for e in entries if (e["workload"], e["side_a"], e["side_b"]) == (workload, side_a, side_b)]
    if not same:
        return None, f"no per-layer bounds have been measured for {side_a} against {side_b} on {workload}"
    here = [e for e in same if e["cpu_features"] == cpu_features]
    if not here:
        cpus = "; ".join(f"{e['cpu_name']} ({e['cpu_features']})" for e in same)
        return None, f"per-layer bounds were measured on another CPU only: {cpus}; this CPU has {cpu_features}"
    match = [e for e in here if all(versions.get(k) == v for k, v in e["versions"].items())]
    if not match:
        measured = "; ".join(", ".join(f"{k} {v}" for k, v in e["versions"].items()) for e in here)
        return None, f"per-layer bounds were measured with other framework versions only: {measured}"
    e = match[-1]
    source = (
        f"per-layer bounds measured on {e['cpu_name']} ({e['cpu_features']}), "
        f"{', '.join(f'{k} {v}' for k, v in e['versions'].items())}, seeds {e['seeds']}, {e.get('measured_on')}: "
        f"{FACTOR:g}x the largest difference measured (at least {SHARE:g} of the comparison's largest)"
    )
    return {
        "layers": {n: v["bound"] for n, v in e["layers"].items()},
        "gradients": {n: v["bound"] for n, v in e["gradients"].items()},
    }, source
