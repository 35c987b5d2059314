"""Comparison tables (pandas) from paired records: runs, ratios with intervals, skill, parity."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from reports.energy import energy_ratio
from reports.naming import FRAMEWORK_LABEL, engine_name, load_mark, setting, target_of
from reports.pairing import Pairing, device_kind
from reports.stats import bootstrap_ratio, factor_split

RUN_COLUMNS = [
    "workload", "framework", "framework_version", "device", "device_name", "precision", "mode", "recompute",
    "threads", "objective", "batch_size",
    "samples_per_s", "step_ms_p50", "step_ms_p90", "step_ms_p99", "forward_ms_p50", "forward_ms_p90",
    "forward_ms_p99", "build_s", "host_peak_rss_mb", "power_w_mean", "power_provenance", "power_scope",
    "energy_j_per_sample", "samples_per_j", "mfu_train", "load_verdict", "hardware_profile", "host",
    "workload_fingerprint",
]  # fmt: skip
RATIO_COLUMNS = [
    "workload", "setting", "comparison", "metric", "ratio", "ci_low", "ci_high", "within_noise", "machine", "basis",
]  # fmt: skip
# The runs table in the report: one narrower table per group, each led by the same columns (CSV: one table).
RUN_KEYS = ["workload", "framework", "device", "batch_size"]
RUN_GROUPS = [
    ("what ran", ["framework_version", "device_name", "precision", "mode", "recompute", "threads", "objective",
                  "hardware_profile", "host", "workload_fingerprint"]),
    ("timings", ["samples_per_s", "step_ms_p50", "step_ms_p90", "step_ms_p99", "forward_ms_p50", "forward_ms_p90",
                 "forward_ms_p99", "build_s", "mfu_train", "load_verdict"]),
    ("memory, power and energy", ["host_peak_rss_mb", "power_w_mean", "power_provenance", "power_scope",
                                  "energy_j_per_sample", "samples_per_j"]),
]  # fmt: skip


def runs_table(pairing: Pairing) -> pd.DataFrame:
    """One row per successful timing run; missing values stay empty (never 0)."""
    rows = [{c: run.get(c) for c in RUN_COLUMNS} for g in pairing.groups if g.task == "pair" for run in g.runs.values()]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def failures_table(pairing: Pairing) -> pd.DataFrame:
    rows = [
        {
            "workload": r.get("workload"),
            "task": r.get("task", "pair"),
            "framework": r.get("framework") + (f" via {engine_name(r['engine'])}" if r.get("engine") else ""),
            "device": r.get("device"),
            "status": r.get("status"),
            "reason": r.get("reason"),
        }
        for g in pairing.groups
        for r in g.failed
    ]
    return pd.DataFrame(rows, columns=["workload", "task", "framework", "device", "status", "reason"])


def _ratio_rows(workload: str, comparison: str, num: dict, den: dict) -> list[dict]:
    rows = []
    for metric, key in (("train step time", "step_ms"), ("forward latency", "forward_ms")):
        if len(num.get(key) or []) >= 2 and len(den.get(key) or []) >= 2:
            r = bootstrap_ratio(num[key], den[key])
            rows.append(
                {
                    "workload": workload,
                    "setting": setting(num),
                    "comparison": comparison,
                    "metric": metric,
                    "ratio": r.value,
                    "ci_low": r.low,
                    "ci_high": r.high,
                    "within_noise": r.within_noise,
                    "machine": load_mark(num, den),
                    "basis": "median of per-step times, 95% bootstrap interval",
                }
            )
    value, basis = energy_ratio(num, den, "energy_j_per_sample")
    if num.get("energy_j_per_sample") and den.get("energy_j_per_sample"):
        rows.append(
            {
                "workload": workload,
                "setting": setting(num),
                "comparison": comparison,
                "metric": "energy per sample",
                "ratio": value,
                "ci_low": None,
                "ci_high": None,
                "within_noise": None,
                "machine": load_mark(num, den),
                "basis": f"one energy window per run; {basis}",
            }
        )
    return rows


def ratios_table(pairing: Pairing) -> pd.DataFrame:
    """MindSpore / PyTorch on each device, and NPU / GPU for each framework, with intervals; the
    framework x hardware split where both frameworks ran on both kinds of accelerator."""
    rows = []
    for g in pairing.groups:
        if g.task != "pair" or not g.paired:
            continue
        devices = sorted({d for _, d in g.runs})
        for d in devices:
            if ("torch", d) in g.runs and ("mindspore", d) in g.runs:
                rows += _ratio_rows(
                    g.workload, f"MindSpore / PyTorch on {d}", g.runs["mindspore", d], g.runs["torch", d]
                )
        for fw in ("torch", "mindspore"):
            gpus = [d for d in devices if device_kind(d) == "cuda" and (fw, d) in g.runs]
            npus = [d for d in devices if device_kind(d) == "ascend" and (fw, d) in g.runs]
            if gpus and npus:
                label = f"NPU / GPU, {FRAMEWORK_LABEL[fw]} ({npus[0]} / {gpus[0]})"
                rows += _ratio_rows(g.workload, label, g.runs[fw, npus[0]], g.runs[fw, gpus[0]])
        times = {(fw, device_kind(d)): float(np.median(r["step_ms"])) for (fw, d), r in g.runs.items()}
        try:
            split = factor_split(times)
        except ValueError:
            continue
        for metric in ("gap", "framework_factor", "hardware_factor"):
            rows.append(
                {
                    "workload": g.workload,
                    "setting": setting(g.identity),
                    "comparison": "MindSpore on NPU / PyTorch on GPU",
                    "metric": f"train step time: {metric.replace('_', ' ')}",
                    "ratio": split[metric],
                    "ci_low": None,
                    "ci_high": None,
                    "within_noise": None,
                    "machine": load_mark(*g.runs.values()),
                    "basis": "geometric mean of both paths; framework x hardware = gap",
                }
            )
    return pd.DataFrame(
        rows,
        columns=RATIO_COLUMNS,
    )


_SKILL_KEY = re.compile(r"^(rmse|acc)_(?:(persistence|climatology)_)?(.+)_(\d+)h$")


def data_label(data: dict) -> str | None:
    """What a skill run's data was, for its name in tables and figures: None for a workload's built-in data, else
    its kind and file names (``xarray:uwnd_mean.nc,vwnd_mean.nc``)."""
    if "kind" not in data or "generator" in data:
        return None
    names = [str(f.get("name", "?")) for f in data.get("files", []) if isinstance(f, dict)]
    return f"{data['kind']}:{','.join(names[:3])}{',...' if len(names) > 3 else ''}"


def skill_subject(group) -> str:
    """The workload of a skill group, with the data it ran on where that is not the built-in data."""
    label = data_label(group.identity.get("data") or {})
    return group.workload if label is None else f"{group.workload} on {label}"


def skill_long(pairing: Pairing) -> pd.DataFrame:
    """RMSE and ACC in long form: workload, forecast source (each framework with its device,
    persistence, climatology), variable, lead time; runs trained to a target are not here (reports.tta: each
    stopped at its own step). Each skill group (one fingerprint) has rows of its own: where a
    workload has several, the workload is named with the fingerprint's first characters."""
    values: dict[tuple, dict] = {}
    groups = [g for g in pairing.groups if g.task == "skill" and not target_of(g.identity)]
    subjects = [skill_subject(g) for g in groups]
    for g, subject in zip(groups, subjects, strict=True):
        if subjects.count(subject) > 1:
            subject = f"{subject} [{g.fingerprint[:8]}]"
        for (fw, device), rec in g.runs.items():
            for key, value in rec.items():
                m = _SKILL_KEY.match(key)
                if not m:
                    continue
                metric, reference, variable, lead = m.groups()
                source = reference or FRAMEWORK_LABEL.get(fw, fw)
                dev = "-" if reference else device
                row = values.setdefault((subject, source, dev, variable, int(lead)), {})
                row[metric] = value
    rows = [
        {"workload": w, "source": s, "device": d, "variable": v, "lead_h": lead, **m}
        for (w, s, d, v, lead), m in sorted(values.items())
    ]
    return pd.DataFrame(rows, columns=["workload", "source", "device", "variable", "lead_h", "rmse", "acc"])


