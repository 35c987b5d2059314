"""The two implementations compute the same model: forward, gradients and 20 Adam steps, on fresh
random weights and inputs each run, each framework in its own subprocess (fp32, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import needs_both, run_python

from metrics.parity import FP32_BOUNDS as TOLERANCES
from runners.experiments.pair import run_pair
from runners.options import PairOptions
from runners.weights.canonical import weights_digest

pytestmark = needs_both

HALF_MODES = {
    "img_size": [24, 72],
    "in_chans": 2,
    "out_chans": 3,
    "embed_dim": 48,
    "depth": 2,
    "num_blocks": 3,
    "hard_thresholding_fraction": 0.5,
}


def _run(tmp_path, **kw):
    opts = PairOptions(results_dir=tmp_path, forward_steps=2, **kw)
    out = run_pair(opts, progress=lambda s: None)
    for rec in out.records:
        assert rec["status"] == "ok", (rec.get("reason"), (out.run_dir / f"{rec['framework']}.log").read_text()[-2000:])
    return out


def _assert_parity(out):
    p = out.comparison
    seed = out.records[0]["seed"]
    assert p["forward_rel_l2"] <= TOLERANCES["forward"] == 1e-5, (seed, p)
    assert p["gradient_max_rel_l2"] <= TOLERANCES["gradients"] == 1e-4, (seed, p)
    assert p["loss_max_rel"] <= TOLERANCES["losses"] == 1e-4, (seed, p)
    assert p["within_tolerance"]


def test_tiny_forward_gradients_and_twenty_adam_steps_agree(tmp_path):
    out = _run(tmp_path, workload="fourcastnet-tiny", warmup_steps=0, train_steps=20)
    _assert_parity(out)
    torch_rec, ms_rec = out.records
    assert len(torch_rec["losses"]) == len(ms_rec["losses"]) == 20
    # The optimiser really steps in both (a no-op optimiser would still agree on step 0 only).
    for rec in out.records:
        assert rec["losses"][-1] < 0.9 * rec["losses"][0], rec["losses"]
    assert torch_rec["workload_fingerprint"] == ms_rec["workload_fingerprint"]
    assert torch_rec["param_count"] == ms_rec["param_count"] == 89_920
    grads = np.load(out.run_dir / "mindspore.npz")
    assert len([k for k in grads.files if k.startswith("grad/")]) == 3 + 12 * 2 + 3


def test_hard_thresholding_non_square_grid_and_channel_change_agree(tmp_path):
    out = _run(tmp_path, workload="fourcastnet-tiny", model=HALF_MODES, warmup_steps=0, train_steps=5)
    _assert_parity(out)
    assert out.records[0]["model"]["hard_thresholding_fraction"] == 0.5


def test_both_start_from_an_nvlabs_checkpoint(tmp_path):
    from runners.workloads.registry import get_workload

    cfg = get_workload("fourcastnet-tiny").model
    w = cfg.init_weights(123)
    np.savez(tmp_path / "src.npz", **w)
    code = f"""
import collections, numpy as np, torch
w = np.load({str(tmp_path / "src.npz")!r})
torch.save({{'model_state': collections.OrderedDict(('module.' + k, torch.from_numpy(w[k])) for k in w.files)}},
           {str(tmp_path / "best_ckpt.tar")!r})
"""
    assert run_python(code).returncode == 0
    out = _run(tmp_path / "results", weights=str(tmp_path / "best_ckpt.tar"), warmup_steps=0, train_steps=2)
    _assert_parity(out)
    assert {r["weights_sha256"] for r in out.records} == {weights_digest(w)}
    assert json.loads((out.run_dir / "parity.json").read_text())["within_tolerance"] is True


def test_absent_device_is_an_unavailable_record_not_a_cpu_fallback(tmp_path):
    out = run_pair(
        PairOptions(results_dir=tmp_path, device="cuda", warmup_steps=0, train_steps=1, forward_steps=1),
        progress=lambda s: None,
    )
    by_fw = {r["framework"]: r for r in out.records}
    assert by_fw["torch"]["status"] == "unavailable"
    assert by_fw["torch"]["reason"].startswith("device cuda:0 is absent")
    assert by_fw["mindspore"]["status"] == "unavailable"
    assert "absent for MindSpore" in by_fw["mindspore"]["reason"]
    assert out.comparison is None and not out.ok
    assert "step_ms_p50" not in by_fw["torch"]  # no timing invented for a run that did not happen


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_killed_worker_becomes_a_failed_record(tmp_path, monkeypatch, framework):
    """A worker that dies (here: killed by SIGKILL as soon as it starts) is recorded as failed."""
    import runners.experiments.runs as pair

    real = pair.subprocess.run

    def killing_run(cmd, **kw):
        cmd = [cmd[0], "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
        return real(cmd, **kw)

    monkeypatch.setattr(pair.subprocess, "run", killing_run)
    out = run_pair(
        PairOptions(results_dir=tmp_path, frameworks=(framework,), train_steps=1, forward_steps=1),
        progress=lambda s: None,
    )
    rec = out.records[0]
    assert rec["status"] == "failed" and "killed by signal 9" in rec["reason"]
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["status"] == "failed"
