"""Plain-text tables for the terminal: per-framework timings and the parity verdict."""

from __future__ import annotations

import pandas as pd

_COLUMNS = {
    "framework": "framework",
    "framework_version": "version",
    "status": "status",
    "param_count": "params",
    "build_s": "build s",
    "compile_s": "compile s",
    "forward_ms_p50": "forward ms p50",
    "step_ms_p50": "train step ms p50",
    "step_ms_p90": "p90",
    "samples_per_s": "samples/s",
    "input_ms_p50": "input ms p50",
    "host_peak_rss_mb": "peak RSS MB",
}


def _power(r: dict) -> str:
    if r.get("power_provenance") in (None, "unavailable"):
        return "unavailable" if r.get("power_reason") else "-"
    return f"{r['power_w_mean']:.3g} {r['power_provenance']}"


def _energy(r: dict) -> str:
    value = r.get("energy_j_per_sample")
    return "-" if value is None else f"{value:.3g} {r['power_provenance']}"


def run_table(records: list[dict]) -> str:
    """One row per framework; failed runs show their status and reason, never zeros. Power and energy
    carry their provenance (measured or estimated) in the cell."""
    rows = []
    for r in records:
        row = {label: r.get(key, "-") for key, label in _COLUMNS.items()}
        if r["status"] == "ok":
            row["power W"], row["J/sample"] = _power(r), _energy(r)
        if r["status"] != "ok":
            row["status"] = f"{r['status']}: {r.get('reason', '')}"
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("framework")
    table = frame.to_string(float_format=lambda v: f"{v:.4g}")
    notes = sorted({_power_note(r) for r in records if r["status"] == "ok"} - {None})
    return "\n".join([table, *notes])


def _power_note(r: dict) -> str | None:
    if r.get("power_provenance") == "unavailable":
        return f"power ({r['framework']}): unavailable: {r['power_reason']}"
    if r.get("power_provenance") == "estimated":
        return f"power: estimated, not measured: {r.get('power_estimate_basis')}"
    return None


def parity_lines(parity: dict) -> list[str]:
    tol = parity["tolerances"]

    def verdict(value: float, bound: float) -> str:
        return "ok" if value <= bound else "OUT OF TOLERANCE"

    n_losses = len(parity["loss_rel_per_step"])
    return [
        f"parity of {parity['other']} against {parity['reference']} ({parity.get('precision', 'fp32')}, "
        "same weights and data):",
        f"  forward output, relative L2       {parity['forward_rel_l2']:.3e}  (<= {tol['forward']:g}: "
        f"{verdict(parity['forward_rel_l2'], tol['forward'])})",
        f"  gradients, worst relative L2      {parity['gradient_max_rel_l2']:.3e}  (<= {tol['gradients']:g}: "
        f"{verdict(parity['gradient_max_rel_l2'], tol['gradients'])}; at {parity['gradient_worst_parameter']})",
        f"  losses over {n_losses} Adam steps, worst  {parity['loss_max_rel']:.3e}  (<= {tol['losses']:g}: "
        f"{verdict(parity['loss_max_rel'], tol['losses'])})",
    ]


def skill_tables(summary: dict) -> str:
    """RMSE and ACC by lead time, one table per channel: each framework beside persistence and
    climatology (whose ACC is undefined: its anomaly is zero)."""
    channels, hours = summary["channels"], summary["hours"]
    names = [n for n in summary["scores"] if n not in ("persistence", "climatology")] + ["persistence", "climatology"]
    out = []
    for c, channel in enumerate(channels):
        leads = len(next(iter(summary["scores"].values()))["rmse"])
        rows = {}
        for k in range(leads):
            row = {}
            for n in names:
                row[f"RMSE {n}"] = summary["scores"][n]["rmse"][k][c]
            for n in names[:-1]:
                row[f"ACC {n}"] = summary["scores"][n]["acc"][k][c]
            rows[f"{int(round((k + 1) * hours))} h"] = row
        frame = pd.DataFrame.from_dict(rows, orient="index").astype(float)
        out.append(f"{channel}:\n{frame.to_string(float_format=lambda v: f'{v:.4f}')}")
    agreement = summary.get("agreement")
    if agreement:
        verdict = "ok" if agreement["within_tolerance"] else "OUT OF TOLERANCE"
        out.append(
            f"RMSE of {agreement['other']} against {agreement['reference']}, worst relative difference over leads and "
            f"channels: {agreement['rmse_max_rel_diff']:.2e} (<= {agreement['tolerance']:g}: {verdict})"
        )
    return "\n\n".join(out)
