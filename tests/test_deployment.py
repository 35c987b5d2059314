"""Exported-graph forecasts end to end (pairbench forecast --engine) and the report's Deployment section: each engine
beside its source framework's forecast of the same work, failures with the engine's reason, parity per engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import needs_mindspore, needs_torch, run_json  # noqa: F401
from test_report_forecast import _forecast_head, _run_head, forecast, forecast_parity

from reports.build import render
from reports.deployment import base_fingerprint, deployment_table
from reports.forecast_tables import forecast_table
from reports.pairing import pair_records
from runners.records import schema

ORT = "onnxruntime:source=torch:spectral=fft:shrink=softshrink:provider=cpu"
MINDIR = "mindir:source=mindspore:spectral=dft:shrink=softshrink"
BROKEN = "onnxruntime:source=mindspore:spectral=fft:shrink=softshrink:provider=cpu"
FACTS = {
    "engine_source": "torch", "engine_spectral": "fft", "engine_shrink": "softshrink", "engine_exporter": "x",
    "engine_export_s": 3.5, "engine_file": "f.onnx", "engine_bytes": 2_000_000, "engine_sha256": "ab" * 32,
    "engine_session_s": 0.01, "engine_runtime": "onnxruntime", "engine_runtime_version": "1.32.0",
    "engine_provider_requested": "CPUExecutionProvider", "engine_providers_used": ["CPUExecutionProvider"],
    "engine_conversion": "none", "engine_lite": "unavailable: no module",
}  # fmt: skip


def _engine(label: str, framework: str, samples, **facts) -> dict:
    rec = forecast(framework, samples, head=_forecast_head(engine=label))
    return schema.validate({**rec, **FACTS, "engine_source": framework, **facts})


def _engine_parity(label: str, source: str, rel_l2) -> dict:
    rec = forecast_parity(rel_l2, engine=label)
    return schema.validate({**rec, "other": label, "reference": source})


def _records() -> list[dict]:
    failed = schema.outcome(
        _run_head(_forecast_head(engine=BROKEN)), "mindspore",
        {"status": "unsupported", "reason": "MindSpore cannot export fourcastnet-tiny to ONNX: RFFT2"},
    )  # fmt: skip
    return [
        forecast("torch", [10.0, 11.0, 12.0]),
        forecast("mindspore", [40.0, 41.0, 42.0]),
        forecast_parity([1e-7, 2e-7]),
        _engine(ORT, "torch", [2.0, 2.2, 2.1]),
        _engine(MINDIR, "mindspore", [4.0, 4.1, 4.2], engine_runtime="mindspore", engine_providers_used=[]),
        failed,
        _engine_parity(ORT, "torch", [2e-7, 3e-7]),
    ]


def test_an_engine_has_the_fingerprint_of_its_work_plus_the_engine():
    plain, graph = forecast("torch", [1.0, 2.0]), _engine(ORT, "torch", [1.0, 2.0])
    assert graph["workload_fingerprint"] != plain["workload_fingerprint"]
    assert base_fingerprint(graph) == base_fingerprint(plain) == plain["workload_fingerprint"]


def test_the_deployment_table_sets_each_graph_beside_its_source():
    table = deployment_table(pair_records(_records())).set_index("engine")
    ort, mindir, broken = table.loc[ORT], table.loc[MINDIR], table.loc[BROKEN]
    assert ort.status == "ok" and ort.forecast_ms_p50 == pytest.approx(2.1)
    assert ort.vs_source == pytest.approx(2.1 / 11.0) and ort.vs_source_ci_low <= ort.vs_source <= ort.vs_source_ci_high
    # the other stack's fastest: MindSpore's own forecast (41 ms) or its MindIR graph (4.1 ms)
    assert ort.other_best == "MindSpore via mindir (dft, softshrink)" and ort.vs_other_best == pytest.approx(2.1 / 4.1)
    assert mindir.vs_source == pytest.approx(4.1 / 41.0)
    assert mindir.other_best == "PyTorch via onnxruntime (fft, softshrink, cpu)"
    assert ort.parity == "pass" and ort.rel_l2_max == pytest.approx(3e-7, rel=1e-3)
    assert mindir.parity is None or (isinstance(mindir.parity, float) and np.isnan(mindir.parity))  # none recorded
    assert ort.file_mb == pytest.approx(2.0) and ort.provider == "CPUExecutionProvider"
    assert broken.status.startswith("unsupported: MindSpore cannot export") and "RFFT2" in broken.status
    assert np.isnan(broken.forecast_ms_p50)


def test_a_parity_verdict_belongs_to_its_own_run():
    """A later run of the same work whose graph was never checked (its source failed) shows no verdict, not the
    earlier run's pass."""
    later = {**_engine(ORT, "torch", [2.0, 2.1]), "run_id": "r2", "timestamp": "20261203T000000Z"}
    table = deployment_table(pair_records([*_records(), schema.validate(later)])).set_index("engine")
    assert table.loc[ORT].forecast_ms_p50 == pytest.approx(2.05)  # the latest run's figures ...
    assert not isinstance(table.loc[ORT].parity, str)  # ... and no verdict of another run


