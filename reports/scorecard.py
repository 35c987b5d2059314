"""WeatherBench-2-style scorecard: relative RMSE differences by variable and lead time, coloured by sign and size."""

from __future__ import annotations

import math

import pandas as pd

from reports import MISSING
from reports.pairing import Pairing
from reports.tables import FRAMEWORK_LABEL, setting, skill_long, skill_subject

# What tells one scorecard from another (the report draws one coloured table per distinct value of these).
SCORECARD_SETTING = ["workload", "setting", "workload_fingerprint", "comparison"]
SATURATION = 0.2  # a relative difference of this size or more takes the full colour
BETTER = (33, 102, 172)  # blue: lower RMSE than what it is compared with
WORSE = (178, 24, 43)  # red: higher RMSE


def relative_difference(a, b) -> float | None:
    """``(a - b) / b`` of two RMSEs; None where either is missing or not finite, or ``b`` is 0."""
    if a is None or b is None or pd.isna(a) or pd.isna(b) or b == 0:
        return None
    value = (float(a) - float(b)) / float(b)
    return value if math.isfinite(value) else None


def lead_column(hours: int) -> str:
    return f"{hours} h"


def _comparisons(sources: set[tuple[str, str]]) -> list[tuple[str, tuple[str, str], tuple[str, str]]]:
    """(name, a, b) for every comparison the sources allow: MindSpore against PyTorch on each device where both
    ran, then each framework against persistence."""
    order = {label: i for i, label in enumerate(FRAMEWORK_LABEL.values())}
    runs = sorted((s for s in sources if s[1] != "-"), key=lambda s: (s[1], order.get(s[0], len(order)), s[0]))
    out = []
    ms, pt = FRAMEWORK_LABEL["mindspore"], FRAMEWORK_LABEL["torch"]
    for device in dict.fromkeys(d for _, d in runs):
        if (ms, device) in sources and (pt, device) in sources:
            out.append((f"{ms} vs {pt} on {device}", (ms, device), (pt, device)))
    if ("persistence", "-") in sources:
        out += [(f"{s} on {d} vs persistence", (s, d), ("persistence", "-")) for s, d in runs]
    return out


def scorecard_table(pairing: Pairing) -> pd.DataFrame:
    """One row per skill setting, comparison and variable; one column per lead time holding
    ``(rmse_a - rmse_b) / rmse_b`` (negative: a has the lower RMSE), ``MISSING`` where either RMSE is missing, and
    NaN only at a lead time the group's records do not have. The RMSEs are those of
    :func:`reports.tables.skill_long`, one skill group at a time."""
    rows, leads = [], set()
    for g in pairing.groups:
        if g.task != "skill":
            continue
        long = skill_long(Pairing([g], []))
        if long.empty:
            continue
        keys = zip(long.source, long.device, long.variable, long.lead_h, strict=True)
        rmse = dict(zip(keys, long.rmse, strict=True))
        g_leads = sorted({int(h) for h in long.lead_h})
        leads.update(g_leads)
        for name, a, b in _comparisons(set(zip(long.source, long.device, strict=True))):
            for variable in dict.fromkeys(long.variable):
                row = {
                    "workload": skill_subject(g),
                    "setting": setting(g.identity),
                    "workload_fingerprint": g.fingerprint,
                    "comparison": name,
                    "variable": variable,
                }
                for h in g_leads:
                    value = relative_difference(rmse.get((*a, variable, h)), rmse.get((*b, variable, h)))
                    row[lead_column(h)] = MISSING if value is None else value
                rows.append(row)
    columns = [*SCORECARD_SETTING, "variable", *(lead_column(h) for h in sorted(leads))]
    return pd.DataFrame(rows, columns=columns)


def cell_colour(value) -> str | None:
    """The CSS of a scorecard cell: white at 0, towards blue (better) or red (worse) with the size of the
    difference, full at ``SATURATION``; None for anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    t = min(abs(value) / SATURATION, 1.0)
    rgb = [round(255 + (c - 255) * t) for c in (BETTER if value < 0 else WORSE)]
    text = "#fff" if t > 0.6 else "#222"
    return f"background:#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x};color:{text}"
