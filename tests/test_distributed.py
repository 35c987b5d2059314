"""Data-parallel training: 2 processes against 1 with the same global batch, crashes, refusals, bookkeeping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_mindspore, needs_torch, run_json

from runners.errors import PairbenchError
from runners.experiments import distributed
from runners.experiments.data_parallel import DataParallel
from runners.experiments.distributed import (
    exit_report,
    failure_reason,
    run_data_parallel,
    summarize_ranks,
    telling_line,
    to_record,
)
from runners.options import DataParallelOptions, check_split
from runners.records import schema

WORKLOAD = "fourcastnet-tiny"
# The 2-process loss is the mean of two half-batch MSEs and the gradients are all-reduced, so the sums run in
# another order than in one process: not bitwise equal. Measured on fourcastnet-tiny (global batch 4 and 16,
# 8 to 35 Adam steps, 1 or 2 threads), torch with gloo and MindSpore with MCCL alike: worst relative loss
# difference 5.9e-8 to 1.8e-7 and relative L2 distance of the first step's averaged gradients 4.2e-7 (fp32
# rounding); worst relative L2 distance of the final parameters 1.2e-7 to 5.9e-6, as Adam's division by
# sqrt(v) amplifies rounding in tiny gradients. The bounds leave 17x or more over those figures. Adam barely
# sees a gradient scale, so a sum in place of the mean would hardly move the losses: the gradients catch it
# (their distance would be 1), and unreduced gradients would also leave the replicas apart.
LOSS_RTOL = 1e-5
GRAD_RTOL = 1e-5
PARAM_RTOL = 1e-4
FRAMEWORKS = [pytest.param("torch", marks=needs_torch), pytest.param("mindspore", marks=needs_mindspore)]
BACKENDS = {"torch": "gloo", "mindspore": "mccl"}


@pytest.mark.parametrize("workload", [WORKLOAD, "aigoms-tiny"])  # MSE; the land-masked relative L2 per sample
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_two_processes_train_as_one(framework, workload, tmp_path):
    res = run_data_parallel(workload, framework, 2, 4, steps=6, warmup=2, results_dir=tmp_path, reference=True)
    assert res["status"] == "ok", res.get("reason")
    assert res["backend"] == BACKENDS[framework] and res["local_batch"] == 2
    assert len(res["losses"]) == len(res["reference_losses"]) == 8
    assert res["loss_max_rel_diff"] <= LOSS_RTOL, res["loss_max_rel_diff"]
    assert res["grad0_max_rel_l2"] <= GRAD_RTOL, res["grad0_max_rel_l2"]
    assert res["param_max_rel_l2"] <= PARAM_RTOL, res["param_max_rel_l2"]
    assert res["replicas_identical"]  # gradients were averaged: both ranks hold the same parameters
    if workload != WORKLOAD:  # the workload's own loss: AI-GOMS's land-masked relative L2, not a fallback to MSE
        assert res["losses"][0] == pytest.approx(_first_loss(workload, framework, tmp_path), rel=1e-5)
    assert res["losses"][-1] < res["losses"][0]
    assert sorted(res["step_ms_per_rank"]) == ["0", "1"] and len(res["step_ms"]) == 6
    # Throughput and scaling recomputed from what each rank wrote: a step lasts as long as its slowest rank.
    ranks = [json.loads((tmp_path / f"{framework}-n2" / f"rank_{r}.json").read_text())["step_ms"] for r in (0, 1)]
    total = 4 / (np.median(np.max(ranks, axis=0)) / 1e3)
    one = 4 / (np.median(json.loads((tmp_path / f"{framework}-n1" / "rank_0.json").read_text())["step_ms"]) / 1e3)
    assert res["samples_per_s_total"] == pytest.approx(total) and res["samples_per_s_per_device"] == pytest.approx(
        total / 2
    )
    assert res["reference_samples_per_s"] == pytest.approx(one)
    assert res["scaling_efficiency"] == pytest.approx(total / 2 / one)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_two_ranks_train_as_the_single_process_runner(framework, tmp_path):
    """One training step serves both: the losses of 2 ranks (global batch 4) are those of the framework's runner
    trained alone, outside any process group, on the same global batches, within the bounds of 2 against 1."""
    res = run_data_parallel(WORKLOAD, framework, 2, 4, steps=3, warmup=1, results_dir=tmp_path, threads=1)
    assert res["status"] == "ok", res.get("reason")
    alone = run_json(f"""
