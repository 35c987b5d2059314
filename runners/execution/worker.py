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
import time
import traceback
from pathlib import Path

import numpy as np

from metrics.memory import RssPeak
from metrics.parity import has_gradient
from metrics.power.collectors import collector_for, cpu_name
from metrics.timing import time_steps
from runners.data.synthetic import synthetic_batch
from runners.devices import parse_device
from runners.records.schema import POWER_WINDOWS
from runners.spec import PairbenchError, RunConfig, UnsupportedError, masked_objective_refusal
from runners.weights.canonical import load_weights
from runners.workloads.registry import get_workload, runner_class


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file object keeps NumPy from appending ".npz" to the name
        np.savez(fh, **arrays)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def build(run: RunConfig):
    """The workload (with any model override), its checked weights, and the built runner."""
    spec = get_workload(run.workload)
    if run.model:
        spec = spec.with_model(run.model)
    weights = load_weights(Path(run.weights), spec.model)
    t0 = time.perf_counter()
    runner = runner_class(run.framework)(spec, run)
    runner.build(weights)
    runner.synchronize()
    return spec, weights, runner, time.perf_counter() - t0


# The timed steps' inputs are staged on the device before the power window opens when they take at most this
# much memory, so that the window holds the timed steps only; larger inputs are prepared step by step inside it.
# Staged inputs count toward the run's peak memory: 256 MiB at most (fourcastnet-tiny: 3 MB).
STAGE_BYTES = 256 << 20


def timed_training(run: RunConfig, runner, batch, n_steps: int, samples_per_step: int) -> dict:
    """``run.warmup_steps`` untimed Adam steps, then ``n_steps`` timed ones with power collected over the same
    window. ``batch(i)`` gives step i's host arrays (x, y, and a token mask for the masked objective); their
    transfer is timed apart (``input_ms``), and ``power_window`` says whether the window holds it."""

    def stage(i: int) -> tuple[list, float]:
        t_in = time.perf_counter()
        inputs = [runner.put(a) for a in batch(i)]
        runner.synchronize()
        return inputs, (time.perf_counter() - t_in) * 1e3

    def step(inputs: list, i: int) -> tuple[float, float]:
        t_step = time.perf_counter()
        loss = runner.train_step(*inputs)
        runner.synchronize()
        t_end = time.perf_counter()
        if not np.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at step {i}")
        return loss, (t_end - t_step) * 1e3

    warmup = [step(stage(i)[0], i) for i in range(run.warmup_steps)]
    timed_steps = range(run.warmup_steps, run.warmup_steps + n_steps)
    staged = sum(a.nbytes for a in batch(timed_steps[0])) * n_steps <= STAGE_BYTES
    ready = [stage(i) for i in timed_steps] if staged else []
    dev = parse_device(run.device)
    collector = collector_for(dev.kind, dev.index, run.power_rate_hz)
    # Power and timings come from the same window, fenced by synchronisation.
    runner.synchronize()
    collector.start()
    timed = []
    for k, i in enumerate(timed_steps):
        inputs, input_ms = ready[k] if staged else stage(i)
        timed.append((*step(inputs, i), input_ms))
    runner.synchronize()
    power = collector.stop()
    return {
        "losses": [loss for loss, _ in warmup] + [loss for loss, _, _ in timed],
        "input_ms": [t for _, _, t in timed],
        "step_ms": [t for _, t, _ in timed],
        "first_step_ms": warmup[0][1] if warmup else None,
        **runner.device_memory(),
        **power.to_record(samples_in_window=samples_per_step * n_steps),
        "power_window": POWER_WINDOWS[0 if staged else 1],
    }


