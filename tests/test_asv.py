"""The asv suite and its regression gate: asv check, the gate on asv-format results, benchmarks = pairbench runs."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import common  # noqa: E402

GATE = ROOT / "scripts" / "asv_gate.py"
SUITE = {"training": "PairedTraining", "skill": "Skill", "forecast": "Forecast"}
MACHINE = "ci-runner"
ENV = "existing-py_usr_bin_python3"
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b"]


def _gate_module():
    """scripts/asv_gate.py as a module (scripts/ is not a package)."""
    if "asv_gate" not in sys.modules:
        spec = importlib.util.spec_from_file_location("asv_gate", GATE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["asv_gate"] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules["asv_gate"]


def suite_classes():
    return [getattr(importlib.import_module(f"benchmarks.{m}"), c) for m, c in SUITE.items()]


def track_benchmarks():
    """(full asv name, class, method) of every track_ benchmark, as asv discovers them."""
    out = []
    for cls in suite_classes():
        for name, func in inspect.getmembers(cls, inspect.isfunction):
            if name.startswith("track_"):
                out.append((f"{cls.__module__.split('.', 1)[1]}.{cls.__name__}.{name}", cls, func))
    return out


# ------------------------------------------------------------------------------ asv-format results
def _product_values(cls, fill):
    """One value per parameter combination of ``cls``, in asv's order (itertools.product)."""
    import itertools

    return [fill(dict(zip(cls.param_names, combo, strict=True))) for combo in itertools.product(*cls.params)]


def _cpu_value(metric: str):
    """What a CPU run records: numbers for cpu / fp32 / the CPU workloads, NaN (skipped) elsewhere."""
    typical = {
        "track_samples_per_s": 270.0,
        "track_step_ms_p50": 7.4,
        "track_peak_rss_mb": 333.0,
        "track_rmse": 0.0719,
        "track_acc": 0.986,
        "track_forecast_ms_p50": 41.0,
        "track_forecast_days_per_s": 240.0,
        "track_energy_j_per_forecast": 0.87,
    }

    def fill(p):
        runs = p["device"] == "cpu" and p["workload"] in ("fourcastnet-tiny", "fourcastnet-small")
        if metric == "track_energy_j_per_sample" or not runs:
            return math.nan
        if metric in ("track_rmse", "track_acc") and p["workload"] != "fourcastnet-tiny":
            return math.nan
        return typical[metric] * (1.5 if p["framework"] == "mindspore" else 1.0)

    return fill


def cpu_results() -> dict[str, list]:
    """{benchmark: results list} of a plausible CPU run of the real suite."""
    return {name: _product_values(cls, _cpu_value(func.__name__)) for name, cls, func in track_benchmarks()}


def write_results(root: Path, commit: str, results: dict[str, list], env: str = ENV) -> Path:
    """A results file as `asv run` writes it (format version 2), plus machine.json and benchmarks.json."""
    classes = {name: cls for name, cls, _ in track_benchmarks()}
    machine_dir = root / MACHINE
    machine_dir.mkdir(parents=True, exist_ok=True)
    (machine_dir / "machine.json").write_text(json.dumps({"machine": MACHINE, "version": 1}))
    benchmarks = {
        name: {"name": name, "param_names": cls.param_names, "params": [[repr(v) for v in p] for p in cls.params]}
        for name, cls in classes.items()
    }
    (root / "benchmarks.json").write_text(json.dumps({**benchmarks, "version": 2}))
    rows = {}
    for name, values in results.items():
        params = [[repr(v) for v in p] for p in classes[name].params]
        rows[name] = [values, params, "0" * 64, 1764000000000, 1.5]
    data = {
        "commit_hash": commit,
        "env_name": env,
        "date": 1764000000000,
        "params": {"machine": MACHINE, "python": "3.11"},
        "python": "3.11",
        "requirements": {},
        "env_vars": {},
        "result_columns": COLUMNS,
        "results": rows,
        "durations": {},
        "version": 2,
    }
    path = machine_dir / f"{commit[:8]}-{env}.json"
    path.write_text(json.dumps(data))
    return path


