"""``pairbench diagnose``: the same weights and input batch through two sides (each a framework with its mode,
precision and spectral transform), each side in its own worker process (runners.execution.capture); their outputs
are compared layer by layer in NumPy, in the order side a's layers ran, with their parameter gradients, and one
``diagnosis`` record says where the two computations part."""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from metrics.device.cpu import cpu_features
from metrics.layer_bounds import lookup
from metrics.parity import NOT_ESTABLISHED, bounds_for, has_gradient, relative_l2
from runners.data.synthetic import DATA_GENERATOR
from runners.devices import parse_device
from runners.errors import PairbenchError
from runners.execution.capture import MODEL, nonfinite
from runners.experiments.runs import open_run, run_config, run_worker
from runners.options import DiagnoseOptions, Side
from runners.records import schema
from runners.records.store import append_record, records_path
from runners.weights.canonical import starting_weights, weights_digest
from runners.workloads.registry import get_workload

SIDES = ("a", "b")
# What a side's worker reports that its record keeps (runners.execution.capture and the worker's environment).
_SIDE_FIELDS = (
    "framework_version", "execution_mode", "device_name", "cpu_name", "method", "compiled_graphs", "graph_breaks",
    "capture_invariant", "per_layer", "capture_rel_l2", "capture_max_abs", "nonfinite_without", "nonfinite_with",
    "loss", "compile_vec_isa", "cpu_features",
)  # fmt: skip


@dataclass
class DiagnoseOutcome:
    run_dir: Path
    record: dict

    @property
    def ok(self) -> bool:
        """Both sides ran, every value was finite and no layer went past a bound that applies."""
        return self.record["verdict"] in ("pass", NOT_ESTABLISHED)


def framework_versions(*sides: Side) -> dict[str, str]:
    """The installed version of each side's framework, read from its package metadata (nothing imported)."""
    out = {}
    for side in sides:
        try:
            out[side.framework] = metadata.version(side.framework)
        except metadata.PackageNotFoundError:
            out[side.framework] = "not installed"
    return out


def layer_bounds(a: Side, b: Side, device_kind: str, workload: str) -> tuple[dict | None, str]:
    """The bounds the layers are held to, and where they come from: fp32's acceptance bounds (metrics.parity) for
    every layer of an fp32 comparison; for a low-precision one on CPU, per-layer bounds measured for exactly these
    sides on a CPU with this one's features and these framework versions (metrics.layer_bounds), never assumed
    from another CPU; elsewhere a bound measured at that precision on that device kind, if any."""
    if a.precision == b.precision == "fp32":
        return bounds_for("fp32", device_kind)
    if device_kind == "cpu":
        per_layer, source = lookup(workload, a.label, b.label, cpu_features(), framework_versions(a, b))
        if per_layer is None:
            return None, f"{NOT_ESTABLISHED}: {source}"
        return {"per_layer": True, **per_layer}, source
    if a.precision != b.precision:
        return None, f"{NOT_ESTABLISHED}: the sides compute at different precisions ({a.precision}, {b.precision})"
    return bounds_for(a.precision, device_kind)


def _bound_of(bounds: dict | None, kind: str, name: str) -> float | None:
    """The bound of one layer (``kind`` "layers") or parameter gradient ("gradients"); None where none applies."""
    if bounds is None:
        return None
    if bounds.get("per_layer"):
        return bounds[kind].get(name)
    return bounds["forward" if kind == "layers" else "gradients"]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def compare_layer(name: str, va: np.ndarray, vb: np.ndarray, bound: float | None) -> dict:
    """One layer's row: relative L2 of b against a, the largest absolute difference over the values finite on both
    sides, the non-finite values of each, and whether the difference is past ``bound`` (a non-finite difference
    always is; None where no bound applies or the shapes differ)."""
    row = {"layer": name, "shape": list(va.shape), "nonfinite_a": nonfinite(va), "nonfinite_b": nonfinite(vb)}
    if va.shape != vb.shape:
        shapes = " vs ".join("x".join(map(str, v.shape)) for v in (va, vb))
        return {**row, "rel_l2": None, "max_abs_diff": None, "past_bound": None, "note": f"shapes differ ({shapes})"}
    rel = relative_l2(vb, va)
    both = np.isfinite(va) & np.isfinite(vb)
    diff = np.abs(vb.astype(np.float64) - va)[both]
    row.update(rel_l2=_finite(rel), max_abs_diff=float(diff.max()) if diff.size else None)
    row["bound"] = bound
    row["past_bound"] = None if bound is None else not rel <= bound
    return row


