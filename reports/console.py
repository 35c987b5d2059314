"""Plain-text tables for the terminal: per-framework timings and forecasts, and the parity verdicts."""

from __future__ import annotations

import pandas as pd

from reports.forecast_tables import bound_label, unavailable
from reports.naming import engine_name

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
            row["machine"] = r.get("load_verdict", "-")
        if r["status"] != "ok":
            row["status"] = f"{r['status']}: {r.get('reason', '')}"
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("framework")
    table = frame.to_string(float_format=lambda v: f"{v:.4g}", na_rep="-")
    notes = sorted({_power_note(r) for r in records if r["status"] == "ok"} - {None})
    return "\n".join([table, *notes, *load_notes(records)])


def load_notes(records: list[dict]) -> list[str]:
    """One line per run whose machine was not quiet while it was timed (metrics.load), saying why."""
    return [
        f"machine ({r['framework']}): {r['load_verdict']} while timed: {r['load_verdict_reason']}"
        for r in records
        if r["status"] == "ok" and r.get("load_verdict") not in (None, "quiet")
    ]


def _power_note(r: dict) -> str | None:
    if r.get("power_provenance") == "unavailable":
        return f"power ({r['framework']}): unavailable: {r['power_reason']}"
    if r.get("power_provenance") == "estimated":
        return f"power: estimated, not measured: {r.get('power_estimate_basis')}"
    return None


def _num(value, fmt: str, missing: str | None = None) -> str:
    """A figure, or what stands in its place: never 'nan' and never a made-up number."""
    return format(value, fmt) if value is not None else (missing or "missing")


def parity_lines(parity: dict) -> list[str]:
    """The parity verdict in a few lines: each figure against its bound, what was not finite, which parameters
    have no gradient, and "bounds not established" where no bound applies."""
    tol = parity["tolerances"]

    def check(key: str) -> str:
        value = parity[{"forward": "forward_rel_l2", "gradients": "gradient_max_rel_l2", "losses": "loss_max_rel"}[key]]
        if tol is None:
            return f"{_num(value, '.3e', 'no value')}  (bounds not established)"
        verdict = "ok" if value is not None and value <= tol[key] else "OUT OF TOLERANCE"
        return f"{_num(value, '.3e', 'no value')}  (<= {tol[key]:g}: {verdict})"

    n_steps = len(parity["loss_rel_per_step"]) - 1  # the first loss is the parity step's, before any update
    lines = [
        f"parity of {parity['other']} against {parity['reference']} ({parity.get('precision', 'fp32')}, "
        f"same weights and data): {parity['verdict'].upper()}",
        f"  forward output, relative L2       {check('forward')}",
        f"  gradients, worst relative L2      {check('gradients')}"
        + (f"; at {parity['gradient_worst_parameter']}" if parity["gradient_worst_parameter"] else ""),
        f"  losses (first + {n_steps} Adam steps), worst  {check('losses')}",
    ]
    if parity["nonfinite"]:
        lines.append(f"  difference not finite (NaN, Inf, or a zero reference): {', '.join(parity['nonfinite'])}")
    if parity["gradient_mismatch"]:
        lines.append(f"  gradients that cannot be compared: {', '.join(parity['gradient_mismatch'])}")
    if parity["gradient_missing"]:
        lines.append(f"  no gradient in either framework (not compared): {', '.join(parity['gradient_missing'])}")
    if tol is None:
        lines.append(f"  {parity['bounds_source']}")
    return lines


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
        out.append(f"{channel}:\n{frame.to_string(float_format=lambda v: f'{v:.4f}', na_rep='-')}")
    agreement = summary.get("agreement")
    if agreement:
        verdict = "ok" if agreement["within_tolerance"] else "OUT OF TOLERANCE"
        worst = agreement["rmse_max_rel_diff"]
        out.append(
            f"RMSE of {agreement['other']} against {agreement['reference']}, worst relative difference over leads and "
            f"channels: {_num(worst, '.2e', agreement.get('nonfinite'))} (<= {agreement['tolerance']:g}: {verdict})"
        )
    return "\n\n".join(out)


