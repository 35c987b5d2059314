"""Autoregressive rollouts in a worker: the one loop that skill scoring, validation against a target and the
timed forecast task share, how each next input is assembled, and the forecast task itself."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from runners.data.synthetic import synthetic_batch
from runners.execution.window import TimedWindow
from runners.records.schema import WINDOW_FORECASTS
from runners.spec import RunConfig

# The compared trajectory (the first forecast's leads, kept on the host and written by each framework) takes at most
# about this: above it, KEPT_LEADS leads and a sample of members (see :func:`kept_trajectory`). One member of a
# ten-day fourcastnet-era5 forecast is 40 x 20 x 720 x 1440 x 4 B = 3.3 GB.
TRAJECTORY_BYTES = 1 << 30
KEPT_LEADS = 5
# Timed forecasts continue past --repeats (up to MAX_TIMED_FORECASTS in all) until the power window is this long:
# a tiny model's forecast takes milliseconds, and the samplers read every 100 to 200 ms.
MIN_POWER_WINDOW_S = 2.0
MAX_TIMED_FORECASTS = 10_000


def _evenly(n: int, k: int) -> list[int]:
    """``k`` indices of ``range(n)`` evenly spaced, the first and the last among them (``k`` at most ``n``)."""
    if k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return [(i * (n - 1) + (k - 1) // 2) // (k - 1) for i in range(k)]


def kept_trajectory(
    members: int, n_lead: int, member_lead_bytes: int, budget: int = TRAJECTORY_BYTES
) -> tuple[list[int], list[int]]:
    """Which members and leads (0-based) of a forecast of ``members`` x ``n_lead`` fields of ``member_lead_bytes``
    each are kept for the parity check. All of them where they take at most ``budget``; else ``KEPT_LEADS`` leads,
    evenly spaced with the first and the last, and as many members as fit in ``budget`` at those leads, evenly
    spaced with the first (at least one: where one member at those leads is over the budget, the first and last
    leads of the first member, however large). The choice depends only on the shapes, so both frameworks keep the
    same leads and members."""
    if members * n_lead * member_lead_bytes <= budget:
        return list(range(members)), list(range(n_lead))
    leads = _evenly(n_lead, KEPT_LEADS)
    fit = budget // (len(leads) * member_lead_bytes)
    if fit < 1:
        return [0], _evenly(n_lead, 2)
    return _evenly(members, min(members, fit)), leads


def fill_undefined(fields: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``fields`` (batch, channel, lat, lon) with the cells where ``mask`` (channel, lat, lon) is 0 set to the
    channel's mean over the cells where it is 1, per sample: how the built-in ocean data holds land."""
    if mask is None:
        return fields
    keep = mask.astype(bool)
    means = (fields * keep).sum(axis=(-2, -1), keepdims=True) / keep.sum(axis=(-2, -1), keepdims=True)
    return np.where(keep, fields, means).astype(fields.dtype)


class Rollout:
    """How a model's forecast becomes its next input.

    ``n_out`` of the model's inputs are forecast; ``extra(k)`` gives the others (forcings, static fields) at lead
    ``k``, or is None where every input is forecast. Where the model's outputs are undefined (``output_mask``,
    AI-GOMS's land) a forecast is fed back with each channel's mean there, as the built-in ocean data holds land;
    cells that are missing in the data (``data_mask`` 0) are fed back as 0, the normalised channel mean, as the
    data's own missing cells are fed. Otherwise the output stays on the device and is the next input."""

    def __init__(self, n_out: int, extra: Callable[[int], np.ndarray] | None, output_mask, data_mask=None):
        self.n_out, self.extra = n_out, extra
        self.output_mask = output_mask
        self.data_mask = None if data_mask is None else data_mask[:n_out].astype(bool)
        self.on_device = extra is None and output_mask is None and self.data_mask is None

    def next_input(self, forecast: np.ndarray, k: int) -> np.ndarray:
        """The input at lead ``k`` (host arrays) after ``forecast``, the forecast of lead ``k``."""
        x = fill_undefined(forecast, self.output_mask)
        if self.data_mask is not None:
            x = np.where(self.data_mask, x, 0.0).astype(np.float32)
        if self.extra is None:
            return np.ascontiguousarray(x)
        return np.ascontiguousarray(np.concatenate([x, self.extra(k)], axis=1))

    def run(self, runner, x0: np.ndarray, n_lead: int, keep: list | None = None, lead_ms: list | None = None,
            kept: tuple[list[int], list[int]] | None = None) -> None:  # fmt: skip
        """``n_lead`` steps from the host array ``x0``; appends each lead's forecast to ``keep`` (only the members
        and leads of ``kept``, as :func:`kept_trajectory` gives them, where given) and, synchronising after each
        lead, each lead's milliseconds to ``lead_ms``: its forward pass and whatever else it does here (the fetch of
        its forecast, the next input assembled and put)."""
        members, leads = kept if kept is not None else (None, None)
        leads = None if leads is None else set(leads)
        x = runner.put(x0)
        for k in range(n_lead):
            t0 = time.perf_counter()
            out = runner.forward(x)
            keeps = keep is not None and (leads is None or k in leads)
            host = runner.fetch(out) if keeps or not self.on_device else None
            if keeps:
                keep.append(host if members is None else host[members])
            if k + 1 < n_lead:
                x = out if self.on_device else runner.put(self.next_input(host, k + 1))
            if lead_ms is not None:
                runner.synchronize()
                lead_ms.append((time.perf_counter() - t0) * 1e3)
        runner.synchronize()