import json
from runners.data.synthetic import synthetic_batch
from runners.execution.worker import build
from runners.spec import RunConfig
from runners.workloads.registry import get_workload
run = RunConfig(workload={WORKLOAD!r}, framework={framework!r}, weights={str(tmp_path / "weights.safetensors")!r},
                threads=1, batch_size=4, hyper_parameters=get_workload({WORKLOAD!r}).hyper_parameters())
spec, _, runner, _ = build(run)
cfg = spec.model
losses = []
for i in range(4):
    x, y = synthetic_batch((4, cfg.in_chans, *cfg.img_size), cfg.out_chans, 0, i)
    losses.append(runner.train_step(runner.put(x), runner.put(y)))
print(json.dumps(losses))
""")
    assert len(res["losses"]) == len(alone) == 4
    assert np.max(np.abs(np.subtract(res["losses"], alone)) / np.abs(alone)) <= LOSS_RTOL, (res["losses"], alone)


_FORWARD = {
    "torch": """
import torch
net = load_object(spec.models["torch"])(cfg)
net.load_state_dict({k: torch.from_numpy(v) for k, v in w.items()})
out = net(torch.from_numpy(x)).detach().numpy()
""",
    "mindspore": """
from mindspore import Tensor
net = load_object(spec.models["mindspore"])(cfg)
for p in net.get_parameters():
    p.set_data(Tensor(w[p.name]))
