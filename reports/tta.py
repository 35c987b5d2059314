"""Time to accuracy: skill runs trained to a target (``--target-rmse``; record fields ``tta_*``): the target, steps,
wall time and energy (with its scope) of each framework, and on each other framework's row its ratios to PyTorch on
the same device. These runs are kept out of the Skill table and the Scorecard: each stopped at its own step."""

from __future__ import annotations

import pandas as pd

from reports.energy import energy_ratio, scope_phrase
from reports.naming import REFERENCE, framework_name, setting, target_label, target_of, unavailable
from reports.pairing import Pairing

TTA_SETTING = ["workload", "setting"]
TTA_COLUMNS = [
    *TTA_SETTING, "framework", "device", "target", "tta_reached", "tta_steps", "tta_wall_s", "tta_energy",
    "power_scope_label", "tta_best_rmse", "load_verdict", "steps_ratio", "wall_ratio", "tta_energy_ratio",
]  # fmt: skip
TTA_TEXT = (
    "Skill runs trained until the validation RMSE of one variable at one lead reached a target (pairbench skill "
    "--target-rmse), checked every few steps: the steps and wall time it took (training and checks, from the start "
    "of training), the energy over that time with what its watts cover, and the best RMSE seen. On the row of each "
    "other framework, its ratios to PyTorch on the same device (one run each: no interval; none where either did "
    "not reach the target, or the energies cover different things). These runs are not in Skill or Scorecard."
)


def _ratio(a, b) -> float | None:
    return a / b if a and b else None


def _energy(run: dict):
    value = run.get("tta_energy_j")
    return value if value is not None else unavailable(run.get("tta_energy_reason"))


def tta_rows(run: dict, reference: dict | None) -> dict:
    """The figures of one run trained to a target, and its ratios to ``reference`` (None: no ratios)."""
    reached = run.get("tta_reached")
    row = {
        "framework": framework_name(run),
        "device": run["device"],
        "target": f"{target_label(run['tta_target'])}, checked every {run['tta_target'].get('check_every')} steps",
        "tta_reached": "yes" if reached else f"no, in {len(run.get('losses') or [])} steps",
        "tta_steps": run.get("tta_steps"),
        "tta_wall_s": run.get("tta_wall_s"),
        "tta_energy": _energy(run),
        "power_scope_label": f"{scope_phrase(run)}: {run.get('power_scope_label')}",
        "tta_best_rmse": run.get("tta_best_rmse"),
        "load_verdict": run.get("load_verdict"),
    }
    if reference is not None and reached and reference.get("tta_reached"):
        row["steps_ratio"] = _ratio(run.get("tta_steps"), reference.get("tta_steps"))
        row["wall_ratio"] = _ratio(run.get("tta_wall_s"), reference.get("tta_wall_s"))
        row["tta_energy_ratio"] = energy_ratio(run, reference, "tta_energy_j")[0]
    return row


def tta_table(pairing: Pairing) -> pd.DataFrame:
    """One row per successful run trained to a target, by workload and setting (the target in it)."""
    rows = []
    for g in pairing.groups:
        if g.task != "skill" or not target_of(g.identity):
            continue
        for device in sorted({d for _, d in g.runs}):
            runs = {fw: r for (fw, d), r in g.runs.items() if d == device and "tta_target" in r}
            reference = runs.get(REFERENCE)
            for fw in sorted(runs, key=lambda f: (f != REFERENCE, f)):
                other = reference if fw != REFERENCE else None
                rows.append({"workload": g.workload, "setting": setting(g.identity), **tta_rows(runs[fw], other)})
    return pd.DataFrame(rows, columns=TTA_COLUMNS)


def tta_comparison(run: dict, reference: dict) -> tuple[str, str] | None:
    """The Summary's cell and sentence (reports.summary marks them where the machine was not quiet) for one run to a
    target against another: the wall-time ratio, or which did not reach it; None where either is not a run to a
    target."""
    if "tta_target" not in run or "tta_target" not in reference:
        return None
    a, b = framework_name(run), framework_name(reference)
    target = target_label(run["tta_target"])
    missed = [framework_name(r) for r in (run, reference) if not r.get("tta_reached")]
    if missed:
        return f"not reached by {' and '.join(missed)}", f"{' and '.join(missed)} did not reach {target}."
    wall = _ratio(run.get("tta_wall_s"), reference.get("tta_wall_s"))
    if wall is None:
        return None
    cell = f"{wall:.3g}x"
    sentence = (
        f"{a} on {run['device']} takes {wall:.3g}x {b}'s wall time to reach {target} "
        f"({run.get('tta_steps')} vs {reference.get('tta_steps')} steps; one run each, no interval)."
    )
    return cell, sentence
