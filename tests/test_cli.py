"""The pairbench command: bad input ends in one clear sentence and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import needs_both, needs_torch, run_python

from runners.errors import PairbenchError
from runners.records.store import append_record, read_records


def cli(*args: str):
    return run_python(f"import sys; from runners.cli import main; sys.exit(main({list(args)!r}))")


def _one_sentence(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert lines and "Traceback" not in stderr, stderr
    return lines[-1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--workload", "graphcast"], "pairbench: error: unknown workload 'graphcast'; known workloads:"),
        (["run", "--frameworks", "jax"], "unknown framework 'jax'; choose from torch, mindspore"),
        (["run", "--device", "tpu"], "pairbench: error: unknown device 'tpu'; use cpu, cuda[:i] or ascend[:i]"),
        (["run", "--device", "cuda:x"], "pairbench: error: malformed device 'cuda:x'"),
        (["run", "--train-steps", "0"], "pairbench: error: --train-steps must be at least 1, got 0"),
        (
            ["run", "--weights", "/nonexistent/w.safetensors"],
            "pairbench: error: weights file /nonexistent/w.safetensors does not exist",
        ),
        (["run", "--batch-size", "two"], "argument --batch-size: 'two' is not a batch size or a comma-separated list"),
        (["run", "--colour"], "unrecognized arguments: --colour"),
        (["run", "--objective", "masked", "--nproc", "2"], "so --objective masked cannot be honoured"),
        (
            ["run", "--nproc", "2", "--precision", "bf16", "--mode", "compiled", "--recompute", "--forward-steps", "4"],
            "so --precision other than fp32, --mode compiled, --recompute, --forward-steps cannot be honoured",
        ),
        (["run", "--nproc", "2", "--skill"], "so --skill cannot be honoured"),
        (["run", "--nproc", "2", "--batch-size", "4,3"], "global batch 3 cannot be split evenly over 2 processes"),
        (["run", "--nproc", "0"], "--nproc must be at least 1, got 0"),
        (["run", "--nproc", "2", "--train-steps", "0"], "--train-steps must be at least 1, got 0"),
        (["run", "--threads", "0"], "threads must be at least 1"),
        (["run", "--seed", "-1"], "seed must be a whole number from 0 to 2^63 - 1, got -1"),
        (["run", "--timeout", "-5"], "timeout must be a positive number of seconds, got -5"),
        (["run", "--nproc", "2", "--timeout", "0"], "timeout must be a positive number of seconds, got 0"),
        (["run", "--objective", "mae"], "argument --objective: invalid choice: 'mae'"),
        (["run", "--spectral", "fast"], "argument --spectral: invalid choice: 'fast' (choose from 'fft', 'dft')"),
        (["run", "--nproc", "2", "--spectral", "dft"], "so --spectral cannot be honoured"),
        (["run", "--weights", "/"], "weights file / is a directory: name the safetensors file or checkpoint in it"),
        (["run", "--objective", "masked"], "pairbench: error: fourcastnet-tiny has no masked pre-training"),
    ],
)
def test_bad_input_is_one_clear_sentence(tmp_path, args, message):
    proc = cli(*args, *(["--results-dir", str(tmp_path)] if args[0] == "run" and "--colour" not in args else []))
    assert proc.returncode == 2
    assert message in _one_sentence(proc.stderr)
    assert not (tmp_path / "records.jsonl").exists()
    if args[0] == "run" and "--colour" not in args:  # every refusal comes before anything is written
        assert not any(tmp_path.iterdir())


def test_workloads_json_lists_counts_and_flops():
    proc = cli("workloads", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["workload"]: r for r in json.loads(proc.stdout)}
    assert rows["fourcastnet-era5"]["parameters"] == 74_691_840
    assert rows["fourcastnet-tiny"]["gflop_train_per_sample"] > rows["fourcastnet-tiny"]["gflop_forward_per_sample"]


@needs_both
def test_demo_default_runs_both_frameworks_and_prints_parity(tmp_path):
    proc = cli("run", "--results-dir", str(tmp_path), "--train-steps", "3", "--forward-steps", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "torch" in out and "mindspore" in out and "train step ms p50" in out
    assert out.count(": ok") == 4 and "OUT OF TOLERANCE" not in out  # 3 parity checks, skill agreement
    assert "RMSE persistence" in out and "ACC torch" in out
    _assert_skill(tmp_path)
    assert out.strip().endswith(f"report written: {(tmp_path / 'report.html').resolve()}")
    html = (tmp_path / "report.html").read_text()
    assert "Numerical parity" in html and "Skill" in html and html.count("data:image/png;base64,") >= 5
    assert "power: estimated, not measured" in out or "unavailable" in out
    records = read_records(tmp_path / "records.jsonl")
    assert [(r["record_type"], r["task"], r.get("framework")) for r in records] == [
        ("run", "pair", "torch"), ("run", "pair", "mindspore"), ("parity", "pair", None),
        ("skill", "skill", "torch"), ("skill", "skill", "mindspore"),
    ]  # fmt: skip
    # One identity: the two runs and their parity record are one piece of work, the skill records another.
    assert len({r["workload_fingerprint"] for r in records[:3]}) == 1
    skill_fp = records[3]["workload_fingerprint"]
    assert skill_fp == records[4]["workload_fingerprint"] != records[0]["workload_fingerprint"]
    assert records[2]["verdict"] == "pass" and records[2]["gradient_missing"] == ["norm.bias", "norm.weight"]
    for r in records[:2]:  # FourCastNet's final norm is built but never applied: no gradient, in both
        assert r["gradient_missing"] == ["norm.bias", "norm.weight"]
    for r in records[:2]:
        assert r["status"] == "ok" and r["workload"] == "fourcastnet-tiny" and r["step_ms_p50"] > 0
        assert len(r["step_ms"]) == 3 and r["provenance"]["timings"] == "measured"
        # This machine has no power sensor: power is a labelled estimate or unavailable, never 0 W.
        assert r["power_provenance"] in ("estimated", "unavailable")
        if r["power_provenance"] == "estimated":
            assert r["power_w_mean"] > 0 and r["energy_j"] > 0 and "TDP" in r["power_estimate_basis"]
        else:
            assert r["energy_j"] is None and r["power_reason"]
        assert r["mfu_train"] is None and r["mfu_reason"]  # the generic CPU profile has no peak


def test_corrupt_results_file_names_the_line_and_keeps_the_rest(tmp_path):
    from conftest import run_record

    from runners.records.schema import RecordError

    path = tmp_path / "records.jsonl"
    append_record(path, run_record("torch"))
    with open(path, "a") as fh:
        fh.write('{"truncated": \n')
    append_record(path, run_record("mindspore"))
    first = path.read_text().splitlines()[0]
    with pytest.raises(PairbenchError, match=r"records.jsonl line 2 is not valid JSON"):
        read_records(path)
    assert path.read_text().splitlines()[0] == first
    with pytest.raises(RecordError, match="field 'step_ms_p50' is nan, not a finite number"):
        append_record(path, {**run_record("torch"), "step_ms_p50": float("nan")})  # never written as a number
    assert len(path.read_text().splitlines()) == 3


def _assert_skill(results: Path) -> None:
    """The main job's skill part: both frameworks, trained to the same budget on the built-in data,
    beat persistence at the first lead times and their RMSE curves agree within the stated bound."""
    import numpy as np

    from runners.experiments.skill import AGREEMENT

    (path,) = results.glob("*-skill-*/skill.json")
    summary = json.loads(path.read_text())
    assert [r["status"] for r in summary["records"]] == ["ok", "ok"], summary["records"]
    scores = summary["scores"]
    persistence = np.asarray(scores["persistence"]["rmse"])
    for fw in ("torch", "mindspore"):
        rmse, acc = np.asarray(scores[fw]["rmse"]), np.asarray(scores[fw]["acc"])
        assert rmse.shape == (8, 3)
        assert (rmse[:2] < persistence[:2]).all(), (fw, rmse[:2], persistence[:2])  # every channel, 6 h and 12 h
        assert (np.diff(rmse, axis=0) > 0).all()  # errors grow with lead time
        assert (acc[0] > np.asarray(scores["persistence"]["acc"])[0]).all()
    agreement = summary["agreement"]
    assert agreement["within_tolerance"] and agreement["rmse_max_rel_diff"] <= AGREEMENT
    assert all(v is None for v in np.ravel(scores["climatology"]["acc"]))  # undefined, never a number
    records = [r for r in read_records(results / "records.jsonl") if r.get("task") == "skill"]
    assert {r["workload_fingerprint"] for r in records} == {records[0]["workload_fingerprint"]}
    assert records[0]["rmse_u_6h"] == scores["torch"]["rmse"][0][0]
    assert records[0]["rmse_persistence_u_6h"] == scores["persistence"]["rmse"][0][0]
    assert records[0]["weights_convention"] == "uniform"


@pytest.mark.parametrize("value", ["abc", "-5", "0", "nan", "inf"])
@pytest.mark.parametrize("command", [["devices", "--json"], ["run", "--no-skill"], ["skill"]])
def test_a_bad_cpu_tdp_is_one_sentence_before_any_work(tmp_path, monkeypatch, value, command):
    monkeypatch.setenv("PAIRBENCH_CPU_TDP_W", value)
    extra = ["--results-dir", str(tmp_path)] if command[0] != "devices" else []
    proc = cli(*command, *extra)
    assert proc.returncode == 2 and proc.stdout == ""
    assert _one_sentence(proc.stderr) == (
        f"pairbench: error: PAIRBENCH_CPU_TDP_W is {value!r}; set it to the CPU's TDP in watts (1 to 10000)"
    )
    assert not any(tmp_path.iterdir())


def test_a_results_dir_that_is_a_file_is_one_sentence(tmp_path):
    (tmp_path / "taken").write_text("x")
    for command in (["run", "--no-skill"], ["skill"], ["run", "--nproc", "2"]):
        proc = cli(*command, "--results-dir", str(tmp_path / "taken"))
        assert proc.returncode == 2
        assert _one_sentence(proc.stderr).endswith(f"results directory {tmp_path / 'taken'} is a file, not a directory")


@pytest.mark.parametrize("cache", ["file", "file/below"])
def test_a_cache_that_cannot_hold_the_data_is_one_sentence(tmp_path, monkeypatch, cache):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("PAIRBENCH_CACHE", str(tmp_path / cache))
    proc = cli("skill", "--results-dir", str(tmp_path / "results"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(tmp_path / cache) in _one_sentence(proc.stderr) and "set PAIRBENCH_CACHE" in proc.stderr
    assert not (tmp_path / "results").exists()


@needs_torch
def test_run_with_an_unusable_cache_skips_only_its_skill_part(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("PAIRBENCH_CACHE", str(tmp_path / "file"))
    steps = ["--train-steps", "1", "--forward-steps", "1", "--warmup-steps", "0"]
    proc = cli("run", "--skill", "--frameworks", "torch", *steps, "--results-dir", str(tmp_path / "r"))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # asked for and not done: not a success
    assert "skill: failed: the data cache" in proc.stdout and (tmp_path / "r" / "report.html").is_file()


def test_a_skill_part_that_cannot_run_is_skipped_and_the_report_still_written(monkeypatch, capsys):
    """The main job's skill part for a workload whose built-in data does not fit (a family from another package
    with other channels): said and skipped, the pair part's report still follows."""
    import argparse

    import runners.experiments.skill as skill
    from runners.cli import _run_skill_after

    def refuse(opts, progress=print):
        raise PairbenchError("toy-mlp takes 5 channels; the built-in data has 3")

    monkeypatch.setattr(skill, "run_skill", refuse)
    args = argparse.Namespace(workload="toy-mlp", frameworks=("torch",), device="cpu", seed=1, results_dir=".",
                              timeout=10.0, require_quiet=None)  # fmt: skip
    assert _run_skill_after(args, []) is True
    assert "skill: skipped: toy-mlp takes 5 channels; the built-in data has 3" in capsys.readouterr().out


def test_a_results_directory_in_use_is_refused_in_one_sentence(tmp_path):
    import os

    from runners.records.store import LOCK_NAME, locked

    with locked(tmp_path):  # another pairbench run holds the folder
        for command in (["run", "--no-skill"], ["skill"]):
            proc = cli(*command, "--results-dir", str(tmp_path))
            assert proc.returncode == 2
            assert _one_sentence(proc.stderr) == (
                f"pairbench: error: results directory {tmp_path} is in use by another pairbench run "
                f"(pid {os.getpid()}); wait for it to end or choose another --results-dir"
            )
    assert not (tmp_path / LOCK_NAME).exists()  # released, and nothing left behind by a run that wrote nothing
    with locked(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()
