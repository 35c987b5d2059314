"""The report's answer first and what qualifies it: the Summary (one row per comparison, ratios with intervals and in
words, busy runs marked), human column names, how quiet the machine was, what each watt covers, time to accuracy,
cost and carbon; and the whole report at 1280 px in headless Chromium."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from conftest import IDENTITY_DEFAULTS, run_record
from hypothesis import given, settings
from hypothesis import strategies as st
from test_report_forecast import MS_MS, PERSISTENCE, PT_MS, PT_RMSE, _environment, _power, forecast, skill

from hardware_profiles import HardwareProfile
from metrics.device.ascend import npu_scope
from metrics.load import BUSY_OTHER_CPU, BUSY_STEAL, UNSTABLE_CV
from reports import costs
from reports.build import render, sections, write_report
from reports.costs import CARBON_ENV, carbon_intensity, cost_table
from reports.labels import LABELS
from reports.pairing import pair_records
from reports.scorecard import scorecard_table
from reports.summary import summary
from reports.tables import ratios_table, skill_table
from reports.tta import tta_table
from runners.errors import PairbenchError
from runners.records import schema
from runners.records.store import append_record

BUSY = {"load_verdict": "busy", "load_verdict_reason": "other processes used 50% of the CPU time (above 10%)"}


def _pair(ms_step=20.0, **ms):
    return [run_record("torch", steps=[10.0, 10.5] * 10), run_record("mindspore", steps=[ms_step] * 20, **ms)]


def _parity(verdict="pass", device="cpu"):
    """A training parity record of the runs of :func:`_pair`."""
    ident = {k: v for k, v in IDENTITY_DEFAULTS.items()}
    head = schema.header(schema.identity("run", **ident), run_id="r", timestamp="20261202T000000Z",
                         workload="fourcastnet-tiny", device=device, commit=None)  # fmt: skip
    found = {
        "other": "mindspore", "reference": "torch", "forward_rel_l2": 2e-7, "gradient_max_rel_l2": 4e-7,
        "gradient_worst_parameter": "w", "loss_max_rel": 7e-7, "loss_rel_per_step": [0.0], "nonfinite": [],
        "gradient_missing": [], "gradient_mismatch": [], "bounds_source": "fp32",
        "tolerances": {"forward": 1e-5, "gradients": 1e-4, "losses": 1e-4},
        "within_tolerance": verdict == "pass", "verdict": verdict,
    }  # fmt: skip
    return schema.record(head, "parity", **found)


def test_summary_row_gives_each_ratio_with_its_interval_and_in_words():
    frame, notes = summary(pair_records(_pair()))
    (row,) = frame.to_dict("records")
    assert row["compared"] == "MindSpore on cpu vs PyTorch on cpu" and row["setting"].startswith("training: fp32")
    r = 20.0 / 10.25  # medians: 20 and 10.25
    assert row["step_time"].startswith(f"{r:.3g}x [") and "busy" not in row["step_time"]
    (note,) = notes
    assert f"MindSpore on cpu takes {r:.3g}x [" in note and "] PyTorch's time per training step." in note
    # Same scope (model estimates): a ratio, saying so; never an interval for one energy window per run.
    assert row["energy_per_sample"].startswith("1x (model-estimate; few power samples)")
    assert "one energy window per run, so no interval" in note and "Marked" not in note
    assert "parity" not in frame  # no parity record: no verdict, never a guessed one
    frame, notes = summary(pair_records([*_pair(), _parity("fail")]))
    assert frame.iloc[0].parity == "fail (forward rel. L2 2e-07)"
    assert (
        "MindSpore on cpu's training does NOT match PyTorch's within the bounds: same weights and data, forward "
        "output rel. L2 2e-07, worst gradient 4e-07, losses 7e-07." in notes[0]
    )


def test_a_busy_run_marks_its_ratios_in_the_cell_and_the_sentence():
    frame, notes = summary(pair_records(_pair(**BUSY)))
    row = frame.iloc[0]
    assert row.step_time.endswith("(busy run)") and row.energy_per_sample.endswith("(busy run)")
    assert "per training step (marked busy)." in notes[0]
    assert "MindSpore on cpu busy: other processes used 50% of the CPU time" in notes[0]
    ratios = ratios_table(pair_records(_pair(**BUSY)))
    assert set(ratios.machine) == {"busy"}
    assert set(ratios_table(pair_records(_pair())).machine.dropna()) == set()


def test_energies_of_different_scopes_are_never_divided():
    card = npu_scope(0, 1, "card", 4)  # a 310 card: one Power(W) for four chips
    other = {"power_scope": card.kind, "power_scope_label": card.label, "power_provenance": "measured"}
    frame, notes = summary(pair_records(_pair(**other)))
    cell = frame.iloc[0].energy_per_sample
    assert cell == "not compared: the readings cover different things (card vs model-estimate)"
    assert "Energy per training sample is not compared" in notes[0]
    energy = ratios_table(pair_records(_pair(**other))).set_index("metric").loc["energy per sample"]
    assert pd.isna(energy.ratio) and "not compared" in energy.basis


def test_forecast_and_skill_comparisons_have_rows_of_their_own():
    recs = [forecast("torch", PT_MS), forecast("mindspore", MS_MS)]
    recs += [skill("torch", PT_RMSE, PERSISTENCE), skill("mindspore", {k: 2 * (v or 1) for k, v in PT_RMSE.items()},
                                                          PERSISTENCE)]  # fmt: skip
    frame, notes = summary(pair_records(recs))
    assert list(frame.setting.str.split(":").str[0]) == ["forecast", "skill"]
    assert frame.iloc[0].forecast_latency.startswith(f"{np.median(MS_MS) / np.median(PT_MS):.3g}x [")
    assert f"MindSpore on cpu takes {np.median(MS_MS) / np.median(PT_MS):.3g}x [" in notes[0]
    assert frame.iloc[1].skill_rmse.startswith("2x (2x to 2x, 3 cells)")  # PyTorch's missing cell left out
    assert "forecast error (RMSE) is 2x PyTorch's" in notes[1] and "no interval" in notes[1]
    assert "step_time" not in frame  # no row has one: no column


def test_summary_comes_first_in_html_and_markdown_and_says_when_there_is_nothing(tmp_path):
    html = render(_pair(), tmp_path / "r.html", "html", ["x"])[0].read_text()
    assert re.findall(r"<h2>(.*?)</h2>", html)[0] == "Summary"
    md = render(_pair(), tmp_path / "r.md", "md", ["x"])[0].read_text()
    assert re.findall(r"^## (.*)$", md, re.M)[0] == "Summary" and "MindSpore on cpu takes 1.95x \\[" in md
    alone = render(_pair()[:1], tmp_path / "alone.md", "md", ["x"])[0].read_text()
    assert re.findall(r"^## (.*)$", alone, re.M)[0] == "Summary" and "Nothing to compare" in alone


def _target_skill(framework, steps, wall, energy, reached=True, device="cpu"):
    target = {"channel": "u", "lead_hours": 6.0, "rmse": 0.5, "check_every": 25, "validation_inits": [9]}
    hp = {"lr": 5e-4, "target_rmse": target}
    ident = schema.identity("skill", **{**IDENTITY_DEFAULTS, "hyper_parameters": hp})
    head = schema.header(ident, run_id="t1", timestamp="20261202T000000Z", workload="fourcastnet-tiny",
                         device=device, commit=None)  # fmt: skip
    head.update(weights_convention="cos", rmse_order="sqrt_of_mean_mse", scored_cells="all")
    tta = {
        "tta_reached": reached, "tta_checks": [[steps, 0.4 if reached else 0.6]], "tta_best_rmse": 0.4,
        "tta_steps": steps if reached else None, "tta_wall_s": wall if reached else None,
        "tta_energy_j": energy if reached else None, "tta_energy_reason": None, "tta_target": target,
    }  # fmt: skip
    return schema.record(
        head, framework=framework, status="ok", **_environment(device, 300.0), **_power(1.0, None, 10),
        losses=[1.0] * steps, step_ms=[10.0, 11.0], step_ms_p50=10.5, rollout_ms_p50=5.0,
        rmse_u_6h=0.4, rmse_persistence_u_6h=0.5, rmse_climatology_u_6h=0.9, **tta,
    )  # fmt: skip


def test_time_to_accuracy_has_its_own_section_and_stays_out_of_skill_and_scorecard(tmp_path):
    tta = [_target_skill("torch", 50, 10.0, 100.0), _target_skill("mindspore", 75, 30.0, 250.0)]
    plain = [skill("torch", PT_RMSE, PERSISTENCE), skill("mindspore", PT_RMSE, PERSISTENCE)]
    p = pair_records(tta + plain)
    table = tta_table(p)
    assert list(table.framework) == ["PyTorch", "MindSpore"]
    assert set(table.setting) == {"fp32, eager, batch 2, seed 1, to RMSE of u at 6 h <= 0.5"}
    ms = table.iloc[1]
    assert (ms.tta_steps, ms.tta_wall_s, ms.tta_energy) == (75, 30.0, 250.0)
    assert (ms.steps_ratio, ms.wall_ratio, ms.tta_energy_ratio) == (1.5, 3.0, 2.5)
    assert "cpu-package, measured" in ms.power_scope_label
    assert "to RMSE" not in " ".join(skill_table(p).workload) and not (skill_table(p).variable == "u").any()
    assert not scorecard_table(p).setting.str.contains("to RMSE").any() and not scorecard_table(p).empty
    frame, notes = summary(p)
    target_row = frame[frame.setting.str.startswith("training to a target")].iloc[0]
    assert target_row.time_to_target == "3x" and pd.isna(target_row.skill_rmse)
    assert any("takes 3x PyTorch's wall time to reach RMSE of u at 6 h <= 0.5 (75 vs 50 steps" in n for n in notes)
    missed = tta_table(pair_records([tta[0], _target_skill("mindspore", 100, 0, 0, reached=False)]))
    assert missed.iloc[1].tta_reached == "no, in 100 steps" and pd.isna(missed.iloc[1].wall_ratio)
    md = render(tta + plain, tmp_path / "r.md", "md", ["x"])[0].read_text()
    assert "## Time to accuracy" in md and "### Workload: fourcastnet-tiny; Setting: fp32, eager, batch 2" in md


def _headers(html: str) -> list[str]:
    return re.findall(r"<th>(.*?)</th>", html)


def _full_records():
    card = npu_scope(3, 0, "card", 4)
    scoped = {"power_scope": card.kind, "power_scope_label": card.label, "power_provenance": "measured"}
    recs = [*_pair(), run_record("torch", "ascend:0", **scoped), run_record("mindspore", "ascend:0", **scoped)]
    recs += [_parity()]
    recs += [forecast("torch", PT_MS), forecast("mindspore", MS_MS)]
    recs += [skill("torch", PT_RMSE, PERSISTENCE), skill("mindspore", PT_RMSE, PERSISTENCE)]
    return recs + [_target_skill("torch", 50, 10.0, 100.0), _target_skill("mindspore", 75, 30.0, 250.0)]


def test_every_table_has_human_column_names_and_csv_keeps_field_names(tmp_path):
    html = render(_full_records(), tmp_path / "r.html", "html", ["x"])[0].read_text()
    heads = set(_headers(html))
    assert heads and not [h for h in heads if "_" in h]  # no raw field name anywhere
    assert {"Train step p50 (ms)", "Forward output, rel. L2", "Not finite", "Energy per forecast (J)"} <= heads
    assert len(set(LABELS.values())) == len(LABELS)  # one label per field
    written = render(_full_records(), tmp_path / "csv", "csv", ["x"])
    runs = next(p for p in written if p.name == "runs.csv").read_text().splitlines()[0]
    assert "step_ms_p50" in runs and "forward_ms_p50" in runs


def test_machine_section_shows_each_run_and_the_thresholds_of_metrics_load(tmp_path):
    recs = _pair(**BUSY, load_cv=0.25, load_other_cpu_frac=0.5, load_avg_1m=5.5)
    md = render(recs, tmp_path / "r.md", "md", ["x"])[0].read_text()
    section = md.split("## How quiet the machine was")[1].split("\n## ")[0]
    for threshold in (BUSY_OTHER_CPU, BUSY_STEAL, UNSTABLE_CV):
        assert f"{threshold:.0%}" in section
    (busy,) = [ln for ln in section.splitlines() if "| busy" in ln]
    cells = [c.strip() for c in busy.strip("|").split("|")]
    assert cells[2:8] == ["MindSpore", "cpu", "busy", "25", "50", "0"] and cells[8] == "5.5"
    assert LABELS["load_other_cpu_frac"] in section and "other processes used 50%" in section


def test_energies_are_grouped_by_scope_with_the_card_wide_label_and_short_windows_flagged(tmp_path):
    html = render(_full_records(), tmp_path / "r.html", "html", ["x"])[0].read_text()
    section = html.split("<h2>What each watt covers</h2>")[1].split("<h2>")[0]
    scopes = re.findall(r"<h3>Power scope: (.*?)</h3>", section)
    assert scopes == ["card (a whole card or board)", "model-estimate (a model estimate, not a reading)",
                      "cpu-package (CPU package(s))"]  # fmt: skip
    assert "card-wide: 4 chips share this reading (NPU 3)" in section
    flagged = re.findall(r'<td style="color:#a33;font-weight:600">NO: (.*?)</td>', section)
    assert "2 samples, fewer than 60 in the 0.2 s window" in flagged  # kept, and flagged where it is seen
    assert section.count("<tr><td>") + section.count("<tr><td ") == 10  # every run, none dropped


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True)))
def test_carbon_intensity_is_a_finite_positive_number_or_one_sentence(given):
    try:
        value = float(given)
    except (TypeError, ValueError):
        value = math.nan
    if math.isfinite(value) and value > 0:
        assert carbon_intensity(given, {}).g_per_kwh == value
    else:
        with pytest.raises(PairbenchError, match=r"^--carbon-intensity is .*a finite number above 0$"):
            carbon_intensity(given, {})


def test_carbon_intensity_comes_from_the_option_else_the_environment():
    assert carbon_intensity(None, {}) is None and carbon_intensity(None, {CARBON_ENV: " "}) is None
    assert carbon_intensity(None, {CARBON_ENV: "250"}).source == f"250 gCO2/kWh ({CARBON_ENV})"
    assert carbon_intensity("100", {CARBON_ENV: "250"}).g_per_kwh == 100
    with pytest.raises(PairbenchError, match=f"^{CARBON_ENV} is 'inf'"):
        carbon_intensity(None, {CARBON_ENV: "inf"})


def test_cost_and_carbon_only_from_what_is_given(monkeypatch, tmp_path):
    recs = [forecast("torch", PT_MS), forecast("mindspore", MS_MS), _target_skill("torch", 50, 36.0, 7.2e6)]
    nothing, why = cost_table(pair_records(recs), None)
    assert nothing.empty and "no price per hour and no carbon intensity given" in why
    frame, why = cost_table(pair_records(recs), carbon_intensity("500", {}))
    assert "cost_usd" not in frame and "no price per hour given" in why
    run = frame[frame.what == "one training run to its target"].iloc[0]
    assert run.co2_g == pytest.approx(7.2e6 / 3.6e6 * 500) and "500 gCO2/kWh (--carbon-intensity)" in run.co2_basis
    assert "cpu-package, measured" in run.co2_basis
    priced = HardwareProfile(id="cpu-priced", vendor="x", kind="cpu", description="", match=("cpu",),
                             price_usd_per_hour=3.6, price_source="a price list, 2026-01")  # fmt: skip
    monkeypatch.setattr(costs, "load_profiles", lambda: {"cpu-priced": priced})
    monkeypatch.setattr(costs, "match_profile", lambda kind, name: priced)
    frame, why = cost_table(pair_records(recs), None)
    assert "co2_g" not in frame and "no carbon intensity given" in why
    run = frame[frame.what == "one training run to its target"].iloc[0]
    assert run.cost_usd == pytest.approx(3.6 * 36.0 / 3600)
    assert run.cost_basis == "3.6 USD/h (cpu-priced: a price list, 2026-01) x measured time"
    one = frame[(frame.what == "one forecast") & (frame.framework == "PyTorch")].iloc[0]
    assert one.time_s == pytest.approx(np.median(PT_MS) / 1e3 / 2)  # the median batched forecast / the batch
    estimated = forecast("torch", PT_MS)
    estimated.update(power_provenance="estimated", power_scope="model-estimate")
    frame, _ = cost_table(pair_records([estimated]), carbon_intensity("500", {}))
    assert frame.iloc[0].co2_basis.startswith("estimated: ")


def test_a_bad_carbon_intensity_refuses_the_report_before_any_work(tmp_path, monkeypatch, capsys):
    from runners.cli import main

    path = tmp_path / "records.jsonl"
    for r in _pair():
        append_record(path, r)
    out = tmp_path / "r.md"
    assert main(["report", str(path), "--format", "md", "-o", str(out), "--carbon-intensity", "-5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--carbon-intensity is '-5'; give the grid's carbon intensity in gCO2/kWh, a finite number "
                        "above 0") and "Traceback" not in err and not out.exists()  # fmt: skip
    monkeypatch.setenv(CARBON_ENV, "lots")
    with pytest.raises(PairbenchError, match=f"{CARBON_ENV} is 'lots'"):
        write_report([path], out, "md")
    monkeypatch.setenv(CARBON_ENV, "300")
    (md,) = write_report([path], out, "md", carbon_intensity="400")
    assert md.is_file()  # pair runs only: nothing to price, nothing said of it


def test_the_whole_report_fits_1280_px_with_the_summary_first(tmp_path):
    from reports.browser_check import BrowserUnavailable, check_html

    path = tmp_path / "records.jsonl"
    for r in _full_records():
        append_record(path, r)
    (out,) = write_report([path], tmp_path / "r.html", carbon_intensity="400")
    assert {s.title for s in sections(_full_records(), False, carbon_intensity("400", {}))[0]} >= {
        "Summary", "How quiet the machine was", "What each watt covers", "Time to accuracy", "Cost and carbon",
        "Forecasts", "Runs", "Skill", "Scorecard",
    }  # fmt: skip
    try:
        result = check_html(out)
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))
    assert result.viewport_width <= 1280 and result.sections[0] == "Summary" and result.summary_first
    assert result.wide_tables == [] and result.page_width <= result.viewport_width
    assert result.ok, result
