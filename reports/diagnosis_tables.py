"""Diagnosis tables (pandas) from ``diagnosis`` records (``pairbench diagnose``): the layers of two computations in
execution order, where they part, and how each side's layers were captured; as console lines and report sections."""

from __future__ import annotations

import pandas as pd

# What tells one diagnosis's layer table from another's (the report draws one table per distinct value of these).
DIAGNOSIS_SETTING = ["workload", "a", "b", "device", "run_id"]
LAYER_COLUMNS = {
    "layer": "layer",
    "shape": "shape",
    "rel_l2": "rel L2",
    "max_abs_diff": "max |diff|",
    "nonfinite_a": "non-finite a",
    "nonfinite_b": "non-finite b",
    "bound": "bound",
    "past_bound": "past bound",
    "gradient_rel_l2": "grad rel L2",
    "gradient_parameter": "worst parameter",
    "note": "note",
}
SUMMARY_TEXT = (
    "The same weights and input batch through two computations (side a, side b: a framework with its mode, precision "
    "and spectral transform), compared layer by layer in the order side a's layers ran (pairbench diagnose). A layer "
    "is past its bound when the relative L2 difference of its outputs exceeds the forward bound that applies (fp32's, "
    "or one measured at that precision on that device; none otherwise) or is not finite. Capture: how each side's "
    "layers were captured, and whether capturing changed that side's final output."
)
LAYERS_TEXT = (
    "One row per layer both sides captured, in execution order (a module's row after its children's): relative L2 of "
    "b's output against a's, the largest absolute difference over values finite on both sides, non-finite values on "
    "each side, the bound and whether it is exceeded, and the worst relative L2 of the gradients of the layer's own "
    "parameters."
)


def _shape(shape: list[int]) -> str:
    return "x".join(map(str, shape))


def _console_cell(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:.3e}" if isinstance(value, float) else str(value)


def capture_phrase(side: dict) -> str:
    """How a side's layers were captured and whether capture changed its final output, in a sentence (what a
    record does not say is left out, never guessed)."""
    if side.get("status") != "ok":
        return f"{side.get('status')}: {side.get('reason')}"
    method = str(side.get("method", "capture not recorded"))
    if not side.get("per_layer", True):
        return method
    before, after = side.get("nonfinite_without"), side.get("nonfinite_with")
    if side.get("capture_invariant"):
        effect = "capture-invariant (the final output with capture is identical to the one without)"
    elif before != after:
        effect = (
            f"capture changed the output: {before} non-finite values without capture, {after} with it, so its "
            "layers show the captured computation, not the original"
        )
    else:
        rel, most = side.get("capture_rel_l2"), side.get("capture_max_abs")
        effect = "capture changed the output" + (f" by {rel:.3g} (relative L2)" if rel is not None else "")
        effect += f", max abs {most:.3g}" if most is not None else ""
    if side.get("compiled_graphs") is not None:
        graphs, breaks = side["compiled_graphs"], side.get("graph_breaks")
        method += f"; with capture {graphs} graph(s) compiled, {breaks} graph break(s)"
    return f"{method}; {effect}"


def layer_frame(record: dict) -> pd.DataFrame:
    """One row per compared layer of a diagnosis record, in execution order (column labels: LAYER_COLUMNS)."""
    bound = (record["tolerances"] or {}).get("forward")
    rows = []
    for r in record["layers"]:
        row = {"bound": bound, **r, "shape": _shape(r["shape"])}
        row["past_bound"] = {True: "PAST", False: "ok"}.get(r["past_bound"])
        rows.append({label: row.get(key) for key, label in LAYER_COLUMNS.items()})
    return pd.DataFrame(rows, columns=list(LAYER_COLUMNS.values()))


