"""``pairbench report``: read results files, pair the records, and write HTML, Markdown or CSV."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from reports import FORMATS, figures
from reports.pairing import pair_records
from reports.tables import (
    data_parallel_table,
    failures_table,
    parity_table,
    ratios_table,
    runs_table,
    skill_long,
    skill_table,
)
from runners.records.store import read_records, read_records_lenient, records_path
from runners.spec import PairbenchError


@dataclass
class Section:
    title: str
    frame: pd.DataFrame | None = None
    text: str = ""
    figures: list[dict] = field(default_factory=list)


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


def sections(records: list[dict], with_figures: bool) -> tuple[list[Section], list[str], int]:
    pairing = pair_records(records)
    fig = (lambda f, *a: f(*a)) if with_figures else (lambda f, *a: None)
    runs, ratios, skill, parity, failed = (
        runs_table(pairing),
        ratios_table(pairing),
        skill_table(pairing),
        parity_table(pairing),
        failures_table(pairing),
    )
    out = [
        Section(
            "Numerical parity",
            parity,
            "Same weights and data in both frameworks: relative L2 difference "
            "of the forward output, worst relative L2 difference of any parameter's gradient, and worst relative "
            "loss difference over the Adam steps.",
            [_fig(fig(figures.parity, pairing), "parity", "Relative loss difference per step.")],
        ),
        Section(
            "Runs",
            runs,
            "Training step and forward latencies are medians and percentiles of every timed step "
            "(warm-up excluded, device synchronised around each step). MFU is empty where the device's profile "
            "has no peak for the precision.",
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
        Section(
            "Power and energy",
            None,
            "Power over the same window as the timed steps.",
            [_fig(fig(figures.power, pairing), "power", "Samples as taken; provenance in the legend.")],
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
    kept = [s for s in out if (s.frame is not None and not s.frame.empty) or s.figures]
    return kept, pairing.refusals, len(pairing.groups)


def _fig(src, alt, caption) -> dict:
    return {"src": src, "alt": alt, "caption": caption}


def write_report(
    paths: list[Path], out: Path, fmt: str = "html", skip_invalid: bool = False, notice=None
) -> list[Path]:
    """Write the report of the records in ``paths``; returns the files written. What the report could not show
    (lines skipped as invalid, runs not compared) is listed in it and, one sentence each, passed to ``notice``."""
    if fmt not in FORMATS:
        raise PairbenchError(f"unknown report format '{fmt}'; choose from {', '.join(FORMATS)}")
    records, skipped = load(paths, skip_invalid)
    return render(records, out, fmt, [str(p) for p in paths], skipped, notice)


def render(
    records: list[dict], out: Path, fmt: str, sources: list[str], skipped: list[str] = (), notice=None
) -> list[Path]:
    """Write the report of ``records`` (already read) as ``fmt``; returns the files written."""
    secs, refusals, n_groups = sections(records, with_figures=fmt == "html")
    for line in [f"not shown: {s}" for s in skipped] + [f"not compared: {r}" for r in refusals]:
        (notice or (lambda _: None))(line)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        tables = [s for s in secs if s.frame is not None and not s.frame.empty]
        if out.suffix.lower() == ".csv" or out.is_file():
            raise PairbenchError(
                f"a CSV report is one file per table: -o names the folder to write them into, not {out}"
            )
        if not tables:
            raise PairbenchError("the records hold no table to write as CSV")
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for s in tables:
            path = out / f"{s.title.lower().replace(' ', '-')}.csv"
            _csv_safe(s.frame).to_csv(path, index=False)
            written.append(path)
        return written
    if fmt == "md":
        text = _markdown(secs, refusals, list(skipped))
    else:
        text = _html(secs, refusals, list(skipped), sources, len(records), n_groups)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return [out]


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such text cells get a
# leading apostrophe, as OWASP advises; numbers are left as they are.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_MD_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "\n": " ", "\r": " "})


def _text_cells(frame: pd.DataFrame, fix) -> pd.DataFrame:
    """``frame`` with ``fix`` applied to every text cell and column name."""
    out = frame.copy()
    out.columns = [fix(str(c)) for c in out.columns]
    for c in out.columns:
        if any(isinstance(v, str) for v in out[c]):
            out[c] = [fix(v) if isinstance(v, str) else v for v in out[c]]
    return out


def _csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    return _text_cells(frame, lambda v: "'" + v if v.startswith(_FORMULA_START) else v)


def _md(text: str) -> str:
    """Text as Markdown shows it: HTML inert, table syntax escaped, one line."""
    return str(text).translate(_MD_ESCAPES)


def _markdown(secs, refusals, skipped) -> str:
    parts = ["# pairbench report", ""]
    parts += [f"- not compared: {_md(r)}" for r in refusals] + [f"- skipped: {_md(s)}" for s in skipped]
    for s in secs:
        if s.frame is None or s.frame.empty:
            continue
        parts += [
            "",
            f"## {s.title}",
            "",
            s.text,
            "",
            _text_cells(_blank_missing(s.frame), _md).to_markdown(index=False, floatfmt=".4g", missingval=""),
        ]
    return "\n".join(parts) + "\n"


def _blank_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values as None, which tabulate leaves blank (a NaN would print as 'nan')."""
    return frame.astype(object).where(frame.notna(), None)


def _html(secs, refusals, skipped, paths, n_records, n_groups) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
    rendered = []
    for s in secs:
        table = None
        if s.frame is not None and not s.frame.empty:
            # pandas escapes every cell (escape=True); the markup is then safe to embed.
            table = jinja2.utils.markupsafe.Markup(
                s.frame.astype(object)
                .where(s.frame.notna(), "")
                .to_html(index=False, escape=True, float_format=lambda v: f"{v:.4g}", border=0)
            )
        rendered.append({"title": s.title, "text": s.text, "table": table, "figures": s.figures})
    return env.get_template("report.html.j2").render(
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sources=[str(p) for p in paths],
        n_records=n_records,
        n_groups=n_groups,
        sections=rendered,
        refusals=refusals,
        skipped=skipped,
    )
