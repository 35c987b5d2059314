"""Report sections Forecasts and Scorecard: numbers as recorded, ratio intervals, unavailable energy, missing
parity figures, hand-computed scorecards, pairing of eager and compiled forecasts, self-contained HTML."""

from __future__ import annotations

import csv
import re
from html import unescape

import numpy as np
import pandas as pd
import pytest
from conftest import IDENTITY_DEFAULTS, LOAD_FIELDS

from reports import MISSING as DASH
from reports.build import render, write_report
from reports.console import forecast_lines
from reports.forecast_tables import forecast_table
from reports.labels import LABELS
from reports.pairing import pair_records
from reports.scorecard import BETTER, SATURATION, WORSE, cell_colour, relative_difference, scorecard_table
from reports.tables import failures_table, parity_table
from runners.records import schema
from runners.records.store import append_record

N_LEAD, LEAD_HOURS = 40, 6.0


def _forecast_head(device="cpu", workload="fourcastnet-tiny", timestamp="20261202T000000Z", **ident):
    fields = {
        "model": {"embed_dim": 64}, "weights_sha256": "ab" * 32, "seed": 1,
        "data": {"initial_conditions": "synthetic", "n_lead": N_LEAD, "lead_hours": LEAD_HOURS, "repeats": 5},
        "hyper_parameters": {}, "batch_size": 2, "precision": "fp32", "mode": "eager", "recompute": False,
        "threads": None, "warmup_steps": 1, "train_steps": 0, "forward_steps": 0, "objective": "forecast",
        "nproc": 1,
    }  # fmt: skip
    ident = schema.identity("forecast", **{**fields, **ident})
    return schema.header(ident, run_id="r1", timestamp=timestamp, workload=workload, device=device, commit=None)


def _run_head(head: dict) -> dict:
    """A forecast run's header: the parity record's, with what a run says about its forecast."""
    return {
        **head, "weights_source": "init", "initial_conditions": "synthetic", "n_lead": N_LEAD,
        "lead_hours": LEAD_HOURS, "forecast_hours": N_LEAD * LEAD_HOURS,
    }  # fmt: skip


def _environment(device: str, rss: float) -> dict:
    return {
        "framework_version": "x", "device_name": device, "cpu_name": "cpu", "cpu_features": "avx2", "threads_used": "2",
        "execution_mode": "eager", "python": "3.11", "host": "h", "param_count": 10, "build_s": 1.0,
        "host_peak_rss_mb": rss, **LOAD_FIELDS,
    }  # fmt: skip


def _power(energy_j: float | None, reason: str | None, samples: int) -> dict:
    measured = energy_j is not None
    return {
        "power_source": "rapl" if measured else "none", "power_window_s": 2.0, "energy_j": energy_j,
        "power_w_mean": 20.0 if measured else None, "power_w_peak": 22.0 if measured else None,
        "power_reason": reason, "power_samples": [[0.0, 20.0]] if measured else [],
        "energy_j_per_sample": None if energy_j is None else energy_j / samples, "samples_per_j": None,
        "power_provenance": "measured" if measured else "unavailable", "power_window": "timed steps",
        "power_scope": "cpu-package" if measured else "none",
        "power_scope_label": "CPU package(s) package-0 (RAPL)" if measured else "nothing was read",
        "power_rate_hz": 10.0, "power_rate_hz_achieved": 0.5 if measured else None,
        "power_window_ok": False if measured else None,
        "power_window_reason": "1 samples, fewer than 60 in the 2 s window" if measured else None,
    }  # fmt: skip


def forecast(framework, samples, device="cpu", energy=3.0, power_reason=None, rss=300.0, head=None, **ident):
    """A valid ok forecast record: ``samples`` are the per-repeat latencies of one batched forecast (ms);
    ``energy`` is per single forecast (J), None when power is unavailable (``power_reason`` says why)."""
    from metrics.timing import summarize

    head = _run_head(head or _forecast_head(device, **ident))
    batch, days = head["batch_size"], N_LEAD * LEAD_HOURS / 24
    p50 = float(np.median(samples))
    fields = {
        **_environment(device, rss),
        **_power(None if energy is None else energy * batch * len(samples), power_reason, batch * len(samples)),
        "forecast_ms": list(samples), "lead_ms_p50": p50 / N_LEAD, "first_forecast_ms": 2 * p50, "compile_s": 0.5,
        "forecast_days_per_s": batch * days / (p50 / 1000), "energy_j_per_forecast": energy,
        "energy_j_per_forecast_day": None if energy is None else energy / days,
        "device_peak_mem_mb": None if device == "cpu" else 1234.5,
        "device_peak_mem_reason": "CPU: no device memory" if device == "cpu" else None,
        "flops_forward_per_sample": 1e6, "hardware_profile": None, "provenance": {"timings": "measured"},
        **summarize(list(samples), "forecast"),
    }  # fmt: skip
    return schema.record(head, framework=framework, status="ok", **fields)