def _some(names: list[str], shown: int = 6) -> str:
    """The first ``shown`` of ``names`` and how many more."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more (all in the record)" if more > 0 else "")


def finding_lines(record: dict) -> list[str]:
    """The first layer past its bound, the first non-finite value, the gradients and the capture of each side."""
    tol = record["tolerances"]
    if record["verdict"] == "not compared":
        return [f"not compared: {record['reason']}"]
    if tol is None:
        past = f"first layer past its bound: none can be named ({record['bounds_source']})"
    elif tol.get("per_layer"):
        past = f"first layer past its bound (each its own, measured): {record['first_past_bound'] or 'none'}"
    else:
        past = f"first layer past its bound (relative L2 <= {tol['forward']:g}): {record['first_past_bound'] or 'none'}"
    lines = [past]
    moved = next((r for r in record["layers"] if r["rel_l2"] or (r["rel_l2"] is None and r.get("note") is None)), None)
    if moved:
        size = f"relative L2 {moved['rel_l2']:.3g}" if moved["rel_l2"] is not None else "not finite"
        lines.append(f"first layer whose outputs differ at all: {moved['layer']} ({size})")
    else:
        lines.append("no layer's outputs differ")
    where = record["first_nonfinite"]
    lines.append(
        f"first non-finite value: {where} (side {record['first_nonfinite_side']})" if where else "no non-finite value"
    )
    grad = record["first_gradient_past_bound"]
    if tol is not None or grad:
        limit = f" (relative L2 <= {tol['gradients']:g})" if tol and not tol.get("per_layer") else ""
        lines.append(f"first parameter gradient past its bound{limit}: {grad or 'none'}")
    odd = [f"{g['parameter']} (side {g['only_on']} only)" for g in record["gradients"] if g.get("only_on")]
    if odd:
        lines.append(f"gradients that cannot be compared: {_some(odd)}")
    for k in ("a", "b"):
        side = record[f"side_{k}"]
        lines.append(f"side {k} ({side['label']}, {side.get('execution_mode')}): {capture_phrase(side)}")
    if record["unmatched"]:
        lines.append(f"not compared (a layer of one side only): {_some(record['unmatched'])}")
    lines.append(f"bounds: {record['bounds_source']}")
    return lines


def diagnosis_lines(record: dict) -> list[str]:
    """A diagnosis on the console: its verdict, the layer table and what it found."""
    a, b = record["side_a"]["label"], record["side_b"]["label"]
    head = (
        f"diagnosis of {record['workload']} (seed {record['seed']}, batch {record['batch_size']}, {record['device']}): "
        f"b = {b} against a = {a}: {record['verdict'].upper()}"
    )
    frame = layer_frame(record)
    if frame[LAYER_COLUMNS["note"]].isna().all():
        frame = frame.drop(columns=LAYER_COLUMNS["note"])
    frame = frame.astype(object).map(_console_cell)
    table = [] if frame.empty else [frame.to_string(index=False)]
    return [head, *table, *finding_lines(record)]


def _diagnoses(records: list[dict]) -> list[dict]:
    return [r for r in records if r["record_type"] == "diagnosis"]


def _bound_label(record: dict) -> str:
    tol = record["tolerances"]
    if tol is None:
        return record["bounds_source"]
    return "per layer, measured on this CPU" if tol.get("per_layer") else f"{tol['forward']:g}"


def summary_table(records: list[dict]) -> pd.DataFrame:
    """One row per diagnosis: its sides, verdict, first layer past its bound, first non-finite value, each side's
    capture, and the bound."""
    rows = []
    for r in _diagnoses(records):
        rows.append(
            {
                **{k: r.get(k) for k in ("workload", "device", "seed", "batch_size")},
                "a": r["side_a"]["label"],
                "b": r["side_b"]["label"],
                "verdict": r["verdict"],
                "first past bound": r["first_past_bound"],
                "first non-finite": f"{r['first_nonfinite']} ({r['first_nonfinite_side']})"
                if r["first_nonfinite"]
                else None,
                "capture a": capture_phrase(r["side_a"]),
                "capture b": capture_phrase(r["side_b"]),
                "bound": _bound_label(r),
                "run_id": r["run_id"],
            }
        )
    return pd.DataFrame(rows)


def layers_table(records: list[dict]) -> pd.DataFrame:
    """Every diagnosis's layer rows, each with its setting (DIAGNOSIS_SETTING) to split the report's tables by."""
    frames = []
    for r in _diagnoses(records):
        frame = layer_frame(r)
        setting = {"workload": r["workload"], "a": r["side_a"]["label"], "b": r["side_b"]["label"]}
        setting.update(device=r["device"], run_id=r["run_id"])
        frames.append(frame.assign(**setting)[DIAGNOSIS_SETTING + list(frame.columns)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def diagnosis_sections(records: list[dict], section, missing: str) -> list:
    """The report's sections of diagnosis records (``section``: reports.build.Section)."""
    return [
        section("Divergence by layer", summary_table(records), SUMMARY_TEXT, missing=missing),
        section("Layers", layers_table(records), LAYERS_TEXT, split_by=DIAGNOSIS_SETTING, missing=missing),
    ]
