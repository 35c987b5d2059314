"""Paired runs: one weights file, one worker subprocess per framework, records and parity figures."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import numpy as np

from hardware_profiles import mfu
from metrics.parity import compare
from metrics.timing import summarize
from runners.data.synthetic import DATA_GENERATOR
from runners.devices import parse_device
from runners.errors import PairbenchError
from runners.experiments import skeleton
from runners.experiments.runs import device_profile, environment_fields
from runners.experiments.skeleton import Experiment, Outcome, Point, run_point
from runners.options import PairOptions
from runners.records import schema
from runners.records.store import append_record, read_records_lenient, records_path
from runners.spec import RunConfig, masked_objective_refusal
from runners.weights.canonical import starting_weights, weights_digest
from runners.workloads.registry import get_workload

_MEMORY_AND_COMPILE = (
    "first_step_ms", "compile_s", "forward_first_ms", "first_backward_ms", "backward_rss_growth_mb",
    "saved_activations_mb", "device_peak_mem_mb", "device_peak_mem_reason",
)  # fmt: skip


def run_fields(run: RunConfig, spec, result: dict) -> dict:
    """The measured fields of a successful timing run's record, from its worker's result."""
    flops = spec.model.flops()
    step_s = float(np.median(result["step_ms"])) / 1e3
    rec = environment_fields(result)
    rec.update({k: result[k] for k in ("loss_initial", "losses", "forward_ms", "step_ms", "input_ms")})
    rec.update({k: result.get(k) for k in _MEMORY_AND_COMPILE})
    rec["gradient_missing"] = result["gradient_missing"]
    rec.update(summarize(result["forward_ms"], "forward"))
    rec.update(summarize(result["step_ms"], "step"))
    rec.update(summarize(result["input_ms"], "input"))
    achieved = flops.train * run.batch_size / step_s
    profile = device_profile(run, result)
    utilisation = mfu(achieved, profile, run.precision)
    rec.update(
        {
            "samples_per_s": run.batch_size / step_s,
            "flops_forward_per_sample": flops.forward,
            "flops_train_per_sample": flops.train,
            "achieved_tflops_train": achieved / 1e12,
            "hardware_profile": profile.id if profile else None,
            "mfu_train": utilisation,
            "mfu_reason": None
            if utilisation is not None
            else (f"profile {profile.id} has no {run.precision} peak" if profile else "no hardware profile matches"),
            "provenance": {
                "timings": "measured",
                "flops": "analytic (matmul exact, FFT estimated)",
                "host_peak_rss_mb": "measured (getrusage ru_maxrss)",
                "power": rec.get("power_provenance"),
                "mfu": "analytic FLOPs / datasheet peak" if utilisation is not None else "unavailable",
            },
        }
    )
    return rec


def records_on_file(path: Path, progress=print) -> list[dict]:
    """The valid records already in ``path`` (none when it does not exist), saying how many lines were skipped."""
    if not path.is_file():
        return []
    records, skipped = read_records_lenient(path)
    if skipped:
        progress(f"--resume: {len(skipped)} line(s) of {path} cannot be read and are left as they are ({skipped[0]})")
    return records


def completed_runs(records: list[dict], head: dict) -> dict[str, dict]:
    """Successful run records that are the same run as ``head`` would be (schema.RUN_KEY), by framework (the
    latest, where a run was done twice)."""
    out = {}
    for r in records:
        if r["record_type"] == "run" and r["status"] == "ok":
            if schema.run_key(r) == schema.run_key({**head, "framework": r["framework"]}):
                out[r["framework"]] = r
    return out


def recorded_pairing(records_file: Path, records: list[dict], runs: list[dict], spec, ident: dict) -> tuple[dict, dict]:
    """The parity of ``runs``, all recorded already (from the arrays in their folders), and its record: the one among
    ``records`` (those of ``records_file``) written for exactly this pairing, else a new one, appended. Raises
    OSError or KeyError when the runs' arrays are gone."""
    latest = max(runs, key=lambda r: (r["timestamp"], r["run_id"]))
    head = schema.header(
        ident, run_id=latest["run_id"], timestamp=latest["timestamp"], workload=latest["workload"],
        device=latest["device"], commit=latest.get("pairbench_commit"),
    )  # fmt: skip
    results = {r["framework"]: {"losses": r["losses"], "loss_initial": r["loss_initial"]} for r in runs}
    run_dirs = {r["framework"]: records_file.parent / r["run_id"] for r in runs}
    reference = "torch" if "torch" in results else runs[0]["framework"]
    other = next(r["framework"] for r in runs if r["framework"] != reference)
    found = parity(run_dirs, reference, other, results, spec, head)
    same = [
        r
        for r in records
        if r["record_type"] == "parity"
        and schema.run_key(r) == schema.run_key(head)
        and r["run_id"] == head["run_id"]
        and all(r.get(k) == v for k, v in found.items())
    ]
    if same:
        return found, same[-1]
    record = schema.record(head, "parity", **found)
    (run_dirs[latest["framework"]] / "parity.json").write_text(json.dumps(found, indent=1))
    append_record(records_file, record)
    return found, record


