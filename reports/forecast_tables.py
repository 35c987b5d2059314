"""Forecast tables (pandas) from paired forecast and forecast_parity records: one row per setting and framework."""

from __future__ import annotations

import pandas as pd

from reports.energy import energy_ratio
from reports.naming import FRAMEWORK_LABEL, REFERENCE, unavailable
from reports.pairing import Group, Pairing
from reports.stats import bootstrap_ratio

# What tells one forecast table from another (the report draws one table per distinct value of these).
FORECAST_SETTING = [
    "workload", "precision", "mode", "batch_size", "n_lead", "lead_hours", "device", "workload_fingerprint",
]  # fmt: skip
FORECAST_COLUMNS = [
    *FORECAST_SETTING, "framework", "forecast_ms_p50", "forecast_ms_p90", "latency_ratio", "latency_ratio_ci_low",
    "latency_ratio_ci_high", "forecast_days_per_s", "energy_j_per_forecast", "energy_j_per_forecast_day",
    "energy_ratio", "power_provenance", "parity", "rel_l2_first_lead", "rel_l2_max", "rel_l2_bound",
    "device_peak_mem_mb", "host_peak_rss_mb",
]  # fmt: skip
# The forecast table in the report: two narrower tables per setting, each led by the framework (CSV: one table).
FORECAST_KEYS = ["framework"]
FORECAST_GROUPS = [
    ("latency and memory", ["forecast_ms_p50", "forecast_ms_p90", "latency_ratio", "latency_ratio_ci_low",
                            "latency_ratio_ci_high", "forecast_days_per_s", "device_peak_mem_mb", "host_peak_rss_mb"]),
    ("energy and parity", ["energy_j_per_forecast", "energy_j_per_forecast_day", "energy_ratio", "power_provenance",
                           "parity", "rel_l2_first_lead", "rel_l2_max", "rel_l2_bound"]),
]  # fmt: skip


def energy_cell(run: dict, key: str):
    """An energy figure of a forecast run, or 'unavailable (why)'."""
    value = run.get(key)
    if value is not None:
        return value
    return unavailable(run.get("power_reason") or run.get("power_partial_reason"))


def bound_label(tolerances: dict | None, bounds_source: str) -> str:
    """The bounds a forecast_parity record was held to, as text (by name: a record read back from a file has its
    keys sorted); where none applies, why."""
    if not tolerances:
        return bounds_source
    return ", ".join(
        f"{k} <= {v:g}" if isinstance(v, (int, float)) else f"{k}: {v}" for k, v in sorted(tolerances.items())
    )


def latest_parity(group: Group, kind: str) -> dict[str, dict]:
    """The latest comparison record of ``kind`` of a group on each device."""
    recs = sorted((p for p in group.parity if p["record_type"] == kind), key=lambda r: r["timestamp"])
    return {p["device"]: p for p in recs}


def _row(run: dict) -> dict:
    row = {k: run.get(k) for k in FORECAST_SETTING}
    row.update(
        framework=FRAMEWORK_LABEL.get(run["framework"], run["framework"]),
        forecast_ms_p50=run["forecast_ms_p50"],
        forecast_ms_p90=run["forecast_ms_p90"],
        forecast_days_per_s=run["forecast_days_per_s"],
        energy_j_per_forecast=energy_cell(run, "energy_j_per_forecast"),
        energy_j_per_forecast_day=energy_cell(run, "energy_j_per_forecast_day"),
        power_provenance=f"{run['power_provenance']} ({run['power_source']})",
        device_peak_mem_mb=run["device_peak_mem_mb"]
        if run.get("device_peak_mem_mb") is not None
        else unavailable(run.get("device_peak_mem_reason")),
        host_peak_rss_mb=run["host_peak_rss_mb"],
    )
    return row


def _compare(row: dict, run: dict, reference: dict) -> None:
    """Fill ``row`` (``run``'s) with its ratios to ``reference`` on the same device."""
    if len(run["forecast_ms"]) >= 2 and len(reference["forecast_ms"]) >= 2:
        r = bootstrap_ratio(run["forecast_ms"], reference["forecast_ms"])
        row.update(latency_ratio=r.value, latency_ratio_ci_low=r.low, latency_ratio_ci_high=r.high)
    else:  # one repeat has no spread: the ratio of the two latencies, with no interval
        row.update(latency_ratio=run["forecast_ms_p50"] / reference["forecast_ms_p50"])
    row["energy_ratio"] = energy_ratio(run, reference, "energy_j_per_forecast")[0]


def forecast_table(pairing: Pairing) -> pd.DataFrame:
    """One row per successful forecast run, by setting and device: latency of one batched forecast (p50, p90),
    forecast-days per second, energy per forecast and per forecast-day with its provenance, peak memory; on each
    other framework's row its ratios to PyTorch on the same device (latency: 95% bootstrap interval over the
    per-repeat samples) and the verdict of the latest forecast_parity record naming it."""
    rows = []
    for g in pairing.groups:
        if g.task != "forecast" or g.engine:  # exported graphs: reports.deployment
            continue
        parity = latest_parity(g, "forecast_parity")
        for device in sorted({d for _, d in g.runs}):
            runs = {fw: r for (fw, d), r in g.runs.items() if d == device}
            reference = runs.get(REFERENCE)
            for fw in sorted(runs, key=lambda f: (f != REFERENCE, f)):
                row = _row(runs[fw])
                if reference is not None and fw != REFERENCE:
                    _compare(row, runs[fw], reference)
                p = parity.get(device)
                if p is not None and p["other"] == fw:
                    row.update(
                        parity=p["verdict"],
                        rel_l2_first_lead=p["rel_l2_first_lead"],
                        rel_l2_max=p["rel_l2_max"],
                        rel_l2_bound=bound_label(p["tolerances"], p["bounds_source"]),
                    )
                rows.append(row)
    return pd.DataFrame(rows, columns=FORECAST_COLUMNS)