def forecast_parity(rel_l2, device="cpu", precision="fp32", **ident):
    """A forecast_parity record as the forecast command writes it (metrics.parity.compare_trajectories), from two
    trajectories whose relative L2 difference at lead k is ``rel_l2[k]`` (None: a NaN in the other's forecast)."""
    from metrics.parity import compare_trajectories

    reference = np.ones((2, len(rel_l2), 1, 4, 8))
    scale = np.array([np.nan if v is None else 1.0 + v for v in rel_l2])
    other = reference * scale[None, :, None, None, None]
    found = compare_trajectories(other, reference, ("mindspore", "torch"), precision, device.split(":")[0])
    return schema.record(_forecast_head(device, precision=precision, **ident), "forecast_parity", **found)


def skill(framework, rmse: dict, persistence: dict, device="cpu", **ident):
    """A valid ok skill record with RMSEs ``{(channel, lead_h): value}`` of the framework and of persistence."""
    ident = schema.identity("skill", **{**IDENTITY_DEFAULTS, **ident})
    head = schema.header(ident, run_id="s1", timestamp="20261202T000000Z", workload="fourcastnet-tiny", device=device,
                         commit=None)  # fmt: skip
    head.update(weights_convention="cos", rmse_order="sqrt_of_mean_mse", scored_cells="all")
    scores = {f"rmse_{c}_{h}h": v for (c, h), v in rmse.items()}
    scores |= {f"rmse_persistence_{c}_{h}h": v for (c, h), v in persistence.items()}
    scores |= {f"rmse_climatology_{c}_{h}h": 500.0 for (c, h) in rmse}
    return schema.record(
        head, framework=framework, status="ok", **_environment(device, 300.0), **_power(1.0, None, 10),
        losses=[1.0, 0.5], step_ms=[10.0, 11.0], step_ms_p50=10.5, rollout_ms_p50=5.0, **scores,
    )  # fmt: skip


def _row(table, framework, **where):
    rows = table[table.framework == framework]
    for k, v in where.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def _html_rows(html: str, first_cell: str) -> list[dict]:
    """Every row of the report's tables whose first cell is ``first_cell``, as {field: cell text} (headers are
    labels, reports.labels); a row continued in the next table (a table cut into column groups, each led by the
    same first column) is one row."""
    out = []
    fields = {label: name for name, label in LABELS.items()}
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        heads = [fields.get(unescape(h), h) for h in re.findall(r"<th>(.*?)</th>", table)]
        for row in re.findall(r"<tr>(<td.*?)</tr>", table):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
            if cells[0] == first_cell:
                new = dict(zip(heads, cells, strict=True))
                if out and not (set(new) - {heads[0]}) & set(out[-1]):
                    out[-1].update(new)
                else:
                    out.append(new)
    return out


def _html(tmp_path, records, name="r.html"):
    path = tmp_path / f"{name}.jsonl"
    for r in records:
        append_record(path, r)
    (out,) = write_report([path], tmp_path / name)
    return out.read_text()


rng = np.random.default_rng(7)
PT_MS = list(100.0 * np.exp(0.05 * rng.standard_normal(30)))
MS_MS = list(250.0 * np.exp(0.05 * rng.standard_normal(30)))


