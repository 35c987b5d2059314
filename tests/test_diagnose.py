"""``pairbench diagnose``: two computations from the same weights and batch compared layer by layer; the first
layer past its bound and the first non-finite value named; capture's effect on each side recorded; a family from
another package (entry point, no pip) diagnosed to its one wrong layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, needs_both, run_python
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.build import render
from reports.diagnosis_tables import capture_phrase, diagnosis_lines
from reports.pairing import pair_records
from runners.errors import PairbenchError
from runners.execution.capture import MODEL, capture_effect
from runners.experiments.diagnose import compare_sides, layer_bounds, verdict
from runners.options import DiagnoseOptions, Side, parse_side
from runners.records import schema
from runners.records.store import read_records

BROKEN = ROOT / "tests" / "fixtures" / "broken_family"


def _pairbench(*args: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    path = [str(p) for p in (extra_path, ROOT) if p is not None]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    return subprocess.run(
        [sys.executable, "-m", "runners.cli", "diagnose", *args], capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=600,
    )  # fmt: skip


# --- sides and options -------------------------------------------------------------------------------------------


def test_a_side_reads_its_settings_and_names_them_all():
    assert parse_side("torch") == Side("torch")
    side = parse_side("torch:precision=bf16,mode=compiled")
    assert side == Side("torch", mode="compiled", precision="bf16")
    assert parse_side("mindspore:spectral=dft:mode=compiled") == Side("mindspore", "compiled", "fp32", "dft")
    assert parse_side(side.label) == side and side.label == "torch:mode=compiled,precision=bf16"


@pytest.mark.parametrize(
    "a, b, message",
    [
        ("jax", "torch", "side a 'jax': unknown framework 'jax'"),
        ("torch", "torch:mode=fast", "side b 'torch:mode=fast': unknown mode 'fast'; choose from eager, compiled"),
        ("torch:precision=fp8", "torch", "side a 'torch:precision=fp8': unknown precision 'fp8'"),
        ("torch", "torch\nmode=compiled", "side b 'torch\\nmode=compiled': it holds characters that cannot be printed"),
        ("torch:colour", "torch", "'colour' is not key=value with a key of mode, precision, spectral"),
        ("torch:mode=", "torch", "'mode=' is not key=value"),
        ("torch:mode=eager,mode=compiled", "torch", "mode is named twice"),
    ],
)
def test_a_bad_side_is_one_sentence_naming_the_side(a, b, message):
    with pytest.raises(PairbenchError) as info:
        DiagnoseOptions(a=a, b=b).validate()
    assert message in str(info.value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_side_text_is_a_side_or_one_sentence(text):
    try:
        side = parse_side(text)
    except PairbenchError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert parse_side(side.label) == side


def test_the_command_refuses_bad_input_in_one_sentence_and_writes_nothing(tmp_path):
    code = (
        "import sys; from runners.cli import main; "
        f"sys.exit(main(['diagnose', '--b', 'torch:spectral=xyz', '--results-dir', {str(tmp_path / 'r')!r}]))"
    )
    proc = run_python(code, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("pairbench: error: side b 'torch:mode=eager,")
    assert "spectral_transform must be one of fft, dft" in proc.stderr
    assert not any((tmp_path / "r").glob("*-diagnose-*"))


# --- the comparison (NumPy only) ---------------------------------------------------------------------------------


def _layers(values: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    return list(values.items())


def test_the_first_layer_past_its_bound_and_the_first_non_finite_value_are_named():
    rng = np.random.default_rng(0)
    x = {n: rng.standard_normal((2, 4)).astype(np.float32) for n in ("fc1", "act1", "fc2", "act2", MODEL)}
    y = dict(x)
    y["fc2"] = x["fc2"] * 1.01  # past an fp32 bound
    y["act2"] = x["act2"].copy()
    y["act2"][0, 0] = np.nan
    bounds, _ = layer_bounds(Side("torch"), Side("mindspore"), "cpu", "toy")
    grads = {"a": {"fc1.weight": np.ones(3), "fc2.weight": np.ones(3)}, "b": {"fc1.weight": np.ones(3)}}
    grads["b"]["fc2.weight"] = None
    found = compare_sides({"a": _layers(x), "b": _layers(y)}, grads, bounds)
    assert [r["layer"] for r in found["layers"]] == list(x)
    assert found["first_past_bound"] == "fc2" and found["layers"][1]["past_bound"] is False
    assert found["first_nonfinite"] == "act2" and found["first_nonfinite_side"] == "b"
    assert found["layers"][3]["nonfinite_b"] == 1 and found["layers"][3]["rel_l2"] is None
    assert found["first_gradient_past_bound"] == "fc2.weight"
    assert found["gradients"][1]["note"] == "a gradient on side a only" and found["gradients"][1]["only_on"] == "a"
    assert found["layers"][0]["gradient_rel_l2"] == 0.0 and found["layers"][0]["gradient_parameter"] == "fc1.weight"
    sides = {k: {"nonfinite_without": 0} for k in "ab"}
    assert verdict(found, sides, bounds) == "fail"


def test_layers_of_one_side_only_and_different_shapes_are_named_not_compared():
    a = [("proj", np.zeros((2, 8, 4))), ("embed", np.ones((2, 4, 8))), ("extra", np.ones(3)), (MODEL, np.ones(2))]
    b = [("proj", np.zeros((2, 4, 8))), ("embed", np.ones((2, 4, 8))), ("other", np.ones(3)), (MODEL, np.ones(2))]
    found = compare_sides({"a": a, "b": b}, {"a": {}, "b": {}}, {"forward": 1e-5, "gradients": 1e-4})
    assert [r["layer"] for r in found["layers"]] == ["proj", "embed", MODEL]
    assert found["layers"][0]["note"] == "shapes differ (2x8x4 vs 2x4x8)" and found["layers"][0]["past_bound"] is None
    assert found["unmatched"] == ["extra (side a only)", "other (side b only)"]
    assert found["first_past_bound"] is None and found["first_nonfinite"] is None


def test_bounds_apply_at_one_precision_only_and_low_precision_has_none_assumed(monkeypatch):
    import runners.experiments.diagnose as diagnose

    fp32, source = layer_bounds(Side("torch"), Side("mindspore"), "cpu", "fourcastnet-tiny")
    assert fp32 == {"forward": 1e-5, "gradients": 1e-4, "losses": 1e-4} and "fp32" in source
    monkeypatch.setattr(diagnose, "cpu_features", lambda: "avx2,fma")  # a CPU no bound was measured on
    none, why = layer_bounds(
        Side("torch", precision="bf16"), Side("torch", "compiled", "bf16"), "cpu", "fourcastnet-tiny"
    )
    assert none is None and why.startswith("bounds not established: per-layer bounds were measured on another CPU")
    assert why.endswith("this CPU has avx2,fma")
    none, why = layer_bounds(Side("torch", precision="bf16"), Side("torch", "compiled", "bf16"), "cpu", "toy-mlp")
    assert none is None and "no per-layer bounds have been measured" in why
    mixed, why = layer_bounds(Side("torch"), Side("torch", precision="bf16"), "cuda", "fourcastnet-tiny")
    assert mixed is None and "different precisions (fp32, bf16)" in why
    x = [("l", np.ones(4, np.float32)), (MODEL, np.ones(4, np.float32))]
    y = [("l", np.full(4, 1.5, np.float32)), (MODEL, np.ones(4, np.float32))]
    found = compare_sides({"a": x, "b": y}, {"a": {}, "b": {}}, none)
    assert found["first_past_bound"] is None and found["layers"][0]["past_bound"] is None
    assert verdict(found, {k: {"nonfinite_without": 0} for k in "ab"}, none) == "bounds not established"
    # A NaN the captured layers do not show (capture changed the output) still fails.
    assert verdict(found, {"a": {"nonfinite_without": 0}, "b": {"nonfinite_without": 3}}, none) == "fail"


def test_capture_effect_says_whether_capture_changed_the_output():
    out = np.arange(6, dtype=np.float32).reshape(2, 3)
    nan = np.full_like(out, np.nan)
    assert capture_effect(out, out.copy()) == {"capture_invariant": True, "nonfinite_without": 0, "nonfinite_with": 0}
    assert capture_effect(nan, nan.copy())["capture_invariant"] is True
    changed = capture_effect(nan, out)
    assert changed["capture_invariant"] is False and (changed["nonfinite_without"], changed["nonfinite_with"]) == (6, 0)
    side = {"status": "ok", "method": "hooks", "per_layer": True, **changed}
    assert "6 non-finite values without capture, 0 with it" in capture_phrase(side)
    moved = capture_effect(out, out + 0.5)
    assert moved["capture_rel_l2"] == pytest.approx(np.linalg.norm(np.full(6, 0.5)) / np.linalg.norm(out))
    assert "capture changed the output by" in capture_phrase({"status": "ok", "method": "m", **moved})


def _record(found: dict, tolerances, source: str, sides: dict) -> dict:
    ident = schema.identity(
        "diagnosis", model={}, weights_sha256="0" * 64, seed=1, data={"sides": {"a": "torch", "b": "mindspore"}},
        hyper_parameters={}, batch_size=2, precision="fp32", mode="eager", recompute=False, threads=None,
        warmup_steps=0, train_steps=0, forward_steps=0, objective="forecast", nproc=1,
    )  # fmt: skip
    head = schema.header(ident, run_id="r1", timestamp="20260101T000000Z", workload="w", device="cpu", commit=None)
    entries = {
        k: {"label": f"{fw}:mode=eager,precision=fp32", "status": "ok", "method": "hooks", "per_layer": True, **s}
        for (k, s), fw in zip(sides.items(), ("torch", "mindspore"), strict=True)
    }
    fields = {"side_a": entries["a"], "side_b": entries["b"], "tolerances": tolerances, "bounds_source": source}
    fields["weights_source"] = "init_weights(seed=1)"
    return schema.record(head, **fields, **found, verdict=verdict(found, entries, tolerances))


def test_a_diagnosis_is_a_valid_record_shown_on_the_console_and_in_the_report(tmp_path):
    x = [("fc1", np.ones((2, 3), np.float32)), ("fc2", np.ones((2, 3), np.float32)), (MODEL, np.ones(2, np.float32))]
    y = [("fc1", np.ones((2, 3), np.float32)), ("fc2", np.full((2, 3), 2, np.float32)), (MODEL, np.ones(2))]
    bounds, source = layer_bounds(Side("torch"), Side("mindspore"), "cpu", "toy")
    grads = {"a": {"fc2.weight": np.ones(3)}, "b": {"fc2.weight": None}}
    found = compare_sides({"a": x, "b": y}, grads, bounds)
    sides = {k: {"capture_invariant": True, "nonfinite_without": 0, "nonfinite_with": 0} for k in "ab"}
    rec = _record(found, bounds, source, sides)
    assert rec["verdict"] == "fail" and rec["first_past_bound"] == "fc2"
    text = "\n".join(diagnosis_lines(rec))
    assert "FAIL" in text and "first layer past its bound (relative L2 <= 1e-05): fc2" in text
    assert "capture-invariant" in text and "gradients that cannot be compared: fc2.weight (side a only)" in text
    with pytest.raises(schema.RecordError, match="not a finite number"):
        schema.validate({**rec, "layers": [{**rec["layers"][0], "rel_l2": float("nan")}]})
    # Two diagnoses of one workload in other settings are each complete: the report pairs neither.
    other = {**rec, "seed": 2}
    other["workload_fingerprint"] = schema.fingerprint(other)
    assert pair_records([rec, schema.validate(other)]).refusals == []
    (md,) = render([rec], tmp_path / "r.md", "md", ["x"])
    report = md.read_text()
    assert "## Divergence by layer" in report and "## Layers" in report and "| fc2 " in report


# --- end to end (both frameworks) -------------------------------------------------------------------------------


@needs_both
def test_an_external_family_is_diagnosed_to_its_broken_layer(tmp_path):
    """A family found through its entry point on PYTHONPATH alone (a dist-info folder, no pip), inherited by both
    workers: its MindSpore fc2 multiplies by its weight untransposed, and the diagnosis names fc2."""
    results = tmp_path / "results"
    proc = _pairbench("--workload", "broken-mlp", "--seed", "7", "--results-dir", str(results), extra_path=BROKEN)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    (rec,) = read_records(results / "records.jsonl")
    assert rec["record_type"] == "diagnosis" and rec["verdict"] == "fail"
    assert rec["side_a"]["status"] == rec["side_b"]["status"] == "ok"
    assert [r["layer"] for r in rec["layers"]] == ["fc1", "act1", "fc2", "act2", "fc3", MODEL]
    assert rec["first_past_bound"] == "fc2" and [r["past_bound"] for r in rec["layers"][:2]] == [False, False]
    assert rec["side_a"]["capture_invariant"] and rec["side_b"]["capture_invariant"]
    assert "first layer past its bound (relative L2 <= 1e-05): fc2" in proc.stdout
    assert (results / "report.html").is_file()
    run_dir = results / rec["run_id"]
    assert json.loads((run_dir / "diagnosis.json").read_text())["first_past_bound"] == "fc2"


@needs_both
def test_fourcastnet_tiny_in_both_frameworks_has_no_layer_past_its_fp32_bound(tmp_path):
    from runners.experiments.diagnose import run_diagnose

    out = run_diagnose(DiagnoseOptions(seed=11, results_dir=tmp_path), progress=lambda s: None)
    rec = out.record
    assert out.ok and rec["verdict"] == "pass", rec["layers"]
    assert rec["first_past_bound"] is None and rec["first_nonfinite"] is None
    assert rec["first_gradient_past_bound"] is None
    compared = [r for r in rec["layers"] if r["rel_l2"] is not None]
    assert len(compared) >= 19 and all(r["rel_l2"] <= 1e-5 for r in compared)
    names = [r["layer"] for r in rec["layers"]]
    assert names.index("blocks.0.filter") < names.index("blocks.0") < names.index("blocks.1.norm1")
    assert names[-1] == MODEL and rec["unmatched"] == []
    # The patch embedding's projection is a convolution in PyTorch and a matrix product in MindSpore.
    assert rec["layers"][0]["note"] == "shapes differ (2x64x8x16 vs 2x128x64)"
    assert rec["side_a"]["capture_invariant"] and rec["side_b"]["capture_invariant"]


@needs_both
def test_compiled_sides_say_how_they_were_captured(tmp_path):
    """torch.compile: hooks traced into the graph, every layer compared with eager; MindSpore graph mode: no
    per-layer capture, said in one sentence, and the final output still compared."""
    results = tmp_path / "results"
    args = ("--workload", "broken-mlp", "--seed", "3", "--threads", "1", "--results-dir", str(results))
    proc = _pairbench("--a", "torch", "--b", "torch:mode=compiled", *args, extra_path=BROKEN)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = _pairbench("--a", "torch", "--b", "mindspore:mode=compiled", *args, extra_path=BROKEN)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    compiled, graph = read_records(results / "records.jsonl")
    assert compiled["verdict"] == "pass" and len(compiled["layers"]) == 6
    assert compiled["side_b"]["execution_mode"] == "torch.compile" and compiled["side_b"]["per_layer"]
    assert "dynamo traces them" in compiled["side_b"]["method"] and "capture_invariant" in compiled["side_b"]
    assert [r["layer"] for r in graph["layers"]] == [MODEL] and graph["first_past_bound"] == MODEL
    assert graph["side_b"]["per_layer"] is False and graph["side_b"]["method"].startswith("not possible in graph mode")
    assert len(graph["unmatched"]) == 5


def _diagnosis(seed: int, rel: float, grad: float) -> dict:
    return {
        "workload": "w", "seed": seed, "first_nonfinite": None,
        "side_a": {"label": "torch:mode=eager,precision=fp32"}, "side_b": {"label": "torch:mode=eager,precision=bf16"},
        "layers": [
            {"layer": "fc", "rel_l2": rel}, {"layer": "same", "rel_l2": 0.0},
            {"layer": "x", "rel_l2": None, "note": "shapes differ"},
        ],
        "gradients": [{"parameter": "fc.weight", "rel_l2": grad}],
    }  # fmt: skip


def test_per_layer_bounds_are_measured_over_seeds_and_found_only_on_the_same_cpu_and_versions(tmp_path):
    from metrics.layer_bounds import FACTOR, SHARE, entry_from_diagnoses, load, lookup

    versions = {"torch": "2.13.0+cpu"}
    entry = entry_from_diagnoses([_diagnosis(1, 1e-3, 1e-2), _diagnosis(2, 2e-3, 5e-3)], "cpu X", "avx2", versions, "d")
    assert entry["layers"]["fc"] == {"measured": 2e-3, "bound": FACTOR * 2e-3}
    # Bit-identical in every seed: held to a share of the comparison's largest difference, not to zero.
    assert entry["layers"]["same"]["bound"] == pytest.approx(FACTOR * SHARE * 2e-3) and "x" not in entry["layers"]
    assert entry["gradients"]["fc.weight"]["bound"] == FACTOR * 1e-2 and entry["seeds"] == [1, 2]
    a, b = entry["side_a"], entry["side_b"]
    bounds, source = lookup("w", a, b, "avx2", versions, [entry])
    assert bounds["layers"]["fc"] == FACTOR * 2e-3 and "measured on cpu X (avx2)" in source
    assert lookup("w", a, b, "avx2,amx_bf16", versions, [entry])[0] is None  # another CPU: never assumed
    none, why = lookup("w", a, b, "avx2", {"torch": "2.14.0"}, [entry])
    assert none is None and "other framework versions only: torch 2.13.0+cpu" in why
    with pytest.raises(ValueError, match="non-finite"):
        entry_from_diagnoses([{**_diagnosis(1, 1e-3, 0), "first_nonfinite": "fc"}], "c", "f", versions, "d")
    with pytest.raises(ValueError, match="compare different things"):
        entry_from_diagnoses([_diagnosis(1, 0, 0), {**_diagnosis(2, 0, 0), "workload": "v"}], "c", "f", versions, "d")
    bad = tmp_path / "b.json"
    bad.write_text('{"entries": [{"workload": 1}, ' + json.dumps(entry) + "]}")
    assert load(bad) == [entry]  # a malformed entry is left out
    bad.write_text("{not json")
    with pytest.raises(PairbenchError, match="cannot be read as layer bounds"):
        load(bad)
    assert load(tmp_path / "absent.json") == []


@needs_both
def test_bf16_eager_against_compiled_names_the_first_diverging_layer_or_none(tmp_path):
    """Issue 22's case: fourcastnet-tiny, PyTorch bf16 eager against compiled. Where per-layer bounds were measured
    on this CPU, every layer is held to its own; elsewhere none is assumed. Either way a non-finite value is named."""
    from metrics.device.cpu import cpu_features
    from metrics.layer_bounds import lookup
    from runners.experiments.diagnose import framework_versions, run_diagnose

    a, b = "torch:precision=bf16", "torch:precision=bf16,mode=compiled"
    # seed 7: outside the seeds the bounds were measured on (1-5)
    out = run_diagnose(DiagnoseOptions(a=a, b=b, seed=7, threads=1, results_dir=tmp_path), progress=lambda s: None)
    rec = out.record
    sides = (parse_side(a), parse_side(b))
    measured, why = lookup(
        "fourcastnet-tiny", sides[0].label, sides[1].label, cpu_features(), framework_versions(*sides)
    )
    if rec["first_nonfinite"]:  # the compiler defect of issue 22, on a CPU that has it
        assert rec["verdict"] == "fail" and rec["first_nonfinite_side"] == "b", rec
    elif measured is None:
        assert rec["verdict"] == "bounds not established" and why in rec["bounds_source"]
    else:
        assert rec["tolerances"]["per_layer"] and rec["verdict"] == "pass", rec["first_past_bound"]
        assert rec["first_past_bound"] is None and all(r["bound"] is not None for r in rec["layers"] if "note" not in r)