def layer_of(parameter: str) -> str:
    """The module or cell that owns a parameter (the model itself for a top-level one)."""
    return parameter.rpartition(".")[0] or MODEL


def compare_gradient(name: str, ga: np.ndarray | None, gb: np.ndarray | None, bound: float | None) -> dict:
    """One parameter's row: relative L2 of b's gradient against a's; a gradient on one side only is named and
    counts as past the bound."""
    row = {"parameter": name, "layer": layer_of(name), "rel_l2": None, "nonfinite_a": 0, "nonfinite_b": 0}
    has_a, has_b = has_gradient(ga), has_gradient(gb)
    row["only_on"] = None if has_a == has_b else "a" if has_a else "b"
    if not (has_a or has_b):
        return {**row, "past_bound": None, "note": "no gradient on either side"}
    if row["only_on"]:
        return {**row, "past_bound": True, "note": f"a gradient on side {row['only_on']} only"}
    rel = relative_l2(gb, ga)
    row.update(rel_l2=_finite(rel), nonfinite_a=nonfinite(ga), nonfinite_b=nonfinite(gb))
    return {**row, "past_bound": None if bound is None else not rel <= bound}


def _first(rows: list[dict], test) -> dict | None:
    return next((r for r in rows if test(r)), None)


def compare_sides(layers: dict[str, list[tuple[str, np.ndarray]]], grads: dict[str, dict], bounds: dict | None) -> dict:
    """The diagnosis of side b against side a: a row per layer both captured (in a's order), a row per parameter,
    the layers only one side has, the first layer past its bound and the first with a non-finite value."""
    by_name = {side: dict(layers[side]) for side in SIDES}
    rows = [
        compare_layer(n, v, by_name["b"][n], _bound_of(bounds, "layers", n))
        for n, v in layers["a"]
        if n in by_name["b"]
    ]
    unmatched = [
        f"{n} (side {s} only)" for s, o in (("a", "b"), ("b", "a")) for n, _ in layers[s] if n not in by_name[o]
    ]
    order = {r["layer"]: i for i, r in enumerate(rows)}
    names = sorted(grads["a"], key=lambda p: order.get(layer_of(p), len(order)))
    grad_rows = [compare_gradient(p, grads["a"][p], grads["b"][p], _bound_of(bounds, "gradients", p)) for p in names]
    for row in rows:
        own = [g for g in grad_rows if g["layer"] == row["layer"] and g["rel_l2"] is not None]
        worst = max(own, key=lambda g: g["rel_l2"], default=None)
        row["gradient_rel_l2"] = worst["rel_l2"] if worst else None
        row["gradient_parameter"] = worst["parameter"] if worst else None
    past = _first(rows, lambda r: r["past_bound"])
    grad_past = _first(grad_rows, lambda g: g["past_bound"])
    bad = _first(rows, lambda r: r["nonfinite_a"] or r["nonfinite_b"])
    side = None
    if bad:
        side = "both" if bad["nonfinite_a"] and bad["nonfinite_b"] else ("a" if bad["nonfinite_a"] else "b")
    return {
        "layers": rows,
        "gradients": grad_rows,
        "unmatched": unmatched,
        "first_past_bound": past["layer"] if past else None,
        "first_gradient_past_bound": grad_past["parameter"] if grad_past else None,
        "first_nonfinite": bad["layer"] if bad else None,
        "first_nonfinite_side": side,
    }


def verdict(found: dict, sides: dict[str, dict], bounds: dict | None) -> str:
    """``fail`` on any non-finite value (a layer, a gradient, a side's output without capture), any layer or
    gradient past its bound (a gradient on one side only is, whatever the bounds); else ``bounds not established``
    where no bound applies; else ``pass``."""
    nonfinite_anywhere = (
        found["first_nonfinite"]
        or any(g["nonfinite_a"] or g["nonfinite_b"] for g in found["gradients"])
        or any(s["nonfinite_without"] for s in sides.values())
    )
    if nonfinite_anywhere or found["first_past_bound"] or found["first_gradient_past_bound"]:
        return "fail"
    return NOT_ESTABLISHED if bounds is None else "pass"


def _side_entry(side: Side, result: dict) -> dict:
    """What the record keeps of one side: its settings, its outcome and how its layers were captured."""
    entry = {"label": side.label, "framework": side.framework, "precision": side.precision, "mode": side.mode}
    entry.update(spectral=side.spectral, status=result["status"])
    if result["status"] != "ok":
        return {**entry, "reason": result.get("reason") or "no reason given"}
    entry.update({k: result.get(k) for k in _SIDE_FIELDS})
    for k in ("capture_rel_l2", "capture_max_abs", "loss"):
        entry[k] = schema.finite_or_none(entry[k])
    return entry


