"""``pairbench forecast``: timed autoregressive inference in both frameworks from the same weights and initial
conditions, its records, the trajectories' parity, initial conditions from data, and bad input."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import needs_both, needs_torch, run_python

from metrics.parity import FP32_BOUNDS, TRAJECTORY_GROWTH, compare_trajectories
from runners.errors import PairbenchError
from runners.execution.rollout import (
    KEPT_LEADS,
    MAX_TIMED_FORECASTS,
    MIN_POWER_WINDOW_S,
    TRAJECTORY_BYTES,
    Rollout,
    kept_trajectory,
)
from runners.experiments.forecast import kept_alike, lead_steps
from runners.records import schema
from runners.records.store import read_records
from runners.workloads.registry import get_workload


def cli(*args: str):
    return run_python(f"import sys; from runners.cli import main; sys.exit(main({list(args)!r}))")


class _Tables(HTMLParser):
    """The tables of the section of an HTML report under the heading ``<h2>{title}</h2>``, as [header cells,
    *rows of cells] each, the text of each cell unescaped."""

    def __init__(self, title: str):
        super().__init__()
        self.title, self.inside, self.tables = title, False, []
        self.tag, self.text, self.cell = None, "", None

    def handle_starttag(self, tag, attrs):
        if tag == "h2":
            self.tag, self.text = "h2", ""
        elif self.inside and tag == "table":
            self.tables.append([])
        elif self.inside and tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif self.inside and tag in ("th", "td") and self.tables:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "h2" and self.tag == "h2":
            self.inside, self.tag = self.text.strip() == self.title, None
        elif tag in ("th", "td") and self.cell is not None:
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.tag == "h2":
            self.text += data
        elif self.cell is not None:
            self.cell += data


def forecasts_table_rows(html: str, framework: str) -> list[dict[str, str]]:
    """The rows of the report's Forecasts tables whose framework cell is ``framework``, as {field: cell}: headers
    read back to field names through reports.labels, and a table split into column groups (each repeating the
    framework column, the same rows in the same order) joined again."""
    from reports.labels import LABELS

    field_of = {label: name for name, label in LABELS.items()}
    parser = _Tables("Forecasts")
    parser.feed(html)
    assert parser.tables, "the report has no Forecasts table"
    tables = []
    for header, *body in parser.tables:
        rows = [dict(zip([field_of.get(h, h) for h in header], cells, strict=True)) for cells in body]
        last = tables[-1] if tables else None
        if (
            last
            and [r["framework"] for r in last] == [r["framework"] for r in rows]
            and not (set(last[0]) & set(rows[0])) - {"framework"}
        ):
            for a, b in zip(last, rows, strict=True):
                a.update(b)  # the next column group of the same rows
        else:
            tables.append(rows)
    return [row for rows in tables for row in rows if row["framework"] == framework]


# ------------------------------------------------------------------------------------------ the parts


def test_a_ten_day_forecast_is_the_default_at_each_workloads_time_step():
    assert get_workload("fourcastnet-tiny").time_step_hours == 6.0
    assert get_workload("aigoms-tiny").time_step_hours == 24.0
    assert lead_steps(None, 6.0) == 40 and lead_steps(None, 24.0) == 10 and lead_steps(3, 6.0) == 3
    with pytest.raises(PairbenchError, match="not a whole number of 7 h steps; give --n-lead"):
        lead_steps(None, 7.0)


def test_trajectory_parity_passes_fails_and_names_what_is_not_finite():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 5, 3, 4, 8))
    close = ref * (1 + 1e-7)
    found = compare_trajectories(close, ref, ("mindspore", "torch"), "fp32", "cpu")
    assert found["verdict"] == "pass" and len(found["rel_l2_per_lead"]) == 5
    assert found["rel_l2_first_lead"] == pytest.approx(1e-7, rel=1e-3)
    assert found["tolerances"] == {"first_lead": FP32_BOUNDS["forward"], "every_lead": FP32_BOUNDS["forward"] * 10}
    # The first lead is one forward pass: held to the forward bound, not to the looser bound of later leads.
    drift = ref.copy()
    drift[:, 0] *= 1 + 5e-5
    assert compare_trajectories(drift, ref, ("a", "b"), "fp32", "cpu")["verdict"] == "fail"
    late = ref.copy()
    late[:, 4] *= 1 + 2 * FP32_BOUNDS["forward"] * TRAJECTORY_GROWTH
    assert compare_trajectories(late, ref, ("a", "b"), "fp32", "cpu")["verdict"] == "fail"
    bad = close.copy()
    bad[1, 3, 0, 0, 0] = np.nan
    found = compare_trajectories(bad, ref, ("a", "b"), "fp32", "cpu")
    assert found["verdict"] == "fail" and found["nonfinite"] == ["lead 4"] and found["rel_l2_per_lead"][3] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in found["rel_l2_per_lead"])
    # The growth bound was measured for fp32 trajectories on CPU only: elsewhere no verdict is made up.
    for precision, kind in (("bf16", "cuda"), ("fp16", "cpu"), ("fp32", "cuda"), ("fp32", "ascend")):
        unknown = compare_trajectories(close, ref, ("a", "b"), precision, kind)
        assert unknown["verdict"] == "bounds not established" and unknown["within_tolerance"] is None
        assert unknown["tolerances"] is None


ERA5_MEMBER_LEAD = 20 * 720 * 1440 * 4  # one member's fields at one lead of fourcastnet-era5, float32 (83 MB)


@pytest.mark.parametrize("members", [1, 2, 3, 8, 50])
def test_a_ten_day_era5_trajectory_keeps_a_budget_of_leads_and_members(members):
    kept_members, leads = kept_trajectory(members, 40, ERA5_MEMBER_LEAD)
    assert len(leads) == KEPT_LEADS and leads[0] == 0 and leads[-1] == 39 and leads == sorted(set(leads))
    assert [k + 1 for k in leads] == [1, 11, 21, 30, 40]  # evenly spaced over the ten days
    assert kept_members[0] == 0 and kept_members == sorted(set(kept_members)) and kept_members[-1] < members
    written = len(kept_members) * len(leads) * ERA5_MEMBER_LEAD
    assert written <= TRAJECTORY_BYTES  # at most 1 GiB per framework and precision, where one member is 3.3 GB
    assert len(kept_members) == min(members, TRAJECTORY_BYTES // (KEPT_LEADS * ERA5_MEMBER_LEAD)) == min(members, 2)
    if members > 2:
        assert kept_members[-1] == members - 1  # a sample over the ensemble, not its first members


def test_a_trajectory_within_the_budget_is_kept_whole_and_a_huge_one_keeps_its_ends():
    tiny = 4 * 32 * 64 * 4
    assert kept_trajectory(8, 40, tiny) == (list(range(8)), list(range(40)))
    assert kept_trajectory(2, 3, TRAJECTORY_BYTES // 4) == ([0], [0, 1, 2])  # over the budget, fewer leads than kept
    assert kept_trajectory(4, 40, TRAJECTORY_BYTES) == ([0], [0, 39])  # one lead alone fills it: the two ends
    assert kept_trajectory(4, 1, 2 * TRAJECTORY_BYTES) == ([0], [0])


class _Stepper:
    """A runner whose forward pass adds 1: each lead's forecast is its lead number over the initial state."""

    put = fetch = staticmethod(np.asarray)

    def forward(self, x):
        return x + 1

    def synchronize(self):
        pass