def test_graphs_stay_out_of_the_framework_tables_and_refusals():
    pairing = pair_records(_records())
    frameworks = forecast_table(pairing)
    assert sorted(frameworks.framework) == ["MindSpore", "PyTorch"]
    assert not pairing.refusals  # a graph's group is set beside its framework's, never reported as apart


def test_the_deployment_section_renders(tmp_path):
    (path,) = render(_records(), tmp_path / "r.html", "html", [])
    html = path.read_text()
    assert "<h2" in html and "Deployment" in html and ORT in html and "RFFT2" in html


@needs_torch
@needs_mindspore
def test_forecast_by_every_engine_end_to_end(tmp_path):
    """The issue's check: the frameworks and both exported graphs forecast the same work; every graph's trajectory
    passes its parity check against its source; the report's Deployment section renders in headless Chromium."""
    from conftest import run_python

    argv = ["forecast", "--workload", "fourcastnet-tiny", "--engine", "torch,mindspore,onnxruntime,mindir",
            "--n-lead", "2", "--repeats", "2", "--seed", "5", "--results-dir", str(tmp_path)]  # fmt: skip
    proc = run_python(f"import sys; from runners.cli import main; sys.exit(main({argv!r}))", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    runs = {r.get("engine", r["framework"]).split(":")[0]: r for r in records if r["record_type"] == "forecast"}
    assert sorted(runs) == ["mindir", "mindspore", "onnxruntime", "torch"]
    assert all(r["status"] == "ok" for r in runs.values()), [r.get("reason") for r in runs.values()]
    assert runs["onnxruntime"]["engine_sha256"] and runs["mindir"]["engine_bytes"] > 0
    parity = {r["other"].split(":")[0]: r["verdict"] for r in records if r["record_type"] == "forecast_parity"}
    assert parity == {"mindspore": "pass", "onnxruntime": "pass", "mindir": "pass"}
    from reports.browser_check import BrowserUnavailable, check_html

    try:
        check = check_html(tmp_path / "report.html")
    except BrowserUnavailable as exc:
        pytest.skip(f"the report was written; no headless browser here to render it: {exc}")
    assert check.ok, check
    assert "Deployment" in (tmp_path / "report.html").read_text()


def test_an_engine_that_cannot_run_as_asked_is_refused_before_anything_is_written(tmp_path):
    from conftest import run_python

    cases = {
        ("--engine", "nope"): "names no engine ('nope')",
        ("--engine", "torch,onnxruntime", "--mode", "eager,compiled"): "mode compiled is the frameworks' own",
        ("--engine", "onnxruntime:provider=cuda"): "cannot run on a cpu device",
        ("--engine", "torch:spectral=dft"): "a framework runs the model as configured",
        ("--engine", "onnxruntime", "--frameworks", "torch"): "give --engine or --frameworks",
    }
    for args, message in cases.items():
        argv = ["forecast", *args, "--n-lead", "1", "--results-dir", str(tmp_path)]
        proc = run_python(f"import sys; from runners.cli import main; sys.exit(main({argv!r}))")
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not any(tmp_path.iterdir()), args