def execute_pair(run: RunConfig, spec, runner) -> tuple[dict, dict[str, np.ndarray]]:
    """Parity and timing on synthetic batches: forward output, gradients, losses, step times."""
    shape = (run.batch_size, spec.model.in_chans, *spec.model.img_size)
    if run.objective == "masked" and (refusal := masked_objective_refusal(spec)):
        raise UnsupportedError(refusal)

    def batch(i: int):
        x, y = synthetic_batch(shape, spec.model.out_chans, run.seed, i)
        if run.objective != "masked":
            return x, y
        # Drawn on the host from the seed and step, so every framework masks the same patches.
        return x, y, spec.model.random_token_mask(run.batch_size, np.random.default_rng([run.seed, i, 1]))

    x0, y0, *mask0 = (runner.put(a) for a in batch(0))
    t0 = time.perf_counter()
    forward_output = runner.fetch(runner.forward(x0))
    forward_first_ms = (time.perf_counter() - t0) * 1e3
    # The first backward pass of the process: what it adds to the resident set is its activations and
    # gradients (no allocator cache from earlier steps to hide them). Sampled at 200 Hz, here only.
    memory = RssPeak()
    memory.start()
    t0 = time.perf_counter()
    loss0, grads = runner.loss_and_grads(x0, y0, *mask0)
    runner.synchronize()
    if not np.isfinite(loss0):
        raise FloatingPointError(f"the loss of the parity step (before step 0) is {loss0}")
    first_backward_ms = (time.perf_counter() - t0) * 1e3
    rss_before, rss_peak = memory.stop()
    forward_ms = time_steps(lambda: runner.forward(x0), run.warmup_steps, run.forward_steps, runner.synchronize)
    training = timed_training(run, runner, lambda i: batch(i + 1), run.train_steps, run.batch_size)
    # First calls carry compilation or graph building (and first-touch allocation): their excess over
    # the steady-state medians is recorded apart from them.
    compile_s = (
        max(0.0, forward_first_ms - float(np.median(forward_ms)))
        + max(0.0, first_backward_ms - float(np.median(training["step_ms"])))
    ) / 1e3
    result = {
        "compile_s": compile_s,
        "first_backward_ms": first_backward_ms,
        "backward_rss_growth_mb": rss_peak - rss_before,
        **getattr(runner, "activation_memory", {}),
        "loss_initial": loss0,
        "gradient_missing": sorted(n for n in spec.model.parameter_shapes() if not has_gradient(grads.get(n))),
        "forward_first_ms": forward_first_ms,
        "forward_ms": forward_ms,
        **training,
    }
    arrays = {"forward_output": forward_output, **{f"grad/{k}": v for k, v in grads.items()}}
    return result, arrays


def execute(run: RunConfig) -> tuple[dict, dict[str, np.ndarray]]:
    """Build, then run the requested task; returns the JSON-able result and the arrays."""
    spec, weights, runner, build_s = build(run)
    if run.task == "skill":
        from runners.experiments.skill import execute_skill

        result, arrays = execute_skill(run, spec, runner)
    elif run.task == "pair":
        result, arrays = execute_pair(run, spec, runner)
    else:
        raise PairbenchError(f"unknown task '{run.task}'")
    result = {
        **runner.versions(),
        "status": "ok",
        "task": run.task,
        "python": platform.python_version(),
        "host": platform.node(),
        "param_count": int(sum(v.size for v in weights.values())),
        "build_s": build_s,
        "host_peak_rss_mb": _peak_rss_mb(),
        "cpu_name": cpu_name(),
        **result,
    }
    return result, arrays


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m runners.execution.worker REQUEST.json OUT_PREFIX", file=sys.stderr)
        return 2
    out = Path(argv[1])
    try:
        run = RunConfig(**json.loads(Path(argv[0]).read_text()))
        result, arrays = execute(run)
    except UnsupportedError as exc:
        result, arrays = {"status": "unsupported", "reason": str(exc)}, None
    except PairbenchError as exc:
        result, arrays = {"status": "unavailable", "reason": str(exc)}, None
    except Exception as exc:  # any failure becomes a record with its reason
        traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result, arrays = {"status": "failed", "reason": f"{type(exc).__name__}: {first}"}, None
    if arrays is not None:
        _atomic_write(out.with_suffix(".npz"), lambda p: _save_npz(p, arrays))
    _atomic_write(out.with_suffix(".json"), lambda p: p.write_text(json.dumps(result, indent=1)))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