def test_a_rollout_keeps_only_the_chosen_members_and_leads():
    x0 = np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1) * 100
    kept: list[np.ndarray] = []
    Rollout(1, None, None).run(_Stepper(), x0, 6, keep=kept, kept=([0, 3], [0, 2, 5]))
    assert np.array_equal(np.stack(kept, axis=1)[..., 0, 0, 0], [[1, 3, 6], [301, 303, 306]])
    everything: list[np.ndarray] = []
    Rollout(1, None, None).run(_Stepper(), x0, 6, keep=everything)
    assert np.stack(everything, axis=1).shape == (4, 6, 1, 1, 1)


def test_parity_compares_the_leads_and_members_both_frameworks_kept(tmp_path):
    rng = np.random.default_rng(1)
    full = rng.standard_normal((4, 8, 2, 3, 5))
    np.savez(tmp_path / "a.npz", trajectory=full[[0, 3]][:, [0, 4, 7]], members=[0, 3], leads=[1, 5, 8])
    np.savez(tmp_path / "b.npz", trajectory=full)  # an older worker's file: every member and lead
    (a, b), members, leads = kept_alike(tmp_path / "a.npz", tmp_path / "b.npz")
    assert members == [0, 3] and leads == [1, 5, 8] and np.array_equal(a, b)
    found = compare_trajectories(a, b * (1 + 1e-7), ("a", "b"), "fp32", "cpu", leads)
    per_lead = found["rel_l2_per_lead"]
    assert len(per_lead) == 8 and [k + 1 for k, v in enumerate(per_lead) if v is not None] == [1, 5, 8]
    assert found["verdict"] == "pass" and found["rel_l2_first_lead"] == pytest.approx(1e-7, rel=1e-2)
    a[:, 1] = np.nan
    found = compare_trajectories(a, b, ("a", "b"), "fp32", "cpu", leads)
    assert found["verdict"] == "fail" and found["nonfinite"] == ["lead 5"]  # named by its lead, not its position