def load_gradients(path: Path, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray | None]]:
    """A worker's forward output and its gradients by parameter name (None where it had no gradient)."""
    with np.load(path) as arrays:
        return arrays["forward_output"], {n: arrays[f"grad/{n}"] if f"grad/{n}" in arrays else None for n in names}


def parity(run_dirs: dict[str, Path], reference: str, other: str, results: dict[str, dict], spec, head: dict) -> dict:
    """The parity of ``other`` against ``reference`` from their workers' arrays and losses (metrics.parity)."""
    names = list(spec.model.parameter_shapes())
    fwd_ref, grads_ref = load_gradients(run_dirs[reference] / f"{reference}.npz", names)
    fwd_oth, grads_oth = load_gradients(run_dirs[other] / f"{other}.npz", names)
    return compare(
        (fwd_oth, fwd_ref),
        (grads_oth, grads_ref),
        tuple([results[fw]["loss_initial"], *results[fw]["losses"]] for fw in (other, reference)),
        (other, reference),
        head["precision"],
        parse_device(head["device"]).kind,
    )


class Pair(Experiment):
    """Paired training runs: parity (forward, gradients, losses) and timings on synthetic batches."""

    task = "pair"

    def points(self, opts: PairOptions, progress) -> list[Point]:
        spec = get_workload(opts.workload).overridden(opts.model)
        if opts.objective == "masked" and (refusal := masked_objective_refusal(spec)):
            raise PairbenchError(refusal)
        seed = secrets.randbits(31) if opts.seed is None else opts.seed
        # read and checked before anything is written: a refusal leaves no run folder behind
        tensors, weights_source = starting_weights(spec.model, opts.weights, seed)
        ident = skeleton.point_identity(
            "run",
            spec,
            digest=weights_digest(tensors),
            seed=seed,
            data={"generator": DATA_GENERATOR},
            batch_size=opts.batch_size or spec.batch_size,
            precision=opts.precision,
            mode=opts.mode,
            threads=opts.threads,
            recompute=opts.recompute,
            warmup_steps=opts.warmup_steps,
            train_steps=opts.train_steps,
            forward_steps=opts.forward_steps,
            objective=opts.objective,
        )
        head = {"weights_source": weights_source}
        return [Point(spec, f"{spec.name}-{seed}", ident, tensors, head)]

    def announce(self, framework: str, point: Point, opts) -> str:
        batch = point.ident["batch_size"]
        return f"[{framework}] {point.spec.name} on {opts.device}, batch {batch}: building and running ..."

    def fields(self, run, result: dict, point: Point, run_dir: Path) -> dict:
        return run_fields(run, point.spec, result)

    def compare(self, point: Point, run_dir: Path, head: dict, results: dict[str, dict]) -> Outcome:
        reference, other = skeleton.reference_and_other(results)
        records = {fw: res["record"] for fw, res in results.items()}
        folders = {fw: run_dir.parent / rec["run_id"] for fw, rec in records.items()}
        found = parity(folders, reference, other, records, point.spec, head)
        (run_dir / "parity.json").write_text(json.dumps(found, indent=1))
        return skeleton.comparison_outcome(head, "parity", found)


def run_pair(opts: PairOptions, progress=print) -> Outcome:
    """Run ``opts.workload`` in each framework from one weights file; returns records and parity (``comparison``)."""
    opts.validate()
    exp = Pair()
    (point,) = exp.points(opts, progress)
    records_file = records_path(opts.results_dir)
    existing = records_on_file(records_file, progress) if opts.resume else []
    done = completed_runs(existing, {**point.ident, "device": opts.device})
    if done and all(fw in done for fw in opts.frameworks):  # nothing to run: no new folder, no copy of the weights
        runs = [done[fw] for fw in opts.frameworks]
        found = parity_record = None
        try:
            if len(runs) > 1:  # the pairing's parity, from the recorded runs' own arrays
                found, parity_record = recorded_pairing(records_file, existing, runs, point.spec, point.ident)
        except (OSError, KeyError) as exc:
            progress(f"--resume: the arrays of the runs already done cannot be read ({exc}); running them again")
            done = {}
        else:
            for fw in opts.frameworks:
                progress(f"[{fw}] already done in {done[fw]['run_id']}: skipped (--resume)")
            latest = max(runs, key=lambda r: (r["timestamp"], r["run_id"]))
            folder = Path(opts.results_dir) / latest["run_id"]
            agrees = skeleton.holds(found)
            return Outcome(folder, runs, comparison=found, comparison_record=parity_record, agrees=agrees)
    kept = {fw: r for fw, r in done.items() if (Path(opts.results_dir) / r["run_id"] / f"{fw}.npz").is_file()}
    for fw in sorted(set(done) - set(kept)):
        progress(f"--resume: the arrays of {fw}'s run {done[fw]['run_id']} are gone; running it again")
    return run_point(exp, opts, point, progress, kept)