def _index(name: str, **where) -> list[int]:
    """Indices of the combinations of benchmark ``name`` that match ``where``."""
    import itertools

    cls = {n: c for n, c, _ in track_benchmarks()}[name]
    out = []
    for i, combo in enumerate(itertools.product(*cls.params)):
        p = dict(zip(cls.param_names, combo, strict=True))
        if all(p[k] == v for k, v in where.items()):
            out.append(i)
    return out


BASE, HEAD = "a" * 40, "b" * 40
RMSE = "skill.Skill.track_rmse"
ACC = "skill.Skill.track_acc"
SPEED = "training.PairedTraining.track_samples_per_s"


def gate(results_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(GATE), *args, "--results-dir", str(results_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def _pair(tmp_path, change=None):
    base = cpu_results()
    head = json.loads(json.dumps(base))  # NaN survives the copy
    if change:
        change(head)
    write_results(tmp_path, BASE, base)
    write_results(tmp_path, HEAD, head)
    return tmp_path


# ------------------------------------------------------------------------------ asv itself
@pytest.mark.skipif(importlib.util.find_spec("asv") is None, reason="asv is not installed (dev extra: asv>=0.6)")
def test_asv_check_passes():
    asv = Path(sys.executable).parent / "asv"
    cmd = [str(asv)] if asv.exists() else [sys.executable, "-m", "asv"]
    proc = subprocess.run(
        [*cmd, "check", "--python=same"], capture_output=True, text=True, cwd=ROOT, timeout=120, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No problems found" in proc.stdout


def test_every_track_benchmark_has_a_unit_a_gate_rule_and_no_import_side_effects():
    gate_module = _gate_module()
    found = track_benchmarks()
    assert {n.rsplit(".", 1)[1] for n, _, _ in found} >= {
        "track_samples_per_s",
        "track_step_ms_p50",
        "track_peak_rss_mb",
        "track_energy_j_per_sample",
        "track_rmse",
        "track_acc",
        "track_forecast_ms_p50",
        "track_energy_j_per_forecast",
    }
    for name, _, func in found:
        assert getattr(func, "unit", "unit") != "unit", f"{name} has no unit"
        assert gate_module.rule_for(name) is not None, f"the gate has no rule for {name}"
    for cls in suite_classes():
        assert cls.param_names[:4] == ["framework", "precision", "workload", "device"]
        assert cls.params[1] is common.PRECISIONS
    # importing the suite imports no framework (asv imports every module under benchmarks/)
    suite = "benchmarks.training, benchmarks.skill, benchmarks.forecast"
    code = f"import sys, {suite}; print(sorted({{'torch', 'mindspore'}} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


# ------------------------------------------------------------------------------ the gate
def test_gate_passes_on_identical_results(tmp_path):
    proc = gate(_pair(tmp_path), BASE[:8], HEAD[:8])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 regression(s)" in proc.stdout


def test_gate_fails_on_an_rmse_one_percent_higher(tmp_path):
    i = _index(RMSE, framework="mindspore", device="cpu", lead="24h", channel="u")[0]

    def worse(head):
        head[RMSE][i] *= 1.01

    proc = gate(_pair(tmp_path, worse), BASE, HEAD)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REGRESSION")]
    assert len(lines) == 1, proc.stdout
    assert lines[0].startswith(f"REGRESSION {RMSE}(framework='mindspore', precision='fp32'")
    assert "lead='24h', channel='u'" in lines[0] and "+1.00 %" in lines[0] and "lower is better" in lines[0]


def test_gate_direction_acc_lower_fails_and_rmse_lower_is_only_a_note(tmp_path):
    acc = _index(ACC, framework="torch", device="cpu", lead="48h", channel="vo")[0]
    rmse = _index(RMSE, framework="torch", device="cpu", lead="6h", channel="v")[0]

    def change(head):
        head[ACC][acc] -= 0.01
        head[RMSE][rmse] *= 0.98  # better: reported, not a regression

    proc = gate(_pair(tmp_path, change), BASE, HEAD)
    assert proc.returncode == 1
    assert sum(ln.startswith("REGRESSION") for ln in proc.stdout.splitlines()) == 1
    assert f"REGRESSION {ACC}(framework='torch'" in proc.stdout and "higher is better" in proc.stdout
    assert f"changed (better) {RMSE}(framework='torch'" in proc.stdout


def test_gate_speed_only_when_asked_loose_or_dedicated(tmp_path):
    i = _index(SPEED, framework="torch", workload="fourcastnet-tiny", device="cpu")[0]

    def slower(factor):
        def change(head):
            head[SPEED][i] /= factor

        return change

    half = _pair(tmp_path / "half", slower(2.0))
    proc = gate(half, BASE, HEAD)  # shared runner: speed is noise, not gated
    assert proc.returncode == 0 and "speed and energy: not gated" in proc.stdout, proc.stdout
    proc = gate(half, BASE, HEAD, "--speed-factor", "1.5")
    assert proc.returncode == 1 and f"REGRESSION {SPEED}(framework='torch'" in proc.stdout, proc.stdout
    assert "higher is better" in proc.stdout

    mild = _pair(tmp_path / "mild", slower(1.3))
    assert gate(mild, BASE, HEAD, "--speed-factor", "1.5").returncode == 0
    proc = gate(mild, BASE, HEAD, "--dedicated")
    assert proc.returncode == 1 and "factor 1.1" in proc.stdout, proc.stdout


def test_gate_fails_when_a_benchmark_that_ran_fails_or_disappears(tmp_path):
    i = _index(RMSE, framework="mindspore", device="cpu", lead="6h", channel="u")[0]

    def failed(head):
        head[RMSE][i] = None  # asv's record of a failed benchmark

    proc = gate(_pair(tmp_path / "failed", failed), BASE, HEAD)
    assert proc.returncode == 1 and "in base, failed in head" in proc.stdout, proc.stdout

    def gone(head):
        del head[ACC]

    proc = gate(_pair(tmp_path / "gone", gone), BASE, HEAD)
    assert proc.returncode == 1 and "missing or skipped in head" in proc.stdout
    assert gate(tmp_path / "gone", BASE, HEAD, "--allow-missing").returncode == 0


def test_gate_takes_files_and_refuses_what_it_cannot_compare(tmp_path):
    root = _pair(tmp_path)
    files = sorted((root / MACHINE).glob("????????-*.json"))
    assert gate(root, str(files[0]), str(files[1])).returncode == 0
    proc = gate(root, BASE, "c" * 8)
    assert proc.returncode == 2 and "no asv results for 'cccccccc'" in proc.stderr
    empty = write_results(tmp_path / "empty", "d" * 40, {RMSE: [math.nan] * len(cpu_results()[RMSE])})
    proc = gate(tmp_path / "empty", str(empty), str(empty))
    assert proc.returncode == 2 and "nothing to compare" in proc.stderr


def test_gate_reads_a_result_file_asv_wrote(tmp_path):
    """The format as asv 0.6 writes it (trailing empty columns dropped, NaN for skipped combinations)."""
    text = (
        '{"commit_hash": "%s", "env_name": "existing-py", "date": 1, "params": {}, "python": "3.11",'
        ' "requirements": {}, "env_vars": {}, "result_columns": ["result", "params", "version", "started_at",'
        ' "duration", "stats_ci_99_a", "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number",'
        ' "stats_repeat", "samples", "profile"], "results": {"skill.Skill.track_rmse": [[0.07, NaN],'
        ' [["\'torch\'", "\'mindspore\'"]], "abc", 1, 2.0]}, "durations": {}, "version": 2}'
    )
    (tmp_path / "a.json").write_text(text % BASE)
    (tmp_path / "b.json").write_text((text % HEAD).replace("0.07", "0.0701"))
    g = _gate_module()
    loaded = g.load_results(tmp_path / "a.json")
    values = loaded["benchmarks"][RMSE]["values"]
    assert values[("'torch'",)] == 0.07 and math.isnan(values[("'mindspore'",)])
    assert g.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1


# ------------------------------------------------------------------------------ the suite's logic
def test_setup_skips_absent_frameworks_and_devices_and_fails_on_failed_runs(monkeypatch):
    monkeypatch.setattr(common, "framework_installed", lambda fw: fw == "torch")
    monkeypatch.setattr(common, "device_absent", lambda d: None if d == "cpu" else f"no {d} here")
    calls = []

    def run_one(workload, precision, device, frameworks):
        calls.append((workload, device, tuple(frameworks)))
        return {"torch": common.entry_for({"framework": "torch", "status": "failed", "reason": "NaN loss"}, {})}

    cache = common.run_grid("pair", ["fourcastnet-tiny", "fourcastnet-era5"], run_one)
    assert calls == [("fourcastnet-tiny", "cpu", ("torch",))]  # era5 is too big for a CPU; cuda, ascend absent
    with pytest.raises(RuntimeError, match="torch failed: NaN loss"):
        common.lookup(cache, "fourcastnet-tiny", "fp32", "cpu", "torch")
    for parts, why in [
        (("fourcastnet-tiny", "fp32", "cpu", "mindspore"), "mindspore is not installed"),
        (("fourcastnet-tiny", "fp32", "cuda", "torch"), "no cuda here"),
        (("fourcastnet-era5", "fp32", "cpu", "torch"), "is for a GPU or NPU"),
        (("fourcastnet-tiny", "bf16", "cpu", "torch"), "not in this suite's grid"),
    ]:
        with pytest.raises(NotImplementedError, match=why):
            common.lookup(cache, *parts)


def test_track_methods_read_the_cached_values():
    from benchmarks.skill import Skill
    from benchmarks.training import PairedTraining

    values = {"samples_per_s": 270.4, "step_ms_p50": 7.4, "host_peak_rss_mb": 332.4}
    cache = {
        common.key("fourcastnet-tiny", "fp32", "cpu", "torch"): {
            "values": {**values, "energy_j_per_sample": None, "energy_reason": "estimated"}
        }
    }
    args = ("torch", "fp32", "fourcastnet-tiny", "cpu")
    bench = PairedTraining()
    bench.setup(cache, *args)
    assert bench.track_samples_per_s(cache, *args) == 270.4
    assert bench.track_step_ms_p50(cache, *args) == 7.4
    assert bench.track_peak_rss_mb(cache, *args) == 332.4
    with pytest.raises(NotImplementedError, match="estimated"):  # asv: n/a, never an estimate tracked as energy
        bench.track_energy_j_per_sample(cache, *args)

    scores = {("rmse", "24h", "u"): 0.09, ("acc", "24h", "u"): 0.95}
    cache = {common.key("fourcastnet-tiny", "fp32", "cpu", "torch"): {"values": scores}}
    skill = Skill()
    skill.setup(cache, *args, "24h", "u")
    assert skill.track_rmse(cache, *args, "24h", "u") == 0.09
    assert skill.track_acc(cache, *args, "24h", "u") == 0.95


def test_forecast_energy_is_tracked_only_when_measured(monkeypatch):
    """As for energy per sample: a forecast record whose energy is estimated gives asv n/a with the reason, never the
    estimate as energy; a measured one gives its joules."""
    import types

    import runners.experiments.forecast
    from benchmarks.forecast import Forecast, run_forecasts

    basis = "TDP 20 W assumed (10 W x 2 logical cores, profile cpu-generic)"
    records = [
        {"framework": "torch", "status": "ok", "forecast_ms_p50": 9.0, "forecast_days_per_s": 2.0,
         "energy_j_per_forecast": 0.466, "power_provenance": "estimated", "power_reason": None,
         "power_estimate_basis": basis},
        {"framework": "mindspore", "status": "ok", "forecast_ms_p50": 11.0, "forecast_days_per_s": 1.5,
         "energy_j_per_forecast": 0.52, "power_provenance": "measured", "power_reason": None},
    ]  # fmt: skip
    outcome = types.SimpleNamespace(records=records)
    monkeypatch.setattr(runners.experiments.forecast, "run_forecast", lambda opts, progress: outcome)
    cache = {
        common.key("fourcastnet-tiny", "fp32", "cpu", fw): entry
        for fw, entry in run_forecasts("fourcastnet-tiny", "fp32", "cpu", ["torch", "mindspore"]).items()
    }
    bench = Forecast()
    args = ("torch", "fp32", "fourcastnet-tiny", "cpu")
    bench.setup(cache, *args)
    assert bench.track_forecast_ms_p50(cache, *args) == 9.0
    with pytest.raises(NotImplementedError, match=r"energy_j_per_forecast is estimated, not measured \(TDP 20 W"):
        bench.track_energy_j_per_forecast(cache, *args)
    args = ("mindspore", "fp32", "fourcastnet-tiny", "cpu")
    bench.setup(cache, *args)
    assert bench.track_energy_j_per_forecast(cache, *args) == 0.52


def test_precision_is_passed_where_the_runners_take_one_and_skipped_otherwise():
    @dataclasses.dataclass
    class Old:
        seed: int = 0

    @dataclasses.dataclass
    class New:
        seed: int = 0
        precision: str = "fp32"

    assert common.options(Old, "fp32", seed=1) == Old(seed=1)
    assert common.options(New, "bf16", seed=1) == New(seed=1, precision="bf16")
    with pytest.raises(common.Skip, match="fp32 only"):
        common.options(Old, "bf16", seed=1)


def test_devices_variable_limits_the_devices(monkeypatch):
    monkeypatch.setenv(common.DEVICES_ENV, "cuda")
    assert "leaves out cpu" in common.device_absent("cpu")
    monkeypatch.setenv(common.DEVICES_ENV, "cpu,cuda")
    assert common.device_absent("cpu") is None


class _Captured(Exception):
    pass


@pytest.mark.parametrize("workload", ["fourcastnet-tiny", "fourcastnet-small", "aigoms-tiny"])
@pytest.mark.parametrize("task", ["pair", "skill", "forecast"])
def test_benchmarks_run_what_the_printed_pairbench_command_runs(monkeypatch, task, workload):
    """The asv benchmark and `pairbench run|skill|forecast` with the flags it prints build the same options."""
    import runners.experiments.forecast
    import runners.experiments.pair
    import runners.experiments.skill
    from runners.cli import main

    def capture(opts, *args, **kwargs):
        raise _Captured(opts)

    monkeypatch.setattr(runners.experiments.pair, "run_pair", capture)
    monkeypatch.setattr(runners.experiments.skill, "run_skill", capture)
    monkeypatch.setattr(runners.experiments.forecast, "run_forecast", capture)
    command = common.pairbench_command(task, workload, "fp32", "cpu")
    with pytest.raises(_Captured) as got:
        main(command.split()[1:])
    ours = dataclasses.asdict(common.task_options(task, workload, "fp32", "cpu", list(common.FRAMEWORKS)))
    theirs = dataclasses.asdict(got.value.args[0])
    ours.pop("results_dir"), theirs.pop("results_dir")
    assert ours == theirs, command


def test_the_suite_repeats_no_option_default():
    """The asv suite's device kinds and time-out are pairbench's, not copies that could drift."""
    from runners.options import PairOptions
    from runners.spec import DEVICE_KINDS

    assert common.DEVICES == list(DEVICE_KINDS) and common.TIMEOUT_S == PairOptions.timeout_s
