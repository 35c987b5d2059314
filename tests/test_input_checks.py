"""Inputs and options nobody vouches for: weights by dtype, option bounds named by their option, inputs that are no
regular files (FIFOs, devices, loops), a damaged data cache, and the run identity that includes every count a
recorded figure rests on. Each case ends in one sentence before any work, or is read exactly."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import IDENTITY_DEFAULTS, needs_torch, run_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runners.cli import _ints, main
from runners.errors import PairbenchError
from runners.options import MAX_STEPS, PairOptions, SkillOptions
from runners.records import schema
from runners.weights.canonical import read_weights, starting_weights
from runners.weights.checkpoint import CheckpointError
from runners.weights.safetensors_file import read_safetensors
from runners.workloads.fourcastnet.config import CONFIGS

TINY = CONFIGS["fourcastnet-tiny"]


@contextlib.contextmanager
def _unblocked(fifo: str | None, seconds: float = 20):
    """Fail instead of hanging: a FIFO opened for reading blocks until a writer comes, so after ``seconds`` writers
    come (each opening and closing it, for every reader that tries again) until the call is over, and the test
    fails for having needed them."""
    done, released = threading.Event(), threading.Event()

    def release():
        if done.wait(seconds):
            return
        released.set()
        while not done.wait(0.2):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    writer = threading.Thread(target=release, daemon=True)
    if fifo:
        writer.start()
    try:
        yield
    finally:
        done.set()
    assert not released.is_set(), f"blocked on {fifo} until a writer came"


def _refused(capsys, *argv: str, fifo: str | None = None) -> str:
    """The one line ``pairbench argv`` ends with, asserting exit status 2 and no traceback."""
    with _unblocked(fifo):
        code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines and "Traceback" not in err
    return lines[-1]


# ------------------------------------------------------------------------------------------ weights by dtype

_BYTES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "BOOL": "?"}


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]], header_extra=None) -> Path:
    """A safetensors file written by its layout (no library), so any dtype code can be written."""
    header, blobs, at = {}, [], 0
    for name, (code, arr) in tensors.items():
        raw = np.ascontiguousarray(arr, dtype=_BYTES.get(code, "u1")).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    header.update(header_extra or {})
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))
    return path


def _to_bf16_bits(values: np.ndarray) -> np.ndarray:
    return (np.asarray(values, dtype=np.float32).view("<u4") >> 16).astype("<u2")


@pytest.mark.parametrize("code", ["F32", "F16", "BF16", "F64"])
def test_floating_point_weights_of_any_width_are_read_as_float32_and_the_record_says_how(tmp_path, code):
    w = TINY.init_weights(3)
    stored = {k: _to_bf16_bits(v) if code == "BF16" else v.astype(_BYTES[code]) for k, v in w.items()}
    path = _write_safetensors(tmp_path / "w.safetensors", {k: (code, v) for k, v in stored.items()})
    tensors, source = starting_weights(TINY, path, seed=0)
    for k, v in stored.items():
        expected = (v.astype("<u4") << 16).view("<f4") if code == "BF16" else v.astype(np.float32)
        assert tensors[k].dtype == np.float32 and np.array_equal(tensors[k], expected), k
    note = {"F32": None, "F16": "float16 widened", "BF16": "bfloat16 widened", "F64": "float64 rounded"}[code]
    assert source == str(path) if note is None else f"({note} to float32" in source


@pytest.mark.parametrize("code, dtype", [("I64", "int64"), ("I32", "int32"), ("BOOL", "bool"), ("F8_E4M3", "F8_E4M3")])
def test_weights_that_are_not_floating_point_are_refused_naming_the_tensor_and_dtype(tmp_path, code, dtype):
    w = TINY.init_weights(3)
    name = sorted(w)[1]
    tensors = {k: ("F32", v) for k, v in w.items()}
    tensors[name] = (code, (w[name] * 100).astype(_BYTES.get(code, "u1")))
    path = _write_safetensors(tmp_path / "w.safetensors", tensors)
    with pytest.raises(CheckpointError, match=rf"tensor '{name}' is {dtype}; weights must be floating point"):
        read_weights(path, TINY)


@needs_torch
@pytest.mark.parametrize("dtype", ["bfloat16", "int64"])
def test_a_checkpoint_says_its_dtype_too(tmp_path, dtype):
    from test_weights import _save_nvlabs

    w = TINY.init_weights(4)
    _save_nvlabs(tmp_path / "ck.tar", {k: v * 100 for k, v in w.items()} if dtype == "int64" else w, dtype)
    if dtype == "int64":
        with pytest.raises(CheckpointError, match=r"tensor '[\w.]+' is int64; weights must be floating point"):
            read_weights(tmp_path / "ck.tar", TINY)
    else:
        tensors, source = read_weights(tmp_path / "ck.tar", TINY)
        assert source.endswith("(bfloat16 widened to float32 exactly)")
        for k in w:  # bfloat16 values exactly (the low half of each float32 empty), PyTorch's rounding of w
            assert not (tensors[k].view("<u4") & 0xFFFF).any()
            np.testing.assert_allclose(tensors[k], w[k], rtol=2**-8, atol=1e-30)


_VALID = {"a": ("F32", np.arange(6, dtype=np.float32).reshape(2, 3)), "b": ("BF16", np.arange(4, dtype="<u2"))}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cut=st.integers(0, 200),
    entry=st.dictionaries(
        st.sampled_from(["dtype", "shape", "data_offsets"]),
        st.one_of(st.none(), st.text(max_size=6), st.integers(-(2**70), 2**70), st.lists(st.integers(-5, 40))),
        max_size=3,
    ),
)
def test_a_damaged_or_crafted_safetensors_file_is_one_error_or_read_within_the_file(tmp_path, cut, entry):
    path = _write_safetensors(tmp_path / "f.safetensors", _VALID)
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    if entry:  # a crafted entry for "a"; else the valid file cut short
        header = json.loads(path.read_bytes()[8 : 8 + header_len])
        header["a"].update(entry)
        _write_safetensors(path, {"b": _VALID["b"]}, {"a": header["a"]})
    else:
        path.write_bytes(path.read_bytes()[: max(0, len(path.read_bytes()) - cut)])
    try:
        out = read_safetensors(path)
    except CheckpointError as exc:
        assert str(exc)
        return
    size = path.stat().st_size
    assert sum(a.nbytes for _, a in out.values()) <= size


# ------------------------------------------------------------------------------------------ inputs that are no files


@pytest.fixture
def odd_inputs(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "folder" / "records.jsonl").mkdir(parents=True)
    return {"fifo": str(fifo), "loop": str(tmp_path / "loop1"), "zero": "/dev/zero", "null": "/dev/null",
            "folder": str(tmp_path / "folder")}  # fmt: skip


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--weights", "{loop}"], "weights file {loop} is a symbolic link loop"),
        (["run", "--weights", "{fifo}"], "weights file {fifo} is a FIFO (named pipe), not a regular file"),
        (["forecast", "--weights", "{zero}"], "weights file /dev/zero is a character device, not a regular file"),
        (["forecast", "--data", "xarray:{fifo}"], "--data path {fifo} is a FIFO (named pipe), not a regular file"),
        (["skill", "--data", "xarray:{loop}"], "--data path {loop} is a symbolic link loop"),
        (["forecast", "--data", "xarray:{zero}"], "--data path /dev/zero is a character device, not a regular"),
        (["report", "{null}"], "results file /dev/null is a character device, not a regular file"),
        (["report", "{fifo}"], "results file {fifo} is a FIFO (named pipe), not a regular file"),
        (["report", "{folder}"], "results file {folder}/records.jsonl is a directory, not a regular file"),
    ],
)
def test_inputs_that_are_no_regular_files_are_refused_saying_what_they_are(tmp_path, capsys, odd_inputs, argv, message):
    argv = [a.format(**odd_inputs) for a in argv]
    results = ["-o", str(tmp_path / "r.html")] if argv[0] == "report" else ["--results-dir", str(tmp_path / "R")]
    assert _refused(capsys, *argv, *results, fifo=odd_inputs["fifo"]).startswith(
        "pairbench: error: " + message.format(**odd_inputs)
    )
    assert not (tmp_path / "R").exists() and not (tmp_path / "r.html").exists()


def test_a_monthly_file_is_refused_naming_the_time_step_option(tmp_path):
    from test_dataset_cli import _irregular

    from runners.data import InvalidDataError
    from runners.data.dataset import DataRequest, open_dataset

    with pytest.raises(InvalidDataError, match=r"give the time step in hours \(--time-step-hours\)$"):
        open_dataset(DataRequest(f"xarray:{_irregular(tmp_path)}"), patch_size=4)


# ------------------------------------------------------------------------------------------ option bounds


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--train-steps", "99999999999999999999"], f"--train-steps must be at most {MAX_STEPS}, got 9999"),
        (["run", "--warmup-steps", str(MAX_STEPS + 1)], f"--warmup-steps must be at most {MAX_STEPS}"),
        (["run", "--forward-steps", "0"], "--forward-steps must be at least 1, got 0"),
        (["run", "--nproc", "2", "--train-steps", str(10**9)], f"--train-steps must be at most {MAX_STEPS}"),
        (["run", "--timeout", "1e9"], "--timeout must be at most 604800 s (a week), got 1000000000.0"),
        (["run", "--timeout", "nan"], "--timeout must be a positive number of seconds, got nan"),
        (["run", "--threads", "100000"], "--threads must be at most 4096, got 100000"),
        (["forecast", "--repeats", str(10**8)], f"--repeats must be at most {MAX_STEPS}"),
        (["forecast", "--warmup", "-1"], "--warmup must be at least 0, got -1"),
        (["forecast", "--n-lead", str(10**8)], f"--n-lead must be at most {MAX_STEPS}"),
        (["skill", "--n-init", str(10**8)], f"--n-init must be at most {MAX_STEPS}"),
        (["skill", "--n-lead", "0"], "--n-lead must be at least 1, got 0"),
        (["skill", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["skill", "--target-rmse", "u@24h=1", "--check-every", "0"], "--check-every must be at least 1, got 0"),
        (["skill", "--check-every", "5"], "--check-every says how often --target-rmse is checked, and --target-rmse"),
        (["skill", "--lr", "nan"], "--lr must be a finite positive learning rate, got nan"),
        (["skill", "--lr", "inf"], "--lr must be a finite positive learning rate, got inf"),
        (["skill", "--lr", "-1", "--frameworks", "torch"], "--lr must be a finite positive learning rate, got -1.0"),
        (["skill", "--lr", "0", "--frameworks", "torch"], "--lr must be a finite positive learning rate, got 0.0"),
    ],
)
def test_option_bounds_are_checked_before_any_work_naming_the_option(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("PAIRBENCH_CACHE", str(tmp_path / "cache"))  # the built-in data is never prepared
    assert message in _refused(capsys, *argv, "--results-dir", str(tmp_path / "R"))
    assert not (tmp_path / "R").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "text, message",
    [("2,,3", "has an empty item"), ("2,", "has an empty item"), ("70000", "--batch-size must be at most 65536")],
)
def test_a_batch_size_list_with_an_empty_item_or_out_of_bounds_is_refused(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        _ints(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789, -", max_size=16))
def test_a_batch_size_list_is_read_whole_or_refused(text):
    """Never a silently dropped or altered item: what comes back is every comma-separated item, in order."""
    try:
        values = _ints(text)
    except argparse.ArgumentTypeError as exc:
        assert str(exc)
        return
    assert [str(v) for v in values] == [item.strip().lstrip("0") or "0" for item in text.split(",")]
    assert all(1 <= v <= 65536 for v in values)


def test_options_objects_check_the_same_bounds_as_the_command_line():
    with pytest.raises(PairbenchError, match="--forward-steps must be at most"):
        PairOptions(forward_steps=MAX_STEPS + 1).validate()
    with pytest.raises(PairbenchError, match="--lr must be a finite positive learning rate, got nan"):
        SkillOptions(lr=float("nan")).validate()
    SkillOptions(target_rmse="u@24h=1", check_every=5).validate()
    assert SkillOptions().check_interval == 25 and SkillOptions(check_every=5).check_interval == 5


def test_skill_takes_device_auto_as_run_and_forecast_do(tmp_path, capsys, monkeypatch):
    import runners.devices
    import runners.experiments.skill

    seen = {}

    def stop(opts):
        seen["opts"] = opts
        raise PairbenchError("stopped before any work")

    monkeypatch.setattr(runners.devices, "resolve_auto", lambda: ("cpu", ["no CUDA GPU: test"]))
    monkeypatch.setattr(runners.experiments.skill, "run_skill", stop)
    assert "stopped before any work" in _refused(capsys, "skill", "--device", "auto", "--results-dir", str(tmp_path))
    assert seen["opts"].device == "cpu"


def test_a_time_out_is_said_in_the_seconds_given(tmp_path, monkeypatch):
    import subprocess

    from runners.experiments import runs
    from runners.spec import RunConfig

    def expire(*args, timeout, **kwargs):
        raise subprocess.TimeoutExpired(args[0], timeout)

    monkeypatch.setattr(runs.subprocess, "run", expire)
    result = runs.run_worker(
        RunConfig(workload="fourcastnet-tiny", framework="torch", weights="w"), tmp_path / "t", 0.4
    )
    assert result["reason"].startswith("timed out after 0.4 s")


# ------------------------------------------------------------------------------------------ a damaged data cache


def test_a_cache_file_cut_short_is_made_again_and_said(tmp_path, capsys):
    from test_barotropic import SMALL

    from runners.data.builtin import builtin_dataset

    first = builtin_dataset((16, 32), SMALL, cache=tmp_path)
    whole = np.array(first.source.read(0, SMALL.n_steps))
    for name in ("fields_16x32.npy", "fields.npy"):
        path = first.path.with_name(name)
        os.truncate(path, 100_000)
        again = builtin_dataset((16, 32), SMALL, cache=tmp_path)
        assert f"cache file {path} is 100000 bytes, but its header describes" in capsys.readouterr().err
        np.testing.assert_array_equal(again.source.read(0, SMALL.n_steps), whole)


# ------------------------------------------------------------------------------------------ identity


def test_forward_steps_is_part_of_a_runs_identity_and_older_records_are_refused_by_version():
    base, other = run_record("torch"), run_record("mindspore", forward_steps=5)
    assert base["workload_fingerprint"] != other["workload_fingerprint"]
    from reports.pairing import pair_records

    assert not any(g.paired for g in pair_records([base, other]).groups)  # no latencies on different counts
    old = {**base, "schema_version": 2}
    with pytest.raises(schema.RecordError, match="schema version 2 record: version 2 left the number of timed forw"):
        schema.validate(old)
    with pytest.raises(TypeError, match="forward_steps"):
        schema.identity("run", **{k: v for k, v in IDENTITY_DEFAULTS.items() if k != "forward_steps"})


@needs_torch
def test_resume_with_other_forward_steps_runs_again(tmp_path, monkeypatch):
    from runners.experiments import pair, skeleton

    opts = dict(frameworks=("torch",), seed=1, warmup_steps=0, train_steps=1, forward_steps=1, results_dir=tmp_path)
    assert pair.run_pair(PairOptions(**opts), progress=lambda s: None).records[0]["status"] == "ok"

    def must_not_run(*_args, **_kw):
        raise RuntimeError("ran")

    monkeypatch.setattr(skeleton, "run_timed_worker", must_not_run)
    said = []
    pair.run_pair(PairOptions(**opts, resume=True), progress=said.append)  # the same run: already done
    assert any("already done" in line for line in said)
    with pytest.raises(RuntimeError, match="ran"):
        pair.run_pair(PairOptions(**{**opts, "forward_steps": 2}, resume=True), progress=lambda s: None)
