"""What a worker does once its backend is built: timed training with its power window, the paired run's
parity and timing task, the skill task (train on data, then roll out) and the forecast task (timed
autoregressive inference)."""

from __future__ import annotations

import time

import numpy as np

from metrics.memory import RssPeak
from metrics.parity import has_gradient
from metrics.timing import time_steps
from runners.data.synthetic import synthetic_batch
from runners.errors import PairbenchError, UnsupportedError
from runners.execution.rollout import data_reader, data_rollout
from runners.execution.window import TimedWindow
from runners.records.schema import WINDOW_STEPS, WINDOW_STEPS_AND_INPUTS, WINDOW_TO_TARGET
from runners.spec import RunConfig, masked_objective_refusal, scored_mask

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
    window = TimedWindow(run, runner, WINDOW_STEPS if staged else WINDOW_STEPS_AND_INPUTS).open()
    timed = []
    for k, i in enumerate(timed_steps):
        inputs, input_ms = ready[k] if staged else stage(i)
        timed.append((*step(inputs, i), input_ms))
    step_ms = [t for _, t, _ in timed]
    measured = window.close(step_ms, samples_per_step * n_steps)
    return {
        "losses": [loss for loss, _ in warmup] + [loss for loss, _, _ in timed],
        "input_ms": [t for _, _, t in timed],
        "step_ms": step_ms,
        "first_step_ms": warmup[0][1] if warmup else None,
        **runner.device_memory(),
        **measured,
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


def training_order(train, breaks, seed: int, size: tuple[int, int]) -> np.ndarray:
    """The time of each training pair's input, (steps, batch): the pair is (t, t + 1), both inside ``train``
    ([start, end)), none crossing from one data file to the next (``breaks``, see
    runners.data.dataset.Dataset.breaks); drawn from ``seed``, so the same batch order in every framework."""
    t0, t1 = train
    rng = np.random.default_rng([seed, 1])
    if breaks:
        starts = np.setdiff1d(np.arange(t0, t1 - 1), breaks)
        if starts.size == 0:
            raise PairbenchError(f"the training split {tuple(train)} holds no two consecutive times of one data file")
        return starts[rng.integers(0, starts.size, size=size)]
    return rng.integers(t0, t1 - 1, size=size)


def execute_skill(run: RunConfig, spec, runner) -> tuple[dict, dict[str, np.ndarray]]:
    """Train on the data set for the budget (or until the target, ``data["target"]``), then roll out; forecasts
    are returned normalised.

    The data set's first ``out_chans`` channels are the model's outputs; any further input channels
    (AI-GOMS's atmospheric forcings and orography) are read from the data at each input time, in training
    and in the rollout alike (see :class:`Rollout` for what is fed back where outputs are undefined). Cells
    missing in the data are 0 in the inputs and left out of the loss."""
    d = run.data
    fields, data_mask = data_reader(d)
    n_out = spec.model.out_chans
    order = training_order(d["train"], d.get("breaks"), run.seed, (run.warmup_steps + run.train_steps, run.batch_size))

    def batch(i: int):
        return fields(order[i]), np.ascontiguousarray(fields(order[i] + 1)[:, :n_out])

    inits = np.asarray(d["inits"])
    roll = data_rollout(spec, fields, inits, data_mask)
    if d.get("target"):
        training = train_to_target(run, runner, batch, d, fields, spec, data_mask)
    else:
        training = timed_training(run, runner, batch, run.train_steps, run.batch_size)
    forecasts, rollout_ms = [], []
    roll.run(runner, fields(inits), d["n_lead"], keep=forecasts, lead_ms=rollout_ms)
    return {**training, "rollout_ms": rollout_ms}, {"forecasts": np.stack(forecasts, axis=1)}


def train_to_target(run: RunConfig, runner, batch, d: dict, fields, spec, data_mask) -> dict:
    """Adam steps until the validation RMSE of one channel at one lead reaches the target, checked every
    ``check_every`` steps and after the last step of the budget (``train_steps``). Power is collected from the
    first step to the check that reached the target (or the end of the budget): steps and checks alike, as a
    user waits for both."""
    from metrics.skill import RMSE

    t = d["target"]
    c, lead = int(t["channel_index"]), int(t["lead_steps"])
    inits = np.asarray(t["inits"], dtype=np.int64)
    roll = data_rollout(spec, fields, inits, data_mask)
    x_val = fields(inits)
    scale, shift = float(d["std"][c]), float(d["mean"][c])
    truth = fields(inits + lead)[:, c : c + 1] * scale + shift
    cells = scored_mask(spec, data_mask)
    mask = None if cells is None else cells[c : c + 1]
    metric = RMSE(t["convention"])

    def validation_rmse() -> float:
        kept: list[np.ndarray] = []
        roll.run(runner, x_val, lead, keep=kept)
        pred = kept[-1][:, c : c + 1] * scale + shift
        return float(metric.compute(pred, truth, np.asarray(t["lats_deg"]), mask=mask)[0])

    window = TimedWindow(run, runner, WINDOW_TO_TARGET).open()
    start = time.perf_counter()
    losses, step_ms, checks, reached = [], [], [], None
    for i in range(run.train_steps):
        inputs = [runner.put(a) for a in batch(i)]
        t0 = time.perf_counter()
        loss = runner.train_step(*inputs)
        runner.synchronize()
        step_ms.append((time.perf_counter() - t0) * 1e3)
        if not np.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at step {i}")
        losses.append(loss)
        if (i + 1) % int(t["check_every"]) and i + 1 < run.train_steps:
            continue
        value = validation_rmse()
        checks.append([i + 1, value if np.isfinite(value) else None])
        if np.isfinite(value) and value <= float(t["rmse"]):
            reached = (i + 1, time.perf_counter() - start)
            break
    power_fields = window.close(step_ms, run.batch_size * len(step_ms))
    finite = [v for _, v in checks if v is not None]
    return {
        "losses": losses,
        "step_ms": step_ms,
        "input_ms": [],
        "first_step_ms": step_ms[0] if step_ms else None,
        **runner.device_memory(),
        **power_fields,
        "tta": {
            "tta_reached": reached is not None,
            "tta_checks": checks,
            "tta_best_rmse": min(finite) if finite else None,
            "tta_steps": reached[0] if reached else None,
            "tta_wall_s": reached[1] if reached else None,
            "tta_energy_j": power_fields["energy_j"] if reached else None,
            "tta_energy_reason": None
            if reached and power_fields["energy_j"] is not None
            else ("the target was not reached" if not reached else power_fields["power_reason"]),
        },
    }
