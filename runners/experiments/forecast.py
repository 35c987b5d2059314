"""Forecasts: the same autoregressive inference in each framework, from one weights file and the same initial
conditions; a record per framework (latency, forecast-days per second, energy per forecast, memory) and the
parity of the two trajectories."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import numpy as np

from metrics.parity import compare_trajectories
from metrics.timing import summarize
from runners.data.synthetic import DATA_GENERATOR
from runners.devices import parse_device
from runners.engines.spec import formulated, parse_engine
from runners.errors import PairbenchError
from runners.experiments import skeleton
from runners.experiments.datasets import configured, forecast_inits, save_mask
from runners.experiments.runs import device_profile, environment_fields
from runners.experiments.skeleton import Experiment, Outcome, Point, Side, run_point
from runners.options import DEFAULT_FORECAST_HOURS, ForecastOptions
from runners.records import schema
from runners.spec import FRAMEWORKS
from runners.weights.canonical import starting_weights, weights_digest
from runners.workloads.registry import get_workload


def lead_steps(n_lead: int | None, time_step_hours: float) -> int:
    """``n_lead``, or the steps of a ten-day forecast at ``time_step_hours`` (the default)."""
    if n_lead is not None:
        return n_lead
    steps = DEFAULT_FORECAST_HOURS / time_step_hours
    if steps < 1 or abs(steps - round(steps)) > 1e-9:
        raise PairbenchError(f"a ten-day forecast is not a whole number of {time_step_hours:g} h steps; give --n-lead")
    return int(round(steps))


def kept_alike(*paths: Path) -> tuple[list[np.ndarray], list[int], list[int]]:
    """The trajectories of the workers' files ``paths`` at the members and leads that all of them kept (see
    runners.execution.rollout.kept_trajectory; a file without ``members`` and ``leads`` kept all), so that like is
    compared with like; with those members (0-based) and leads (1-based)."""
    kept = []
    for path in paths:
        with np.load(path) as f:
            traj = f["trajectory"]
            members = f["members"].tolist() if "members" in f else list(range(traj.shape[0]))
            leads = f["leads"].tolist() if "leads" in f else list(range(1, traj.shape[1] + 1))
        kept.append((traj, members, leads))
    members = sorted(set.intersection(*(set(m) for _, m, _ in kept)))
    leads = sorted(set.intersection(*(set(k) for _, _, k in kept)))
    arrays = [t[[m.index(i) for i in members]][:, [k.index(j) for j in leads]] for t, m, k in kept]
    return arrays, members, leads


def forecast_fields(run, spec, result: dict, lead_hours: float) -> dict:
    """The measured fields of a successful forecast's record, from its worker's result."""
    n_lead, batch = run.data["n_lead"], run.batch_size
    rec = environment_fields(result)
    rec.update(summarize(result["forecast_ms"], "forecast"))
    days = n_lead * lead_hours / 24.0
    p50_s = rec["forecast_ms_p50"] / 1e3
    per_forecast = schema.finite_or_none(result.get("energy_j_per_sample"))
    profile = device_profile(run, result)
    rec.update({k: result[k] for k in schema.ENGINE_FIELDS if k in result})  # an exported graph's facts
    rec.update(
        {
            "forecast_ms": result["forecast_ms"],
            "lead_ms_p50": float(np.median(result["lead_ms"])),
            "first_forecast_ms": result["first_forecast_ms"],
            "compile_s": max(0.0, result["first_forecast_ms"] - rec["forecast_ms_p50"]) / 1e3,
            "forecast_days_per_s": batch * days / p50_s,
            "energy_j_per_forecast": per_forecast,
            "energy_j_per_forecast_day": None if per_forecast is None else per_forecast / days,
            "device_peak_mem_mb": result.get("device_peak_mem_mb"),
            "device_peak_mem_reason": result.get("device_peak_mem_reason"),
            "flops_forward_per_sample": spec.model.flops().forward,
            "hardware_profile": profile.id if profile else None,
            "provenance": {
                "timings": "measured",
                "lead_ms_p50": "measured: one more forecast, synchronised after every lead",
                "compile_s": "first forecast's excess over the median (it also keeps the compared trajectory)",
                "energy": result.get("power_provenance"),
                "flops": "analytic (matmul exact, FFT estimated)",
            },
        }
    )
    return rec


def _initial_conditions(dataset, spec, n_lead: int, seed: int, batch: int) -> tuple[dict, dict, str]:
    """What the identity says of the initial conditions, what the worker is told, and the record's label:
    the synthetic stream's first batch, or ``batch`` times of the data's test split."""
    if dataset is None:
        label = f"{DATA_GENERATOR} (seed {seed}): first batch"
        return {"generator": DATA_GENERATOR}, {"initial_conditions": "synthetic"}, label
    room = 0 if spec.model.in_chans == spec.model.out_chans else n_lead - 1  # data read at each lead's time
    return forecast_inits(dataset, room, batch)


class Forecast(Experiment):
    """Forecasts: the same autoregressive inference in each framework from the same initial conditions."""

    task = "forecast"

    def points(self, opts: ForecastOptions, progress) -> list[Point]:
        spec = get_workload(opts.workload).overridden(opts.model)
        dataset = None
        if opts.data is not None:
            spec, dataset = configured(spec, opts.data, progress)
        seed = secrets.randbits(31) if opts.seed is None else opts.seed
        hours = dataset.time_step_hours if dataset is not None else spec.time_step_hours
        n_lead = lead_steps(opts.n_lead, hours)
        tensors, weights_source = starting_weights(spec.model, opts.weights, seed)
        ic_ident, ic_worker, ic_label = _initial_conditions(dataset, spec, n_lead, seed, opts.batch_size)
        ident = skeleton.point_identity(
            "forecast",
            spec,
            digest=weights_digest(tensors),
            seed=seed,
            data={"initial_conditions": ic_ident, "n_lead": n_lead, "lead_hours": hours, "repeats": opts.repeats},
            batch_size=opts.batch_size,
            precision=opts.precision,
            mode=opts.mode,
            threads=opts.threads,
            warmup_steps=opts.warmup,
        )
        head = {
            "weights_source": weights_source,
            "initial_conditions": ic_label,
            "n_lead": n_lead,
            "lead_hours": hours,
            "forecast_hours": n_lead * hours,
        }
        worker_data = {**ic_worker, "n_lead": n_lead, "repeats": opts.repeats}
        name = f"{spec.name}-forecast-{seed}"
        context = {"dataset": dataset, "sides": forecast_sides(opts, spec.model)}
        return [Point(spec, name, ident, tensors, head, worker_data, context=context)]

    def prepare(self, point: Point, run_dir: Path) -> dict:
        dataset = point.context["dataset"]
        return {} if dataset is None else {"mask": save_mask(dataset, run_dir)}

    def announce(self, framework: str, point: Point, opts) -> str:
        n_lead, hours = point.head["n_lead"], point.head["lead_hours"]
        return (
            f"[{framework}] {point.spec.name} on {opts.device}: {opts.batch_size} forecast(s) of {n_lead} x {hours:g} "
            f"h, {opts.precision}, {opts.mode} ..."
        )

    def fields(self, run, result: dict, point: Point, run_dir: Path) -> dict:
        # an exported graph's formulation is its own (its FLOPs with it)
        return forecast_fields(run, formulated(point.spec, run.engine), result, point.head["lead_hours"])

    def sides(self, opts: ForecastOptions, point: Point) -> list[Side]:
        return point.context["sides"]

    def compare(self, point: Point, run_dir: Path, head: dict, results: dict[str, dict]) -> Outcome:
        """The frameworks' trajectories against each other, and each exported graph's against its source framework's
        (same weights, same initial conditions)."""
        frameworks = [key for key in results if key in FRAMEWORKS]
        outcome = Outcome(run_dir, [])
        if len(frameworks) >= 2:
            reference, other = skeleton.reference_and_other(frameworks)
            # a framework's files are named after it
            outcome = self._parity(run_dir, head, other, reference, (other, reference))
        for res in results.values():
            side = res.get("side")
            if side is None or side.engine is None or side.framework not in results:
                continue
            found = self._parity(run_dir, res["head"], side.stem, side.framework, (side.engine, side.framework))
            outcome.more_comparisons.append(found.comparison_record)
            outcome.agrees &= found.agrees
        return outcome

    def _parity(self, run_dir: Path, head: dict, other: str, reference: str, names: tuple[str, str]) -> Outcome:
        (a, b), members, leads = kept_alike(run_dir / f"{other}.npz", run_dir / f"{reference}.npz")
        precision, kind = head["precision"], parse_device(head["device"]).kind
        found = compare_trajectories(a, b, names, precision, kind, leads)
        found_here = {**found, "compared_members": members, "compared_leads": leads}
        name = "forecast_parity.json" if other in FRAMEWORKS else f"forecast_parity-{other}.json"
        (run_dir / name).write_text(json.dumps(found_here, indent=1))
        return skeleton.comparison_outcome(head, "forecast_parity", found)


def forecast_sides(opts: ForecastOptions, model) -> list[Side]:
    """Who forecasts: ``opts.frameworks``, or the frameworks and exported graphs of ``opts.engines``
    (runners.engines.spec, resolved for ``model`` and the device), every graph's source framework run too (its
    forecast is the graph's reference), frameworks first. What cannot run as asked is one sentence, before anything
    is written: an engine named twice, settings on a framework (it runs the model as configured), a graph in
    compiled mode (a graph runs as exported)."""
    if not opts.engines:
        return [Side(fw) for fw in opts.frameworks]
    if isinstance(opts.engines, str) or not all(isinstance(e, str) for e in opts.engines):
        raise PairbenchError("engines are a list of names (--engine a,b,...), not one text")
    kind = parse_device(opts.device).kind
    named, graphs = [], []
    for text in opts.engines:
        given = parse_engine(text)
        if given.is_framework and given != parse_engine(given.name):
            raise PairbenchError(
                f"--engine {text}: a framework runs the model as configured (give --spectral or --model for that); "
                "its exported graphs take settings (onnxruntime:..., mindir:...)"
            )
        (named if given.is_framework else graphs).append(given.resolve(model, kind))
    labels = [e.name for e in named] + [e.label for e in graphs]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice:
        raise PairbenchError(f"--engine names {twice} twice")
    if graphs and opts.mode != "eager":
        raise PairbenchError(
            f"an exported graph runs as it was exported, so mode {opts.mode} is the frameworks' own; run the graphs "
            "with --mode eager"
        )
    frameworks = dict.fromkeys([*(e.name for e in named), *(e.source for e in graphs)])
    return [Side(fw) for fw in frameworks] + [Side(e.source, e.label) for e in graphs]


def check_forecast_plan(plan: list[ForecastOptions]) -> None:
    """Every point's sides (see :func:`forecast_sides`) checked before the first point runs."""
    for opts in plan:
        forecast_sides(opts, get_workload(opts.workload).overridden(opts.model).model)


def run_forecast(opts: ForecastOptions, progress=print) -> Outcome:
    """Forecast with ``opts.workload`` in each framework from one weights file; returns records and the trajectories'
    parity (``comparison_record``)."""
    opts.validate()
    exp = Forecast()
    (point,) = exp.points(opts, progress)
    return run_point(exp, opts, point, progress)