def _forecast_energy(r: dict) -> str:
    """Energy per forecast and per forecast-day with their provenance, or 'unavailable (why)'."""
    per, per_day = r.get("energy_j_per_forecast"), r.get("energy_j_per_forecast_day")
    if per is None or per_day is None:
        return "energy " + unavailable(r.get("power_reason") or r.get("power_partial_reason"))
    return f"energy {per:.3g} J/forecast, {per_day:.3g} J/forecast-day ({r['power_provenance']})"


def forecast_lines(records: list[dict], parities: list[dict]) -> list[str]:
    """One line per side's forecast run (a framework, or its exported graph run by an engine: latency of one batched
    forecast p50/p90, forecast-days per second, energy per forecast and per forecast-day with its provenance, or why
    it is unavailable; a failed run's status and reason), then each forecast parity verdict."""
    lines = []
    for r in records:
        side = f"{r['framework']} via {engine_name(r['engine'])}" if r.get("engine") else r["framework"]
        if r["status"] != "ok":
            lines.append(f"{side:<10} {r['status']}: {r.get('reason', '')}")
            continue
        lines.append(
            f"{side:<10} forecast ms p50 {r['forecast_ms_p50']:.4g}, p90 {r['forecast_ms_p90']:.4g} "
            f"(batch {r['batch_size']}, {r['n_lead']} x {r['lead_hours']:g} h)  "
            f"{r['forecast_days_per_s']:.4g} forecast-days/s  {_forecast_energy(r)}  machine {r.get('load_verdict')}"
        )
    lines += load_notes(records)
    for parity in parities:
        worst = _num(parity["rel_l2_max"], ".3e", "not finite" if parity["nonfinite"] else "no value")
        first = _num(parity["rel_l2_first_lead"], ".3e", "not finite" if parity["nonfinite"] else "no value")
        other = engine_name(parity["other"]) if parity.get("engine") else parity["other"]
        line = (
            f"forecast parity of {other} against {parity['reference']} ({parity['precision']}, "
            f"{len(parity['rel_l2_per_lead'])} leads): {parity['verdict'].upper()}; worst relative L2 {worst}, "
            f"first lead {first}; bound: {bound_label(parity['tolerances'], parity['bounds_source'])}"
        )
        if parity["nonfinite"]:
            line += f"; not finite: {', '.join(parity['nonfinite'])}"
        lines.append(line)
    return lines


def target_lines(summary: dict) -> list[str]:
    """One line per framework of a skill run trained to a target (``--target-rmse``): steps, wall time and energy
    to reach it, or "not reached" with the best validation RMSE; nothing for a run without a target."""
    target = summary.get("target")
    if not target:
        return []
    lines = [
        f"\ntime to accuracy: validation RMSE of {target['channel']} at {target['lead_hours']:g} h <= "
        f"{target['rmse']:g}, checked every {target['check_every']} steps:"
    ]
    for r in summary["records"]:
        if r["status"] != "ok":
            lines.append(f"  {r['framework']:<10} {r['status']}: {r.get('reason')}")
        elif r["tta_reached"]:
            energy = _num(r["tta_energy_j"], ".4g", f"unavailable ({r['tta_energy_reason']})")
            energy += f" J ({r['power_provenance']})" if r["tta_energy_j"] is not None else ""
            reached = f"reached at step {r['tta_steps']} after {r['tta_wall_s']:.1f} s"
            lines.append(f"  {r['framework']:<10} {reached}; energy {energy}")
        else:
            best = _num(r["tta_best_rmse"], ".4g", "none finite")
            lines.append(f"  {r['framework']:<10} not reached in {len(r['losses'])} steps; best RMSE {best}")
    return lines
