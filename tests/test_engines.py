"""Exported-graph engines: the engine grammar (fuzzed), the export-friendly soft shrinkage proven equal to the
framework's, the engines' forecasts through the worker (ONNX Runtime from PyTorch and from MindSpore, MindIR; both
spectral paths; both model families) against the eager forecast of the same weights, failures recorded with the
exporter's own reason, their records, and the fingerprint of a run without an engine left as it was."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from conftest import IDENTITY_DEFAULTS, ROOT, has, needs_both, needs_mindspore, needs_torch, run_json
from hypothesis import given, settings
from hypothesis import strategies as st
from test_spectral import _MINDSPORE, _TORCH

from metrics.parity import compare_trajectories
from runners.engines.spec import CHOICES, KEYS, NAMES, EngineSpec, parse_engine
from runners.errors import PairbenchError
from runners.records import schema
from runners.workloads.registry import get_workload

FCN = {"spectral_transform": "fft", "shrink": "softshrink"}

# ------------------------------------------------------------------------------------------ packaging


def test_the_tests_environment_installs_the_engines_and_their_numpy_pin_holds():
    """`tox -e tests` installs the cpu extra, which holds the deploy extra; in this environment onnx imports beside
    NumPy 1.x (MindSpore 2.10's) with the pinned ml_dtypes."""
    import configparser

    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "ml_dtypes==0.5.4" in extras["deploy"] and "pairbench[deploy]" in extras["cpu"]
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    assert "cpu" in tox.get("testenv", "extras").split()
    if not has("onnx"):
        pytest.skip("onnx is not installed here")
    numpy_version, ml_dtypes_version = run_json(
        "import json, numpy, ml_dtypes, onnx, onnxruntime, onnxscript; "
        "print(json.dumps([numpy.__version__, ml_dtypes.__version__]))"
    )
    assert int(numpy_version.split(".")[0]) < 2 and ml_dtypes_version == "0.5.4"


# ------------------------------------------------------------------------------------------ the grammar


def test_an_engine_parses_with_its_defaults_and_one_label_for_every_spelling():
    e = parse_engine("onnxruntime")
    assert e == EngineSpec("onnxruntime", "torch") and not e.is_framework and e.model_overrides() == {}
    same = ["onnxruntime:source=torch", " ONNXRuntime : Source = torch ", "onnxruntime:source=torch"]
    assert {parse_engine(t).label for t in same} == {"onnxruntime:source=torch"}
    spelled = parse_engine("onnxruntime:shrink=relu:spectral=dft:provider=cuda")
    assert spelled.label == "onnxruntime:source=torch:spectral=dft:shrink=relu:provider=cuda"
    assert spelled.model_overrides() == {"spectral_transform": "dft", "shrink": "relu"}
    assert parse_engine("mindir").source == "mindspore"
    assert parse_engine("torch:spectral=dft").label == "torch:spectral=dft"
    assert parse_engine("mindspore").is_framework and parse_engine("mindspore").label == "mindspore"


def test_resolving_fills_the_models_formulation_and_the_devices_provider():
    assert parse_engine("mindir").resolve(FCN, "cpu").label == "mindir:source=mindspore:spectral=fft:shrink=softshrink"
    cfg = get_workload("fourcastnet-tiny").model
    resolved = parse_engine("onnxruntime:spectral=dft").resolve(cfg, "cpu")
    assert resolved.label == "onnxruntime:source=torch:spectral=dft:shrink=softshrink:provider=cpu"
    assert resolved.resolve(cfg, "cpu") == resolved  # resolving twice changes nothing
    providers = {kind: parse_engine("onnxruntime").resolve(FCN, kind).provider for kind in ("cpu", "cuda", "ascend")}
    assert providers == {"cpu": "cpu", "cuda": "cuda", "ascend": "cann"}
    assert parse_engine("onnxruntime:provider=tensorrt").resolve(FCN, "cuda").provider == "tensorrt"
    with pytest.raises(PairbenchError, match="cannot run on a cpu device: the cann provider runs on ascend"):
        parse_engine("onnxruntime:provider=cann").resolve(FCN, "cpu")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "names no engine"),
        ("tensorrt", "names no engine"),
        ("onnxruntime:spectral", "where a key=value setting belongs"),
        ("onnxruntime:", "where a key=value setting belongs"),
        ("onnxruntime:colour=red", "unknown key 'colour'"),
        ("onnxruntime:spectral=dft:spectral=fft", "sets spectral twice"),
        ("onnxruntime:provider=rocm", "not one of cpu, cuda, tensorrt, cann"),
        ("mindir:source=torch", "cannot have source torch: mindir exports from mindspore only"),
        ("torch:source=mindspore", "cannot have source mindspore"),
        ("mindir:provider=cpu", "only onnxruntime has"),
        ("onnxruntime\n", "not a short line of printable text"),
        ("x" * 300, "not a short line of printable text"),
    ],
)
def test_bad_engine_text_is_one_sentence(text, message):
    with pytest.raises(PairbenchError, match=message) as info:
        parse_engine(text)
    assert "\n" not in str(info.value)