def skill_table(pairing: Pairing) -> pd.DataFrame:
    """RMSE and ACC by workload, variable and lead time, one column per metric and forecast source."""
    long = skill_long(pairing)
    if long.empty:
        return long
    long["name"] = [s if d == "-" else f"{s} {d}" for s, d in zip(long.source, long.device, strict=True)]
    wide = long.pivot_table(
        index=["workload", "variable", "lead_h"], columns="name", values=["rmse", "acc"], aggfunc="first", dropna=False
    )
    wide.columns = [f"{metric.upper()} {name}" for metric, name in wide.columns]
    ordered = sorted(wide.columns, key=lambda c: (not c.startswith("RMSE"), "persistence" in c, "climatology" in c, c))
    wide = wide[[c for c in ordered if not (c.startswith("ACC") and "climatology" in c)]]
    return wide.reset_index()


PARITY_COLUMNS = [
    "workload", "setting", "device", "compared", "verdict", "forward_rel_l2", "gradient_max_rel_l2",
    "gradient_worst_parameter", "loss_max_rel", "not_finite", "gradient_on_one_side_only", "no_gradient_in_either",
    "bounds",
]  # fmt: skip


def parity_table(pairing: Pairing) -> pd.DataFrame:
    """The latest parity record of each group on each device: figures, verdict, what was not finite or had no
    gradient."""
    rows = []
    for g in pairing.groups:
        training = [p for p in g.parity if p["record_type"] == "parity"]  # forecast_parity: reports.forecast_tables
        latest = {p["device"]: p for p in sorted(training, key=lambda r: r["timestamp"])}
        for p in latest.values():
            rows.append(
                {
                    "workload": g.workload,
                    "setting": setting(p),
                    "device": p["device"],
                    "compared": f"{p['other']} vs {p['reference']}",
                    "verdict": p["verdict"],
                    "forward_rel_l2": p["forward_rel_l2"],
                    "gradient_max_rel_l2": p["gradient_max_rel_l2"],
                    "gradient_worst_parameter": p["gradient_worst_parameter"],
                    "loss_max_rel": p["loss_max_rel"],
                    "not_finite": ", ".join(p["nonfinite"]),
                    "gradient_on_one_side_only": ", ".join(p["gradient_mismatch"]),
                    "no_gradient_in_either": ", ".join(p["gradient_missing"]),
                    "bounds": p["bounds_source"],
                }
            )
    return pd.DataFrame(rows, columns=PARITY_COLUMNS)