def test_table_numbers_are_the_records_numbers():
    pt, ms = forecast("torch", PT_MS, energy=3.0), forecast("mindspore", MS_MS, energy=4.5, rss=512.25)
    table = forecast_table(pair_records([pt, ms, forecast_parity([1e-7, 2e-7, 3e-6])]))
    assert list(table.framework) == ["PyTorch", "MindSpore"]
    for rec, label in ((pt, "PyTorch"), (ms, "MindSpore")):
        row = _row(table, label)
        for key in ("forecast_ms_p50", "forecast_ms_p90", "forecast_days_per_s", "host_peak_rss_mb"):
            assert row[key] == rec[key], key
        assert row.energy_j_per_forecast == rec["energy_j_per_forecast"]
        assert row.energy_j_per_forecast_day == rec["energy_j_per_forecast_day"]
        assert row.power_provenance == "measured (rapl)"
        assert row.device_peak_mem_mb == "unavailable (CPU: no device memory)"
        assert (row.workload, row.precision, row["mode"], row.batch_size) == ("fourcastnet-tiny", "fp32", "eager", 2)
        assert (row.n_lead, row.lead_hours, row.device) == (N_LEAD, LEAD_HOURS, "cpu")
    assert _row(table, "MindSpore").energy_ratio == pytest.approx(4.5 / 3.0)
    parity = _row(table, "MindSpore")
    assert parity.parity == "pass" and parity.rel_l2_bound == "every_lead <= 0.0001, first_lead <= 1e-05"
    assert parity.rel_l2_first_lead == pytest.approx(1e-7) and parity.rel_l2_max == pytest.approx(3e-6)
    assert pd.isna(_row(table, "PyTorch").latency_ratio) and pd.isna(_row(table, "PyTorch").parity)


def test_latency_ratio_interval_contains_the_true_ratio():
    table = forecast_table(pair_records([forecast("torch", PT_MS), forecast("mindspore", MS_MS)]))
    row = _row(table, "MindSpore")
    assert row.latency_ratio == pytest.approx(np.median(MS_MS) / np.median(PT_MS))
    assert row.latency_ratio_ci_low < 2.5 < row.latency_ratio_ci_high  # the samples' true ratio of medians
    assert row.latency_ratio_ci_low > 1.0 and row.latency_ratio_ci_high - row.latency_ratio_ci_low < 0.5
    same = forecast_table(pair_records([forecast("torch", PT_MS), forecast("mindspore", PT_MS[::-1])]))
    assert _row(same, "MindSpore").latency_ratio_ci_low <= 1.0 <= _row(same, "MindSpore").latency_ratio_ci_high


def test_unavailable_energy_says_why_and_is_never_zero(tmp_path):
    why = "no RAPL interface: /sys/class/powercap does not exist"
    recs = [forecast("torch", PT_MS, energy=3.0), forecast("mindspore", MS_MS, energy=None, power_reason=why)]
    row = _row(forecast_table(pair_records(recs)), "MindSpore")
    assert row.energy_j_per_forecast == row.energy_j_per_forecast_day == f"unavailable ({why})"
    assert row.power_provenance.startswith("unavailable") and pd.isna(row.energy_ratio)
    (cells,) = _html_rows(_html(tmp_path, recs), "MindSpore")
    assert cells["energy_j_per_forecast"] == cells["energy_j_per_forecast_day"] == f"unavailable ({why})"
    assert cells["power_provenance"] == "unavailable (none)"
    assert cells["energy_ratio"] == DASH  # no number where one side has none
    assert float(cells["latency_ratio"]) == pytest.approx(np.median(MS_MS) / np.median(PT_MS), rel=1e-3)
    text = render(recs, tmp_path / "r.md", "md", ["x"])[0].read_text()
    assert f"unavailable ({why})" in text and not re.search(r"\bnan\b", text)
    (line,) = [ln for ln in forecast_lines(recs, []) if ln.startswith("mindspore")]
    assert f"energy unavailable ({why})  machine quiet" in line


def test_missing_relative_l2_shows_a_dash_never_nan(tmp_path):
    par = forecast_parity([None, 2e-7, 3e-6])  # the first lead not finite
    assert par["rel_l2_first_lead"] is None and par["nonfinite"] == ["lead 1"] and par["verdict"] == "fail"
    recs = [forecast("torch", PT_MS), forecast("mindspore", MS_MS), par]
    row = _row(forecast_table(pair_records(recs)), "MindSpore")
    assert row.parity == "fail" and pd.isna(row.rel_l2_first_lead) and row.rel_l2_max == pytest.approx(3e-6)
    html = _html(tmp_path, recs)
    (cells,) = _html_rows(html, "MindSpore")
    assert (cells["parity"], cells["rel_l2_first_lead"], cells["rel_l2_max"]) == ("fail", DASH, "3e-06")
    assert cells["rel_l2_bound"] == "every_lead &lt;= 0.0001, first_lead &lt;= 1e-05"
    assert not re.search(r"\bnan\b", html, re.I) and 'alt="forecast parity"' in html  # the finite leads still drawn
    text = render(recs, tmp_path / "r.md", "md", ["x"])[0].read_text()
    assert re.search(rf"\| fail +\| {DASH} +\| +3e-06 +\| every_lead &lt;= 0.0001", text)
    assert not re.search(r"\bnan\b", text)
    line = forecast_lines(recs[:2], [par])[-1]
    assert line.startswith("forecast parity of mindspore against torch (fp32, 3 leads): FAIL; worst relative L2 3")
    assert "first lead not finite" in line and line.endswith("not finite: lead 1")
    nothing = forecast_parity([None, None], precision="bf16")  # no finite lead, no bound at bf16
    recs = [forecast("torch", PT_MS, precision="bf16"), forecast("mindspore", MS_MS, precision="bf16"), nothing]
    (cells,) = _html_rows(_html(tmp_path, recs, "bf16.html"), "MindSpore")
    assert (cells["rel_l2_first_lead"], cells["rel_l2_max"]) == (DASH, DASH)
    assert cells["rel_l2_bound"].startswith("bounds not established: no bf16 forecast trajectories on cpu")
    assert "bound: bounds not established" in forecast_lines(recs[:2], [nothing])[-1]


