"""What a worker does once its backend is built: timed training with its power window, the paired run's
parity and timing task, and the skill task (train on data, then roll out)."""

from __future__ import annotations

import time

import numpy as np

from metrics.memory import RssPeak
from metrics.parity import has_gradient
from metrics.power.collectors import collector_for
from metrics.timing import time_steps
from runners.data.synthetic import synthetic_batch
from runners.devices import parse_device
from runners.records.schema import POWER_WINDOWS
from runners.spec import RunConfig, UnsupportedError, masked_objective_refusal

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


def execute_skill(run: RunConfig, spec, runner) -> tuple[dict, dict[str, np.ndarray]]:
    """Train on the data set for the budget, then roll out; forecasts are returned normalised.

    The data set's first ``out_chans`` channels are the model's outputs; any further input channels
    (AI-GOMS's atmospheric forcings and orography) are read from the data at each input time, in training
    and in the rollout alike. Where the model's outputs are undefined (land, ``output_mask``), a forecast is
    fed back with each channel's ocean mean there, as the data holds land, so that untrained land values
    do not leak into later leads."""
    d = run.data
    data = np.load(d["path"], mmap_mode="r")
    mean = np.asarray(d["mean"], np.float32)[:, None, None]
    std = np.asarray(d["std"], np.float32)[:, None, None]
    n_out = spec.model.out_chans
    mask = spec.model.output_mask()

    def norm(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((a - mean) / std, dtype=np.float32)

    t0, t1 = d["train"]
    rng = np.random.default_rng([run.seed, 1])  # the same batch order in every framework
    order = rng.integers(t0, t1 - 1, size=(run.warmup_steps + run.train_steps, run.batch_size))

    def batch(i: int):
        return norm(data[order[i]]), np.ascontiguousarray(norm(data[order[i] + 1])[:, :n_out])

    training = timed_training(run, runner, batch, run.train_steps, run.batch_size)
    inits = np.asarray(d["inits"])
    x = runner.put(norm(data[inits]))
    forecasts, rollout_ms = [], []
    for k in range(d["n_lead"]):
        runner.synchronize()
        start = time.perf_counter()
        out = runner.forward(x)
        runner.synchronize()
        rollout_ms.append((time.perf_counter() - start) * 1e3)
        forecasts.append(runner.fetch(out))
        if n_out == data.shape[1] and mask is None:
            x = out
        elif k + 1 < d["n_lead"]:  # the next input: this forecast, then the forcings and static fields at its time
            extra = norm(data[inits + k + 1])[:, n_out:]
            x = runner.put(np.concatenate([fill_undefined(forecasts[-1], mask), extra], axis=1))
    return {**training, "rollout_ms": rollout_ms}, {"forecasts": np.stack(forecasts, axis=1)}


def fill_undefined(fields: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``fields`` (batch, channel, lat, lon) with the cells where ``mask`` (channel, lat, lon) is 0 set to the
    channel's mean over the cells where it is 1, per sample: how the built-in ocean data holds land."""
    if mask is None:
        return fields
    keep = mask.astype(bool)
    means = (fields * keep).sum(axis=(-2, -1), keepdims=True) / keep.sum(axis=(-2, -1), keepdims=True)
    return np.where(keep, fields, means).astype(fields.dtype)
