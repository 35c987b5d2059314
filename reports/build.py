"""``pairbench report``: read results files, pair the records, and write HTML, Markdown or CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports import MISSING, figures
from reports.costs import COST_TEXT, cost_table
from reports.costs import carbon_intensity as carbon_intensity_of
from reports.deployment import (
    DEPLOYMENT_GROUPS,
    DEPLOYMENT_KEYS,
    DEPLOYMENT_SETTING,
    DEPLOYMENT_TEXT,
    deployment_table,
)
from reports.diagnosis_tables import diagnosis_sections
from reports.energy import ENERGY_SCOPE, ENERGY_TEXT, energy_table, flag_style
from reports.forecast_tables import FORECAST_GROUPS, FORECAST_KEYS, FORECAST_SETTING, forecast_table
from reports.machine import MACHINE_TEXT, machine_table, verdict_style
from reports.output import CSV_MANIFEST, check_csv_targets, check_target, write_file
from reports.pairing import pair_records
from reports.render import Section, html, markdown, text_cells
from reports.render import md_escape as _md  # noqa: F401 (the name Markdown escaping is known by)
from reports.scorecard import SATURATION, SCORECARD_SETTING, cell_colour, scorecard_table
from reports.summary import NOTHING, SUMMARY_TEXT, summary
from reports.tables import (
    RUN_GROUPS,
    RUN_KEYS,
    data_parallel_table,
    failures_table,
    parity_table,
    ratios_table,
    runs_table,
    skill_long,
    skill_table,
)
from reports.tta import TTA_SETTING, TTA_TEXT, tta_table
from runners.errors import PairbenchError
from runners.records.store import os_error, read_records, read_records_lenient, records_path


def load(paths: list[Path], skip_invalid: bool) -> tuple[list[dict], list[str]]:
    records, skipped = [], []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            path = records_path(path)
        recs, bad = read_records_lenient(path) if skip_invalid else (read_records(path), [])
        records += recs
        skipped += bad
    if not records:
        raise PairbenchError(f"no records in {', '.join(str(p) for p in paths)}")
    return records, skipped


def sections(records: list[dict], with_figures: bool, intensity=None) -> tuple[list[Section], list[str], int]:
    """The report's sections, the Summary first (``intensity``: the grid's carbon intensity, or None)."""
    pairing = pair_records(records)
    fig = (lambda f, *a: f(*a)) if with_figures else (lambda f, *a: None)
    runs, ratios, skill, parity, failed = (
        runs_table(pairing),
        ratios_table(pairing),
        skill_table(pairing),
        parity_table(pairing),
        failures_table(pairing),
    )
    answer, sentences = summary(pairing)
    costs, not_given = cost_table(pairing, intensity)
    out = [
        Section(
            "Summary", answer, SUMMARY_TEXT if sentences else NOTHING, notes=sentences, missing=MISSING, always=True
        ),
        Section(
            "Numerical parity",
            parity,
            "Same weights and data in both frameworks: relative L2 difference "
            "of the forward output, worst relative L2 difference of any parameter's gradient, and worst relative "
            "loss difference over the Adam steps.",
            [_fig(fig(figures.parity, pairing), "parity", "Relative loss difference per step.")],
        ),
        *diagnosis_sections(records, Section, MISSING),
        Section(
            "Runs",
            runs,
            "Training step and forward latencies are medians and percentiles of every timed step "
            "(warm-up excluded, device synchronised around each step). MFU is empty where the device's profile "
            "has no peak for the precision. Each run's table continues in the next ones, led by the same columns.",
            column_groups=RUN_GROUPS,
            keys=RUN_KEYS,
        ),
        Section(
            "Ratios",
            ratios,
            "A ratio above 1 means the first side takes longer. Intervals: 95% bootstrap over "
            "per-step samples; 'within noise' marks intervals that contain 1.",
        ),
        Section(
            "Throughput and latency",
            None,
            "",
            [
                _fig(fig(figures.throughput, pairing), "throughput", "Training samples/s with 95% intervals."),
                _fig(fig(figures.latency, pairing), "latency", "Every timed step, log scale."),
                _fig(fig(figures.memory, pairing), "memory", "Peak host memory (RSS) of each run's process."),
            ],
        ),
        Section("How quiet the machine was", machine_table(pairing), MACHINE_TEXT, cell_style=verdict_style),
        Section(
            "What each watt covers",
            energy_table(pairing),
            ENERGY_TEXT + (f" {not_given}" if not_given and costs.empty else ""),
            [_fig(fig(figures.power, pairing), "power", "Samples as taken; provenance in the legend.")],
            split_by=ENERGY_SCOPE,
            missing=MISSING,
            cell_style=flag_style,
        ),
        Section(
            "Forecasts",
            forecast_table(pairing),
            "Autoregressive inference, one table per setting: latency of one batched forecast (p50, p90 of the timed "
            "repeats, device synchronised), forecast-days per second (batch x forecast days / p50), energy per single "
            "forecast and per forecast-day with where it comes from, peak memory. On the row of each other framework: "
            "its ratios to PyTorch on the same device (latency: median of the repeats, 95% bootstrap interval) and the "
            "parity of its forecast with PyTorch's (worst relative L2 over the leads, and the bound).",
            [
                _fig(fig(figures.forecast_latency, pairing), "forecast latency", "Median latency, 95% interval."),
                _fig(fig(figures.forecast_rel_l2, pairing), "forecast parity", "Relative L2 difference per lead."),
            ],
            split_by=FORECAST_SETTING,
            missing=MISSING,
            column_groups=FORECAST_GROUPS,
            keys=FORECAST_KEYS,
        ),
        Section(
            "Deployment",
            deployment_table(pairing),
            DEPLOYMENT_TEXT,
            split_by=DEPLOYMENT_SETTING,
            missing=MISSING,
            column_groups=DEPLOYMENT_GROUPS,
            keys=DEPLOYMENT_KEYS,
        ),
        Section(
            "Skill",
            skill,
            "Latitude-weighted RMSE and ACC by variable and lead time, each framework beside "
            "persistence and climatology, scored once in NumPy (metrics/skill.py).",
            [
                _fig(src, f"skill {w}", f"{w}: RMSE and ACC against lead time.")
                for w, src in (figures.skill(skill_long(pairing)) if with_figures else [])
            ],
        ),
        Section(
            "Scorecard",
            scorecard_table(pairing),
            "Relative RMSE difference (RMSE of the first - RMSE of the second) / RMSE of the second, by variable and "
            f"lead time: negative (blue) means the first has the lower RMSE, positive (red) the higher; the colour "
            f"deepens with the size of the difference, fully from {SATURATION:.0%}. {MISSING}: a score is missing.",
            split_by=SCORECARD_SETTING,
            missing=MISSING,
            cell_style=cell_colour,
            drop_empty=True,
        ),
        Section(
            "Time to accuracy",
            tta_table(pairing),
            TTA_TEXT,
            split_by=TTA_SETTING,
            missing=MISSING,
            cell_style=verdict_style,
            drop_empty=True,
        ),
        Section("Cost and carbon", costs, f"{COST_TEXT} {not_given}".strip(), missing=MISSING),
        Section(
            "Data parallel",
            data_parallel_table(records),
            "Each framework over N processes (torchrun with "
            "DistributedDataParallel, msrun with MindSpore's data-parallel mode) beside one process with the same "
            "global batch; scaling efficiency = (throughput with N / N) / throughput with 1.",
        ),
        Section("Failed or unavailable runs", failed),
    ]
    for s in out:
        s.figures = [f for f in s.figures if f["src"]]
    kept = [s for s in out if s.shown]
    return kept, pairing.refusals, len(pairing.groups)


def _fig(src, alt, caption) -> dict:
    return {"src": src, "alt": alt, "caption": caption}


def write_report(
    paths: list[Path],
    out: Path,
    fmt: str = "html",
    skip_invalid: bool = False,
    notice=None,
    carbon_intensity: str | float | None = None,
) -> list[Path]:
    """Write the report of the records in ``paths``; returns the files written. What the report could not show
    (lines skipped as invalid, runs not compared) is listed in it and, one sentence each, passed to ``notice``.
    ``carbon_intensity`` (gCO2/kWh; else PAIRBENCH_CARBON_INTENSITY) gives CO2 from the records' energy."""
    check_target(out, fmt, paths, carbon_intensity)
    records, skipped = load(paths, skip_invalid)
    return render(records, out, fmt, [str(p) for p in paths], skipped, notice, carbon_intensity)