DP_COLUMNS = [
    "workload", "framework", "device", "nproc", "backend", "batch_size", "samples_per_s_total",
    "samples_per_s_per_device", "reference_samples_per_s", "scaling_efficiency", "loss_max_rel_diff",
    "grad0_max_rel_l2", "status", "reason",
]  # fmt: skip


def data_parallel_table(records: list[dict]) -> pd.DataFrame:
    """Data-parallel runs (torchrun / msrun) beside one process with the same global batch. The records of the
    nodes of one run over several nodes (same work, framework, device and master endpoint) are one row: node 0's
    figures (it holds rank 0 and the comparison with one process), the nodes recorded, and the run's status
    (failed if any node's is)."""
    rows, jobs = [], {}
    for r in records:
        if r.get("record_type") != "data_parallel":
            continue
        if not r.get("nnodes"):
            rows.append({**{c: r.get(c) for c in DP_COLUMNS}, "nodes": 1})
            continue
        key = (r["workload_fingerprint"], r["framework"], r["device"], r["master"])
        latest = jobs.setdefault(key, {})  # a run repeated at the same endpoint: each node's latest record
        if r["node_rank"] not in latest or r["timestamp"] >= latest[r["node_rank"]]["timestamp"]:
            latest[r["node_rank"]] = r
    for by_node in jobs.values():
        nodes = [by_node[n] for n in sorted(by_node)]
        row = {c: nodes[0].get(c) for c in DP_COLUMNS}
        seen = ", ".join(str(r["node_rank"]) for r in nodes)
        row["nodes"] = f"{nodes[0]['nnodes']} (recorded: {seen})"
        failed = [r for r in nodes if r["status"] != "ok"]
        if failed:
            row.update(status=failed[0]["status"], reason=f"node {failed[0]['node_rank']}: {failed[0].get('reason')}")
        rows.append(row)
    return pd.DataFrame(rows, columns=[*DP_COLUMNS, "nodes"])
