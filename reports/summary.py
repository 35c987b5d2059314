"""The answer first: one row per comparison (two runs of one workload fingerprint, each side named by framework,
engine and device) with every ratio the records allow (training step time, forecast latency, energy per sample and
per forecast, skill, time to a target) and the parity verdict, each with its 95% interval where there are samples to
draw one from, and the same in plain sentences. A ratio involving a run timed on a busy or unstable machine is marked
so, in its cell and its sentence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.energy import energy_ratio
from reports.forecast_tables import latest_parity
from reports.naming import (
    FRAMEWORK_LABEL,
    REFERENCE,
    load_mark,
    load_sentence,
    setting,
    side_name,
    task_label,
)
from reports.pairing import Group, Pairing, device_kind
from reports.stats import bootstrap_ratio
from reports.tables import skill_long
from reports.tta import tta_comparison

MEASURES = ["step_time", "forecast_latency", "energy_per_sample", "energy_per_forecast", "skill_rmse",
            "time_to_target", "parity"]  # fmt: skip
SUMMARY_COLUMNS = ["workload", "setting", "compared", *MEASURES]
SUMMARY_TEXT = (
    "One row per comparison: two runs of one workload fingerprint (same model, weights, data and setting), the first "
    "side against the second. A ratio above 1 means the first takes more (time, energy, error) than the second. "
    "Intervals are 95% bootstrap intervals over the timed samples (reports/stats.py); an energy, a skill score and a "
    "time to target come from one window or run per side, so they have none. Energies are compared only where both "
    "readings cover the same thing (power scope, see 'What each watt covers'). A ratio marked busy or unstable "
    "involves a run timed on a machine that was not quiet (see 'How quiet the machine was')."
)
NOTHING = "Nothing to compare: no workload fingerprint here has successful runs of two frameworks to set side by side."


@dataclass(frozen=True)
class Measure:
    """One cell of the Summary and its sentence; ``timed``: a ratio of times or energies, which a machine that was
    not quiet distorts (so it is marked)."""

    cell: str
    sentence: str
    timed: bool = True


def _x(value: float) -> str:
    return f"{value:.3g}x"


def _sample_ratio(a: list, b: list) -> tuple[str, str]:
    """A ratio of medians with its interval as a cell and as words (one sample a side: the plain ratio)."""
    if len(a) >= 2 and len(b) >= 2:
        r = bootstrap_ratio(a, b)
        text = f"{_x(r.value)} [{r.low:.3g}, {r.high:.3g}]"
        return text + " within noise" * r.within_noise, text + " (within noise: the interval contains 1)" * (
            r.within_noise
        )
    text = _x(float(np.median(a)) / float(np.median(b)))
    return f"{text} (no interval)", f"{text} (too few samples on a side for an interval)"


def _theirs(a: dict, b: dict) -> str:
    """The second side, possessive: its framework where both ran on one device, else its framework and device."""
    who = FRAMEWORK_LABEL.get(b["framework"], b["framework"]) if a["device"] == b["device"] else side_name(b)
    return f"{who}'s"


def _time(a: dict, b: dict, key: str, what: str) -> Measure | None:
    if not a.get(key) or not b.get(key):
        return None
    cell, words = _sample_ratio(a[key], b[key])
    return Measure(cell, f"{side_name(a)} takes {words} {_theirs(a, b)} time per {what}.")


def _energy(a: dict, b: dict, key: str, what: str) -> Measure | None:
    if a.get(key) is None and b.get(key) is None:
        return None
    value, basis = energy_ratio(a, b, key)
    if value is None:
        return Measure(basis, f"Energy per {what} is not compared: {basis}.", timed=False)
    flagged = "; few power samples" * any(r.get("power_window_ok") is False for r in (a, b))
    return Measure(
        f"{_x(value)} ({a.get('power_scope')}{flagged})",
        f"{side_name(a)} uses {_x(value)} {_theirs(a, b)} energy per {what} ({basis}; one energy window per run, so "
        "no interval).",
    )


def _skill(group: Group, a: dict, b: dict) -> Measure | None:
    long = skill_long(Pairing([group], []))
    rmse = {}
    for rec in (a, b):
        source = FRAMEWORK_LABEL.get(rec["framework"], rec["framework"])
        rows = long[(long.source == source) & (long.device == rec["device"])]
        rmse[id(rec)] = {(v, h): r for v, h, r in zip(rows.variable, rows.lead_h, rows.rmse, strict=True)}
    ratios = [
        ra / rb
        for cell, ra in rmse[id(a)].items()
        if (rb := rmse[id(b)].get(cell)) is not None and _positive(ra) and _positive(rb)
    ]
    if not ratios:
        return None
    mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    spread = f"{min(ratios):.4g}x to {max(ratios):.4g}x"
    return Measure(
        f"{mean:.4g}x ({spread}, {len(ratios)} cells)",
        f"{side_name(a)}'s forecast error (RMSE) is {mean:.4g}x {_theirs(a, b)}: the geometric mean over {len(ratios)} "
        f"variable and lead cells, from {spread}; one score per cell, so no interval.",
        timed=False,
    )


def _positive(value) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _figure(value) -> str:
    return "not finite" if value is None else f"{value:.2g}"


def _parity(group: Group, a: dict, b: dict) -> Measure | None:
    kind = "forecast_parity" if group.task == "forecast" else "parity"
    p = latest_parity(group, kind).get(a["device"]) if a["device"] == b["device"] else None
    if p is None or p["other"] != a["framework"] or p["reference"] != b["framework"]:
        return None
    if kind == "parity":
        short = f"forward rel. L2 {_figure(p['forward_rel_l2'])}"
        figures = (
            f"forward output rel. L2 {_figure(p['forward_rel_l2'])}, "
            f"worst gradient {_figure(p['gradient_max_rel_l2'])}, losses {_figure(p['loss_max_rel'])}"
        )
        what = "training"
    else:
        short = figures = f"worst lead rel. L2 {_figure(p['rel_l2_max'])}"
        what = "forecast"
    verdict = p["verdict"]
    if verdict == "pass":
        words = f"{side_name(a)}'s {what} matches {_theirs(a, b)} within the bounds"
    elif verdict == "fail":
        words = f"{side_name(a)}'s {what} does NOT match {_theirs(a, b)} within the bounds"
    else:
        words = f"No bounds are established for this {what} ({p['bounds_source']})"
    return Measure(f"{verdict} ({short})", f"{words}: same weights and data, {figures}.", timed=False)


def _sides(group: Group) -> list[tuple[dict, dict]]:
    """(first, second) of every comparison in a group: each other framework against PyTorch on each device where
    both ran, then the whole move, each other framework on an NPU against PyTorch on a GPU."""
    devices = sorted({d for _, d in group.runs})
    out = []
    for d in devices:
        if (REFERENCE, d) in group.runs:
            others = [fw for fw, dd in sorted(group.runs) if dd == d and fw != REFERENCE]
            out += [(group.runs[fw, d], group.runs[REFERENCE, d]) for fw in others]
    gpus = [d for d in devices if device_kind(d) == "cuda" and (REFERENCE, d) in group.runs]
    for fw in sorted({f for f, _ in group.runs} - {REFERENCE}):
        npus = [d for d in devices if device_kind(d) == "ascend" and (fw, d) in group.runs]
        if gpus and npus:
            out.append((group.runs[fw, npus[0]], group.runs[REFERENCE, gpus[0]]))
    return out


def _measures(group: Group, a: dict, b: dict) -> dict[str, Measure | None]:
    tta = tta_comparison(a, b)
    return {
        "step_time": _time(a, b, "step_ms", "training step") if group.task == "pair" else None,
        "forecast_latency": _time(a, b, "forecast_ms", "forecast") if group.task == "forecast" else None,
        "energy_per_sample": _energy(a, b, "energy_j_per_sample", "training sample") if group.task == "pair" else None,
        "energy_per_forecast": _energy(a, b, "energy_j_per_forecast", "forecast") if group.task == "forecast" else None,
        "skill_rmse": _skill(group, a, b) if group.task == "skill" and tta is None else None,
        "time_to_target": Measure(*tta) if tta else None,
        "parity": _parity(group, a, b),
    }


def summary(pairing: Pairing) -> tuple[pd.DataFrame, list[str]]:
    """The Summary table (one row per comparison, cells as text) and one paragraph of sentences per row."""
    rows, notes = [], []
    for g in pairing.groups:
        if g.task not in ("pair", "forecast", "skill"):
            continue
        for a, b in _sides(g):
            mark = load_mark(a, b)
            row = {"workload": g.workload, "setting": f"{task_label(g)}: {setting(g.identity)}"}
            row["compared"] = f"{side_name(a)} vs {side_name(b)}"
            sentences, any_marked = [], False
            for key, m in _measures(g, a, b).items():
                if m is None:
                    continue
                marked = mark is not None and m.timed
                any_marked |= marked
                row[key] = m.cell + f" ({mark} run)" * marked
                sentences.append(m.sentence[:-1] + f" (marked {mark})." * marked + "." * (not marked))
            if len(row) == 3:
                continue
            rows.append(row)
            why = load_sentence(a, b) if any_marked else ""
            notes.append(f"{g.workload}, {row['setting']}: " + " ".join(sentences) + why)
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return frame[[c for c in SUMMARY_COLUMNS if frame[c].notna().any()]] if rows else frame, notes