out = net(Tensor(x)).asnumpy()
""",
}


def _first_loss(workload: str, framework: str, tmp_path) -> float:
    """The step-0 loss of global batch 4 from the data-parallel run's weights, recomputed: the model's output
    from ``framework`` in its own process, the land-masked relative L2 in NumPy (the study's formula)."""
    from runners.data.synthetic import synthetic_batch
    from runners.workloads.registry import get_workload

    cfg = get_workload(workload).model
    x, y = synthetic_batch((4, cfg.in_chans, *cfg.img_size), cfg.out_chans, 0, 0)  # seed 0, step 0
    np.save(tmp_path / "x.npy", x)
    run_json(f"""
import json, numpy as np
from runners.spec import load_object
from runners.workloads.registry import get_workload
from runners.weights.canonical import load_weights
spec = get_workload({workload!r})
cfg = spec.model
w = load_weights({str(tmp_path / "weights.safetensors")!r}, cfg)
x = np.load({str(tmp_path / "x.npy")!r})
{_FORWARD[framework]}
np.save({str(tmp_path / "out.npy")!r}, out)
print(json.dumps(True))
""")
    out, m = np.load(tmp_path / "out.npy").astype(np.float64), cfg.output_mask()
    per_sample = [np.linalg.norm(m * (o - t)) / np.linalg.norm(m * t) for o, t in zip(out, y, strict=True)]
    return float(np.mean(per_sample))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_crashed_rank_is_a_failure_naming_it(framework, tmp_path, monkeypatch):
    monkeypatch.setenv("PAIRBENCH_DP_CRASH_RANK", "1")
    res = run_data_parallel(WORKLOAD, framework, 2, 4, steps=2, warmup=1, results_dir=tmp_path, timeout_s=240)
    assert res["status"] == "failed"
    launcher = {"torch": "torchrun", "mindspore": "msrun"}[framework]
    # msrun's own exit (code 1) waits for its scheduler to notice the dead rank, MS_NODE_TIMEOUT (10 s) or so;
    # on a loaded machine that can outlast LINGER_S and the launcher is then stopped: either way rank 1 is named.
    assert res["reason"].startswith(launcher)
    assert "; rank 1 exited with code 17 without a result" in res["reason"]
    assert "injected crash of rank 1 at step 1" in res["reason"]
    assert "then rank(s) 0 stopped too" in res["reason"]


@needs_torch
def test_absent_backend_is_unavailable(tmp_path):
    res = run_data_parallel(WORKLOAD, "torch", 2, 4, steps=1, warmup=0, device="cuda", results_dir=tmp_path)
    if res["status"] == "ok":
        pytest.skip("this machine has CUDA GPUs")
    assert res["status"] == "unavailable"
    assert "NCCL data parallel needs cuda:" in res["reason"] and "CUDA GPU(s)" in res["reason"]


def test_uneven_split_is_refused(tmp_path):
    with pytest.raises(PairbenchError, match="global batch 3 cannot be split evenly over 2 processes"):
        run_data_parallel(WORKLOAD, "torch", 2, 3, results_dir=tmp_path)
    with pytest.raises(PairbenchError, match="at least 1"):
        check_split(4, 0)
    with pytest.raises(PairbenchError, match="steps >= 1"):
        run_data_parallel(WORKLOAD, "torch", 2, 4, steps=0, results_dir=tmp_path)
    assert check_split(8, 4) == 2
    assert not list(tmp_path.iterdir())  # refused before anything was written


@needs_torch
def test_torch_on_ascend_is_hccl_and_unavailable_without_torch_npu(tmp_path):
    assert distributed.backend_for("torch", "ascend:0") == "hccl"
    res = run_data_parallel(WORKLOAD, "torch", 2, 4, steps=1, warmup=0, device="ascend", results_dir=tmp_path)
    if res["status"] == "ok":
        pytest.skip("this machine has Ascend NPUs and torch_npu")
    assert res["status"] == "unavailable" and res["backend"] == "hccl"
    assert "ascend:" in res["reason"] and ("torch_npu" in res["reason"] or "NPU" in res["reason"]), res["reason"]


def test_single_process_request_is_unchanged(tmp_path):
    """A run that is not data parallel asks its worker what it asked before ranks became the runners' concern:
    the same fields and defaults, no ``distributed`` key; a rank's request carries its group."""
    from runners.spec import RunConfig

    run = RunConfig(workload=WORKLOAD, framework="torch", weights="w.safetensors")
    assert run.to_dict() == {
        "workload": WORKLOAD, "framework": "torch", "weights": "w.safetensors", "device": "cpu", "precision": "fp32",
        "mode": "eager", "recompute": False, "threads": None, "batch_size": 2, "warmup_steps": 3, "train_steps": 20,
        "forward_steps": 20, "seed": 0, "power_rate_hz": 10.0, "objective": "forecast", "task": "pair", "data": {},
        "model": {}, "hyper_parameters": {},
    }  # fmt: skip
    assert RunConfig(**run.to_dict()) == run
    job = distributed.DPJob("torch", WORKLOAD, 4, 2, 1, 3, "cpu", tmp_path / "w.safetensors", 1, 60.0)
    req = job.request(tmp_path / "torch-n2", 2)
    assert req["out_dir"] == str(tmp_path / "torch-n2") and req["log_dir"] == str(tmp_path / "torch-n2" / "logs")
    rank = RunConfig(**req["run"])
    assert rank.distributed == {"backend": "gloo", "world": 2} and rank.task == "data_parallel"
    assert (rank.batch_size, rank.train_steps, rank.warmup_steps, rank.seed, rank.threads) == (4, 2, 1, 3, 1)


def test_missing_framework_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed.importlib.util, "find_spec", lambda name: None)
    res = run_data_parallel(WORKLOAD, "mindspore", 2, 4, results_dir=tmp_path)
    assert res["status"] == "unavailable" and res["reason"].startswith("mindspore is not installed")


def _job(tmp_path, launcher_log: str, worker_logs: dict[int, str], pids: dict[int, int]):
    (tmp_path / "logs").mkdir(parents=True)
    (tmp_path / "launcher.log").write_text(launcher_log)
    for r, text in worker_logs.items():
        (tmp_path / "logs" / f"worker_{r}.log").write_text(text)
    for r, pid in pids.items():
        (tmp_path / f"rank_{r}.pid").write_text(str(pid))
    return tmp_path