def test_parity_without_bounds_is_not_a_verdict():
    par = forecast_parity([1e-3, 2e-3], precision="bf16")
    recs = [forecast("torch", PT_MS, precision="bf16"), forecast("mindspore", MS_MS, precision="bf16"), par]
    row = _row(forecast_table(pair_records(recs)), "MindSpore")
    assert row.parity == "bounds not established" and row.rel_l2_max == pytest.approx(2e-3)
    assert "BOUNDS NOT ESTABLISHED" in forecast_lines(recs[:2], [par])[-1]


def test_failed_forecast_goes_to_failures_and_console():
    head = _run_head(_forecast_head())
    failed = schema.record(head, framework="mindspore", status="failed", reason="killed by signal 9")
    p = pair_records([forecast("torch", PT_MS), failed])
    assert list(forecast_table(p).framework) == ["PyTorch"]
    fails = failures_table(p)
    assert fails.to_dict("records") == [
        {"workload": "fourcastnet-tiny", "task": "forecast", "framework": "mindspore", "device": "cpu",
         "status": "failed", "reason": "killed by signal 9"}
    ]  # fmt: skip
    lines = forecast_lines([forecast("torch", PT_MS), failed], [])
    assert lines[1] == "mindspore  failed: killed by signal 9"
    assert lines[0].startswith(f"torch      forecast ms p50 {np.median(PT_MS):.4g}, p90 {np.percentile(PT_MS, 90):.4g}")
    assert "energy 3 J/forecast, 0.3 J/forecast-day (measured)" in lines[0]


def test_compiled_forecast_is_never_paired_with_eager():
    recs = [forecast("torch", PT_MS), forecast("mindspore", MS_MS, mode="compiled")]
    p = pair_records(recs)
    assert len(p.groups) == 2 and not any(g.paired for g in p.groups)
    assert "mode (eager vs compiled)" in p.refusals[0]
    table = forecast_table(p)
    assert table.latency_ratio.isna().all() and table.energy_ratio.isna().all()
    fast = [x / 2 for x in PT_MS]
    both = recs + [forecast("mindspore", MS_MS), forecast("torch", fast, mode="compiled")]
    table = forecast_table(pair_records(both))
    eager, compiled = _row(table, "MindSpore", mode="eager"), _row(table, "MindSpore", mode="compiled")
    assert eager.latency_ratio == pytest.approx(np.median(MS_MS) / np.median(PT_MS))
    assert compiled.latency_ratio == pytest.approx(np.median(MS_MS) / np.median(fast))


def test_parity_attaches_to_its_device_and_training_parity_ignores_it():
    recs = [forecast("torch", PT_MS, "cuda:0"), forecast("mindspore", MS_MS, "cuda:0"), forecast("torch", PT_MS)]
    recs += [forecast("mindspore", MS_MS), forecast_parity([1e-7, 5e-5], device="cuda:0")]
    p = pair_records(recs)
    assert len(p.groups) == 1 and parity_table(p).empty
    table = forecast_table(p)
    assert _row(table, "MindSpore", device="cuda:0").rel_l2_max == pytest.approx(5e-5)
    assert _row(table, "MindSpore", device="cuda:0").device_peak_mem_mb == 1234.5
    assert pd.isna(_row(table, "MindSpore", device="cpu").parity)


PT_RMSE = {("z500", 24): 100.0, ("z500", 48): 200.0, ("t850", 24): 2.0, ("t850", 48): None}
MS_RMSE = {("z500", 24): 110.0, ("z500", 48): 190.0, ("t850", 24): 2.0, ("t850", 48): 3.0}
PERSISTENCE = {("z500", 24): 125.0, ("z500", 48): None, ("t850", 24): 1.0, ("t850", 48): 4.0}