def data_rollout(spec, fields: Callable[[np.ndarray], np.ndarray], inits: np.ndarray, data_mask) -> Rollout:
    """The rollout of ``spec``'s model from the data's times ``inits``: the inputs it does not forecast are read
    from the data (``fields``, see :func:`data_reader`) at each lead's time."""
    n_out = spec.model.out_chans
    extra = None if n_out == spec.model.in_chans else (lambda k: fields(inits + k)[:, n_out:])
    return Rollout(n_out, extra, spec.model.output_mask(), data_mask)


def forecast_inputs(run: RunConfig, spec) -> tuple[np.ndarray, Rollout]:
    """The normalised initial conditions (batch, in_chans, lat, lon) and their :class:`Rollout`.

    Synthetic initial conditions (the synthetic batch stream's first batch) hold their extra channels at their
    initial values; initial conditions from data read them from the data at each lead's time."""
    d = run.data
    n_out, n_in = spec.model.out_chans, spec.model.in_chans
    if d["initial_conditions"] == "synthetic":
        x0, _ = synthetic_batch((run.batch_size, n_in, *spec.model.img_size), n_out, run.seed, 0)
        extra = None if n_in == n_out else (lambda k: x0[:, n_out:])
        return x0, Rollout(n_out, extra, spec.model.output_mask())
    fields, mask = data_reader(d)
    inits = np.asarray(d["inits"], dtype=np.int64)
    return fields(inits), data_rollout(spec, fields, inits, mask)


def data_reader(d: dict) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray | None]:
    """``fields(indices)``: the data's time steps ``indices``, normalised, missing cells 0; and the data's mask of
    valid cells (None when it has no missing cell), from what the parent wrote into ``d``."""
    from runners.data.dataset import normalise, reopen
    from runners.data.source import read_indices

    source = reopen(d["source"])
    mean, std = np.asarray(d["mean"]), np.asarray(d["std"])
    mask = np.load(d["mask"]) if d.get("mask") else None
    return (lambda idx: normalise(read_indices(source, idx), mean, std)), mask


def execute_forecast(run: RunConfig, spec, runner) -> tuple[dict, dict[str, np.ndarray]]:
    """Autoregressive inference: ``n_lead`` steps from the same initial conditions in every framework.

    The first forecast keeps the trajectory compared across frameworks (every lead of every member up to
    TRAJECTORY_BYTES, else the members and leads of :func:`kept_trajectory`, written beside it as ``members``
    (0-based) and ``leads`` (1-based, lead 1 the first forecast step)) and carries compilation; ``warmup_steps``
    more are untimed; then at least ``repeats``
    forecasts are timed (more, while the timed window is shorter than MIN_POWER_WINDOW_S), each from the host's
    initial conditions to the last lead on the device (synchronised), with power over exactly those; a last one
    synchronises after every lead to time the leads apart."""
    d = run.data
    n_lead, repeats = int(d["n_lead"]), int(d["repeats"])
    x0, roll = forecast_inputs(run, spec)
    n_out = spec.model.out_chans
    member_lead_bytes = n_out * int(np.prod(x0.shape[2:])) * np.dtype(np.float32).itemsize  # as fetched
    members, leads = kept_trajectory(run.batch_size, n_lead, member_lead_bytes)

    trajectory: list[np.ndarray] = []
    runner.synchronize()
    t0 = time.perf_counter()
    roll.run(runner, x0, n_lead, keep=trajectory, kept=(members, leads))
    first_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(run.warmup_steps):
        roll.run(runner, x0, n_lead)
    window = TimedWindow(run, runner, WINDOW_FORECASTS).open()
    forecast_ms: list[float] = []
    start = time.perf_counter()
    while len(forecast_ms) < repeats or (
        time.perf_counter() - start < MIN_POWER_WINDOW_S and len(forecast_ms) < MAX_TIMED_FORECASTS
    ):
        t0 = time.perf_counter()
        roll.run(runner, x0, n_lead)
        forecast_ms.append((time.perf_counter() - t0) * 1e3)
    measured = window.close(forecast_ms, run.batch_size * len(forecast_ms))
    lead_ms: list[float] = []
    roll.run(runner, x0, n_lead, lead_ms=lead_ms)
    result = {
        "first_forecast_ms": first_ms,
        "forecast_ms": forecast_ms,
        "lead_ms": lead_ms,
        "trajectory_members": members,
        "trajectory_leads": [k + 1 for k in leads],
        **runner.device_memory(),
        **measured,
    }
    kept = {"members": np.asarray(members), "leads": np.asarray(leads) + 1}
    return result, {"trajectory": np.stack(trajectory, axis=1), **kept}
