"""Weights files: canonical safetensors round trip, refusals that name the first mismatch, and
reading NVlabs-style torch.save checkpoints without executing pickled code."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
from conftest import needs_torch, run_python

from runners.weights.canonical import WeightsMismatch, check_weights, load_weights, save_weights, weights_digest
from runners.weights.checkpoint import CheckpointError, read_torch_checkpoint
from runners.workloads.fourcastnet.config import CONFIGS

TINY = CONFIGS["fourcastnet-tiny"]
SMALL = CONFIGS["fourcastnet-small"]


def test_safetensors_round_trip_keeps_every_byte(tmp_path):
    w = TINY.init_weights(11)
    digest = save_weights(tmp_path / "w.safetensors", TINY, w)
    back = load_weights(tmp_path / "w.safetensors", TINY)
    assert set(back) == set(w) and all(np.array_equal(back[k], w[k]) for k in w)
    assert weights_digest(back) == digest
    from safetensors import safe_open

    with safe_open(str(tmp_path / "w.safetensors"), "np") as fh:
        meta = fh.metadata()
    assert meta["sha256"] == digest and '"embed_dim": 64' in meta["config"]


def test_weights_of_another_configuration_are_refused_naming_the_first_mismatch(tmp_path):
    save_weights(tmp_path / "small.safetensors", SMALL, SMALL.init_weights(0))
    with pytest.raises(
        WeightsMismatch,
        match=r"parameter 'pos_embed' has shape \(1, 512, 256\), "
        r"the configuration expects \(1, 128, 64\)",
    ):
        load_weights(tmp_path / "small.safetensors", TINY)


def test_missing_and_unexpected_parameters_are_named():
    w = TINY.init_weights(0)
    missing = {k: v for k, v in w.items() if k != "blocks.1.filter.b2"}
    with pytest.raises(WeightsMismatch, match="lacks parameter 'blocks.1.filter.b2'"):
        check_weights(TINY, missing, "file")
    extra = {**w, "blocks.2.norm1.weight": w["blocks.0.norm1.weight"]}
    with pytest.raises(WeightsMismatch, match="has parameter 'blocks.2.norm1.weight', which the"):
        check_weights(TINY, extra, "file")


def test_missing_and_garbage_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_weights(tmp_path / "nope.safetensors", TINY)
    (tmp_path / "junk.bin").write_bytes(b"\x07" * 100)
    with pytest.raises(CheckpointError, match="neither a safetensors file nor a PyTorch zip checkpoint"):
        load_weights(tmp_path / "junk.bin", TINY)


def _save_nvlabs(path, weights, dtype="float32"):
    code = f"""
import collections, numpy as np, torch
from safetensors.numpy import load_file
w = load_file({str(path) + ".src"!r})
state = collections.OrderedDict(
    ('module.' + k, torch.nn.Parameter(torch.from_numpy(v).to(torch.{dtype}), requires_grad=False))
    for k, v in w.items())
torch.save({{'iters': 10, 'epoch': 1, 'model_state': state,
            'optimizer_state_dict': {{'param_groups': [{{'lr': 5e-4, 'betas': (0.9, 0.999)}}]}}}},
           {str(path)!r})
"""
    from safetensors.numpy import save_file

    save_file(weights, str(path) + ".src")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_nvlabs_checkpoint_is_read_without_torch(tmp_path, dtype):
    w = TINY.init_weights(5)
    _save_nvlabs(tmp_path / "best_ckpt.tar", w, dtype)
    back = load_weights(tmp_path / "best_ckpt.tar", TINY)
    assert set(back) == set(w)
    for k in w:
        assert back[k].dtype == np.float32 and back[k].shape == w[k].shape
        tol = {"float32": 0, "float16": 1e-3, "bfloat16": 1e-2}[dtype]
        np.testing.assert_allclose(back[k], w[k], rtol=tol, atol=tol * 0.05)


@needs_torch
def test_reader_agrees_with_torch_load_weights_only(tmp_path):
    w = TINY.init_weights(6)
    _save_nvlabs(tmp_path / "ck.tar", w)
    ours = read_torch_checkpoint(tmp_path / "ck.tar")
    code = f"""
import torch, numpy as np
ck = torch.load({str(tmp_path / "ck.tar")!r}, weights_only=True, map_location='cpu')
np.savez({str(tmp_path / "ref.npz")!r}, **{{k: v.numpy() for k, v in ck['model_state'].items()}})
print(ck['iters'], ck['optimizer_state_dict']['param_groups'][0]['betas'])
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["10", "(0.9,", "0.999)"]
    ref = np.load(tmp_path / "ref.npz")
    assert ours["iters"] == 10 and ours["optimizer_state_dict"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert set(ours["model_state"]) == set(ref.files)
    assert all(np.array_equal(ours["model_state"][k], ref[k]) for k in ref.files)


@needs_torch
def test_non_contiguous_and_shared_storage_tensors(tmp_path):
    code = f"""
import torch
base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
torch.save({{'t': base.t(), 'row': base[2], 'col': base[:, 3], 'scalar': base[1, 1]}}, {str(tmp_path / "v.pt")!r})
"""
    assert run_python(code).returncode == 0
    got = read_torch_checkpoint(tmp_path / "v.pt")
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    np.testing.assert_array_equal(got["t"], base.T)
    np.testing.assert_array_equal(got["row"], base[2])
    np.testing.assert_array_equal(got["col"], base[:, 3])
    assert float(got["scalar"]) == 7.0


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"echo pwned > {self.marker}",))


def _zip_with_pickle(path, obj):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(obj, protocol=2))
        z.writestr("archive/byteorder", "little")


def test_pickled_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    _zip_with_pickle(tmp_path / "evil.tar", {"model_state": _Evil(marker)})
    with pytest.raises(CheckpointError, match="refusing to load 'posix.system'"):
        read_torch_checkpoint(tmp_path / "evil.tar")
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Evil(marker)))  # the same payload does run under plain pickle
    assert marker.exists()


def test_checkpoint_without_model_state_or_tensors_is_refused(tmp_path):
    _zip_with_pickle(tmp_path / "nostate.tar", {"model_state": {"a": 1}})
    with pytest.raises(CheckpointError, match="holds no 'model_state' mapping of tensors"):
        load_weights(tmp_path / "nostate.tar", TINY)


def test_damaged_and_legacy_checkpoints_are_refused(tmp_path):
    good = tmp_path / "good.tar"
    _zip_with_pickle(good, {"model_state": {}})
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(good.read_bytes()[:60])
    with pytest.raises(CheckpointError):
        load_weights(damaged, TINY)
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps({"model_state": {}}))
    with pytest.raises(CheckpointError, match="not a zip-format torch.save checkpoint"):
        read_torch_checkpoint(legacy)