def _identity(**over) -> dict:
    fields = dict(
        model={"m": 1}, weights_sha256="ab" * 32, seed=1,
        data={"initial_conditions": {"generator": "g"}, "n_lead": 40, "lead_hours": 6.0, "repeats": 5},
        hyper_parameters={}, batch_size=1, precision="fp32", mode="eager", recompute=False, threads=None,
        warmup_steps=1, train_steps=0, forward_steps=0, objective="forecast", nproc=1,
    )  # fmt: skip
    return schema.identity("forecast", **{**fields, **over})


def test_compiled_eager_batch_and_lead_count_are_different_forecasts():
    base = _identity()["workload_fingerprint"]
    data = {"initial_conditions": {"generator": "g"}, "n_lead": 20, "lead_hours": 6.0, "repeats": 5}
    others = [_identity(mode="compiled"), _identity(batch_size=2), _identity(data=data), _identity(precision="fp16")]
    assert len({base, *(i["workload_fingerprint"] for i in others)}) == 5


# ------------------------------------------------------------------------------------------ end to end


@needs_both
@pytest.mark.parametrize("workload, n_lead", [("fourcastnet-tiny", 6), ("aigoms-tiny", 3)])
def test_forecast_in_both_frameworks_records_latency_energy_and_parity(tmp_path, workload, n_lead):
    proc = cli(
        "forecast", "--workload", workload, "--n-lead", str(n_lead), "--batch-size", "2", "--repeats", "2",
        "--seed", "4", "--results-dir", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = read_records(tmp_path / "records.jsonl")
    runs = {r["framework"]: r for r in records if r["record_type"] == "forecast"}
    (parity,) = [r for r in records if r["record_type"] == "forecast_parity"]
    hours = get_workload(workload).time_step_hours
    for r in runs.values():
        assert r["status"] == "ok", r.get("reason")
        assert r["n_lead"] == n_lead and r["lead_hours"] == hours and r["forecast_hours"] == n_lead * hours
        assert len(r["forecast_ms"]) >= 2 and r["forecast_ms_p50"] == pytest.approx(np.median(r["forecast_ms"]))
        days = n_lead * hours / 24
        assert r["forecast_days_per_s"] == pytest.approx(2 * days / (r["forecast_ms_p50"] / 1e3))
        assert all(math.isfinite(r[k]) and r[k] > 0 for k in ("lead_ms_p50", "forecast_ms_p50", "first_forecast_ms"))
        if r["energy_j_per_forecast"] is None:  # unavailable, and said why: never 0
            assert r["power_provenance"] == "unavailable" and r["power_reason"]
        else:
            assert r["power_provenance"] in ("measured", "estimated")
            assert r["energy_j_per_forecast"] == pytest.approx(r["energy_j"] / (2 * len(r["forecast_ms"])))
            assert r["energy_j_per_forecast_day"] == pytest.approx(r["energy_j_per_forecast"] / days)
        # Repeats continue until the window can hold readings (or a ceiling on their number).
        assert r["power_window_s"] >= MIN_POWER_WINDOW_S or len(r["forecast_ms"]) == MAX_TIMED_FORECASTS
        assert f"{r['forecast_ms_p50']:.4g}" in proc.stdout
    assert runs["torch"]["workload_fingerprint"] == runs["mindspore"]["workload_fingerprint"]
    assert parity["workload_fingerprint"] == runs["torch"]["workload_fingerprint"]
    assert parity["verdict"] == "pass" and len(parity["rel_l2_per_lead"]) == n_lead
    assert 0 < parity["rel_l2_first_lead"] <= FP32_BOUNDS["forward"]
    traj = {fw: np.load(next(tmp_path.glob(f"*/{fw}.npz")))["trajectory"] for fw in runs}
    assert traj["torch"].shape == (2, n_lead, get_workload(workload).model.out_chans, 32, 64)
    assert not np.array_equal(traj["torch"][:, 0], traj["torch"][:, -1])  # the forecast moves: leads are fed back
    (row,) = forecasts_table_rows((tmp_path / "report.html").read_text(), "MindSpore")
    assert float(row["forecast_ms_p50"]) == pytest.approx(runs["mindspore"]["forecast_ms_p50"], rel=1e-3)
    assert float(row["forecast_days_per_s"]) == pytest.approx(runs["mindspore"]["forecast_days_per_s"], rel=1e-3)


def test_the_forecasts_table_reader_reads_cells_not_text_elsewhere(tmp_path):
    """The reader takes the Forecasts section's table cells only: a number elsewhere in the page (another table, a
    figure's base64 data) is not read as the latency."""
    html = (
        "<h2>Throughput</h2><table><thead><tr><th>framework</th><th>forecast_ms_p50</th></tr></thead>"
        "<tbody><tr><td>MindSpore</td><td>12.5</td></tr></tbody></table><img src='data:image/png;base64,98.7'>"
        "<h2>Forecasts</h2><h3>workload: x</h3><div><table><thead><tr><th>framework</th><th>forecast_ms_p50</th>"
        "</tr></thead><tbody><tr><td>PyTorch</td><td>1.5</td></tr><tr><td>MindSpore</td><td>98.72</td></tr>"
        "</tbody></table></div><h2>Skill</h2><table><tr><th>framework</th></tr><tr><td>MindSpore</td></tr></table>"
    )
    assert forecasts_table_rows(html, "MindSpore") == [{"framework": "MindSpore", "forecast_ms_p50": "98.72"}]
    assert forecasts_table_rows(html, "JAX") == []
    # And on a report the project writes: the cell is the record's latency.
    from test_report_forecast import _html, forecast, forecast_parity

    records = [forecast("torch", [10.0, 12.0]), forecast("mindspore", [31.0, 35.0, 33.0]), forecast_parity([1e-7])]
    (row,) = forecasts_table_rows(_html(tmp_path, records), "MindSpore")
    assert float(row["forecast_ms_p50"]) == pytest.approx(33.0) and float(row["forecast_ms_p90"]) > 33.0


@needs_torch
def test_first_lead_of_the_forecast_is_one_forward_pass_of_the_initial_conditions(tmp_path):
    """The recorded trajectory is the model applied to the synthetic stream's first batch, fed back."""
    from runners.data.synthetic import synthetic_batch

    proc = cli(
        "forecast", "--frameworks", "torch", "--n-lead", "2", "--repeats", "1", "--seed", "9",
        "--results-dir", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    code = f"""
import numpy as np, torch
from runners.weights.canonical import load_weights
from runners.workloads.registry import get_workload
from runners.spec import load_object
spec = get_workload("fourcastnet-tiny")
net = load_object(spec.models["torch"])(spec.model)
weights = load_weights("{run_dir}/weights.safetensors", spec.model)
net.load_state_dict({{k: torch.from_numpy(v) for k, v in weights.items()}})
x = torch.from_numpy(np.load("{tmp_path}/x0.npy"))
with torch.no_grad():
    a = net(x); b = net(a)
np.save("{tmp_path}/expected.npy", np.stack([a.numpy(), b.numpy()], axis=1))
"""
    x0, _ = synthetic_batch((1, 3, 32, 64), 3, 9, 0)
    np.save(tmp_path / "x0.npy", x0)
    assert run_python(code).returncode == 0
    got = np.load(run_dir / "torch.npz")["trajectory"]
    np.testing.assert_allclose(got, np.load(tmp_path / "expected.npy"), rtol=1e-5, atol=1e-6)


@needs_both
def test_forecast_from_data_with_missing_cells_feeds_no_nan(tmp_path):
    """Initial conditions from a netCDF file with land (NaN) in one variable: both frameworks forecast finite
    fields, and the trajectories agree."""
    xr = pytest.importorskip("xarray")
    times = np.arange("2020-01-01", "2020-01-11", np.timedelta64(6, "h"), dtype="datetime64[ns]")
    lats, lons = np.linspace(60.0, 20.0, 17), np.arange(32) * 2.5
    rng = np.random.default_rng(0)
    sst = 280 + rng.standard_normal((len(times), 17, 32)).astype(np.float32)
    sst[:, 5:9, 10:16] = np.nan  # land
    wind = rng.standard_normal((len(times), 17, 32)).astype(np.float32)
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), sst), "u10": (("time", "lat", "lon"), wind)},
        coords={"time": times, "lat": lats, "lon": lons},
    )
    path = tmp_path / "regional.nc"
    ds.to_netcdf(path)
    out = tmp_path / "results"
    proc = cli(
        "forecast", "--data", f"xarray:{path}", "--channels", "sst,u10", "--n-lead", "3", "--repeats", "1",
        "--batch-size", "2", "--seed", "2", "--results-dir", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = read_records(out / "records.jsonl")
    runs = [r for r in records if r["record_type"] == "forecast"]
    assert all(r["status"] == "ok" for r in runs) and len(runs) == 2
    assert runs[0]["model"]["img_size"] == [16, 32] and runs[0]["model"]["in_chans"] == 2  # 17 rows cropped to 16
    assert "test split" in runs[0]["initial_conditions"]
    for fw in ("torch", "mindspore"):
        assert np.isfinite(np.load(next(out.glob(f"*/{fw}.npz")))["trajectory"]).all()
    (parity,) = [r for r in records if r["record_type"] == "forecast_parity"]
    assert parity["verdict"] == "pass", parity


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--repeats", "0"], "repeats must be at least 1, got 0"),
        (["--n-lead", "0"], "n-lead must be at least 1, got 0"),
        (["--workload", "graphcast"], "unknown workload 'graphcast'"),
        (["--data", "xarray:/nonexistent/file.nc"], "does not exist"),
        (["--data", "grib:/x"], "is not KIND:PATH with KIND one of era5, xarray"),
        (["--workload", "aigoms-tiny", "--data", "era5:/nonexistent"], "cannot take them from --data"),
        (["--channels", "z500", "--test-fraction", "0.3"], "--channels, --test-fraction describe --data, which was"),
    ],
)
def test_bad_forecast_input_is_one_sentence_and_leaves_nothing(tmp_path, args, message):
    proc = cli("forecast", *args, "--results-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr and message in lines[-1], proc.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_forecast_records_refuse_timings_that_are_no_timings_and_parity_values_that_are_no_numbers():
    head = schema.header(_identity(), run_id="r", timestamp="t", workload="w", device="cpu", commit=None)
    found = compare_trajectories(np.ones((1, 2, 1, 2, 2)), np.ones((1, 2, 1, 2, 2)), ("a", "b"), "fp32", "cpu")
    for bad in (["abc", 0.1], [[0.1], 0.2], [True, 0.1]):
        with pytest.raises(schema.RecordError, match="rel_l2_per_lead.*not a list of finite numbers or nulls"):
            schema.record(head, "forecast_parity", **{**found, "rel_l2_per_lead": bad})
    assert schema._type_ok("times", [0.5, 2.0])
    for bad in ([], [0.0, 1.0], [-1.0], [float("inf")]):
        assert not schema._type_ok("times", bad), bad


def test_forecast_parity_record_validates_and_refuses_nan():
    head = schema.header(_identity(), run_id="r", timestamp="t", workload="w", device="cpu", commit=None)
    found = compare_trajectories(np.ones((1, 2, 1, 2, 2)), np.ones((1, 2, 1, 2, 2)), ("a", "b"), "fp32", "cpu")
    rec = schema.record(head, "forecast_parity", **found)
    assert json.loads(json.dumps(rec)) == rec
    with pytest.raises(schema.RecordError, match="not a list of finite numbers or nulls"):
        schema.record(head, "forecast_parity", **{**found, "rel_l2_per_lead": [float("nan"), 0.0]})
    with pytest.raises(schema.RecordError, match="not a finite number"):
        schema.record(head, "forecast_parity", **{**found, "rel_l2_max": float("inf")})
