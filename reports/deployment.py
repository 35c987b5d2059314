"""The Deployment section: forecasts run by exported graphs (ONNX Runtime, MindSpore's graph runtime; see
runners.engines) beside the frameworks' own forecasts of the same work, one row per engine and device: whether the
export and the session worked (the engine's own reason where not), what it cost, latency with its interval, its
ratio to its source framework's forecast and to the other stack's fastest, energy, and its trajectory's parity."""

from __future__ import annotations

import pandas as pd

from reports.naming import framework_name, unavailable
from reports.pairing import Group, Pairing
from reports.stats import bootstrap_interval, bootstrap_ratio
from runners.records.schema import base_fingerprint

DEPLOYMENT_SETTING = ["workload", "precision", "batch_size", "n_lead", "lead_hours", "device", "base_fingerprint"]
DEPLOYMENT_COLUMNS = [
    *DEPLOYMENT_SETTING, "engine", "source", "status", "provider", "export_s", "file_mb", "session_s",
    "forecast_ms_p50", "forecast_ms_ci_low", "forecast_ms_ci_high", "vs_source", "vs_source_ci_low",
    "vs_source_ci_high", "vs_other_best", "other_best", "energy_j_per_forecast", "parity", "rel_l2_max",
]  # fmt: skip
DEPLOYMENT_KEYS = ["engine"]
DEPLOYMENT_GROUPS = [
    ("export and session", ["source", "status", "provider", "export_s", "file_mb", "session_s"]),
    ("latency", ["forecast_ms_p50", "forecast_ms_ci_low", "forecast_ms_ci_high", "vs_source", "vs_source_ci_low",
                 "vs_source_ci_high"]),
    ("against the other stack, energy and parity", ["vs_other_best", "other_best", "energy_j_per_forecast", "parity",
                                                    "rel_l2_max"]),
]  # fmt: skip
DEPLOYMENT_TEXT = (
    "Forecasts run by an exported graph of a framework's model (its label: the engine, the framework it was exported "
    "from, the model formulation exported, the provider), beside the frameworks' own forecasts of the same work "
    "(same weights, initial conditions, leads and repeats). Latency: median of the timed repeats with its 95% "
    "bootstrap interval; 'vs source' is that median over the source framework's own forecast (below 1: the graph is "
    "faster), with its interval; 'vs other best' is over the fastest forecast of the other framework's stack (its "
    "own or any of its graphs). An export or a session that failed stands as its row, with the engine's reason. "
    "Parity: the graph's trajectory against its source framework's, per lead."
)


def _interval(samples: list[float]) -> tuple[float | None, float | None]:
    return bootstrap_interval(samples) if len(samples) >= 2 else (None, None)


def _ratio(a: dict, b: dict) -> tuple[float, float | None, float | None]:
    if len(a["forecast_ms"]) >= 2 and len(b["forecast_ms"]) >= 2:
        r = bootstrap_ratio(a["forecast_ms"], b["forecast_ms"])
        return r.value, r.low, r.high
    return a["forecast_ms_p50"] / b["forecast_ms_p50"], None, None


def _name(rec: dict) -> str:
    return framework_name(rec)


def _row(rec: dict, base: dict[str, dict], graphs: list[dict]) -> dict:
    """``rec``'s row; ``base``: the frameworks' own forecasts of the same work on its device, by framework;
    ``graphs``: the other exported graphs' forecasts of it."""
    row = {k: rec.get(k) for k in DEPLOYMENT_SETTING if k != "base_fingerprint"}
    row.update(base_fingerprint=base_fingerprint(rec), engine=rec["engine"], source=rec["framework"])
    if rec["status"] != "ok":
        return {**row, "status": f"{rec['status']}: {rec.get('reason') or 'no reason recorded'}"}
    low, high = _interval(rec["forecast_ms"])
    energy = rec.get("energy_j_per_forecast")
    row.update(
        status="ok",
        provider=", ".join(rec.get("engine_providers_used") or [])
        or f"{rec.get('engine_runtime')} ({rec.get('engine_device_target')})",
        export_s=rec.get("engine_export_s"),
        file_mb=rec["engine_bytes"] / 1e6 if rec.get("engine_bytes") is not None else None,
        session_s=rec.get("engine_session_s"),
        forecast_ms_p50=rec["forecast_ms_p50"],
        forecast_ms_ci_low=low,
        forecast_ms_ci_high=high,
        energy_j_per_forecast=energy if energy is not None else unavailable(rec.get("power_reason")),
    )
    source = base.get(rec["framework"])
    if source is not None:
        row["vs_source"], row["vs_source_ci_low"], row["vs_source_ci_high"] = _ratio(rec, source)
    others = [r for fw, r in base.items() if fw != rec["framework"]]
    others += [r for r in graphs if r["framework"] != rec["framework"]]
    if others:
        best = min(others, key=lambda r: r["forecast_ms_p50"])
        row["vs_other_best"], row["other_best"] = rec["forecast_ms_p50"] / best["forecast_ms_p50"], _name(best)
    return row


def deployment_table(pairing: Pairing) -> pd.DataFrame:
    """One row per exported-graph forecast (latest success, or a failure no success replaced) by device."""
    groups: dict[str, Group] = {g.fingerprint: g for g in pairing.groups}
    engines = [g for g in pairing.groups if g.task == "forecast" and g.engine]
    rows = []
    for g in engines:
        recs = [*g.runs.values(), *g.failed]
        parity = {(p["run_id"], p["device"]): p for p in g.parity}  # a verdict belongs to its own run
        for rec in sorted(recs, key=lambda r: (r["device"], r["timestamp"])):
            base_group = groups.get(base_fingerprint(rec))
            base = {fw: r for (fw, d), r in (base_group.runs.items() if base_group else []) if d == rec["device"]}
            graphs = [
                r
                for e in engines
                if e is not g and base_fingerprint(e.identity) == base_fingerprint(rec)
                for (_, d), r in e.runs.items()
                if d == rec["device"]
            ]
            row = _row(rec, base, graphs)
            p = parity.get((rec["run_id"], rec["device"]))
            if rec["status"] == "ok" and p is not None and p.get("other") == rec["engine"]:
                row.update(parity=p["verdict"], rel_l2_max=p["rel_l2_max"])
            rows.append(row)
    return pd.DataFrame(rows, columns=DEPLOYMENT_COLUMNS)
