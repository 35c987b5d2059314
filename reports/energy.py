"""What each watt covers: energies grouped by power scope (metrics.device.reading.SCOPES), the one rule for when two
energies may be divided (same scope), and each window's sampling checked against MLPerf Power's minimum, flagged where
short, never dropped."""

from __future__ import annotations

import pandas as pd

from metrics.power.window import MIN_RATE_HZ, MIN_SAMPLES
from reports.naming import framework_name, ok_runs, target_of, task_label, unavailable
from reports.pairing import Pairing

SCOPE_NAME = {
    "chip": "one chip",
    "card": "a whole card or board",
    "cpu-package": "CPU package(s)",
    "model-estimate": "a model estimate, not a reading",
    "none": "nothing read",
}
ENERGY_SCOPE = ["power_scope"]  # one table per scope
ENERGY_COLUMNS = [
    "power_scope", "workload", "task", "framework", "device", "power_scope_label", "power_provenance",
    "energy_per_unit", "unit", "power_w_mean", "power_window_s", "power_samples_n", "power_rate_hz_achieved",
    "power_window_ok",
]  # fmt: skip
ENERGY_TEXT = (
    "Energy of every run, one table per power scope: what the watts cover. Energies of different scopes are never "
    "divided one by the other in this report: a chip's reading leaves out the rest of its card; a card's or board's "
    "covers all of it, and on a card with several chips each chip's run is charged the whole card's power (labelled "
    "card-wide); a CPU package covers the whole socket and every process on it, not the memory; a model estimate is "
    f"not a reading. A window with fewer than {MIN_SAMPLES} power samples, or sampled under {MIN_RATE_HZ:g} Hz "
    "(MLPerf Power's minimum), is flagged in 'Enough samples'; its energy is kept."
)


def scope_phrase(rec: dict) -> str:
    """A run's power scope and provenance, short: ``cpu-package, measured``."""
    return f"{rec.get('power_scope', 'scope not recorded')}, {rec.get('power_provenance')}"


def energy_ratio(num: dict, den: dict, key: str) -> tuple[float | None, str]:
    """``num[key] / den[key]`` where both runs have that energy and their readings cover the same (power scope),
    with the basis in words (scope, provenance, a window short of samples); None and why otherwise."""
    a, b = num.get(key), den.get(key)
    if not a or not b:
        return None, "unavailable on " + " and ".join(framework_name(r) for r, v in ((num, a), (den, b)) if not v)
    sa, sb = num.get("power_scope"), den.get("power_scope")
    if sa != sb:
        return None, f"not compared: the readings cover different things ({sa} vs {sb})"
    provenance = " / ".join(dict.fromkeys(str(r.get("power_provenance")) for r in (num, den)))
    basis = f"{sa or 'scope not recorded'}, {provenance}"
    if any(r.get("power_window_ok") is False for r in (num, den)):
        basis += "; too few power samples in a window (flagged)"
    return a / b, basis


def window_cell(rec: dict) -> str | None:
    """'yes', or 'NO: why' for a window short of samples (never left out), or None where nothing was checked."""
    ok = rec.get("power_window_ok")
    if ok is None:
        return None
    why = str(rec.get("power_window_reason") or "too few samples").split(": ")[0]  # its figures; the rule is above
    return "yes" if ok else f"NO: {why}"


def flag_style(value) -> str | None:
    """The CSS of a flagged cell (a window short of samples)."""
    return "color:#a33;font-weight:600" if isinstance(value, str) and value.startswith("NO:") else None


def _per_unit(group, rec: dict) -> tuple[float | None, str]:
    if group.task == "forecast":
        return rec.get("energy_j_per_forecast"), "forecast"
    if group.task == "skill" and target_of(group.identity):
        return rec.get("tta_energy_j"), "training run to the target"
    return rec.get("energy_j_per_sample"), "training sample"


def _why(rec: dict) -> str | None:
    return rec.get("tta_energy_reason") or rec.get("power_reason") or rec.get("power_partial_reason")


def energy_table(pairing: Pairing) -> pd.DataFrame:
    """One row per successful run with power figures: its scope and what it covers, provenance, energy per unit of
    work (sample, forecast, run to a target), mean power, the window and its sampling, flagged where short."""
    rows = []
    for g, rec in ok_runs(pairing):
        if "power_provenance" not in rec:
            continue
        value, unit = _per_unit(g, rec)
        samples = rec.get("power_samples")
        rows.append(
            {
                "power_scope": f"{rec.get('power_scope')} ({SCOPE_NAME.get(rec.get('power_scope'), '?')})",
                "workload": g.workload,
                "task": task_label(g),
                "framework": framework_name(rec),
                "device": rec["device"],
                "power_scope_label": rec.get("power_scope_label"),
                "power_provenance": rec.get("power_provenance"),
                "energy_per_unit": value if value is not None else unavailable(_why(rec)),
                "unit": unit,
                "power_w_mean": rec.get("power_w_mean"),
                "power_window_s": rec.get("power_window_s"),
                "power_samples_n": len(samples) if isinstance(samples, list) else None,
                "power_rate_hz_achieved": rec.get("power_rate_hz_achieved"),
                "power_window_ok": window_cell(rec),
            }
        )
    return pd.DataFrame(rows, columns=ENERGY_COLUMNS)
