"""Skill: train each framework to the same fixed budget on the built-in data, from the same weights and
in the same batch order, roll out from the same initial conditions, and score every rollout with the
one NumPy metric implementation beside persistence and climatology."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from metrics.skill import climatology_forecast, persistence_forecast, score_lead_times
from runners.options import SkillOptions, check_common
from runners.records import schema
from runners.records.store import append_record, records_path
from runners.spec import PairbenchError, check_framework
from runners.workloads.registry import get_workload

# Two fp32 trainings of 400 Adam steps drift apart by rounding alone; measured RMSE curves of the two
# frameworks differ by well under 1 % (see README), so 2 % at every lead and channel is the bound.
AGREEMENT = 0.02


def _inits(test: tuple[int, int], n_init: int, n_lead: int) -> np.ndarray:
    last = test[1] - n_lead - 1
    if last < test[0] or n_init < 1:
        raise PairbenchError(f"the test split {test} is too short for {n_init} rollouts of {n_lead} steps")
    return np.unique(np.linspace(test[0], last, n_init).astype(int))


def _flat_scores(prefix: str, scores, channels, hours: float) -> dict:
    out = {}
    for k in range(scores.rmse.shape[0]):
        lead = f"{int(round((k + 1) * hours))}h"
        for c, name in enumerate(channels):
            out[f"rmse_{prefix}{name}_{lead}"] = _number(scores.rmse[k, c])
            out[f"acc_{prefix}{name}_{lead}"] = _number(scores.acc[k, c])
    return out


def _number(value) -> float | None:
    """A finite float, or None where the metric is undefined (climatology's ACC): never NaN in a record."""
    value = float(value)
    return value if np.isfinite(value) else None


def _table(scores) -> dict:
    return {k: [[_number(v) for v in row] for row in getattr(scores, k)] for k in ("rmse", "acc")}


def run_skill(opts: SkillOptions, progress=print) -> dict:
    """Train, roll out and score each framework; returns the summary also written to skill.json."""
    from runners.data.stats import channel_stats, save_stats, time_mean_climatology
    from runners.experiments.runs import (
        environment_fields,
        new_run_dir,
        recorded,
        run_config,
        run_worker,
        source_commit,
    )
    from runners.weights.canonical import save_weights

    for fw in opts.frameworks:
        check_framework(fw)
    check_common(opts)
    if opts.train_steps < 1 or opts.batch_size < 1 or opts.n_lead < 1:
        raise PairbenchError("train-steps, batch-size and n-lead must be at least 1")
    spec = get_workload(opts.workload).overridden(opts.model)
    seed = secrets.randbits(31) if opts.seed is None else opts.seed
    progress(f"built-in data at {spec.model.img_size[0]} x {spec.model.img_size[1]} ...")
    data = spec.model.builtin_data(progress=None)
    src = data.source
    n_out = spec.model.out_chans
    # Scored on the model's outputs, over the cells where each is defined (the ocean at its depth, for AI-GOMS).
    mask = spec.model.output_mask()
    if len(src.channels) != spec.model.in_chans:
        raise PairbenchError(
            f"{spec.name} takes {spec.model.in_chans} channels; the built-in data has {len(src.channels)}"
        )
    mean, std = channel_stats(src, *data.train)
    clim = time_mean_climatology(src, *data.train)
    save_stats(data.path.parent / f"stats_{data.path.stem}", mean, std, clim)
    inits = _inits(data.test, opts.n_init, opts.n_lead)

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = new_run_dir(Path(opts.results_dir), f"{stamp}-{spec.name}-skill-{seed}")
    weights_path = run_dir / "weights.safetensors"
    digest = save_weights(weights_path, spec.model, spec.model.init_weights(seed))
    hp = {**spec.hyper_parameters(), "lr": opts.lr}
    data_info = {
        "path": str(data.path),
        "mean": mean.tolist(),
        "std": std.tolist(),
        "train": list(data.train),
        "inits": inits.tolist(),
        "n_lead": opts.n_lead,
    }
    ident = schema.identity(
        "skill",
        model=spec.model.to_dict(),
        weights_sha256=digest,
        seed=seed,
        data={
            "generator": data.meta["generator"],
            "sha256": data.meta["sha256"],
            "grid": data.meta["grid"],
            "train_range": list(data.train),
            "test_inits": inits.tolist(),
            "n_lead": opts.n_lead,
        },
        hyper_parameters=hp,
        batch_size=opts.batch_size,
        precision="fp32",
        mode="eager",
        recompute=False,
        threads=None,
        warmup_steps=0,
        train_steps=opts.train_steps,
        objective="forecast",
        nproc=1,
    )
    head = schema.header(
        ident, run_id=run_dir.name, timestamp=stamp, workload=spec.name, device=opts.device, commit=source_commit()
    )
    head.update(
        weights_convention=data.weights_convention,
        rmse_order="sqrt_of_mean_mse",
        scored_cells="all" if mask is None else "ocean at each channel's depth",
    )

    channels = src.channels[:n_out]
    truth = np.stack([src.read(i + 1, i + 1 + opts.n_lead)[:, :n_out] for i in inits])
    x0 = np.stack([src.read(i, i + 1)[0, :n_out] for i in inits])
    clim = clim[:n_out]
    score = _scorer(clim, data.weights_convention, channels, mask)
    refs = {
        "persistence": score(persistence_forecast(x0, opts.n_lead), truth),
        "climatology": score(climatology_forecast(clim, len(inits), opts.n_lead), truth),
    }
    hours = src.time_step_hours
    ref_fields = {
        **_flat_scores("persistence_", refs["persistence"], channels, hours),
        **_flat_scores("climatology_", refs["climatology"], channels, hours),
    }

    summary = {"run_dir": str(run_dir), "channels": list(channels), "hours": hours, "scores": {}, "records": []}
    for name, s in refs.items():
        summary["scores"][name] = _table(s)
    for fw in opts.frameworks:
        progress(
            f"[{fw}] training {opts.train_steps} steps of batch {opts.batch_size}, then {opts.n_lead}-step rollouts ..."
        )
        run = run_config(ident, spec.name, fw, weights_path, opts.device, forward_steps=1, task="skill", data=data_info)
        result = run_worker(run, run_dir / fw, opts.timeout_s)

        def fields(fw=fw, result=result) -> dict:
            scale, shift = std[:n_out, None, None], mean[:n_out, None, None]
            s = score(np.load(run_dir / f"{fw}.npz")["forecasts"] * scale + shift, truth)
            summary["scores"][fw] = _table(s)
            return {
                **environment_fields(result),
                "losses": result["losses"],
                "step_ms": result["step_ms"],
                "step_ms_p50": float(np.median(result["step_ms"])),
                "rollout_ms_p50": float(np.median(result["rollout_ms"])),
                **_flat_scores("", s, channels, hours),
                **ref_fields,
            }

        rec = recorded(head, fw, result, fields)
        if rec["status"] != "ok":
            summary["scores"].pop(fw, None)
        append_record(records_path(opts.results_dir), rec)
        summary["records"].append(rec)
        progress(f"[{fw}] {rec['status']}" + (f": {rec['reason']}" if "reason" in rec else ""))
    summary["agreement"] = _agreement(summary["scores"], opts.frameworks)
    (run_dir / "skill.json").write_text(json.dumps(summary, indent=1))
    return summary


def _scorer(clim, convention, channels, mask=None):
    def score(forecasts, truth):
        return score_lead_times(forecasts, truth, clim, convention=convention, channels=tuple(channels), mask=mask)

    return score


def _agreement(scores: dict, frameworks) -> dict | None:
    """The worst relative RMSE difference of the second framework against the first, over leads and channels;
    a score that is missing or not finite on either side fails the agreement and is said, never hidden."""
    ran = [fw for fw in frameworks if fw in scores]
    if len(ran) < 2:
        return None
    a, b = (np.array(scores[fw]["rmse"], dtype=np.float64) for fw in ran[:2])  # None (undefined) becomes NaN
    rel = np.abs(b - a) / a
    finite = bool(np.isfinite(rel).all())
    worst = schema.finite_or_none(np.max(rel)) if finite else None
    return {
        "reference": ran[0],
        "other": ran[1],
        "rmse_max_rel_diff": worst,
        "nonfinite": None if finite else f"{int((~np.isfinite(rel)).sum())} RMSE comparisons are missing or not finite",
        "tolerance": AGREEMENT,
        "within_tolerance": finite and worst is not None and worst <= AGREEMENT,
    }