def test_exit_reports_of_both_launchers_map_to_ranks(tmp_path):
    torchrun = (
        "Failures:\n[1]:\n  rank : 0 (local_rank: 0)\n  exitcode  : -15 (pid: 101)  (SIGTERM)\n"
        "Root Cause (first observed failure):\n[0]:\n  rank : 1 (local_rank: 1)\n  exitcode  : 9 (pid: 102)\n"
    )
    assert exit_report(_job(tmp_path / "t", torchrun, {}, {0: 101, 1: 102})) == [(1, 9), (0, -15)]
    msrun = "[ERROR] ME(1) _api.py:365] Worker process 202 exit with exception. Error code: 3.\n"
    assert exit_report(_job(tmp_path / "m", msrun, {}, {0: 201, 1: 202})) == [(1, 3)]


def test_time_out_names_every_silent_rank(tmp_path):
    log = "[WARNING] DISTRIBUTED(1) noise\nstill waiting for rank 0\n[INFO] more noise\n"
    job = _job(tmp_path, "", {0: log, 1: "Traceback\nValueError: bad shard\n- C++ Call Stack:\n"}, {})
    run = {"rc": None, "wall_s": 30.2, "stopped": "timeout"}
    reason = failure_reason("msrun", run, 30, {0: None, 1: None}, job)
    assert reason.startswith("msrun timed out after 30 s; rank 0 stopped without a result")
    assert "(last log line: still waiting for rank 0)" in reason
    assert "rank 1 stopped without a result (last log line: ValueError: bad shard)" in reason


def test_lingering_launcher_is_named(tmp_path):
    job = _job(tmp_path, "", {}, {})
    run = {"rc": None, "wall_s": 45.0, "stopped": "linger"}
    ranks = {0: {"status": "failed", "reason": "rank 0: RuntimeError: no"}, 1: {"status": "ok"}}
    reason = failure_reason("msrun", run, 600, ranks, job)
    assert (
        reason
        == "msrun was still running 25 s after its last rank had exited and was stopped; rank 0: RuntimeError: no"
    )


def test_telling_line_prefers_errors_over_noise(tmp_path):
    path = tmp_path / "w.log"
    path.write_text("RuntimeError: boom\n----\n- C++ Call Stack: (For framework developers)\n[INFO] x\n")
    assert telling_line(path) == "RuntimeError: boom"
    path.write_text("hello\n[WARNING] y\n")
    assert telling_line(path) == "hello"
    assert telling_line(tmp_path / "absent.log") == ""


