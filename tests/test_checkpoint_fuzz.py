"""The checkpoint reader under hostile input: tensors that would read outside their storage, absurd sizes and
strides, and real checkpoints with mutated pickle opcodes, storage records and zip entries. Every case ends
in CheckpointError or a correct result: never a crash, a hang, or a value read from outside a storage.

The case counts are bounded for CI; PAIRBENCH_FUZZ_EXAMPLES raises them (see the issue notes for long runs)."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest
from conftest import needs_torch, run_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runners.weights.checkpoint import CheckpointError, _rebuild_tensor, read_torch_checkpoint

EXAMPLES = int(os.environ.get("PAIRBENCH_FUZZ_EXAMPLES", "1000"))
STORAGE = np.arange(1000, 1024, dtype=np.float32)  # 24 distinct values: any other value came from elsewhere


def _reference(storage: np.ndarray, offset: int, size: tuple, stride: tuple) -> np.ndarray:
    out = np.empty(size, dtype=storage.dtype)
    for index in np.ndindex(*size):
        out[index] = storage[offset + sum(i * s for i, s in zip(index, stride, strict=True))]
    return out


_small = st.integers(min_value=0, max_value=30)
_any = st.one_of(_small, st.integers(min_value=-(2**70), max_value=2**70))


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    offset=_any,
    dims=st.lists(st.tuples(st.one_of(st.integers(0, 6), _any), _any), max_size=4),
)
def test_a_tensor_never_reads_outside_its_storage(offset, dims):
    size, stride = tuple(d[0] for d in dims), tuple(d[1] for d in dims)
    try:  # a small allocation limit keeps the independent reference cheap; the reader's own is tested below
        out = _rebuild_tensor(STORAGE, offset, size, stride, limit=4096)
    except CheckpointError as exc:
        assert str(exc)
        return
    assert out.shape == size
    np.testing.assert_array_equal(out, _reference(STORAGE, offset, size, stride))
    assert np.isin(out, STORAGE).all()


@pytest.mark.parametrize(
    "args, message",
    [
        ((STORAGE, 0, (4096,), (1,)), "reads element 4095 of a storage of 24"),  # 4,072 values of process memory
        ((STORAGE, 0, (2, 2), (2**40, 1)), "outside its storage"),  # once a segfault
        ((STORAGE, 0, (2**18, 2**18), (1, 1)), "more than the 1073741824 elements"),  # once a MemoryError
        ((STORAGE, 0, (2**16, 2**16), (0, 0)), "more than the 1073741824 elements"),  # inside, but 16 GB
        ((STORAGE, 0, (0, 2**20, 2**20, 2**20), (0, 0, 0, 0)), "more than the 1073741824"),  # an empty tensor
        ((STORAGE, 24, (), ()), "outside its storage"),  # once an IndexError
        (("not a storage", 0, (1,), (1,)), "not a storage record"),  # once an AttributeError
        ((STORAGE, -1, (1,), (1,)), "not a non-negative integer"),
        ((STORAGE, 0, (2,), (-1,)), "negative entry"),
        ((STORAGE, 0, (2, 2), (1,)), "2 sizes but 1 strides"),
        ((STORAGE, 0, "ab", (1,)), "not a tuple of integers"),
    ],
)
def test_each_crafted_tensor_is_one_sentence(args, message):
    with pytest.raises(CheckpointError, match=message):
        _rebuild_tensor(*args)


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory):
    """A torch.save checkpoint with contiguous, transposed (shared storage), scalar, bfloat16 and integer
    tensors, and what torch itself reads back."""
    if run_python("import torch").returncode:
        pytest.skip("torch is not installed")
    d = tmp_path_factory.mktemp("ckpt")
    proc = run_python(f"""
import numpy as np, torch
a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
sd = {{"a": a, "b": a.t(), "c": torch.tensor(7.5), "d": torch.tensor([[1.5, -2.0], [0.25, 3.0]], dtype=torch.bfloat16),
      "e": torch.arange(5)}}
torch.save({{"model_state": sd}}, {str(d / "ckpt.tar")!r})
np.savez({str(d / "expected.npz")!r}, **{{k: v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
                                          for k, v in sd.items()}})
""")
    assert proc.returncode == 0, proc.stderr
    return d / "ckpt.tar", dict(np.load(d / "expected.npz"))


@needs_torch
def test_the_real_checkpoint_reads_exactly(real_checkpoint):
    path, expected = real_checkpoint
    state = read_torch_checkpoint(path)["model_state"]
    assert sorted(state) == sorted(expected)
    for k, v in expected.items():
        np.testing.assert_array_equal(state[k], v)


def _rewrite(path, edit) -> bytes:
    """The checkpoint's zip with ``edit(name, data)`` applied to every entry (None drops it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = edit(info.filename, src.read(info.filename))
            if data is not None:
                dst.writestr(info.filename, data)
    return out.getvalue()


def _outcome(tmp_path, blob: bytes):
    path = tmp_path / "mutated.tar"
    path.write_bytes(blob)
    try:
        return read_torch_checkpoint(path)
    except CheckpointError as exc:
        assert str(exc).startswith(str(path))
        return None


def _values(obj):
    """Every array inside a read checkpoint."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _values(v)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            yield from _values(v)


@needs_torch
@settings(
    max_examples=max(50, EXAMPLES // 3), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_real_checkpoints_never_crash_the_reader(real_checkpoint, tmp_path, data):
    path, expected = real_checkpoint
    allowed = np.concatenate([np.ravel(v).astype(np.float64) for v in expected.values()])
    target = data.draw(st.sampled_from(["pickle", "storage", "drop", "byteorder"]))

    def edit(name, blob):
        if target == "pickle" and name.endswith("data.pkl"):
            pos = data.draw(st.integers(0, len(blob) - 1))
            how = data.draw(st.sampled_from(["flip", "insert", "cut"]))
            byte = bytes([data.draw(st.integers(0, 255))])
            return {"flip": blob[:pos] + byte + blob[pos + 1 :], "insert": blob[:pos] + byte + blob[pos:],
                    "cut": blob[:pos]}[how]  # fmt: skip
        if target == "storage" and "/data/" in name:
            cut = data.draw(st.integers(0, len(blob) + 8))
            return blob[:cut] + b"\x00" * max(0, cut - len(blob))
        if target == "drop" and "/data/" in name and data.draw(st.booleans()):
            return None
        if target == "byteorder" and name.endswith("byteorder"):
            return data.draw(st.sampled_from([b"big", b"middle", b"\xff"]))
        return blob

    out = _outcome(tmp_path, _rewrite(path, edit))
    if out is not None and target in ("storage", "drop"):  # the pickle is intact: any tensor read is exact
        for v in _values(out):
            assert np.isin(v.astype(np.float64), allowed).all() or v.size == 0


@needs_torch
def test_the_allocation_limit_counts_every_tensor_of_a_checkpoint(real_checkpoint, monkeypatch):
    import runners.weights.checkpoint as checkpoint

    path, expected = real_checkpoint
    total = sum(v.size for v in expected.values())  # 12 + 12 + 1 + 4 + 5 = 34
    monkeypatch.setattr(checkpoint, "MAX_ELEMENTS", total)
    read_torch_checkpoint(path)
    monkeypatch.setattr(checkpoint, "MAX_ELEMENTS", total - 1)
    with pytest.raises(CheckpointError, match="this reader will allocate"):
        read_torch_checkpoint(path)