def _scorecard():
    return scorecard_table(
        pair_records([skill("torch", PT_RMSE, PERSISTENCE), skill("mindspore", MS_RMSE, PERSISTENCE)])
    )


def test_scorecard_values_and_signs_hand_computed():
    card = _scorecard().set_index(["comparison", "variable"])[["24 h", "48 h"]]
    expected = {
        ("MindSpore vs PyTorch on cpu", "z500"): [0.1, -0.05],  # (110 - 100) / 100, (190 - 200) / 200
        ("MindSpore vs PyTorch on cpu", "t850"): [0.0, None],  # PyTorch's 48 h RMSE is missing
        ("PyTorch on cpu vs persistence", "z500"): [-0.2, None],  # (100 - 125) / 125; persistence missing
        ("PyTorch on cpu vs persistence", "t850"): [1.0, None],
        ("MindSpore on cpu vs persistence", "z500"): [-0.12, None],
        ("MindSpore on cpu vs persistence", "t850"): [1.0, -0.25],
    }
    assert set(card.index) == set(expected)
    for key, values in expected.items():
        assert [DASH if v is None else pytest.approx(v) for v in values] == list(card.loc[key]), key
    assert relative_difference(1.0, 0.0) is None and relative_difference(float("nan"), 1.0) is None


def test_scorecard_colours_diverge_by_sign_and_deepen_with_size():
    def rgb(v):
        return tuple(int(cell_colour(v)[12 + 2 * i : 14 + 2 * i], 16) for i in range(3))

    assert rgb(0.0) == (255, 255, 255)
    assert rgb(-SATURATION) == rgb(-5.0) == BETTER and rgb(SATURATION) == rgb(3.0) == WORSE
    assert rgb(-0.05)[0] > rgb(-0.1)[0] > BETTER[0] and rgb(-0.1)[2] > rgb(-0.1)[0]  # bluer as it grows
    assert rgb(0.05)[2] > rgb(0.1)[2] > WORSE[2] and rgb(0.1)[0] > rgb(0.1)[2]  # redder as it grows
    assert cell_colour(None) is None and cell_colour(DASH) is None and cell_colour(float("nan")) is None


def test_scorecard_in_html_markdown_and_csv(tmp_path):
    recs = [skill("torch", PT_RMSE, PERSISTENCE), skill("mindspore", MS_RMSE, PERSISTENCE)]
    html = _html(tmp_path, recs)
    card = html.split("<h2>Scorecard</h2>")[1].split("<h2>")[0]
    assert card.count("<table>") == 3  # MindSpore vs PyTorch, each framework vs persistence
    blue = "#{:02x}{:02x}{:02x}".format(*BETTER)
    assert f'<td style="background:{blue};color:#fff" class="num">-0.2</td>' in card  # PyTorch vs persistence
    assert re.search(r'<td style="background:#[0-9a-f]{6};color:#[0-9a-f]{3}" class="num">0.1</td>', card)
    assert f"<td>{DASH}</td>" in card and not re.search(r"\bnan\b", card, re.I)
    assert not re.search(rf'style="[^"]*">{DASH}<', card)  # a missing value has no colour
    md = render(recs, tmp_path / "r.md", "md", ["x"])[0].read_text()
    section = md.split("## Scorecard")[1].split("\n## ")[0]
    assert "background" not in section and DASH in section and not re.search(r"\bnan\b", section)
    assert re.search(r"\| z500 +\| +0\.1 +\| +-0\.05 +\|", section)
    written = render(recs, tmp_path / "csv", "csv", ["x"])
    rows = list(csv.DictReader(open(next(p for p in written if p.name == "scorecard.csv"))))
    z500 = next(r for r in rows if r["comparison"] == "PyTorch on cpu vs persistence" and r["variable"] == "z500")
    assert float(z500["24 h"]) == pytest.approx(-0.2) and z500["48 h"] == DASH