def test_the_sides_of_a_forecast_name_each_engine_once_and_run_every_source():
    from runners.experiments.forecast import forecast_sides
    from runners.options import ForecastOptions

    model = get_workload("fourcastnet-tiny").model

    def sides(*engines, **opts):
        return [s.key for s in forecast_sides(ForecastOptions(engines=engines, **opts), model)]

    assert sides() == ["torch", "mindspore"]
    # two graphs of one source not named: the source runs once, as their reference
    assert sides("onnxruntime", "onnxruntime:spectral=dft") == [
        "torch", "onnxruntime:source=torch:spectral=fft:shrink=softshrink:provider=cpu",
        "onnxruntime:source=torch:spectral=dft:shrink=softshrink:provider=cpu",
    ]  # fmt: skip
    assert sides("onnxruntime:source=mindspore", "mindir")[0] == "mindspore"
    refusals = {
        ("onnxruntime", "onnxruntime:source=torch"): "names onnxruntime:source=torch:spectral=fft",
        ("torch", "torch"): "names torch twice",
        ("torch:spectral=dft",): "a framework runs the model as configured",
        ("mindir", "nope"): "names no engine",
        ("onnxruntime:provider=cuda",): "cannot run on a cpu device",
    }
    for engines, message in refusals.items():
        with pytest.raises(PairbenchError, match=message):
            sides(*engines)
    with pytest.raises(PairbenchError, match="mode compiled is the frameworks' own"):
        sides("torch", "onnxruntime", mode="compiled")
    assert sides("torch", "mindspore", mode="compiled") == ["torch", "mindspore"]
    with pytest.raises(PairbenchError, match="not one text"):
        forecast_sides(ForecastOptions(engines="onnxruntime"), model)


_PIECES = st.sampled_from([*NAMES, *KEYS, *(v for c in CHOICES.values() for v in c), "=", ":", ",", " ", "x", ""])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(_PIECES, max_size=12).map("".join), st.integers(), st.none()))
def test_any_engine_text_parses_or_is_one_sentence_and_a_label_parses_back(text):
    try:
        engine = parse_engine(text)
    except PairbenchError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert parse_engine(engine.label) == engine
    try:
        resolved = engine.resolve(FCN, "cpu")
    except PairbenchError:
        return
    assert parse_engine(resolved.label) == resolved


# ------------------------------------------------------------------------------------------ the formulation


def test_the_shrink_setting_leaves_earlier_models_as_they_were():
    spec = get_workload("fourcastnet-tiny")
    assert "shrink" not in spec.model.to_dict() and "shrink" not in get_workload("aigoms-tiny").model.to_dict()
    relu = spec.overridden({"shrink": "relu"}).model
    assert relu.to_dict()["shrink"] == "relu" and relu.flops() == spec.model.flops()
    aigoms = get_workload("aigoms-tiny").overridden({"shrink": "relu"}).model
    assert aigoms.encoder_blocks().shrink == "relu" and aigoms.decoder_blocks().shrink == "relu"
    with pytest.raises(PairbenchError, match="shrink must be one of softshrink, relu, got 'hard'"):
        spec.overridden({"shrink": "hard"})


