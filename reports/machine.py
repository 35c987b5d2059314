"""How quiet the machine was while each run was timed (metrics.load): verdict, spread of the timed samples, other
processes' CPU time, steal, load average and throttling, with the thresholds the verdict is held to."""

from __future__ import annotations

import pandas as pd

from metrics.load import BUSY_OTHER_CPU, BUSY_STEAL, UNSTABLE_CV
from reports.naming import framework_name, ok_runs, task_label
from reports.pairing import Pairing

MACHINE_COLUMNS = [
    "workload", "task", "framework", "device", "load_verdict", "load_cv", "load_other_cpu_frac", "load_steal_frac",
    "load_avg_1m", "load_throttle_events", "load_verdict_reason", "load_reason",
]  # fmt: skip
MACHINE_TEXT = (
    "Each run's machine over its timed window (metrics/load.py). Busy: other processes used more than "
    f"{BUSY_OTHER_CPU:.0%} of the machine's CPU time, or the hypervisor stole more than {BUSY_STEAL:.0%} of it, or "
    "the CPU was thermally throttled. Unstable: not busy, but the timed samples' coefficient of variation (standard "
    f"deviation / mean) is above {UNSTABLE_CV:.0%}. Quiet: neither. Unknown: what other processes did could not "
    "be read. A figure the machine does not expose is empty, "
    "with what was not read in the last column; a ratio involving a busy or unstable run is marked as such in the "
    "Summary and in Ratios."
)


def machine_table(pairing: Pairing) -> pd.DataFrame:
    """One row per successful run that recorded how quiet its machine was."""
    rows = [
        {
            "workload": g.workload,
            "task": task_label(g),
            "framework": framework_name(rec),
            "device": rec["device"],
            **{k: rec.get(k) for k in MACHINE_COLUMNS[4:]},
        }
        for g, rec in ok_runs(pairing)
        if rec.get("load_verdict") is not None
    ]
    return pd.DataFrame(rows, columns=MACHINE_COLUMNS)


def verdict_style(value) -> str | None:
    """The CSS of a verdict cell that is not quiet."""
    return "color:#a33;font-weight:600" if value in ("busy", "unstable") else None
