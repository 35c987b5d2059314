"""Report figures with matplotlib (Agg), returned as embeddable PNG data URIs; every figure is drawn
from samples stored in the records and says whether its values were measured or estimated."""

from __future__ import annotations

import base64
import io
from textwrap import fill

import numpy as np

from reports.forecast_tables import latest_parity
from reports.pairing import Group, Pairing
from reports.stats import bootstrap_interval
from reports.tables import FRAMEWORK_LABEL, setting


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _encode(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _label(fw: str, device: str) -> str:
    return f"{FRAMEWORK_LABEL.get(fw, fw)}\n{device}"


def _group_name(g: Group, names: list[str]) -> str:
    """The workload, with its setting (and lead steps, for a forecast) where it ran in several."""
    if names.count(g.workload) == 1:
        return g.workload
    words = setting(g.identity)
    run = next(iter(g.runs.values()), {})
    if "n_lead" in run:
        words += f", {run['n_lead']} x {run['lead_hours']:g} h"
    return f"{g.workload}\n" + fill(words, 15)


def _timing_runs(pairing: Pairing, task: str = "pair"):
    """(workload, framework, device, record) of each run of ``task``; a workload run in several settings
    (precision, mode, batch, ...) is named with its setting, so that eager and compiled runs are told apart."""
    pair = [g for g in pairing.groups if g.task == task and not g.engine]  # exported graphs: reports.deployment
    names = [g.workload for g in pair]
    for g in pair:
        name = _group_name(g, names)
        for (fw, device), rec in sorted(g.runs.items()):
            yield name, fw, device, rec


def _bar_chart(runs: list, values: list, colour: str, ylabel: str, title: str, interval: list | None = None) -> str:
    """One bar per run of ``runs`` (as :func:`_timing_runs` gives them), with error bars from ``interval`` (each bar's
    (lower, upper) end) where given."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(runs)), 3.2))
    x = np.arange(len(runs))
    if interval is None:
        ax.bar(x, values, color=colour)
    else:
        low = [v - lo for v, (lo, _) in zip(values, interval, strict=True)]
        high = [hi - v for v, (_, hi) in zip(values, interval, strict=True)]
        ax.bar(x, values, yerr=[low, high], capsize=4, color=colour)
    ax.set_xticks(x, [f"{w}\n{_label(fw, d)}" for w, fw, d, _ in runs], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _encode(fig)


def throughput(pairing: Pairing) -> str | None:
    """Training samples/s per run; error bars are the 95% bootstrap interval of the median step."""
    runs = [r for r in _timing_runs(pairing) if len(r[3].get("step_ms") or []) >= 2]
    if not runs:
        return None
    values, interval = [], []
    for _, _, _, rec in runs:
        steps = np.asarray(rec["step_ms"])
        slow, fast = bootstrap_interval(steps)[::-1]  # a longer step is fewer samples per second
        values.append(rec["batch_size"] * 1000.0 / np.median(steps))
        interval.append((rec["batch_size"] * 1000.0 / slow, rec["batch_size"] * 1000.0 / fast))
    title = "Training throughput, median step with 95% interval"
    return _bar_chart(runs, values, "#4c72b0", "training samples/s (measured)", title, interval)


def latency(pairing: Pairing) -> str | None:
    """Distributions of every timed training step and forward pass."""
    runs = list(_timing_runs(pairing))
    if not runs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 2.6 * len(runs)), 3.4))
    labels = [f"{w}\n{_label(fw, d)}" for w, fw, d, _ in runs]
    for ax, key, title in zip(axes, ("step_ms", "forward_ms"), ("training step", "forward pass"), strict=True):
        data = [rec.get(key) or [np.nan] for *_, rec in runs]
        ax.boxplot(data, showfliers=True)
        ax.set_xticks(range(1, len(runs) + 1), labels, fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("ms per step (measured)")
        ax.set_title(title)
    fig.suptitle("Latency distributions (every timed step)")
    return _encode(fig)


def power(pairing: Pairing) -> str | None:
    """Power samples over each run's timed window, labelled measured or estimated."""
    runs = [r for r in _timing_runs(pairing) if r[3].get("power_samples")]
    if not runs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for w, fw, d, rec in runs:
        t, p = np.asarray(rec["power_samples"], dtype=float).T
        name = w.replace("\n", " ")
        ax.plot(t, p, marker=".", label=f"{name} {FRAMEWORK_LABEL.get(fw, fw)} {d} ({rec['power_provenance']})")
    ax.set_xlabel("seconds into the timed window")
    ax.set_ylabel("W")
    ax.set_title("Power over time (provenance in the legend)")
    ax.legend(fontsize=7)
    return _encode(fig)


def memory(pairing: Pairing) -> str | None:
    runs = [r for r in _timing_runs(pairing) if r[3].get("host_peak_rss_mb")]
    if not runs:
        return None
    values = [rec["host_peak_rss_mb"] for *_, rec in runs]
    return _bar_chart(runs, values, "#55a868", "peak host RSS, MB (measured)", "Peak memory per run")


SKILL_COLUMNS = 5  # variables per row of a skill figure (AI-GOMS has 13 or more)


def skill(skill_frame) -> list[tuple[str, str]]:
    """(title, figure) per workload: RMSE and ACC against lead time for every variable and source, variables
    wrapped ``SKILL_COLUMNS`` to a row (an RMSE row above its ACC row)."""
    out = []
    if skill_frame.empty:
        return out
    plt = _plt()
    for workload, frame in skill_frame.groupby("workload"):
        variables = list(dict.fromkeys(frame["variable"]))
        # One colour per forecast source in every panel (climatology has no ACC line to take its turn).
        sources = dict.fromkeys(zip(frame["source"], frame["device"], strict=True))
        colours = {key: f"C{i}" for i, key in enumerate(sources)}
        ncols = min(len(variables), SKILL_COLUMNS)
        groups = -(-len(variables) // ncols)
        fig, axes = plt.subplots(2 * groups, ncols, figsize=(3.4 * ncols, 2.7 * 2 * groups), squeeze=False)
        for j, var in enumerate(variables):
            rmse_ax, acc_ax = axes[2 * (j // ncols), j % ncols], axes[2 * (j // ncols) + 1, j % ncols]
            sub = frame[frame["variable"] == var]
            for (source, device), line in sub.groupby(["source", "device"], sort=False):
                name = source if device == "-" else f"{source} ({device})"
                style = "--" if device == "-" else "-"
                look = {"marker": "o", "ms": 3, "label": name, "color": colours[(source, device)]}
                rmse_ax.plot(line["lead_h"], line["rmse"], style, **look)
                if line["acc"].notna().any():
                    acc_ax.plot(line["lead_h"], line["acc"], style, **look)
            rmse_ax.set_title(f"{var}: RMSE")
            acc_ax.set_title(f"{var}: ACC")
            acc_ax.set_xlabel("lead time, h")
        for j in range(len(variables), groups * ncols):  # empty cells of the last row
            axes[2 * (j // ncols), j % ncols].set_visible(False)
            axes[2 * (j // ncols) + 1, j % ncols].set_visible(False)
        axes[0, 0].legend(fontsize=7)
        fig.suptitle(f"{workload}: skill against lead time (climatology has no ACC)")
        fig.tight_layout()
        out.append((str(workload), _encode(fig)))
    return out


def parity(pairing: Pairing) -> str | None:
    """Per-step relative loss difference between the frameworks, with the tolerance."""
    recs = [(g.workload, p) for g in pairing.groups for p in g.parity[-1:] if p.get("loss_rel_per_step")]
    if not recs:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for w, p in recs:
        rel = np.maximum(np.asarray(p["loss_rel_per_step"], dtype=float), 1e-12)
        ax.semilogy(np.arange(rel.size), rel, marker=".", label=f"{w}: {p['other']} vs {p['reference']}")
        if p["tolerances"]:  # None: bounds not established for this precision and device
            ax.axhline(p["tolerances"]["losses"], color="red", lw=1, ls="--")
    ax.set_xlabel("training step (0 = before the first update)")
    ax.set_ylabel("relative loss difference")
    ax.set_title("Numerical parity over training (dashed: tolerance)")
    ax.legend(fontsize=7)
    return _encode(fig)


def forecast_latency(pairing: Pairing) -> str | None:
    """Median latency of one batched forecast per run; error bars are its 95% bootstrap interval."""
    runs = list(_timing_runs(pairing, "forecast"))
    if not runs:
        return None
    values, interval = [], []
    for *_, rec in runs:
        samples = np.asarray(rec["forecast_ms"], dtype=float)
        mid = float(np.median(samples))
        values.append(mid)
        interval.append(bootstrap_interval(samples) if samples.size >= 2 else (mid, mid))
    title = "Forecast latency, median of the repeats with 95% interval"
    return _bar_chart(runs, values, "#8172b3", "ms per batched forecast (measured)", title, interval)


def forecast_rel_l2(pairing: Pairing) -> str | None:
    """Relative L2 difference of the two frameworks' forecasts at each lead time (latest forecast_parity record per
    setting and device, log scale; a lead whose difference is not finite is a gap), with the bounds dashed."""
    groups = [g for g in pairing.groups if g.task == "forecast" and not g.engine]  # graphs: reports.deployment
    names = [g.workload for g in groups]
    curves = []
    for g in groups:
        run = next(iter(g.runs.values()), {})
        hours = run.get("lead_hours")  # a forecast record's own field, a finite number by the schema
        if hours is None:  # a setting whose parity record is all that is left: no lead times to draw against
            continue
        for device, p in latest_parity(g, "forecast_parity").items():
            rel = np.array([np.nan if v is None else max(float(v), 1e-12) for v in p["rel_l2_per_lead"]])
            if np.isfinite(rel).any():
                name = _group_name(g, names).replace("\n", " ")
                curves.append((f"{name} {device}: {p['other']} vs {p['reference']}", hours, rel, p["tolerances"]))
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    drawn = set()
    for i, (label, hours, rel, tolerances) in enumerate(curves):
        ax.semilogy(hours * np.arange(1, rel.size + 1), rel, marker=".", color=f"C{i}", label=label)
        for key, bound in (tolerances or {}).items():  # None: bounds not established
            if isinstance(bound, (int, float)) and (key, bound) not in drawn:
                drawn.add((key, bound))
                look = {"color": "red", "lw": 1, "ls": "--", "label": f"bound: {key} {bound:g}"}
                if key == "first_lead":  # metrics.parity.compare_trajectories: a bound on the first lead only
                    ax.plot([0, hours * 1.5], [bound, bound], **look)
                else:
                    ax.axhline(bound, **look)
    ax.set_xlabel("lead time, h")
    ax.set_ylabel("relative L2 difference")
    ax.set_title("Forecast parity per lead time (dashed: bounds)")
    ax.legend(fontsize=7)
    return _encode(fig)
