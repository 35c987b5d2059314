"""Paired runs: one weights file, one worker subprocess per framework, records and parity figures."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from hardware_profiles import match_profile, mfu
from metrics.parity import relative_differences, relative_l2, worst_relative_l2
from metrics.timing import summarize
from reports.records import append_record, read_records
from runners.devices import parse_device
from runners.registry import DEFAULT_WORKLOAD, check_framework, get_workload
from runners.spec import (
    FRAMEWORKS,
    MODES,
    OBJECTIVES,
    PRECISIONS,
    SCHEMA_VERSION,
    PairbenchError,
    RunConfig,
    masked_objective_refusal,
)
from runners.weights import load_weights, save_weights

# fp32: the foundation issue's acceptance bounds. Low precision: each framework rounds differently
# (kernels, accumulation order), so the two agree only to the dtype's resolution; bounds from measured
# CPU runs with a margin (see README).
TOLERANCES = {"forward": 1e-5, "gradients": 1e-4, "losses": 1e-4}
LOW_PRECISION_TOLERANCES = {
    "bf16": {"forward": 5e-2, "gradients": 2e-1, "losses": 5e-2},
    "fp16": {"forward": 1e-2, "gradients": 5e-2, "losses": 1e-2},
}
DATA_GENERATOR = "synthetic-normal-advect-east/1"


@dataclass
class PairOptions:
    workload: str = DEFAULT_WORKLOAD
    frameworks: tuple[str, ...] = FRAMEWORKS
    device: str = "cpu"
    precision: str = "fp32"
    mode: str = "eager"
    objective: str = "forecast"
    recompute: bool = False
    threads: int | None = None
    batch_size: int | None = None
    warmup_steps: int = 3
    train_steps: int = 20
    forward_steps: int = 20
    seed: int | None = None
    weights: str | None = None
    results_dir: Path = Path("results")
    timeout_s: float = 3600.0
    model: dict = field(default_factory=dict)
    resume: bool = False

    def validate(self) -> None:
        parse_device(self.device)
        if self.precision not in PRECISIONS:
            raise PairbenchError(f"unknown precision '{self.precision}'; choose from {', '.join(PRECISIONS)}")
        if self.mode not in MODES:
            raise PairbenchError(f"unknown mode '{self.mode}'; choose from {', '.join(MODES)}")
        if self.objective not in OBJECTIVES:
            raise PairbenchError(f"unknown objective '{self.objective}'; choose from {', '.join(OBJECTIVES)}")
        if self.resume and self.seed is None:
            raise PairbenchError("--resume needs --seed, so that the runs already done can be recognised")
        for fw in self.frameworks:
            check_framework(fw)
        if len(set(self.frameworks)) != len(self.frameworks):
            raise PairbenchError("each framework may be named once")
        minimum = {"warmup_steps": 0, "train_steps": 1, "forward_steps": 1}
        for name, least in minimum.items():
            if getattr(self, name) < least:
                raise PairbenchError(f"{name.replace('_', '-')} must be at least {least}")
        if self.batch_size is not None and self.batch_size < 1:
            raise PairbenchError("batch-size must be at least 1")


@dataclass
class PairOutcome:
    run_dir: Path
    records: list[dict]
    parity: dict | None
    parity_record: dict | None = None

    @property
    def ok(self) -> bool:
        statuses_ok = all(r["status"] == "ok" for r in self.records)
        return statuses_ok and (self.parity is None or self.parity["within_tolerance"])


def fingerprint(parts: dict) -> str:
    """Short SHA-256 of what makes two runs the same work (canonical JSON of ``parts``)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _new_run_dir(results_dir: Path, name: str) -> Path:
    """A fresh directory for one paired run; never reuses (and so never overwrites) an earlier one."""
    results_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = results_dir / (name if n == 1 else f"{name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise PairbenchError(f"cannot create a run directory for {name} in {results_dir}")


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA indices then agree with NVML's
    return env


def run_worker(run: RunConfig, prefix: Path, timeout_s: float) -> dict:
    """Run one worker subprocess; a crash, kill or time-out becomes a failed result."""
    request = prefix.with_suffix(".request.json")
    request.write_text(json.dumps(run.to_dict(), indent=1))
    log = prefix.with_suffix(".log")
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "runners.worker", str(request), str(prefix)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=_worker_env(),
                timeout=timeout_s,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            return {"status": "failed", "reason": f"timed out after {timeout_s:.0f} s (log: {log})"}
    wall_s = time.perf_counter() - t0
    result_path = prefix.with_suffix(".json")
    if result_path.is_file():
        result = json.loads(result_path.read_text())
    else:
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        result = {"status": "failed", "reason": f"worker {how} before writing a result (log: {log})"}
    result["worker_wall_s"] = wall_s
    return result


_ENVIRONMENT = (
    "framework_version", "device_name", "cpu_name", "threads", "execution_mode", "python", "host",
    "param_count", "build_s", "host_peak_rss_mb",
)  # fmt: skip


_MEMORY_AND_COMPILE = (
    "first_step_ms", "compile_s", "forward_first_ms", "first_backward_ms", "backward_rss_growth_mb",
    "saved_activations_mb",
    "device_peak_mem_mb", "device_peak_mem_reason",
)  # fmt: skip


def _record_environment(result: dict) -> dict:
    """What a worker reported about its environment, and its power fields, for a record."""
    env = {k: result[k] for k in _ENVIRONMENT}
    if env["device_name"] == "cpu":
        env["device_name"] = result["cpu_name"]
    env.update({k: v for k, v in result.items() if k.startswith(("power_", "energy_", "samples_per_j"))})
    return env


def _record(base: dict, run: RunConfig, spec, result: dict) -> dict:
    rec = {**base, "framework": run.framework, "device": run.device, "status": result["status"]}
    if result["status"] != "ok":
        rec["reason"] = result.get("reason", "unknown")
        return rec
    flops = spec.model.flops()
    step_s = float(np.median(result["step_ms"])) / 1e3
    rec.update(_record_environment(result))
    rec.update({k: result[k] for k in ("loss_initial", "losses", "forward_ms", "step_ms", "input_ms")})
    rec.update({k: result.get(k) for k in _MEMORY_AND_COMPILE})
    rec.update(summarize(result["forward_ms"], "forward"))
    rec.update(summarize(result["step_ms"], "step"))
    rec.update(summarize(result["input_ms"], "input"))
    achieved = flops.train * run.batch_size / step_s
    kind = parse_device(run.device).kind
    profile = match_profile(kind, result["cpu_name"] if kind == "cpu" else result["device_name"])
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


_PARITY_KEYS = (
    "schema_version", "run_id", "timestamp", "workload", "workload_fingerprint", "precision", "mode", "recompute",
    "seed",
)  # fmt: skip


def _completed(path: Path, base: dict, device: str) -> dict[str, dict]:
    """Successful run records already in ``path`` for this fingerprint, device and execution mode."""
    if not path.is_file():
        return {}
    same = ("workload_fingerprint", "mode", "recompute")
    return {
        r["framework"]: r
        for r in read_records(path)
        if r.get("record_type", "run") == "run"
        and all(r.get(k) == base[k] for k in same)
        and r.get("device") == device
        and r.get("status") == "ok"
    }


def source_commit() -> str | None:
    """The git commit of this pairbench checkout, or None outside a git work tree."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _parity(
    run_dirs: dict[str, Path], reference: str, other: str, results: dict[str, dict], precision: str = "fp32"
) -> dict:
    ref = np.load(run_dirs[reference] / f"{reference}.npz")
    oth = np.load(run_dirs[other] / f"{other}.npz")
    grads_ref = {k[5:]: ref[k] for k in ref.files if k.startswith("grad/")}
    grads_oth = {k[5:]: oth[k] for k in oth.files if k.startswith("grad/")}
    grad_worst, grad_where = worst_relative_l2(grads_oth, grads_ref)
    losses = relative_differences(
        [results[other]["loss_initial"], *results[other]["losses"]],
        [results[reference]["loss_initial"], *results[reference]["losses"]],
    )
    out = {
        "reference": reference,
        "other": other,
        "forward_rel_l2": relative_l2(oth["forward_output"], ref["forward_output"]),
        "gradient_max_rel_l2": grad_worst,
        "gradient_worst_parameter": grad_where,
        "loss_max_rel": max(losses),
        "loss_rel_per_step": losses,
        "tolerances": (tol := LOW_PRECISION_TOLERANCES.get(precision, TOLERANCES)),
        "precision": precision,
    }
    out["within_tolerance"] = bool(
        out["forward_rel_l2"] <= tol["forward"]
        and out["gradient_max_rel_l2"] <= tol["gradients"]
        and out["loss_max_rel"] <= tol["losses"]
    )
    return out


def run_pair(opts: PairOptions, progress=print) -> PairOutcome:
    """Run ``opts.workload`` in each framework from one weights file; returns records and parity."""
    opts.validate()
    spec = get_workload(opts.workload)
    if opts.model:
        try:
            spec = spec.with_model({**spec.model.to_dict(), **opts.model})
        except (TypeError, ValueError) as exc:
            raise PairbenchError(f"invalid model override: {exc}") from None
    if opts.objective == "masked" and (refusal := masked_objective_refusal(spec)):
        raise PairbenchError(refusal)
    seed = secrets.randbits(31) if opts.seed is None else opts.seed
    batch = opts.batch_size or spec.batch_size
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = _new_run_dir(Path(opts.results_dir), f"{stamp}-{spec.name}-{seed}")

    if opts.weights:
        tensors = load_weights(Path(opts.weights), spec.model)
        weights_source = str(opts.weights)
    else:
        tensors = spec.model.init_weights(seed)
        weights_source = f"init_weights(seed={seed})"
    weights_path = run_dir / "weights.safetensors"
    digest = save_weights(weights_path, spec.model, tensors)

    hp = spec.hyper_parameters()
    fingerprint_parts = {
        "model": spec.model.to_dict(),
        "weights_sha256": digest,
        "hyper_parameters": hp,
        "data": {"generator": DATA_GENERATOR, "seed": seed},
        "batch_size": batch,
        "precision": opts.precision,
        "warmup_steps": opts.warmup_steps,
        "train_steps": opts.train_steps,
        **({"objective": opts.objective} if opts.objective != "forecast" else {}),  # earlier fingerprints stand
    }
    base = {
        "schema_version": SCHEMA_VERSION,
        "record_type": "run",
        "task": "pair",
        "pairbench_commit": source_commit(),
        "run_id": run_dir.name,
        "timestamp": stamp,
        "workload": spec.name,
        "workload_fingerprint": fingerprint(fingerprint_parts),
        "model": spec.model.to_dict(),
        "weights_sha256": digest,
        "weights_source": weights_source,
        "data_generator": DATA_GENERATOR,
        "seed": seed,
        "precision": opts.precision,
        "mode": opts.mode,
        "objective": opts.objective,
        "recompute": opts.recompute,
        "threads": opts.threads,
        "batch_size": batch,
        "warmup_steps": opts.warmup_steps,
        "train_steps": opts.train_steps,
        "forward_steps": opts.forward_steps,
        "hyper_parameters": hp,
    }
    records_path = Path(opts.results_dir) / "records.jsonl"
    done = _completed(records_path, base, opts.device) if opts.resume else {}
    records, results, run_dirs = [], {}, {}
    for fw in opts.frameworks:
        if fw in done:
            rec = done[fw]
            records.append(rec)
            results[fw] = {"status": "ok", "losses": rec["losses"], "loss_initial": rec["loss_initial"]}
            run_dirs[fw] = Path(opts.results_dir) / rec["run_id"]
            progress(f"[{fw}] already done in {rec['run_id']}: skipped (--resume)")
            continue
        run_dirs[fw] = run_dir
        progress(f"[{fw}] {spec.name} on {opts.device}, batch {batch}: building and running ...")
        run = RunConfig(
            workload=spec.name,
            framework=fw,
            weights=str(weights_path),
            device=opts.device,
            precision=opts.precision,
            mode=opts.mode,
            objective=opts.objective,
            recompute=opts.recompute,
            threads=opts.threads,
            batch_size=batch,
            warmup_steps=opts.warmup_steps,
            train_steps=opts.train_steps,
            forward_steps=opts.forward_steps,
            seed=seed,
            model=spec.model.to_dict(),
            hyper_parameters=hp,
        )
        results[fw] = run_worker(run, run_dir / fw, opts.timeout_s)
        rec = _record(base, run, spec, results[fw])
        append_record(records_path, rec)
        records.append(rec)
        progress(f"[{fw}] {rec['status']}" + (f": {rec['reason']}" if "reason" in rec else ""))

    parity = parity_record = None
    ok = [fw for fw in opts.frameworks if results[fw]["status"] == "ok"]
    if len(ok) >= 2:
        reference = "torch" if "torch" in ok else ok[0]
        other = next(fw for fw in ok if fw != reference)
        parity = _parity(run_dirs, reference, other, results, opts.precision)
        (run_dir / "parity.json").write_text(json.dumps(parity, indent=1))
        parity_record = {**{k: base[k] for k in _PARITY_KEYS}, "record_type": "parity", "device": opts.device, **parity}
        if len(done) < len(opts.frameworks):  # a new pairing, not one already recorded
            append_record(records_path, parity_record)
    return PairOutcome(run_dir=run_dir, records=records, parity=parity, parity_record=parity_record)