def test_throughput_takes_the_slowest_rank_per_step():
    ranks = {
        0: {"step_ms": [10.0, 30.0, 20.0], "losses": [1.0], "params_digest": "a", "threads": "1",
            "framework_version": "x"},
        1: {"step_ms": [20.0, 10.0, 40.0], "losses": [1.0], "params_digest": "a", "threads": "1",
            "framework_version": "x"},
    }  # fmt: skip
    out = summarize_ranks(ranks, global_batch=8)
    assert out["step_ms"] == [20.0, 30.0, 40.0] and out["step_ms_p50"] == 30.0
    assert out["samples_per_s_total"] == pytest.approx(8 / 0.030)
    assert out["samples_per_s_per_device"] == pytest.approx(4 / 0.030)
    assert out["replicas_identical"]
    compared = {
        "reference_samples_per_s": 300.0, "reference_step_ms_p50": 25.0, "reference_losses": [1.0], "speedup": 0.8,
        "scaling_efficiency": 0.4, "loss_max_rel_diff": 1e-7, "grad0_max_rel_l2": 1e-7, "param_max_rel_l2": 1e-6,
    }  # fmt: skip
    launch = {"framework": "torch", "launcher": "torchrun", "mode": "data_parallel", "nproc": 2, "global_batch": 8}
    result = {**out, **compared, **launch, "status": "ok"}
    opts = DataParallelOptions(nproc=2, batch_size=8, train_steps=3, warmup_steps=0, seed=1, threads=1)
    head = schema.header(
        DataParallel().points(opts, print)[0].ident,
        run_id="r", timestamp="20261202T000000Z", workload=WORKLOAD, device="cpu", commit=None,
    )  # fmt: skip
    head["weights_source"] = "init_weights(seed=1)"
    flat = to_record(result, head)
    assert flat["step_ms_rank1"] == [20.0, 10.0, 40.0] and "step_ms_per_rank" not in flat
    assert flat["batch_size"] == 8 and flat["nproc"] == 2 and flat["status"] == "ok" and "global_batch" not in flat
    # A comparison that is not finite fails the record, naming the figure, and is never written as a number.
    bad = to_record({**result, "loss_max_rel_diff": float("nan")}, head)
    assert bad["status"] == "failed" and bad["reason"].startswith("loss_max_rel_diff not finite")
    assert "loss_max_rel_diff" not in bad and "samples_per_s_total" not in bad


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_two_nodes_on_loopback_train_as_one_process(framework, tmp_path):
    """Two `pairbench run --nnodes 2` invocations (node 0 and node 1, one process each) meeting at a loopback
    port, as two machines would: both exit 0, node 0's record matches one process within the single-node
    bounds, node 1's holds its own rank, and the report merges the two nodes' records into one row."""
    import subprocess
    import sys

    from conftest import ROOT

    from reports.tables import data_parallel_table
    from runners.records.store import read_records

    port = distributed.free_port()
    common = ["--frameworks", framework, "--nproc", "1", "--nnodes", "2", "--master-port", str(port)]
    common += ["--batch-size", "4", "--train-steps", "4", "--warmup-steps", "1", "--seed", "3", "--threads", "1"]
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "runners.cli", "run", *common, "--node-rank", str(n), "--results-dir",
             str(tmp_path / f"node{n}")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for n in (0, 1)
    ]  # fmt: skip
    outs = [p.communicate(timeout=600)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs
    (first,), (second,) = (read_records(tmp_path / f"node{n}" / "records.jsonl") for n in (0, 1))
    assert (first["node_rank"], second["node_rank"], first["nnodes"]) == (0, 1, 2) and first["master"].endswith(
        f":{port}"
    )
    assert first["nproc"] == second["nproc"] == 2 and first["local_batch"] == 2
    assert first["loss_max_rel_diff"] <= LOSS_RTOL and first["grad0_max_rel_l2"] <= GRAD_RTOL, first
    assert "step_ms_rank0" in first and "step_ms_rank1" in second and "loss_max_rel_diff" not in second
    assert second["losses"] == pytest.approx(first["losses"], rel=1e-6)  # every rank logs the all-reduced loss
    (row,) = data_parallel_table([first, second]).to_dict("records")
    assert row["nodes"] == "2 (recorded: 0, 1)" and row["status"] == "ok" and row["nproc"] == 2


def test_node_options_are_checked_before_any_work(tmp_path):
    from conftest import run_python

    cases = {
        ("--nnodes", "2"): "a run over several nodes needs --master-port, the same on every node",
        ("--nnodes", "2", "--node-rank", "2", "--master-port", "29500"): "--node-rank must be from 0 to 1, got 2",
        ("--nnodes", "0"): "--nnodes must be at least 1, got 0",
        ("--master-port", "29500"): "--node-rank, --master-addr and --master-port belong to data-parallel runs",
        ("--nproc", "2", "--master-port", "70000"): "--master-port must be from 1 to 65535, got 70000",
    }
    for args, message in cases.items():
        argv = ["run", *args, "--results-dir", str(tmp_path)]
        proc = run_python(f"import sys; from runners.cli import main; sys.exit(main({argv!r}))")
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert not any(tmp_path.iterdir()), args


@needs_torch
def test_a_relative_results_dir_is_found_by_the_ranks(tmp_path, monkeypatch):
    """The launcher and its ranks run in the checkout: a results directory relative to the user's working directory
    (``pairbench run --nproc 2 --results-dir results``) reaches them as an absolute path."""
    monkeypatch.chdir(tmp_path)
    out = run_data_parallel(WORKLOAD, "torch", 2, 4, steps=1, warmup=0, results_dir="rel", timeout_s=300)
    assert out["status"] == "ok", out.get("reason")
    assert Path(out["results_dir"]).is_absolute() and (tmp_path / "rel" / "weights.safetensors").is_file()
