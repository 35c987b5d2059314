"""One (workload, framework, device) run in its own process: ``python -m runners.execution.worker REQ OUT``.

REQ is a RunConfig as JSON. The worker writes OUT.json (status, environment, timings, losses) and,
when the run succeeds, OUT.npz (forward output and every parameter gradient, for parity checks).
Both are written atomically; a crash leaves no partial file for the parent to misread.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from metrics.device.cpu import cpu_features
from metrics.device.machine import cpu_name
from runners.engines.spec import formulated, parse_engine
from runners.errors import AbsentError, PairbenchError, UnsupportedError, first_line
from runners.execution.capture import execute_diagnose
from runners.execution.result import result_problem
from runners.execution.rollout import execute_forecast
from runners.execution.tasks import execute_pair, execute_skill
from runners.spec import RunConfig, check_framework, load_object
from runners.weights.canonical import load_weights
from runners.workloads.registry import get_workload


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no partial file behind
        raise


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file object keeps NumPy from appending ".npz" to the name
        np.savez(fh, **arrays)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


_RUNNERS = {
    "torch": "runners.backends.torch_backend:TorchRunner",
    "mindspore": "runners.backends.mindspore_backend:MindSporeRunner",
}


_ENGINES = {
    "onnxruntime": "runners.engines.onnx_engine:OnnxRuntimeEngine",
    "mindir": "runners.engines.mindir_engine:MindIREngine",
}


def _loaded(target: str, what: str):
    """The class ``target`` names; importing it imports ``what``, which may be absent here."""
    try:
        return load_object(target)
    except ImportError as exc:
        raise AbsentError(f"{what} cannot be imported on this machine ({exc})") from None


def runner_class(framework: str):
    """The runner class for ``framework``; importing it imports that framework."""
    return _loaded(_RUNNERS[check_framework(framework)], framework)


def engine_class(name: str):
    """The engine runner class of ``name``; importing it imports its runtime and source framework."""
    return _loaded(_ENGINES[name], f"engine {name}")


def build(run: RunConfig, prefix: Path | None = None):
    """The workload (with any model override, then the engine's formulation), its checked weights, and the built
    runner: the framework's, or with ``run.engine`` the engine's, whose exported file is ``prefix`` with the
    engine's suffix (in a fresh temporary folder where ``prefix`` is None)."""
    spec = get_workload(run.workload)
    if run.model:
        spec = spec.with_model(run.model)
    engine = parse_engine(run.engine) if run.engine else None
    if engine is not None:
        if engine.source != run.framework:
            raise PairbenchError(f"engine {engine.label} exports from {engine.source}, not from {run.framework}")
        spec = formulated(spec, engine.label)
    weights = load_weights(Path(run.weights), spec.model)
    t0 = time.perf_counter()
    if engine is None or engine.is_framework:
        runner = runner_class(run.framework)(spec, run)
    else:
        prefix = prefix or Path(tempfile.mkdtemp(prefix="pairbench-engine-")) / engine.name
        runner = engine_class(engine.name)(spec, run, engine, prefix)
    runner.build(weights)
    runner.synchronize()
    return spec, weights, runner, time.perf_counter() - t0


def execute(run: RunConfig, prefix: Path | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Build, then run the requested task; returns the JSON-able result and the arrays. An engine's exported file
    is written beside the worker's output ``prefix`` (see :func:`build`)."""
    spec, weights, runner, build_s = build(run, prefix)
    if run.task == "skill":
        result, arrays = execute_skill(run, spec, runner)
    elif run.task == "pair":
        result, arrays = execute_pair(run, spec, runner)
    elif run.task == "forecast":
        result, arrays = execute_forecast(run, spec, runner)
    elif run.task == "diagnose":
        result, arrays = execute_diagnose(run, spec, runner)
    else:
        raise PairbenchError(f"unknown task '{run.task}'")
    result = {
        **runner.versions(),
        **(runner.facts() if hasattr(runner, "facts") else {}),  # an engine's: runners.engines.base
        "status": "ok",
        "task": run.task,
        "python": platform.python_version(),
        "host": platform.node(),
        "param_count": int(sum(v.size for v in weights.values())),
        "build_s": build_s,
        "host_peak_rss_mb": _peak_rss_mb(),
        "cpu_name": cpu_name(),
        "cpu_features": cpu_features(),
        **result,
    }
    problem = result_problem(result)
    if problem:  # a task that does not report what it declares: a defect of this program, said as one
        raise RuntimeError(f"the {run.task} task's result does not match its declaration: {problem}")
    return result, arrays


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m runners.execution.worker REQUEST.json OUT_PREFIX", file=sys.stderr)
        return 2
    out = Path(argv[1])
    try:
        run = RunConfig(**json.loads(Path(argv[0]).read_text()))
        result, arrays = execute(run, out)
    except UnsupportedError as exc:
        result, arrays = {"status": "unsupported", "reason": str(exc)}, None
    except PairbenchError as exc:
        result, arrays = {"status": "unavailable", "reason": str(exc)}, None
    except Exception as exc:  # any failure becomes a record with its reason
        traceback.print_exc()
        first = first_line(str(exc))
        result, arrays = {"status": "failed", "reason": f"{type(exc).__name__}: {first}"}, None
    if arrays is not None:
        _atomic_write(out.with_suffix(".npz"), lambda p: _save_npz(p, arrays))
    _atomic_write(out.with_suffix(".json"), lambda p: p.write_text(json.dumps(result, indent=1)))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