_SHRINK_PARITY = """
import json
import numpy as np
from runners.workloads.registry import get_workload
out = {{}}
for name in ("fourcastnet-tiny", "aigoms-tiny"):
    spec = get_workload(name)
    weights = spec.model.init_weights(3)
    x = np.random.default_rng(4).standard_normal((2, spec.model.in_chans, *spec.model.img_size)).astype(np.float32)
    runs = {{}}
    for shrink, lambd in (("softshrink", 0.01), ("relu", 0.01), ("softshrink", 0.0)):
        cfg = spec.overridden({{"shrink": shrink, "sparsity_threshold": lambd}}).model
        runs[shrink, lambd] = forward_and_grads(cfg, spec.models["{framework}"], weights, x)
    (a, ga), (b, gb), (c, _) = runs.values()
    rel = lambda u, v: float(np.linalg.norm(u - v) / np.linalg.norm(v))
    out[name] = {{"forward": rel(b, a), "gradients": max(rel(gb[k], ga[k]) for k in ga), "n": len(ga),
                  "unshrunk": rel(c, a)}}
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    "framework, prelude",
    [pytest.param("torch", _TORCH, marks=needs_torch), pytest.param("mindspore", _MINDSPORE, marks=needs_mindspore)],
)
def test_soft_shrinkage_from_relus_equals_the_frameworks_softshrink(framework, prelude):
    """Same weights, same input: forward and every gradient agree to 1e-6 (relative L2), while leaving the
    shrinkage out changes the output, so the comparison sees the shrinkage."""
    for name, got in run_json("import numpy as np" + prelude + _SHRINK_PARITY.format(framework=framework)).items():
        assert got["forward"] <= 1e-6 and got["gradients"] <= 1e-6 and got["n"] > 10, (name, got)
        assert got["unshrunk"] > 1e-4, (name, got)


# ------------------------------------------------------------------------------------------ the fingerprint


def _forecast_head(ident: dict, workload: str) -> dict:
    """What every forecast record of ``ident`` holds (runners.experiments.forecast)."""
    head = schema.header(ident, run_id="r", timestamp="t", workload=workload, device="cpu", commit=None)
    return {**head, "weights_source": "w", "initial_conditions": "synthetic", "n_lead": N_LEAD, "lead_hours": 6.0,
            "forecast_hours": 6.0 * N_LEAD}  # fmt: skip


def test_a_run_without_an_engine_keeps_its_fingerprint_and_an_engine_changes_it():
    fields = {"task": "forecast", **IDENTITY_DEFAULTS}
    # The fingerprint as it was before engines existed: the hash of exactly IDENTITY_FIELDS.
    before = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    assert before == "33c63809a96ec201"  # what pairbench before engines computed for it
    assert schema.identity("forecast", **IDENTITY_DEFAULTS)["workload_fingerprint"] == before
    assert schema.identity("forecast", **IDENTITY_DEFAULTS, engine=None)["workload_fingerprint"] == before
    assert "engine" not in schema.identity("forecast", **IDENTITY_DEFAULTS, engine=None)
    with_engine = schema.identity("forecast", **IDENTITY_DEFAULTS, engine="mindir:source=mindspore")
    assert with_engine["workload_fingerprint"] != before and with_engine["engine"] == "mindir:source=mindspore"
    head = _forecast_head(with_engine, "fourcastnet-tiny")
    rec = schema.outcome(head, "mindspore", {"status": "unsupported", "reason": "MindSpore cannot export it"})
    with pytest.raises(schema.RecordError, match="workload_fingerprint"):
        schema.validate({**rec, "engine": "onnxruntime:source=torch"})  # an edited engine is another run
    with pytest.raises(schema.RecordError, match="'engine_bytes' is 'many'"):
        schema.validate({**rec, "engine_bytes": "many"})


# ------------------------------------------------------------------------------------------ forecasts


N_LEAD = 3
ENGINE_RUNS = {
    # name: (workload, framework, engine or None, model changes)
    "torch-fft": ("fourcastnet-tiny", "torch", None, {}),
    "torch-dft": ("fourcastnet-tiny", "torch", None, {"spectral_transform": "dft"}),
    "ort-fft": ("fourcastnet-tiny", "torch", "onnxruntime", {}),
    "ort-dft": ("fourcastnet-tiny", "torch", "onnxruntime:spectral=dft", {}),
    "ms-fft": ("fourcastnet-tiny", "mindspore", None, {}),
    "ms-dft": ("fourcastnet-tiny", "mindspore", None, {"spectral_transform": "dft"}),
    "mindir-fft": ("fourcastnet-tiny", "mindspore", "mindir", {}),
    "mindir-dft": ("fourcastnet-tiny", "mindspore", "mindir:spectral=dft", {}),
    "ms-onnx-fft": ("fourcastnet-tiny", "mindspore", "onnxruntime:source=mindspore", {}),
    "ms-onnx-dft": ("fourcastnet-tiny", "mindspore", "onnxruntime:source=mindspore:spectral=dft", {}),
    "ms-onnx-relu": ("fourcastnet-tiny", "mindspore", "onnxruntime:source=mindspore:spectral=dft:shrink=relu", {}),
    "aigoms-torch": ("aigoms-tiny", "torch", None, {}),
    "aigoms-ort": ("aigoms-tiny", "torch", "onnxruntime", {}),
    "aigoms-mindir": ("aigoms-tiny", "mindspore", "mindir", {}),
}


def _run_config(workload, framework, engine, changes, weights):
    from runners.spec import RunConfig

    spec = get_workload(workload).overridden(changes)
    return RunConfig(
        workload=workload, framework=framework, weights=str(weights), task="forecast", batch_size=1,
        warmup_steps=0, seed=5, data={"initial_conditions": "synthetic", "n_lead": N_LEAD, "repeats": 1},
        model=spec.model.to_dict(), hyper_parameters=spec.hyper_parameters(), engine=engine,
    )  # fmt: skip


@pytest.fixture(scope="module")
def forecasts(tmp_path_factory):
    """Each of ENGINE_RUNS through a worker process, from one weights file per workload: (run, result, trajectory)."""
    if not (has("torch") and has("mindspore") and has("onnxruntime")):
        pytest.skip("needs torch, mindspore and onnxruntime")
    from runners.experiments.runs import run_worker
    from runners.weights.canonical import save_weights

    tmp = tmp_path_factory.mktemp("engines")
    weights = {}
    for name in ("fourcastnet-tiny", "aigoms-tiny"):
        weights[name] = tmp / f"{name}.safetensors"
        save_weights(weights[name], get_workload(name).model, get_workload(name).model.init_weights(5))
    out = {}
    for key, (workload, framework, engine, changes) in ENGINE_RUNS.items():
        run = _run_config(workload, framework, engine, changes, weights[workload])
        result = run_worker(run, tmp / key, timeout_s=600)
        trajectory = np.load(tmp / f"{key}.npz")["trajectory"] if result["status"] == "ok" else None
        out[key] = (run, result, trajectory, tmp)
    return out


@pytest.mark.parametrize(
    "engine, eager",
    [("ort-fft", "torch-fft"), ("ort-dft", "torch-dft"), ("mindir-fft", "ms-fft"), ("mindir-dft", "ms-dft"),
     ("aigoms-ort", "aigoms-torch"), ("aigoms-mindir", "aigoms-torch")],
)  # fmt: skip
def test_an_engines_forecast_matches_the_eager_forecast_of_the_same_weights(forecasts, engine, eager):
    run, result, trajectory, tmp = forecasts[engine]
    assert result["status"] == "ok", result.get("reason")
    _, reference_result, reference, _ = forecasts[eager]
    assert reference_result["status"] == "ok", reference_result.get("reason")
    found = compare_trajectories(trajectory, reference, (engine, eager), "fp32", "cpu")
    assert found["verdict"] == "pass" and len(found["rel_l2_per_lead"]) == N_LEAD, found
    facts = {k: v for k, v in result.items() if k.startswith("engine")}
    spectral = "dft" if engine.endswith("dft") else "fft"
    assert facts["engine_spectral"] == spectral and facts["engine_shrink"] == "softshrink"
    path = tmp / facts["engine_file"]
    assert facts["engine_bytes"] == path.stat().st_size > 0
    assert facts["engine_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert facts["engine_export_s"] > 0 and facts["engine_session_s"] > 0
    if "ort" in engine:
        assert facts["engine"].endswith(":provider=cpu") and path.suffix == ".onnx"
        assert facts["engine_providers_used"][0] == "CPUExecutionProvider" and facts["engine_opset"] >= 17
    else:
        assert facts["engine_lite"].startswith(("unavailable: ", "installed")) and path.suffix == ".mindir"
    _check_record(run, result, facts)


def _check_record(run, result, facts):
    """The worker's result makes a valid forecast record with its engine in the identity and its facts beside."""
    from runners.experiments.forecast import forecast_fields

    spec = get_workload(run.workload).with_model(run.model)
    ident = {**IDENTITY_DEFAULTS, "model": run.model, "engine": facts["engine"], "train_steps": 0, "forward_steps": 0}
    head = _forecast_head(schema.identity("forecast", **ident), run.workload)
    engine_facts = {k: v for k, v in facts.items() if k in schema.ENGINE_FIELDS}
    fields = forecast_fields(run, spec, result, 6.0)
    assert engine_facts and engine_facts.items() <= fields.items()  # the record keeps every fact of the graph
    rec = schema.record(head, framework=run.framework, status="ok", **fields)
    assert rec["engine"] == facts["engine"] and set(engine_facts) >= {"engine_sha256", "engine_session_s"}


