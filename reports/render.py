"""A report's sections as Markdown or self-contained HTML: every column under its label with unit
(reports.labels), wide tables split into column groups, whatever a record carries escaped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from reports.labels import PERCENT, label
from reports.output import REPORT_TITLE


@dataclass
class Section:
    """One section of the report. A frame with ``split_by`` columns is shown as one table per distinct value of
    them (named above it; CSV keeps the one frame), without, where ``drop_empty``, the columns that no row of that
    table fills; ``column_groups`` ((name, columns), ...) shows it as one narrower table per group, each led by the
    ``keys`` columns; ``missing`` stands in for an absent value; ``cell_style`` gives the CSS of an HTML cell from its
    value (None: no style); ``notes`` are sentences listed under the tables; a section that is ``always`` shown
    says its ``text`` even without a table or figure."""

    title: str
    frame: pd.DataFrame | None = None
    text: str = ""
    figures: list[dict] = field(default_factory=list)
    split_by: list[str] = field(default_factory=list)
    missing: str = ""
    cell_style: Callable[[object], str | None] | None = None
    drop_empty: bool = False
    column_groups: list[tuple[str, list[str]]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    always: bool = False

    @property
    def has_table(self) -> bool:
        return self.frame is not None and not self.frame.empty

    @property
    def shown(self) -> bool:
        return self.has_table or bool(self.figures) or self.always


# Markdown syntax a text may carry: HTML and autolinks (entities), table cells (pipes, line breaks), links, images
# and references (brackets: without them parentheses are text), code spans and emphasis, and the backslash itself.
_MD_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\n": " ", "\r": " "} | {c: "\\" + c for c in "\\|[]`*"}
)


def md_escape(text: str) -> str:
    """Text as Markdown shows it: HTML, link, image, code and table syntax escaped, one line."""
    return str(text).translate(_MD_ESCAPES)


def text_cells(frame: pd.DataFrame, fix) -> pd.DataFrame:
    """``frame`` with ``fix`` applied to every text cell and column name."""
    out = frame.copy()
    out.columns = [fix(str(c)) for c in out.columns]
    for c in out.columns:
        if any(isinstance(v, str) for v in out[c]):
            # object dtype: pandas 3 would infer a string column and turn its None into NaN ("nan" in Markdown)
            out[c] = pd.Series([fix(v) if isinstance(v, str) else v for v in out[c]], index=out.index, dtype=object)
    return out


def _parts(s: Section) -> list[tuple[str, pd.DataFrame]]:
    """(heading, table) of each table of a section: its frame, or one per distinct value of ``split_by`` (those
    columns named in the heading instead), each cut into its ``column_groups``; see :class:`Section`."""
    if not s.split_by:
        parts = [("", s.frame)]
    else:
        keys: dict[tuple, list] = {}
        for i, row in enumerate(s.frame[s.split_by].astype(object).itertuples(index=False)):
            keys.setdefault(tuple(row), []).append(i)
        parts = []
        for key, rows in keys.items():
            table = s.frame.iloc[rows]
            shown = [c for c in s.frame.columns if c not in s.split_by and (not s.drop_empty or table[c].notna().any())]
            heading = "; ".join(f"{label(c)}: {_cell(v, '')}" for c, v in zip(s.split_by, key, strict=True))
            parts.append((heading, table[shown]))
    if not s.column_groups:
        return parts
    out = []
    for heading, table in parts:
        for name, columns in s.column_groups:
            cols = [c for c in dict.fromkeys([*s.keys, *columns]) if c in table.columns]
            out.append(("; ".join(h for h in (heading, name) if h), table[cols]))
    return out


def _cell(value, missing: str, column: str = "") -> str:
    """A table cell as text: floats to 4 significant digits (a fraction in ``PERCENT`` as a percentage),
    ``missing`` for None or NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return missing
    if column in PERCENT and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{100 * value:.3g}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _shown(frame: pd.DataFrame, missing: str) -> pd.DataFrame:
    """The frame's cells as the report shows them (text, missing values as ``missing``), columns labelled."""
    out = pd.DataFrame(
        {label(c): [_cell(v, missing, str(c)) for v in frame[c].astype(object)] for c in frame.columns},
        columns=[label(c) for c in frame.columns],
    )
    return out


def markdown(secs: list[Section], refusals: list[str], skipped: list[str]) -> str:
    """The report as Markdown: the sections with tables (figures are HTML's), what could not be compared after the
    first (the Summary)."""
    parts = [f"# {REPORT_TITLE}", ""]
    parts += [f"- skipped: {md_escape(s)}" for s in skipped]
    for i, s in enumerate(secs):
        if s.has_table or s.always:
            parts += ["", f"## {s.title}", "", s.text]
        for heading, frame in _parts(s) if s.has_table else []:
            parts += ["", f"### {md_escape(heading)}"] * bool(heading) + [
                "",
                text_cells(_shown(frame, s.missing), md_escape).to_markdown(index=False, disable_numparse=True),
            ]
        parts += [""] * bool(s.notes) + [f"- {md_escape(n)}" for n in s.notes]
        if i == 0 and refusals:
            parts += ["", "## Not compared", ""] + [f"- not compared: {md_escape(r)}" for r in refusals]
    return "\n".join(parts) + "\n"


def html(secs: list[Section], refusals, skipped, paths, n_records, n_groups) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
    rendered = []
    for s in secs:
        tables = []
        if s.has_table:
            tables = [{"heading": h, "html": _table_html(f, s.missing, s.cell_style)} for h, f in _parts(s)]
        rendered.append({"title": s.title, "text": s.text, "tables": tables, "figures": s.figures, "notes": s.notes})
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

    head = "".join(f"<th>{escape(label(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.astype(object).itertuples(index=False):
        cells = []
        for c, v in zip(frame.columns, row, strict=True):
            style = cell_style(v) if cell_style else None
            attr = f' style="{escape(style)}"' if style else ""
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
                attr += ' class="num"'

            cells.append(f"<td{attr}>{escape(_cell(v, missing, str(c)))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return Markup(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
