"""``pairbench report``: read results files, pair the records, and write HTML, Markdown or CSV."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from reports import MISSING, figures
from reports.diagnosis_tables import diagnosis_sections
from reports.forecast_tables import FORECAST_SETTING, forecast_table
from reports.output import REPORT_TITLE, check_target, write_file
from reports.pairing import pair_records
from reports.scorecard import SATURATION, SCORECARD_SETTING, cell_colour, scorecard_table
from reports.tables import (
    data_parallel_table,
    failures_table,
    parity_table,
    ratios_table,
    runs_table,
    skill_long,
    skill_table,
)
from runners.records.store import os_error, read_records, read_records_lenient, records_path
from runners.spec import PairbenchError


@dataclass
class Section:
    """One section of the report. A frame with ``split_by`` columns is shown as one table per distinct value of
    them (named above it; CSV keeps the one frame), without, where ``drop_empty``, the columns that no row of that
    table fills; ``missing`` stands in for an absent value; ``cell_style`` gives the CSS of an
    HTML cell from its value (None: no style)."""

    title: str
    frame: pd.DataFrame | None = None
    text: str = ""
    figures: list[dict] = field(default_factory=list)
    split_by: list[str] = field(default_factory=list)
    missing: str = ""
    cell_style: Callable[[object], str | None] | None = None
    drop_empty: bool = False


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
        *diagnosis_sections(records, Section, MISSING),
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
    check_target(out, fmt, paths)
    records, skipped = load(paths, skip_invalid)
    return render(records, out, fmt, [str(p) for p in paths], skipped, notice)


def render(
    records: list[dict], out: Path, fmt: str, sources: list[str], skipped: list[str] = (), notice=None
) -> list[Path]:
    """Write the report of ``records`` (already read) as ``fmt``; returns the files written."""
    check_target(out, fmt, sources)
    secs, refusals, n_groups = sections(records, with_figures=fmt == "html")
    for line in [f"not shown: {s}" for s in skipped] + [f"not compared: {r}" for r in refusals]:
        (notice or (lambda _: None))(line)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            tables = [s for s in secs if s.frame is not None and not s.frame.empty]
            if not tables:
                raise PairbenchError("the records hold no table to write as CSV")
            out.mkdir(parents=True, exist_ok=True)
            written = []
            for s in tables:
                path = out / f"{s.title.lower().replace(' ', '-')}.csv"
                write_file(path, _csv_safe(s.frame).to_csv(index=False))
                written.append(path)
            return written
    except OSError as exc:
        raise PairbenchError(os_error(exc, "write the report")) from None
    if fmt == "md":
        text = _markdown(secs, refusals, list(skipped))
    else:
        text = _html(secs, refusals, list(skipped), sources, len(records), n_groups)
    write_file(out, text)
    return [out]


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such text cells get a
# leading apostrophe, as OWASP advises; numbers are left as they are.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Markdown syntax a text may carry: HTML and autolinks (entities), table cells (pipes, line breaks), links, images
# and references (brackets: without them parentheses are text), code spans and emphasis, and the backslash itself.
_MD_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": " ", "\r": " "} | {c: "\\" + c for c in "\\|[]`*"}
)


def _text_cells(frame: pd.DataFrame, fix) -> pd.DataFrame:
    """``frame`` with ``fix`` applied to every text cell and column name."""
    out = frame.copy()
    out.columns = [fix(str(c)) for c in out.columns]
    for c in out.columns:
        if any(isinstance(v, str) for v in out[c]):
            # object dtype: pandas 3 would infer a string column and turn its None into NaN ("nan" in Markdown)
            out[c] = pd.Series([fix(v) if isinstance(v, str) else v for v in out[c]], index=out.index, dtype=object)
    return out


def _csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    return _text_cells(frame, lambda v: "'" + v if v.startswith(_FORMULA_START) else v)


def _md(text: str) -> str:
    """Text as Markdown shows it: HTML, link, image, code and table syntax escaped, one line."""
    return str(text).translate(_MD_ESCAPES)


def _parts(s: Section) -> list[tuple[str, pd.DataFrame]]:
    """(heading, table) of each table of a section: its frame, or one per distinct value of ``split_by`` (those
    columns named in the heading instead); see :class:`Section`."""
    if not s.split_by:
        return [("", s.frame)]
    keys: dict[tuple, list] = {}
    for i, row in enumerate(s.frame[s.split_by].astype(object).itertuples(index=False)):
        keys.setdefault(tuple(row), []).append(i)
    out = []
    for key, rows in keys.items():
        table = s.frame.iloc[rows]
        shown = [c for c in s.frame.columns if c not in s.split_by and (not s.drop_empty or table[c].notna().any())]
        heading = "; ".join(f"{c}: {_cell(v, '')}" for c, v in zip(s.split_by, key, strict=True))
        out.append((heading, table[shown]))
    return out


def _cell(value, missing: str) -> str:
    """A table cell as text: floats to 4 significant digits, ``missing`` for None or NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return missing
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _markdown(secs, refusals, skipped) -> str:
    parts = [f"# {REPORT_TITLE}", ""]
    parts += [f"- not compared: {_md(r)}" for r in refusals] + [f"- skipped: {_md(s)}" for s in skipped]
    for s in secs:
        if s.frame is None or s.frame.empty:
            continue
        parts += ["", f"## {s.title}", "", s.text]
        for heading, frame in _parts(s):
            parts += ["", f"### {_md(heading)}"] * bool(heading) + [
                "",
                _text_cells(_blank_missing(frame), _md).to_markdown(index=False, floatfmt=".4g", missingval=s.missing),
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
        tables = []
        if s.frame is not None and not s.frame.empty:
            tables = [{"heading": h, "html": _table_html(f, s.missing, s.cell_style)} for h, f in _parts(s)]
        rendered.append({"title": s.title, "text": s.text, "tables": tables, "figures": s.figures})
    return env.get_template("report.html.j2").render(
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sources=[str(p) for p in paths],
        n_records=n_records,
        n_groups=n_groups,
        sections=rendered,
        refusals=refusals,
        skipped=skipped,
    )


def _table_html(frame: pd.DataFrame, missing: str, cell_style) -> str:
    """A table as HTML: every header, cell and style escaped (markupsafe, as jinja's autoescape does), so the markup
    is safe to embed."""
    from markupsafe import Markup, escape

    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.astype(object).itertuples(index=False):
        cells = []
        for v in row:
            style = cell_style(v) if cell_style else None
            attr = f' style="{escape(style)}"' if style else ""
            cells.append(f"<td{attr}>{escape(_cell(v, missing))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