def render(
    records: list[dict],
    out: Path,
    fmt: str,
    sources: list[str],
    skipped: list[str] = (),
    notice=None,
    carbon_intensity: str | float | None = None,
) -> list[Path]:
    """Write the report of ``records`` (already read) as ``fmt``; returns the files written."""
    check_target(out, fmt, sources, carbon_intensity)
    intensity = carbon_intensity_of(carbon_intensity)
    secs, refusals, n_groups = sections(records, fmt == "html", intensity)
    for line in [f"not shown: {s}" for s in skipped] + [f"not compared: {r}" for r in refusals]:
        (notice or (lambda _: None))(line)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            tables = [s for s in secs if s.has_table]
            if not tables:
                raise PairbenchError("the records hold no table to write as CSV")
            out.mkdir(parents=True, exist_ok=True)
            planned = [(s, out / f"{s.title.lower().replace(' ', '-')}.csv") for s in tables]
            check_csv_targets(out, [path for _, path in planned])  # all refused before any is written
            written = []
            for s, path in planned:
                write_file(path, _csv_safe(s.frame).to_csv(index=False))
                written.append(path)
            write_file(out / CSV_MANIFEST, "".join(f"{path.name}\n" for path in written))
            return written
    except OSError as exc:
        raise PairbenchError(os_error(exc, "write the report")) from None
    if fmt == "md":
        text = markdown(secs, refusals, list(skipped))
    else:
        text = html(secs, refusals, list(skipped), sources, len(records), n_groups)
    write_file(out, text)
    return [out]


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such text cells get a
# leading apostrophe, as OWASP advises; numbers are left as they are.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    return text_cells(frame, lambda v: "'" + v if v.startswith(_FORMULA_START) else v)