@pytest.mark.parametrize(
    "key, missing",
    [("ms-onnx-fft", "RFFT2"), ("ms-onnx-dft", "SoftShrink"), ("ms-onnx-relu", "Erf")],
)
def test_mindsporess_onnx_export_is_refused_with_mindspores_own_reason(forecasts, key, missing):
    """MindSpore 2.10 exports no RFFT2 and no SoftShrink to ONNX; with the DFT path and the shrinkage from ReLUs the
    exact GELU's Erf is the next operator it lacks. Each is a clean unsupported result naming the operator."""
    _, result, _, _ = forecasts[key]
    if result["status"] == "ok":  # a MindSpore release that exports it: then the file must be the engine's
        assert result["engine_exporter"] == "mindspore.onnx.export"
        return
    assert result["status"] == "unsupported" and "cannot export fourcastnet-tiny" in result["reason"]
    assert missing in result["reason"] and "\n" not in result["reason"] and "Traceback" not in result["reason"]


@needs_both
def test_an_engine_refuses_what_it_cannot_run_in_one_sentence(tmp_path):
    from runners.execution.worker import execute
    from runners.spec import RunConfig
    from runners.weights.canonical import save_weights

    spec = get_workload("fourcastnet-tiny")
    weights = tmp_path / "w.safetensors"
    save_weights(weights, spec.model, spec.model.init_weights(0))
    base = _run_config("fourcastnet-tiny", "torch", "onnxruntime", {}, weights).to_dict()
    cases = [
        ({"precision": "bf16"}, "has no bf16 graph"),
        ({"task": "pair"}, "runs forecasts only"),
        ({"mode": "compiled"}, "mode compiled is the frameworks' own"),
        ({"framework": "mindspore"}, "exports from torch, not from mindspore"),
        ({"device": "cpu", "engine": "onnxruntime:provider=cuda"}, "cannot run on a cpu device"),
    ]
    for change, message in cases:
        with pytest.raises(PairbenchError, match=message):
            execute(RunConfig(**{**base, **change}), tmp_path / "refused")
    assert not (tmp_path / "refused.onnx").exists()


def test_nothing_here_is_nan_or_silently_zero(forecasts):
    """Every engine that ran timed its forecasts and reported its memory as None with a reason."""
    for key, (_, result, trajectory, _) in forecasts.items():
        if result["status"] != "ok":
            continue
        assert np.isfinite(trajectory).all() and all(t > 0 and math.isfinite(t) for t in result["forecast_ms"]), key
        assert result["device_peak_mem_mb"] is None and result["device_peak_mem_reason"], key