def test_report_of_only_forecast_records(tmp_path):
    recs = [forecast("torch", PT_MS), forecast("mindspore", MS_MS), forecast_parity([1e-7, 3e-6])]
    html = _html(tmp_path, recs)
    titles = re.findall(r"<h2>(.*?)</h2>", html)
    assert titles == ["Summary", "How quiet the machine was", "What each watt covers", "Forecasts"]
    forecasts = html.split("<h2>Forecasts</h2>")[1]
    assert forecasts.count("<h3>") == 2  # one setting, in two column groups
    assert "Lead steps: 40; Lead step (h): 6; Device: cpu" in forecasts
    assert 'alt="forecast latency"' in html and 'alt="forecast parity"' in html
    md = render(recs, tmp_path / "r.md", "md", ["x"])[0].read_text()
    assert "## Forecasts" in md and "### Workload: fourcastnet-tiny; Precision: fp32" in md
    written = render(recs, tmp_path / "csv", "csv", ["x"])
    assert [p.name for p in written] == [
        "summary.csv", "how-quiet-the-machine-was.csv", "what-each-watt-covers.csv", "forecasts.csv"
    ]  # fmt: skip
    written = [p for p in written if p.name == "forecasts.csv"]
    rows = list(csv.DictReader(open(written[0])))
    assert [r["framework"] for r in rows] == ["PyTorch", "MindSpore"]
    assert float(rows[0]["forecast_ms_p50"]) == pytest.approx(recs[0]["forecast_ms_p50"])


def test_report_of_only_skill_records(tmp_path):
    recs = [skill("torch", PT_RMSE, PERSISTENCE), skill("mindspore", MS_RMSE, PERSISTENCE)]
    html = _html(tmp_path, recs)
    assert re.findall(r"<h2>(.*?)</h2>", html) == [
        "Summary", "How quiet the machine was", "What each watt covers", "Skill", "Scorecard"
    ]  # fmt: skip
    written = render(recs, tmp_path / "csv", "csv", ["x"])
    assert sorted(p.name for p in written) == [
        "how-quiet-the-machine-was.csv", "scorecard.csv", "skill.csv", "summary.csv", "what-each-watt-covers.csv"
    ]  # fmt: skip


def test_html_is_self_contained_and_escapes_the_new_sections(tmp_path):
    evil = "<script>alert('x')</script>"
    head_pt = _forecast_head(workload=evil)
    recs = [forecast("torch", PT_MS, head=head_pt), forecast("mindspore", MS_MS, head=head_pt)]
    recs += [skill("torch", PT_RMSE, PERSISTENCE), skill("mindspore", MS_RMSE, PERSISTENCE)]
    html = _html(tmp_path, recs)
    assert "<script" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "@import" not in html and "url(" not in html
    assert {"Forecasts", "Skill", "Scorecard"} <= set(re.findall(r"<h2>(.*?)</h2>", html))


def test_report_with_forecasts_and_scorecard_opens_in_headless_chromium(tmp_path):
    from reports.browser_check import BrowserUnavailable, check_html

    recs = [forecast("torch", PT_MS), forecast("mindspore", MS_MS), forecast_parity([1e-7, None, 3e-6])]
    recs += [skill("torch", PT_RMSE, PERSISTENCE), skill("mindspore", MS_RMSE, PERSISTENCE)]
    path = tmp_path / "records.jsonl"
    for r in recs:
        append_record(path, r)
    (out,) = write_report([path], tmp_path / "r.html")
    try:
        result = check_html(out)
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))
    assert result.console_errors == [] and result.failed_requests == [] and result.broken_images == []
    assert result.images == out.read_text().count("data:image/png;base64,") >= 3  # latency, parity, skill
    assert result.ok


def test_the_skill_table_never_puts_two_runs_of_one_workload_on_one_row():
    """Two skill runs of one workload that differ (seeds here) are two sets of rows, named apart; one is one."""
    from reports.tables import skill_long

    first = [skill(fw, {("u", 6): r}, {("u", 6): 0.5}, seed=1) for fw, r in (("torch", 0.10), ("mindspore", 0.11))]
    second = [skill("torch", {("u", 6): 0.30}, {("u", 6): 0.5}, seed=2)]
    long = skill_long(pair_records(first + second))
    torch_rows = long[(long.source == "PyTorch") & (long.variable == "u")]
    assert sorted(torch_rows.rmse) == [0.10, 0.30] and torch_rows.workload.nunique() == 2
    labels = {f"fourcastnet-tiny [{r['workload_fingerprint'][:8]}]" for r in (first[0], second[0])}
    assert set(long.workload) == labels
    (row,) = long[(long.source == "MindSpore")].itertuples()
    assert row.workload == f"fourcastnet-tiny [{first[0]['workload_fingerprint'][:8]}]" and row.rmse == 0.11
    alone = skill_long(pair_records(first))
    assert set(alone.workload) == {"fourcastnet-tiny"}