def _load(prefix: Path, result: dict, names: list[str]) -> tuple[list, dict]:
    """A side's captured layers (name, array) in the order they ran, and its gradients by parameter (None where
    it had none)."""
    with np.load(prefix.with_suffix(".npz")) as arrays:
        layers = [(entry["name"], arrays[f"layer/{i}"]) for i, entry in enumerate(result["layers"])]
        grads = {n: arrays[f"grad/{n}"] if f"grad/{n}" in arrays else None for n in names}
    return layers, grads


def _side_spec(spec, key: str, side: Side):
    """The workload as ``side`` runs it (its spectral transform); one the workload refuses is one sentence."""
    try:
        return spec.overridden({"spectral_transform": side.spectral} if side.spectral else {})
    except PairbenchError as exc:
        raise PairbenchError(f"side {key} {side.label!r}: {exc}") from None


def run_diagnose(opts: DiagnoseOptions, progress=print) -> DiagnoseOutcome:
    """Run both sides of ``opts`` from one weights file and input batch; compare, record and return the diagnosis."""
    opts.validate()
    sides = dict(zip(SIDES, opts.sides(), strict=True))
    spec = get_workload(opts.workload).overridden(opts.model)
    side_specs = {k: _side_spec(spec, k, s) for k, s in sides.items()}
    seed = secrets.randbits(31) if opts.seed is None else opts.seed
    batch = opts.batch_size or spec.batch_size
    tensors, weights_source = starting_weights(spec.model, opts.weights, seed)
    bounds, source = layer_bounds(sides["a"], sides["b"], parse_device(opts.device).kind, spec.name)
    ident = schema.identity(
        "diagnosis",
        model=spec.model.to_dict(),
        weights_sha256=weights_digest(tensors),
        seed=seed,
        data={"generator": DATA_GENERATOR, "sides": {k: s.label for k, s in sides.items()}},
        hyper_parameters=spec.hyper_parameters(),
        batch_size=batch,
        precision=sides["a"].precision,
        mode=sides["a"].mode,
        recompute=False,
        threads=opts.threads,
        warmup_steps=0,
        train_steps=0,
        forward_steps=0,  # a diagnosis times nothing: one forward pass per side, compared
        objective="forecast",
        nproc=1,
    )
    run_dir, weights_path, head = open_run(
        opts.results_dir, f"{spec.name}-diagnose-{seed}", spec, tensors, ident, opts.device
    )
    results, prefixes = {}, {}
    for key, side in sides.items():
        progress(f"[{key}] {side.label}: {spec.name} on {opts.device}, batch {batch} ...")
        setting = {"precision": side.precision, "mode": side.mode, "model": side_specs[key].model.to_dict()}
        run = run_config({**ident, **setting}, spec.name, side.framework, weights_path, opts.device, task="diagnose")
        prefixes[key] = run_dir / f"{key}-{side.framework}"
        results[key] = run_worker(run, prefixes[key], opts.timeout_s)
        progress(
            f"[{key}] {results[key]['status']}" + (f": {results[key]['reason']}" if "reason" in results[key] else "")
        )
    entries = {k: _side_entry(sides[k], results[k]) for k in SIDES}
    found = {"side_a": entries["a"], "side_b": entries["b"], "tolerances": bounds, "bounds_source": source}
    found["weights_source"] = weights_source
    failed = [k for k in SIDES if results[k]["status"] != "ok"]
    if failed:
        reason = "; ".join(
            f"side {k} ({sides[k].label}) {results[k]['status']}: {entries[k]['reason']}" for k in failed
        )
        found.update(compare_sides({k: [] for k in SIDES}, {k: {} for k in SIDES}, bounds))
        found.update(verdict="not compared", reason=reason)
    else:
        names = list(spec.model.parameter_shapes())
        loaded = {k: _load(prefixes[k], results[k], names) for k in SIDES}
        found.update(compare_sides({k: v[0] for k, v in loaded.items()}, {k: v[1] for k, v in loaded.items()}, bounds))
        found["verdict"] = verdict(found, entries, bounds)
    (run_dir / "diagnosis.json").write_text(json.dumps(found, indent=1))
    record = schema.record(head, **found)
    append_record(records_path(opts.results_dir), record)
    return DiagnoseOutcome(run_dir, record)
